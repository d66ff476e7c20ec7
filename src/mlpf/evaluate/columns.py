"""Names of the particle columns and classes in the prediction files (docs/contracts.md, sections 2 and 4).

`ytarget`, `ycand` and `ypred` hold one row of seven numbers per element; class 0 means "no particle".
"""

from __future__ import annotations

# Column order of ytarget / ycand / ypred and the particle classes are defined once, by the parse stage that
# writes them (contract section 2; upstream CLIC class list, arXiv:2309.06782 Table 1).
from mlpf.data.targets import CLASS_NAMES, PARTICLE_COLUMNS

__all__ = [  # re-exported for the evaluation modules
    "CLASS_LABELS",
    "CLASS_NAMES",
    "COL",
    "ELEMENT_CLUSTER",
    "ELEMENT_TRACK",
    "N_X_FEATURES",
    "PARTICLE_COLUMNS",
    "RECO_FIELDS",
    "X_ENERGY",
    "X_PT",
    "X_TYPE",
]

COL: dict[str, int] = {name: i for i, name in enumerate(PARTICLE_COLUMNS)}

CLASS_LABELS: dict[str, str] = {
    "charged_hadron": "charged hadrons",
    "neutral_hadron": "neutral hadrons",
    "photon": r"photons",
    "electron": r"electrons",
    "muon": r"muons",
}

# Element feature columns used by the per-class metrics (contract section 2, upstream X layout):
# column 0 = element type (1 track, 2 cluster), 1 = track pT / cluster ET, 5 = track p / cluster energy.
X_TYPE, X_PT, X_ENERGY = 0, 1, 5
N_X_FEATURES = 17
ELEMENT_TRACK, ELEMENT_CLUSTER = 1, 2

# The reconstructions compared against the generator truth: MLPF, the baseline PF and the target particles
# (the best any element-based reconstruction can do).
RECO_FIELDS: dict[str, str] = {"mlpf": "ypred", "pf": "ycand", "target": "ytarget"}
