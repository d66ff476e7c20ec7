"""Detect how an EDM4HEP file stores its collection-ID table and relations.

Four layouts occur in practice (docs/dataset.md "Input layouts", docs/contracts.md section 1):

- `legacy`: podio < 0.16 (2023 CLIC Zenodo files). ID table in tree `metadata`, branch `CollectionIDs`
  (`m_names`, `m_collectionIDs`); relations `C#N`, vector members `C_N`.
- `idtable`: podio 0.16 - 1.6. Table `podio_metadata/events___idTable/{m_names,m_collectionIDs}`; relations
  `_C_r`, vector members `_C_v`, links `_C_from`/`_C_to`.
- `typeinfo`: podio >= 1.7. Table `podio_metadata/events___CollectionTypeInfo.{name,collectionID}`.
- `fastsim`: files written by `mlpf fastsim`; podio 1.x branch names, ID table as JSON in the `TObjString`
  `mlpf_metadata` (uproot cannot write string vectors into a TTree).

Collection IDs are always joined through the table by name, never by position.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from mlpf.errors import InputFileError
from mlpf.io.edm4hep import collections as names

FASTSIM_METADATA = "mlpf_metadata"
FASTSIM_FORMAT = "mlpf-fastsim"


@dataclass(frozen=True)
class Layout:
    """How one file is laid out: its kind, ID table and the branch names of its relations."""

    kind: str
    collection_ids: dict[str, int]
    branches: frozenset[str] = field(repr=False)
    fastsim_metadata: dict[str, Any] | None = None

    @property
    def legacy(self) -> bool:
        return self.kind == "legacy"

    def has_collection(self, collection: str) -> bool:
        """Whether the events tree stores `collection` (as a branch group, or as flat `C.member` leaves)."""
        return collection in self.branches

    def member(self, collection: str, member: str) -> str:
        """Leaf of a data member, e.g. `MCParticles.PDG`."""
        return f"{collection}.{member}"

    def relation(self, collection: str, relation: str, role: str) -> str:
        """Branch holding `.index`/`.collectionID` of a relation (or link end) of `collection`.

        `role` (a `CollectionNames` field) gives the datatype, which fixes legacy `C#N` numbering.
        """
        if self.legacy:
            return f"{collection}#{names.LEGACY_RELATIONS[role][relation]}"
        for candidate in names.LINK_END_NAMES.get(relation, (relation,)):
            branch = f"_{collection}_{candidate}"
            if branch in self.branches:
                return branch
        return f"_{collection}_{relation}"

    def vector_member(self, collection: str, member: str, role: str) -> str:
        """Branch of a vector member (e.g. track states) of `collection`."""
        if self.legacy:
            return f"{collection}_{names.LEGACY_VECTOR_MEMBERS[role][member]}"
        return f"_{collection}_{member}"

    def ids_of(self, *collections: str) -> np.ndarray:
        """Collection IDs of the given names (those absent from the table are left out)."""
        return np.array(
            [self.collection_ids[c] for c in collections if c in self.collection_ids], dtype=np.int64
        )


def _table_arrays(tree: Any, names_leaf: str, ids_leaf: str) -> dict[str, int]:
    arrays = tree.arrays([names_leaf, ids_leaf], library="np")
    collection_names = [str(n) for n in arrays[names_leaf][0]]
    ids = [int(i) for i in arrays[ids_leaf][0]]
    return dict(zip(collection_names, ids, strict=True))


def detect_layout(file: Any, events: Any, path: str | Path) -> Layout:
    """Inspect an open uproot file and its `events` tree; raise InputFileError when no ID table is found."""
    # Top-level names with the member part stripped: podio writes a branch group `C`, the fastsim writes flat
    # leaves `C.member` (uproot cannot write groups); both name the collection or relation `C`.
    branches = frozenset(key.split(".")[0] for key in events.keys(recursive=False))
    keys = {k.split(";")[0] for k in file.keys(recursive=False)}
    try:
        layout = _fastsim_layout(file, keys, branches, path) or _podio_layout(file, keys, branches)
    except InputFileError:
        raise
    except (KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
        raise InputFileError(
            f"unreadable collection-ID table ({type(exc).__name__}: {exc})", path=path
        ) from None
    except Exception as exc:  # noqa: BLE001 - uproot raises many types for damaged files
        raise InputFileError(f"unreadable collection-ID table ({type(exc).__name__})", path=path) from None
    if layout is None:
        raise InputFileError(
            "no podio collection-ID table (podio_metadata, metadata/CollectionIDs or mlpf_metadata); "
            "not an EDM4HEP file?",
            path=path,
        )
    return layout


def _fastsim_layout(file: Any, keys: set[str], branches: frozenset[str], path: str | Path) -> Layout | None:
    """The fastsim's layout, from its JSON metadata string, if the file has one."""
    if FASTSIM_METADATA not in keys:
        return None
    meta = json.loads(str(file[FASTSIM_METADATA]))
    if meta.get("format") != FASTSIM_FORMAT:
        raise InputFileError(f"'{FASTSIM_METADATA}' is not {FASTSIM_FORMAT} metadata", path=path)
    ids = {str(k): int(v) for k, v in meta["collection_ids"].items()}
    return Layout("fastsim", ids, branches, meta)


