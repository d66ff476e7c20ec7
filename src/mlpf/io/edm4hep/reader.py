"""Read the collections MLPF needs from an EDM4HEP file of any supported layout into awkward arrays.

One code path serves legacy podio, podio 1.x (either ID-table layout) and fastsim files: the layout object
(`mlpf.io.edm4hep.layout`) names the branches, and every relation is resolved through the collection-ID table
by name. All work is vectorised over the events of a chunk: jagged branches are flattened once, relations are
resolved with numpy index arithmetic, and the results are rebuilt as awkward arrays with one list per event.

Relation indices in the returned arrays are positions inside the same event's target collection (for
calorimeter hits: inside the concatenation of `CALO_HIT_COLLECTIONS` in that order); -1 marks a reference that
is unset, points to a collection that was not read, or is out of range.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import awkward as ak
import numpy as np
import uproot

from mlpf.errors import InputFileError
from mlpf.io.edm4hep import collections as names
from mlpf.io.edm4hep.layout import Layout, detect_layout


@dataclass
class EventCollections:
    """The collections of a chunk of events, one awkward list per event for each."""

    n_events: int
    mc: (
        ak.Array
    )  # pdg, generator_status, simulator_status, charge, mass, px, py, pz, energy, parents, daughters
    tracks: ak.Array  # type, chi2, ndf, dedx, dedx_error, radius_innermost_hit, ip: {...}, calo: {...}
    clusters: ak.Array  # type, energy, x, y, z, itheta, phi, hits
    hits: ak.Array  # energy, x, y, z, time, subdetector, collection (+ type if read_hit_type)
    pfos: ak.Array  # pdg, charge, energy, px, py, pz, mass, tracks, clusters
    calo_links: ak.Array  # hit, particle, weight
    track_links: ak.Array  # track, particle, weight


def _counts_offsets(counts: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def _expand(begin: np.ndarray, end: np.ndarray, owner_event: np.ndarray, target_offsets: np.ndarray):
    """Flat positions in a per-event relation array for object ranges [begin, end), plus counts per object."""
    counts = np.maximum(end.astype(np.int64) - begin.astype(np.int64), 0)
    starts = begin.astype(np.int64) + target_offsets[owner_event]
    total = int(counts.sum())
    first = np.repeat(starts - _counts_offsets(counts)[:-1], counts)
    return first + np.arange(total, dtype=np.int64), counts


class _Chunk:
    """Flat numpy views of the leaves of one chunk of events."""

    def __init__(self, arrays: dict[str, ak.Array], n_events: int) -> None:
        self.n_events = n_events
        self._arrays = arrays
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def has(self, leaf: str) -> bool:
        return leaf in self._arrays

    def flat(self, leaf: str) -> np.ndarray:
        return self._get(leaf)[0]

    def counts(self, leaf: str) -> np.ndarray:
        return self._get(leaf)[1]

    def _get(self, leaf: str) -> tuple[np.ndarray, np.ndarray]:
        if leaf not in self._cache:
            array = self._arrays[leaf]
            self._cache[leaf] = (ak.to_numpy(ak.flatten(array, axis=1)), ak.to_numpy(ak.num(array, axis=1)))
        return self._cache[leaf]


class _Resolver:
    """Turns (collectionID, index) pairs into per-event positions in a concatenation of target collections."""

    def __init__(
        self, layout: Layout, targets: list[str], counts: list[np.ndarray], n_events: int, aliases: tuple = ()
    ) -> None:
        ids, positions = [], []
        for k, target in enumerate(targets):
            for name in (target, *aliases):
                if name in layout.collection_ids:
                    ids.append(layout.collection_ids[name])
                    positions.append(k)
        order = np.argsort(ids, kind="stable")
        self.ids = np.asarray(ids, dtype=np.int64)[order]
        self.positions = np.asarray(positions, dtype=np.int64)[order]
        self.sizes = np.stack(counts, axis=1) if counts else np.zeros((n_events, 0), dtype=np.int64)
        self.starts = np.cumsum(self.sizes, axis=1) - self.sizes

    def resolve(self, cid: np.ndarray, index: np.ndarray, event: np.ndarray) -> np.ndarray:
        if len(self.ids) == 0 or len(cid) == 0:
            return np.full(len(cid), -1, dtype=np.int64)
        where = np.clip(np.searchsorted(self.ids, cid.astype(np.int64)), 0, len(self.ids) - 1)
        known = self.ids[where] == cid
        k = self.positions[where]
        index = index.astype(np.int64)
        size = self.sizes[event, k]
        valid = known & (index >= 0) & (index < size)
        return np.where(valid, self.starts[event, k] + index, -1)


class Edm4hepFile:
    """An open EDM4HEP file: its layout, event count and chunked reading of the MLPF collections."""

    def __init__(
        self, path: str | Path, collections: names.CollectionNames | None = None, read_hit_type: bool = False
    ) -> None:
        """`read_hit_type` adds the hits' `type` (the CalorimeterHitType code, with the layer) to `hits`; the
        hit level needs it, the cluster level does not read it."""
        self.path = Path(path)
        self.c = collections or names.CollectionNames()
        self.read_hit_type = read_hit_type
        self._span_cache: dict[str, tuple[int, int, ak.Array]] = {}
        if not self.path.is_file():
            raise InputFileError("no such file", path=self.path)
        try:
            self._file = uproot.open(self.path)
            keys = {k.split(";")[0] for k in self._file.keys(recursive=False)}
            if names.EVENTS_TREE not in keys:
                raise InputFileError(
                    f"no '{names.EVENTS_TREE}' tree; not an EDM4HEP event file", path=self.path
                )
            self.events = self._file[names.EVENTS_TREE]
            self.n_events = int(self.events.num_entries)
        except InputFileError:
            raise
        except Exception as exc:  # noqa: BLE001 - uproot raises many types for damaged files
            raise InputFileError(f"not a readable ROOT file ({_describe(exc)})", path=self.path) from None
        self.layout = detect_layout(self._file, self.events, self.path)
        # Legacy files carry both; upstream reads MergedRecoParticles there (Pandora PFOs + LumiCal particles).
        prefer_legacy = self.layout.legacy and self.layout.has_collection(self.c.pfos_legacy)
        has_pfos = self.layout.has_collection(self.c.pfos)
        self.pfo_collection = self.c.pfos if has_pfos and not prefer_legacy else self.c.pfos_legacy

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_collections(self) -> None:
        """Raise a one-line InputFileError naming every collection the parse stage needs but the file lacks."""
        # The PFO collection is checked separately: either name will do.
        required = (self.c.mc_particles, self.c.tracks, self.c.clusters, self.c.calo_link)
        missing = [c for c in required if not self.layout.has_collection(c)]
        if not (self.layout.has_collection(self.c.pfos) or self.layout.has_collection(self.c.pfos_legacy)):
            missing.append(f"{self.c.pfos} (or legacy {self.c.pfos_legacy})")
        if not missing and not self.layout.has_collection(self.c.track_link) and self._any_tracks():
            missing.append(self.c.track_link)
        if missing:
            raise InputFileError(
                f"missing collection {', '.join(missing)} (layout '{self.layout.kind}'); parsing needs MC "
                "particles, reconstructed tracks, clusters, PF particles and truth links (a full-reconstruction "
                "file, not a simulation-only or PFO-only one)",
                path=self.path,
            )

    def _any_tracks(self) -> bool:
        # A legacy file lists SiTracksMCTruthLink in its ID table but stores no branch when it never had tracks.
        leaf = self.layout.member(self.c.tracks, "type")
        counts = self._read([leaf], 0, self.n_events)[leaf]
        return bool(ak.any(ak.num(counts, axis=1) > 0))

    def iterate(self, step: int) -> Iterator[tuple[int, int, EventCollections]]:
        """Yield (entry_start, entry_stop, collections) over the whole file in chunks of `step` events."""
        for start, stop in self.chunk_ranges(step):
            yield start, stop, self.read(start, stop)

    def chunk_ranges(self, step: int) -> list[tuple[int, int]]:
        """Consecutive entry ranges of `step` events covering the file."""
        return [(a, min(a + step, self.n_events)) for a in range(0, self.n_events, step)]

    def _read(self, leaves: list[str], start: int, stop: int) -> dict[str, ak.Array]:
        """Arrays of the given leaves for entries [start, stop).

        Branch objects are looked up once by name (uproot's own name search scans every branch of the tree per
        requested name, which dominates for Key4HEP files with thousands of branches). A basket is decompressed
        as a whole, so each branch's array is read for the whole span of the baskets the chunk touches and kept
        until a later chunk leaves that span: sequential chunks decompress every basket once, whatever the
        basket size (a file written as one basket per branch is decompressed once, then sliced).
        """
        out = {}
        try:
            for leaf in leaves:
                branch = self._branches.get(leaf)
                if branch is None:
                    continue
                cached = self._span_cache.get(leaf)
                if cached is None or not (cached[0] <= start and stop <= cached[1]):
                    edges = np.asarray(branch.entry_offsets, dtype=np.int64)
                    lo = int(edges[max(np.searchsorted(edges, start, side="right") - 1, 0)])
                    hi = int(edges[min(np.searchsorted(edges, stop, side="left"), len(edges) - 1)])
                    hi = max(hi, stop)
                    cached = (lo, hi, branch.array(entry_start=lo, entry_stop=hi, library="ak"))
                    self._span_cache[leaf] = cached
                out[leaf] = cached[2][start - cached[0] : stop - cached[0]]
        except Exception as exc:  # noqa: BLE001 - truncated baskets, decompression errors, ...
            raise InputFileError(
                f"cannot read events {start}-{stop} ({_describe(exc)}); the file is corrupt or truncated",
                path=self.path,
            ) from None
        return out

    @property
    def _branches(self) -> dict[str, Any]:
        if not hasattr(self, "_branch_map"):
            self._branch_map = {b.name: b for b in self.events.itervalues(recursive=True) if not b.branches}
        return self._branch_map

    def read(self, start: int, stop: int) -> EventCollections:
        """Read events [start, stop) and resolve every relation."""
        lay = self.layout
        leaves = self._leaves()
        chunk = _Chunk(self._read(leaves, start, stop), stop - start)
        n_ev = chunk.n_events

        hit_names = [c for c in self.c.calo_hits if lay.has_collection(c)]
        hit_counts = [chunk.counts(lay.member(c, "energy")) for c in hit_names]
        hits_resolver = _Resolver(lay, hit_names, hit_counts, n_ev)
        mc_counts = chunk.counts(lay.member(self.c.mc_particles, "PDG"))
        mc_resolver = _Resolver(lay, [self.c.mc_particles], [mc_counts], n_ev, names.MC_PARTICLE_ALIASES)
        trk_counts = chunk.counts(lay.member(self.c.tracks, "type"))
        trk_resolver = _Resolver(lay, [self.c.tracks], [trk_counts], n_ev)
        cl_counts = chunk.counts(lay.member(self.c.clusters, "energy"))
        cl_resolver = _Resolver(lay, [self.c.clusters], [cl_counts], n_ev)

        return EventCollections(
            n_events=n_ev,
            mc=self._mc(chunk, mc_resolver),
            tracks=self._tracks(chunk, trk_resolver),
            clusters=self._clusters(chunk, hits_resolver),
            hits=self._hits(chunk, hit_names),
            pfos=self._pfos(chunk, trk_resolver, cl_resolver),
            calo_links=self._links(chunk, self.c.calo_link, hits_resolver, mc_resolver, "hit"),
            track_links=self._links(chunk, self.c.track_link, trk_resolver, mc_resolver, "track"),
        )

    # -- leaves ---------------------------------------------------------------------------------------------
    def _leaves(self) -> list[str]:
        lay, pfo = self.layout, self.pfo_collection
        m = lay.member
        out = [
            *(
                m(self.c.mc_particles, f)
                for f in ("PDG", "generatorStatus", "simulatorStatus", "charge", "mass")
            ),
            *(m(self.c.mc_particles, f"momentum.{a}") for a in "xyz"),
            *(m(self.c.mc_particles, f"{r}_{e}") for r in ("parents", "daughters") for e in ("begin", "end")),
            *(
                f"{lay.relation(self.c.mc_particles, r, 'mc_particles')}.{f}"
                for r in ("parents", "daughters")
                for f in _REF
            ),
            *(m(self.c.tracks, f) for f in ("type", "chi2", "ndf", "trackStates_begin", "trackStates_end")),
            *(m(self.c.tracks, f) for f in ("dEdx", "dEdxError", "radiusOfInnermostHit")),  # legacy members
            *(
                f"{lay.vector_member(self.c.tracks, 'trackStates', 'tracks')}.{f}"
                for f in (*_STATE_FIELDS.values(), "location")
            ),
            *(
                m(self.c.clusters, f)
                for f in ("type", "energy", "iTheta", "phi", "iPhi", "hits_begin", "hits_end")
            ),
            *(m(self.c.clusters, f"position.{a}") for a in "xyz"),
            *(f"{lay.relation(self.c.clusters, 'hits', 'clusters')}.{f}" for f in _REF),
            *(m(pfo, f) for f in ("PDG", "type", "charge", "energy", "mass")),
            *(m(pfo, f"momentum.{a}") for a in "xyz"),
            *(m(pfo, f"{r}_{e}") for r in ("tracks", "clusters") for e in ("begin", "end")),
            *(f"{lay.relation(pfo, r, 'pfos')}.{f}" for r in ("tracks", "clusters") for f in _REF),
        ]
        if not lay.legacy:  # EDM4hep >= 0.99 keeps dE/dx in its own collection
            out += [m(self.c.track_dqdx, "dQdx.value"), m(self.c.track_dqdx, "dQdx.error")]
            out += [f"{lay.relation(self.c.track_dqdx, 'track', 'track_dqdx')}.{f}" for f in _REF]
        for link in (self.c.calo_link, self.c.track_link):
            out.append(m(link, "weight"))
            role = self.c.role_of(link) or "calo_link"
            out.extend(f"{lay.relation(link, end, role)}.{f}" for end in ("from", "to") for f in _REF)
        hit_leaves = ("energy", "time", "position.x", "position.y", "position.z")
        for hits in self.c.calo_hits:
            out.extend(m(hits, f) for f in hit_leaves + (("type",) if self.read_hit_type else ()))
        return out

    # -- collections ------------------------------------------------------------------------------------------
    def _relation(
        self, chunk: _Chunk, collection: str, relation: str, owner_leaf: str, resolver: _Resolver
    ) -> ak.Array:
        """Nested list [event][object][k] of resolved positions for a OneToMany relation."""
        lay = self.layout
        begin = chunk.flat(lay.member(collection, f"{relation}_begin"))
        end = chunk.flat(lay.member(collection, f"{relation}_end"))
        owner_counts = chunk.counts(owner_leaf)
        branch = lay.relation(collection, relation, self.c.role_of(collection) or "")
        index_leaf = f"{branch}.index"
        if not chunk.has(index_leaf):
            inner = ak.unflatten(np.zeros(0, dtype=np.int64), np.zeros(len(begin), dtype=np.int64))
            return ak.unflatten(inner, owner_counts)
        rel_counts = chunk.counts(index_leaf)
        rel_event = np.repeat(np.arange(chunk.n_events), rel_counts)
        resolved = resolver.resolve(chunk.flat(f"{branch}.collectionID"), chunk.flat(index_leaf), rel_event)
        owner_event = np.repeat(np.arange(chunk.n_events), owner_counts)
        positions, counts = _expand(begin, end, owner_event, _counts_offsets(rel_counts))
        positions = np.clip(positions, 0, max(len(resolved) - 1, 0))
        values = resolved[positions] if len(resolved) else np.zeros(0, dtype=np.int64)
        return ak.unflatten(ak.unflatten(values, counts), owner_counts)

    def _mc(self, chunk: _Chunk, mc_resolver: _Resolver) -> ak.Array:
        m = self.layout.member
        c = self.c.mc_particles
        pdg_leaf = m(c, "PDG")
        px, py, pz = (chunk.flat(m(c, f"momentum.{a}")).astype(np.float64) for a in "xyz")
        mass = chunk.flat(m(c, "mass")).astype(np.float64)
        fields = {
            "pdg": chunk.flat(pdg_leaf).astype(np.int32),
            "generator_status": chunk.flat(m(c, "generatorStatus")).astype(np.int32),
            "simulator_status": chunk.flat(m(c, "simulatorStatus")).astype(np.int32),
            "charge": chunk.flat(m(c, "charge")).astype(np.float32),
            "mass": mass,
            "px": px,
            "py": py,
            "pz": pz,
            "energy": np.sqrt(px**2 + py**2 + pz**2 + mass**2),
        }
        out = ak.unflatten(ak.zip(fields), chunk.counts(pdg_leaf))
        for rel in ("parents", "daughters"):
            out = ak.with_field(out, self._relation(chunk, c, rel, pdg_leaf, mc_resolver), rel)
        return out

    def _tracks(self, chunk: _Chunk, trk_resolver: _Resolver) -> ak.Array:
        lay = self.layout
        c = self.c.tracks
        type_leaf = lay.member(c, "type")
        n_trk = len(chunk.flat(type_leaf))
        trk_counts = chunk.counts(type_leaf)
        trk_event = np.repeat(np.arange(chunk.n_events), trk_counts)
        trk_offsets = _counts_offsets(trk_counts)

        states = lay.vector_member(c, "trackStates", "tracks")
        loc_leaf = f"{states}.location"
        state_offsets = _counts_offsets(chunk.counts(loc_leaf))
        positions, counts = _expand(
            chunk.flat(lay.member(c, "trackStates_begin")),
            chunk.flat(lay.member(c, "trackStates_end")),
            trk_event,
            state_offsets,
        )
        owner = np.repeat(np.arange(n_trk), counts)
        location = chunk.flat(loc_leaf)[positions] if len(positions) else np.zeros(0, dtype=np.int32)

        def pick(wanted: int | None) -> np.ndarray:
            """Flat state position per track (first state with the location; IP falls back to the first)."""
            rank = np.arange(len(positions))
            if wanted is not None:
                rank = np.where(location == wanted, rank, rank + (len(positions) + 1))
            chosen = np.full(n_trk, -1, dtype=np.int64)
            if len(positions):
                order = np.lexsort((rank, owner))
                first = np.unique(owner[order], return_index=True)
                sel = order[first[1]]
                ok = (wanted is None) | (location[sel] == wanted)
                chosen[first[0][ok]] = positions[sel[ok]]
            return chosen

        ip = pick(names.TRACK_STATE_AT_IP)
        ip = np.where(ip >= 0, ip, pick(None))  # upstream uses the first state (AtIP in Marlin refits)
        first_hit = pick(names.TRACK_STATE_AT_FIRST_HIT)
        calo = pick(names.TRACK_STATE_AT_CALORIMETER)

        def state_record(chosen: np.ndarray) -> ak.Array:
            fields = {}
            for name, leaf in _STATE_FIELDS.items():
                full = f"{states}.{leaf}"
                values = chunk.flat(full) if chunk.has(full) else np.zeros(int(state_offsets[-1]), np.float32)
                taken = values[np.clip(chosen, 0, None)] if len(values) else np.zeros(n_trk, np.float32)
                fields[name] = np.where(chosen >= 0, taken, 0).astype(np.float32)
            fields["valid"] = chosen >= 0
            return ak.zip(fields)

        fields: dict[str, Any] = {
            "type": chunk.flat(type_leaf).astype(np.int32),
            "chi2": chunk.flat(lay.member(c, "chi2")).astype(np.float32),
            "ndf": chunk.flat(lay.member(c, "ndf")).astype(np.float32),
        }
        if chunk.has(lay.member(c, "dEdx")):  # legacy: members of Track
            fields["dedx"] = chunk.flat(lay.member(c, "dEdx")).astype(np.float32)
            fields["dedx_error"] = chunk.flat(lay.member(c, "dEdxError")).astype(np.float32)
        else:  # EDM4hep >= 0.99: RecDqdx objects pointing at their track
            fields["dedx"], fields["dedx_error"] = self._dqdx(chunk, trk_resolver, n_trk, trk_offsets)
        if chunk.has(lay.member(c, "radiusOfInnermostHit")):
            fields["radius_innermost_hit"] = chunk.flat(lay.member(c, "radiusOfInnermostHit")).astype(
                np.float32
            )
        else:  # removed in EDM4hep 1.0: radius of the AtFirstHit reference point (upstream PR #374)
            fh = state_record(first_hit)
            fields["radius_innermost_hit"] = np.hypot(ak.to_numpy(fh["ref_x"]), ak.to_numpy(fh["ref_y"]))
        fields["ip"] = state_record(ip)
        fields["calo"] = state_record(calo)
        return ak.unflatten(ak.zip(fields, depth_limit=1), trk_counts)

    def _dqdx(self, chunk: _Chunk, trk_resolver: _Resolver, n_trk: int, trk_offsets: np.ndarray):
        dedx = np.zeros(n_trk, dtype=np.float32)
        dedx_err = np.zeros(n_trk, dtype=np.float32)
        lay = self.layout
        branch = lay.relation(self.c.track_dqdx, "track", "track_dqdx")
        if not chunk.has(f"{branch}.index"):
            return dedx, dedx_err  # no dQdx collection in this file: zeros, as upstream for absent members
        counts = chunk.counts(f"{branch}.index")
        event = np.repeat(np.arange(chunk.n_events), counts)
        local = trk_resolver.resolve(
            chunk.flat(f"{branch}.collectionID"), chunk.flat(f"{branch}.index"), event
        )
        ok = local >= 0
        target = trk_offsets[event[ok]] + local[ok]
        dedx[target] = chunk.flat(lay.member(self.c.track_dqdx, "dQdx.value"))[ok]
        dedx_err[target] = chunk.flat(lay.member(self.c.track_dqdx, "dQdx.error"))[ok]
        return dedx, dedx_err

    def _clusters(self, chunk: _Chunk, hits_resolver: _Resolver) -> ak.Array:
        m = self.layout.member
        c = self.c.clusters
        e_leaf = m(c, "energy")
        phi_leaf = m(c, "phi") if chunk.has(m(c, "phi")) else m(c, "iPhi")  # EDM4hep 1.0 renamed phi -> iPhi
        fields = {
            "type": chunk.flat(m(c, "type")).astype(np.int32),
            "energy": chunk.flat(e_leaf).astype(np.float32),
            "x": chunk.flat(m(c, "position.x")).astype(np.float32),
            "y": chunk.flat(m(c, "position.y")).astype(np.float32),
            "z": chunk.flat(m(c, "position.z")).astype(np.float32),
            "itheta": chunk.flat(m(c, "iTheta")).astype(np.float32),
            "phi": chunk.flat(phi_leaf).astype(np.float32),
        }
        out = ak.unflatten(ak.zip(fields), chunk.counts(e_leaf))
        return ak.with_field(out, self._relation(chunk, c, "hits", e_leaf, hits_resolver), "hits")

    def _hits(self, chunk: _Chunk, hit_names: list[str]) -> ak.Array:
        """All calorimeter hits of an event in one list: collections in `hit_names` order, then index."""
        m = self.layout.member
        n_ev = chunk.n_events
        counts = np.stack([chunk.counts(m(c, "energy")) for c in hit_names], axis=1) if hit_names else None
        if counts is None:
            counts = np.zeros((n_ev, 0), dtype=np.int64)
        per_event = counts.sum(axis=1)
        event_start = np.cumsum(per_event) - per_event
        within = np.cumsum(counts, axis=1) - counts  # start of collection k inside its event
        total = int(per_event.sum())
        columns = {f: np.zeros(total, np.float32) for f in ("energy", "x", "y", "z", "time")}
        subdetector = np.zeros(total, np.int8)
        collection = np.zeros(total, np.int8)
        hit_type = np.zeros(total, np.int32) if self.read_hit_type else None
        leaves = {"energy": "energy", "x": "position.x", "y": "position.y", "z": "position.z", "time": "time"}
        for k, c in enumerate(hit_names):
            n_k = counts[:, k]
            event = np.repeat(np.arange(n_ev), n_k)
            local = np.arange(int(n_k.sum())) - np.repeat(np.cumsum(n_k) - n_k, n_k)
            dest = event_start[event] + within[event, k] + local
            for name, leaf in leaves.items():
                columns[name][dest] = chunk.flat(m(c, leaf))
            subdetector[dest] = names.subdetector_of(c)
            collection[dest] = k
            if hit_type is not None and chunk.has(m(c, "type")):
                hit_type[dest] = chunk.flat(m(c, "type"))
        extra = {} if hit_type is None else {"type": hit_type}
        record = ak.zip({**columns, "subdetector": subdetector, "collection": collection, **extra})
        return ak.unflatten(record, per_event)

    def _pfos(self, chunk: _Chunk, trk_resolver: _Resolver, cl_resolver: _Resolver) -> ak.Array:
        m = self.layout.member
        c = self.pfo_collection
        pdg_leaf = m(c, "PDG") if chunk.has(m(c, "PDG")) else m(c, "type")  # legacy: type holds the PDG
        fields = {
            "pdg": chunk.flat(pdg_leaf).astype(np.int32),
            "charge": chunk.flat(m(c, "charge")).astype(np.float32),
            "energy": chunk.flat(m(c, "energy")).astype(np.float32),
            "mass": chunk.flat(m(c, "mass")).astype(np.float32),
            **{f"p{a}": chunk.flat(m(c, f"momentum.{a}")).astype(np.float32) for a in "xyz"},
        }
        out = ak.unflatten(ak.zip(fields), chunk.counts(pdg_leaf))
        out = ak.with_field(out, self._relation(chunk, c, "tracks", pdg_leaf, trk_resolver), "tracks")
        return ak.with_field(out, self._relation(chunk, c, "clusters", pdg_leaf, cl_resolver), "clusters")

    def _links(
        self, chunk: _Chunk, link: str, from_resolver: _Resolver, mc_resolver: _Resolver, from_name: str
    ) -> ak.Array:
        lay = self.layout
        w_leaf = lay.member(link, "weight")
        if not chunk.has(w_leaf):  # checked by check_collections: only absent when there is nothing to link
            empty = ak.zip(
                {
                    from_name: np.zeros(0, np.int64),
                    "particle": np.zeros(0, np.int64),
                    "weight": np.zeros(0, np.float32),
                }
            )
            return ak.unflatten(empty, np.zeros(chunk.n_events, dtype=np.int64))
        counts = chunk.counts(w_leaf)
        event = np.repeat(np.arange(chunk.n_events), counts)

        def end(which: str, resolver: _Resolver) -> np.ndarray:
            branch = lay.relation(link, which, self.c.role_of(link) or "")
            return resolver.resolve(
                chunk.flat(f"{branch}.collectionID"), chunk.flat(f"{branch}.index"), event
            )

        record = ak.zip(
            {
                from_name: end("from", from_resolver),
                "particle": end("to", mc_resolver),
                "weight": chunk.flat(w_leaf).astype(np.float32),
            }
        )
        return ak.unflatten(record, counts)


_REF = ("index", "collectionID")
# Track-state leaves (edm4hep::TrackState); legacy files have no `time` (read as 0).
_STATE_FIELDS = {
    "d0": "D0",
    "phi": "phi",
    "omega": "omega",
    "z0": "Z0",
    "tan_lambda": "tanLambda",
    "time": "time",
    "ref_x": "referencePoint.x",
    "ref_y": "referencePoint.y",
    "ref_z": "referencePoint.z",
}


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__
