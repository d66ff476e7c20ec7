"""EDM4HEP collection and member names, track-state codes and podio collection IDs, defined once.

Names follow the CLIC/CLD Key4HEP reconstruction (CLICPerformance `clicRec_e4h_input.py`, as read by
jpata/particleflow `mlpf/data/key4hep/postprocessing.py`) and docs/contracts.md section 1; the fastsim writes
the same names (mlpf.sim.collections). Legacy podio files (2023 CLIC Zenodo record 8260741) number their
relations `C#N` and their vector members `C_N` in datamodel declaration order; the tables below give those
numbers (EDM4hep 0.4-0.7 YAML).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

# Event tree written by podio (all versions).
EVENTS_TREE = "events"

MC_PARTICLES = "MCParticles"
TRACKS = "SiTracks_Refitted"
TRACK_DQDX = "SiTracks_Refitted_dQdx"  # EDM4hep >= 0.99: dE/dx moved out of Track (upstream PR #374)
CLUSTERS = "PandoraClusters"
PFOS = "PandoraPFOs"
PFOS_LEGACY = "MergedRecoParticles"  # legacy files: Pandora PFOs merged with LumiCal particles, `type` = PDG
CALO_LINK = "CalohitMCTruthLink"  # weight: energy (GeV) the MC particle deposited in the hit
TRACK_LINK = "SiTracksMCTruthLink"  # weight: fraction of the track's hits from the MC particle

# Calorimeter hit collections and their subdetector code (upstream: ECAL 0, HCAL 1, other 2).
CALO_HIT_COLLECTIONS: dict[str, int] = {
    "ECALBarrel": 0,
    "ECALEndcap": 0,
    "ECALOther": 0,
    "HCALBarrel": 1,
    "HCALEndcap": 1,
    "HCALOther": 1,
    "MUON": 2,
}
SUBDETECTOR_ECAL, SUBDETECTOR_HCAL, SUBDETECTOR_OTHER = 0, 1, 2

# Marlin-converted legacy files point their truth links at "MCParticle" (the LCIO-side name), a collection
# that is listed in the ID table but not persisted; its objects are those of MCParticles in the same order.
MC_PARTICLE_ALIASES = ("MCParticle",)

# Track-state locations (edm4hep::TrackState).
TRACK_STATE_AT_OTHER = 0
TRACK_STATE_AT_IP = 1
TRACK_STATE_AT_FIRST_HIT = 2
TRACK_STATE_AT_LAST_HIT = 3
TRACK_STATE_AT_CALORIMETER = 4

# Relation and vector-member positions in legacy `C#N` / `C_N` branches, per collection role (datamodel
# declaration order: OneToMany relations, then OneToOne; vector members separately).
LEGACY_RELATIONS: dict[str, dict[str, int]] = {
    "mc_particles": {"parents": 0, "daughters": 1},
    "tracks": {"trackerHits": 0, "tracks": 1},
    "clusters": {"clusters": 0, "hits": 1, "particleIDs": 2},
    "pfos": {"clusters": 0, "tracks": 1, "particles": 2},
    # Associations (MCRecoCaloAssociation, MCRecoTrackParticleAssociation): rec, sim.
    "calo_link": {"from": 0, "to": 1},
    "track_link": {"from": 0, "to": 1},
}
LEGACY_VECTOR_MEMBERS: dict[str, dict[str, int]] = {
    "tracks": {"subDetectorHitNumbers": 0, "trackStates": 1},
    "clusters": {"shapeParameters": 0, "hitContributions": 1, "subdetectorEnergies": 2},
}


@dataclass(frozen=True)
class CollectionNames:
    """The collection read for each role; the defaults are the CLIC/CLD names above.

    Other reconstructions (or the EDM4hep example files, e.g. `MCParticleCollection`) name the same types
    differently; `dataset.collections` in the config overrides single roles.
    """

    mc_particles: str = MC_PARTICLES
    tracks: str = TRACKS
    track_dqdx: str = TRACK_DQDX
    clusters: str = CLUSTERS
    pfos: str = PFOS
    pfos_legacy: str = PFOS_LEGACY
    calo_link: str = CALO_LINK
    track_link: str = TRACK_LINK
    calo_hits: tuple[str, ...] = tuple(CALO_HIT_COLLECTIONS)

    @classmethod
    def from_settings(cls, overrides: dict[str, Any] | None) -> CollectionNames:
        overrides = dict(overrides or {})
        if "calo_hits" in overrides:
            overrides["calo_hits"] = tuple(overrides["calo_hits"])
        return replace(cls(), **overrides)

    def role_of(self, collection: str) -> str | None:
        """The role a collection name plays (for legacy relation numbering)."""
        for f in fields(self):
            if f.name != "calo_hits" and getattr(self, f.name) == collection:
                return "pfos" if f.name == "pfos_legacy" else f.name
        return None


def subdetector_of(collection: str) -> int:
    """Subdetector code of a calorimeter hit collection: the table above, else ECAL/HCAL by name."""
    if collection in CALO_HIT_COLLECTIONS:
        return CALO_HIT_COLLECTIONS[collection]
    upper = collection.upper()
    return SUBDETECTOR_ECAL if "ECAL" in upper else SUBDETECTOR_HCAL if "HCAL" in upper else SUBDETECTOR_OTHER


# Names of link ends: podio::LinkData (EDM4hep >= 0.99) uses from/to; EDM4hep 0.10 associations rec/sim.
LINK_END_NAMES = {"from": ("from", "rec"), "to": ("to", "sim")}

# podio's "not persisted" collection ID and unset-reference index.
UNSET_INDEX = -2


# podio derives a collection ID as the 32-bit MurmurHash3 (x86, seed 0) of the collection name
# (`podio::detail::hash32`); MCParticles -> 2714477136 as in every Key4HEP file.
def murmurhash3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86 32-bit (Austin Appleby, public domain), as used by podio for collection IDs."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF
    h = seed
    nblocks = len(data) // 4
    for i in range(nblocks):
        k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * c2) & mask
        h ^= k
        h = ((h << 13) | (h >> 19)) & mask
        h = (h * 5 + 0xE6546B64) & mask
    tail = data[4 * nblocks :]
    k = 0
    if len(tail) >= 3:
        k ^= tail[2] << 16
    if len(tail) >= 2:
        k ^= tail[1] << 8
    if tail:
        k ^= tail[0]
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * c2) & mask
        h ^= k
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    h ^= h >> 16
    return h


def collection_id(name: str) -> int:
    """The podio collection ID of a collection name."""
    return murmurhash3_32(name.encode())
