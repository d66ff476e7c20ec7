"""What the evaluation adds to the column layout of mlpf.data: class labels for figures and the
reconstructions compared (docs/contracts.md, sections 2 and 4; the layout itself is mlpf.data.features and
mlpf.data.targets).
"""

from __future__ import annotations

CLASS_LABELS: dict[str, str] = {
    "charged_hadron": "charged hadrons",
    "neutral_hadron": "neutral hadrons",
    "photon": r"photons",
    "electron": r"electrons",
    "muon": r"muons",
}

# The reconstructions compared against the generator truth: MLPF, the baseline PF and the target particles
# (the best any element-based reconstruction can do).
RECO_FIELDS: dict[str, str] = {"mlpf": "ypred", "pf": "ycand", "target": "ytarget"}
