"""The EDM4hep collections the fastsim writes, with their podio collection IDs.

Names, track-state codes and the ID function are those the reader uses (mlpf.io.edm4hep.collections), so the
fastsim writes what the parse stage reads and relations (`.collectionID`) resolve as in real files. The fastsim
writes every calorimeter hit collection of CLIC_o3_v14 but ECALOther (its ECAL has no ring or plug).
"""

from __future__ import annotations

from mlpf.io.edm4hep import collections as names

# Calorimeter hit collections in the order of the fastsim's hit collection codes (mlpf.sim.calorimeter).
HIT_COLLECTIONS = tuple(name for name in names.CALO_HIT_COLLECTIONS if name != "ECALOther")

COLLECTIONS = (
    names.MC_PARTICLES,
    names.TRACKS,
    names.TRACK_DQDX,
    *HIT_COLLECTIONS,
    names.CLUSTERS,
    names.PFOS,
    names.CALO_LINK,
    names.TRACK_LINK,
)
COLLECTION_IDS: dict[str, int] = {name: names.collection_id(name) for name in COLLECTIONS}
