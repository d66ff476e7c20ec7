"""EDM4hep collection names written by the fastsim and their podio collection IDs.

podio derives a collection ID as the 32-bit MurmurHash3 (x86, seed 0) of the collection name (podio
`podio::detail::hash32`); MCParticles -> 2714477136 as in every Key4HEP file. The fastsim uses the same IDs so
relations (`.collectionID`) read the same way as in real files.
"""

from __future__ import annotations

ECAL_HIT_COLLECTIONS = ("ECALBarrel", "ECALEndcap")
HCAL_HIT_COLLECTIONS = ("HCALBarrel", "HCALEndcap", "HCALOther")
MUON_HIT_COLLECTIONS = ("MUON",)
HIT_COLLECTIONS = ECAL_HIT_COLLECTIONS + HCAL_HIT_COLLECTIONS + MUON_HIT_COLLECTIONS

COLLECTIONS = (
    "MCParticles",
    "SiTracks_Refitted",
    "SiTracks_Refitted_dQdx",
    *HIT_COLLECTIONS,
    "PandoraClusters",
    "PandoraPFOs",
    "CalohitMCTruthLink",
    "SiTracksMCTruthLink",
)

# Track-state locations (edm4hep::TrackState)
AT_OTHER, AT_IP, AT_FIRST_HIT, AT_LAST_HIT, AT_CALORIMETER = 0, 1, 2, 3, 4


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


COLLECTION_IDS: dict[str, int] = {name: collection_id(name) for name in COLLECTIONS}