def _podio_layout(file: Any, keys: set[str], branches: frozenset[str]) -> Layout | None:
    """A podio layout from the first ID table found: podio 0.16-1.6, then podio >= 1.7, then legacy."""
    if "podio_metadata" in keys:
        meta_tree = file["podio_metadata"]
        meta_keys = set(meta_tree.keys())
        if "events___idTable/m_names" in meta_keys:
            ids = _table_arrays(meta_tree, "events___idTable/m_names", "events___idTable/m_collectionIDs")
            return Layout("idtable", ids, branches)
        info = "events___CollectionTypeInfo"
        if f"{info}/{info}.name" in meta_keys:
            ids = _table_arrays(meta_tree, f"{info}/{info}.name", f"{info}/{info}.collectionID")
            return Layout("typeinfo", ids, branches)
    if "metadata" in keys:
        meta_tree = file["metadata"]
        if "CollectionIDs/m_names" in set(meta_tree.keys()):
            ids = _table_arrays(meta_tree, "CollectionIDs/m_names", "CollectionIDs/m_collectionIDs")
            return Layout("legacy", ids, branches)
    return None


# Detector names as they appear in Key4HEP steering strings (compact files CLIC_o3_v14.xml, CLD_o2_v05.xml).
DETECTOR_MARKERS = {"cld": "CLD_o", "clic": "CLIC_o"}


def detect_detector(file: Any, layout: Layout) -> str | None:
    """The detector a file was made for, if it says so: fastsim metadata, else Gaudi steering strings."""
    if layout.fastsim_metadata is not None:
        detector = layout.fastsim_metadata.get("detector") or layout.fastsim_metadata.get("config", {}).get(
            "detector"
        )
        return str(detector).lower() if detector else "clic"  # the fastsim models CLICdet
    keys = {k.split(";")[0] for k in file.keys(recursive=False)}
    for tree_name in ("configuration_metadata", "metadata"):
        if tree_name not in keys:
            continue
        try:
            tree = file[tree_name]
            values = (
                tree["GPStringValues"].array(library="ak", entry_stop=1) if "GPStringValues" in tree else []
            )
            text = "\n".join(str(v) for v in ak.flatten(values, axis=None).tolist()) if len(values) else ""
        except Exception:  # noqa: BLE001 - optional information: a damaged metadata tree means "unknown"
            text = ""
        found = [name for name, marker in DETECTOR_MARKERS.items() if marker in text]
        if len(found) == 1:
            return found[0]
    return None
