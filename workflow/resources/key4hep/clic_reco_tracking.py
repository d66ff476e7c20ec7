"""k4run options loaded after k4MarlinWrapper's CLIC example (production `key4hep-2025`):
the track-finding settings of the MLPF CLIC production.

    k4run "$K4MARLINWRAPPER/examples/clicRec_e4h_input.py" clic_reco_tracking.py --gaudi-input SIM ...

k4run reads its options files in order, and a Gaudi configurable is one object per name, so this file changes
the ConformalTracking step that the example set up. The production's options
(jpata/particleflow v1.5 scripts/fcc/clicRec_e4h_input.py, commit c5f1bd06, "MyConformalTracking") retry a
crowded event instead of dropping its tracks (RetryTooManyTracks true) and allow 400000 track candidates; the
stock example keeps false and 100000. Everything else is the example's. If the example has no such step, or the
step lacks these parameters, the job stops here with one message instead of running other settings silently.
"""

from __future__ import annotations

from GaudiKernel.Configurable import Configurable

# Parameters of the production's MyConformalTracking that differ from the stock example (values as strings,
# as MarlinProcessorWrapper takes them).
PRODUCTION_TRACKING = {"RetryTooManyTracks": ["true"], "TooManyTracks": ["400000"]}
TRACKING_STEP = "MyConformalTracking"


def apply_production_tracking(configurables: dict) -> None:
    step = configurables.get(TRACKING_STEP)
    if step is None:
        raise RuntimeError(f"clic_reco_tracking.py: the reconstruction options define no {TRACKING_STEP}")
    parameters = dict(step.Parameters)
    missing = sorted(set(PRODUCTION_TRACKING) - set(parameters))
    if missing:
        raise RuntimeError(f"clic_reco_tracking.py: {TRACKING_STEP} has no parameter {', '.join(missing)}")
    parameters.update(PRODUCTION_TRACKING)
    step.Parameters = parameters


apply_production_tracking(Configurable.allConfigurables)
