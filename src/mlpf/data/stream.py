"""Training data streamed from the row groups of the parsed shards: memory bounded by a window, not by the data.

The in-memory dataset (mlpf.data.dataset) keeps every shard it touches (~19 kB per ttbar event), and under DDP
every rank touches every shard. Training reads its events here instead (docs/model.md, "Training data larger
than memory"):

- Catalogue (`Catalogue.read`): the row groups of every shard (from the footer) and the number of elements of
  every event, from the list offsets of one narrow column read once at the start (the smaller on disk of
  ycand and ytarget; ~15 ms per 1000 ttbar events). 4 bytes per event are kept.
- Split: `train_validation_split` over global event numbers, as with the in-memory dataset: the same events.
- Pieces: the row groups; under DDP cut into event ranges when there are fewer than MIN_PIECES_PER_RANK per rank,
  so that the ranks' shares stay balanced (a piece is read as its row group, and only its events are kept).
- Epoch plan (`EpochPlans.epoch`), a pure function of (seed, epoch, rank, world size) and the catalogue, made
  without reading any event: the pieces, in a seeded random order, are dealt to the ranks, each to the rank
  with the fewest events so far, so that ranks read disjoint pieces. In a rank's stream the pieces follow one
  another and the events of each are scattered at random over its own length plus `window` events
  (interleaving: at any point the events of about window / piece size + 1 pieces are mixed, and a piece is
  held only while its events pass). Consecutive pools of BUCKET_POOL_BATCHES batches are sorted by size and
  batched, as BucketBatchSampler does, and the order of the batches inside a pool is shuffled. Every rank
  takes the same number of steps: the smallest share, in batches.
- Loading (`batches`): a DataLoader reads the pieces in the order the plan first needs them, in `num_workers`
  processes, PREFETCH_PIECES ahead of the training step; the training process collates each batch from the
  pieces it holds and drops a piece after its last batch. The batches do not depend on num_workers. A dataset
  no larger than what the stream would hold anyway (the default run's) is read once, as whole row groups, and
  kept for every later epoch and validation: the same batches, without reading again.

Held at once: the events of about `window` + a pool (BUCKET_POOL_BATCHES x batch size) of the stream, the pieces
at its edges and PREFETCH_PIECES read ahead, whatever the number of shards; per event of the dataset only ~25
bytes of bookkeeping (element count, split, the epoch's plan: 25 MB for 10^6 events).
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from mlpf.data.dataset import (
    BUCKET_POOL_BATCHES,
    TENSOR_FIELDS,
    check_fields,
    collate,
    corrupt_data,
    flat_fields,
    train_validation_split,
)
from mlpf.data.parquet import reading
from mlpf.errors import InputFileError
from mlpf.progress import progress

# Pieces read ahead of the one the plan needs next. One is needed every (piece events / batch size) steps (~50
# with 1000-event shards and batches of 16) and a read takes ~0.2 s, so two cover a read many times over, and
# each one more costs a piece of memory (~15 MB of ttbar events).
PREFETCH_PIECES = 2
# Under DDP, pieces per rank below which row groups are cut into event ranges: pieces are dealt whole, so the
# ranks' shares differ by up to a piece and the steps of an epoch follow the smallest share.
MIN_PIECES_PER_RANK = 4
# Columns whose list offsets give the elements per event (the narrowest ones; every field has one row per element).
COUNT_COLUMNS = ("ycand", "ytarget")
# Separate random streams: the deal of pieces to ranks (the same on every rank) and a rank's own shuffles.
_DEAL_STREAM, _RANK_STREAM = 0xDEA1, 0x5713


@dataclass(frozen=True)
class Catalogue:
    """Where every event is: the row groups of the shards in order, and the elements of each event."""

    paths: tuple[Path, ...]
    group_shard: np.ndarray  # shard of each row group
    group_number: np.ndarray  # its number inside the shard
    group_start: np.ndarray  # global number of its first event; one entry more: the number of events
    sizes: np.ndarray  # elements of every event (int32)

    @property
    def n_events(self) -> int:
        return int(self.group_start[-1])

    @classmethod
    def read(cls, paths: Sequence[str | Path], show_progress: bool = True) -> Catalogue:
        """Footers and element counts of `paths`; a missing, unreadable or incomplete file is a one-line error."""
        if not paths:
            raise InputFileError("no input parquet files given")
        shard, number, n_rows, sizes = [], [], [], []
        items = progress(paths, desc="index shards", unit="file") if show_progress else paths
        for k, p in enumerate(items):
            path = Path(p)
            if not path.is_file():
                raise InputFileError("dataset file does not exist", path=path)
            with reading(path):
                file = pq.ParquetFile(path)
            check_fields(file.schema_arrow.names, path)
            column = _narrowest(file)
            for g in range(file.metadata.num_row_groups):
                try:
                    lists = (
                        file.read_row_group(g, columns=[column], use_threads=False).column(0).combine_chunks()
                    )
                    if isinstance(lists, pa.ExtensionArray):  # awkward's type, when awkward wrote the file
                        lists = lists.storage
                    counts = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
                except Exception as exc:  # noqa: BLE001 - pyarrow raises OSError, ArrowInvalid and others
                    raise corrupt_data(exc, path) from None
                shard.append(k)
                number.append(g)
                n_rows.append(len(counts))
                sizes.append(counts.astype(np.int32))
        starts = np.zeros(len(n_rows) + 1, dtype=np.int64)
        np.cumsum(n_rows, out=starts[1:])
        return cls(
            paths=tuple(Path(p) for p in paths),
            group_shard=np.asarray(shard, dtype=np.int64),
            group_number=np.asarray(number, dtype=np.int64),
            group_start=starts,
            sizes=np.concatenate(sizes) if sizes else np.zeros(0, dtype=np.int32),
        )


def _narrowest(file: pq.ParquetFile) -> str:
    """The count column that is smallest on disk (its offsets are read; its values are decoded anyway)."""
    meta = file.metadata
    on_disk = dict.fromkeys(COUNT_COLUMNS, 0)
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            top = group.column(c).path_in_schema.split(".")[0]
            if top in on_disk:
                on_disk[top] += group.column(c).total_compressed_size
    return min(COUNT_COLUMNS, key=lambda name: on_disk[name])


@dataclass(frozen=True)
class Pieces:
    """What is read at once: the events [start, stop) of a row group (sorted by start, covering all events)."""

    group: np.ndarray
    start: np.ndarray
    stop: np.ndarray

    def __len__(self) -> int:
        return len(self.group)

    @classmethod
    def of(cls, catalogue: Catalogue, parts: int = 1) -> Pieces:
        """Each row group cut into `parts` near-equal event ranges (fewer if it has fewer events)."""
        n = np.diff(catalogue.group_start)
        k = np.minimum(parts, n)  # empty row groups give no piece
        group = np.repeat(np.arange(len(n)), k)
        index = np.arange(len(group)) - np.repeat(np.cumsum(k) - k, k)
        n_g, k_g, first = n[group], k[group], catalogue.group_start[:-1][group]
        return cls(group=group, start=first + n_g * index // k_g, stop=first + n_g * (index + 1) // k_g)


@dataclass(frozen=True)
class BatchPlan:
    """Batches as global event numbers: batch i is events[bounds[i]:bounds[i + 1]]."""

    events: np.ndarray
    bounds: np.ndarray

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def batch(self, i: int) -> np.ndarray:
        return self.events[self.bounds[i] : self.bounds[i + 1]]


def bucketed(
    ids: np.ndarray, sizes: np.ndarray, batch_size: int, rng: np.random.Generator | None
) -> BatchPlan:
    """`ids` in pools of BUCKET_POOL_BATCHES batches, each pool sorted by size and cut into batches; with
    `rng`, the batch order inside each pool is shuffled (BucketBatchSampler's pools, without its epoch-wide
    shuffle, which a stream cannot have)."""
    n = len(ids)
    pool = batch_size * BUCKET_POOL_BATCHES
    ids = ids[np.lexsort((sizes, np.arange(n) // pool))]  # stable: equal sizes keep their order
    n_batches = -(-n // batch_size)
    starts = np.arange(n_batches) * batch_size
    lengths = np.minimum(starts + batch_size, n) - starts
    order = np.arange(n_batches)
    if rng is not None:
        order = np.argsort(order // BUCKET_POOL_BATCHES + rng.random(n_batches), kind="stable")
    lengths = lengths[order]
    bounds = np.zeros(n_batches + 1, dtype=np.int64)
    np.cumsum(lengths, out=bounds[1:])
    position = np.repeat(starts[order] - bounds[:-1], lengths) + np.arange(n)
    return BatchPlan(events=ids[position], bounds=bounds)


def deal(n_events: np.ndarray, order: np.ndarray, world_size: int) -> np.ndarray:
    """Rank of each piece: in `order`, each goes to the rank with the fewest events so far (the lowest on a tie).
    The ranks' shares then differ by at most one piece."""
    owner = np.full(len(n_events), -1, dtype=np.int64)
    if world_size == 1:
        owner[order] = 0
        return owner
    load = np.zeros(world_size, dtype=np.int64)
    for p in order:
        r = int(np.argmin(load))
        owner[p] = r
        load[r] += n_events[p]
    return owner


class EpochPlans:
    """The batches of each epoch for one rank, from (seed, epoch, rank, world size) and the catalogue only."""

    def __init__(
        self,
        catalogue: Catalogue,
        train_ids: np.ndarray,
        batch_size: int,
        window: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.catalogue, self.train_ids = catalogue, np.asarray(train_ids, dtype=np.int64)
        self.batch_size, self.window, self.seed = batch_size, window, seed
        self.rank, self.world_size = rank, world_size
        n_groups = len(catalogue.group_number)
        parts = (
            1 if world_size == 1 else max(1, math.ceil(MIN_PIECES_PER_RANK * world_size / max(1, n_groups)))
        )
        self.pieces = Pieces.of(catalogue, parts)
        self._first = np.searchsorted(self.train_ids, self.pieces.start)
        self.piece_events = np.searchsorted(self.train_ids, self.pieces.stop) - self._first

    def _deal(self, epoch: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(pieces in the epoch's order, rank of each piece, steps of every rank)."""
        rng = np.random.default_rng([self.seed, epoch, _DEAL_STREAM])
        order = rng.permutation(len(self.pieces))
        order = order[self.piece_events[order] > 0]
        owner = deal(self.piece_events, order, self.world_size)
        load = np.bincount(owner[order], weights=self.piece_events[order], minlength=self.world_size)
        steps = int(-(-load.min() // self.batch_size)) if len(order) else 0
        return order, owner, steps

    def steps(self, epoch: int) -> int:
        """Optimiser steps of the epoch (the same on every rank)."""
        return self._deal(epoch)[2]

    def epoch(self, epoch: int) -> BatchPlan:
        order, owner, steps = self._deal(epoch)
        mine = order[owner[order] == self.rank]
        n = self.piece_events[mine]
        total = int(n.sum())
        placed = np.cumsum(n) - n  # where each piece starts in the rank's stream
        ids = self.train_ids[np.repeat(self._first[mine] - placed, n) + np.arange(total)]
        rng = np.random.default_rng([self.seed, epoch, _RANK_STREAM, self.rank])
        key = np.repeat(placed, n) + rng.random(total) * np.repeat(n + self.window, n)
        ids = ids[np.argsort(key, kind="stable")][: steps * self.batch_size]
        return bucketed(ids, self.catalogue.sizes[ids], self.batch_size, rng)


@dataclass
class StreamStats:
    """What a pass over a plan held and waited for (for tests and the training log)."""

    peak_events: int = 0  # events held at once
    peak_pieces: int = 0
    pieces_read: int = 0
    wait_s: float = 0.0  # time the consumer waited for pieces


class _PieceReader(torch.utils.data.Dataset):
    """The j-th piece to load: some events of one row group as flat tensors (runs in the DataLoader workers).
    A file that cannot be read comes back as its one-line error, raised by the training process."""

    def __init__(self, catalogue: Catalogue, requests: list[tuple[int, np.ndarray]]) -> None:
        self.catalogue, self.requests = catalogue, requests

    def __len__(self) -> int:
        return len(self.requests)

    def __getitem__(self, j: int) -> dict[str, Any]:
        group, ids = self.requests[j]
        cat = self.catalogue
        path = cat.paths[cat.group_shard[group]]
        try:
            arrays, offsets = self._read(path, int(cat.group_number[group]), ids - cat.group_start[group])
        except InputFileError as exc:
            return {"error": str(exc)}
        if not np.array_equal(np.diff(offsets), cat.sizes[ids]):
            return {"error": str(InputFileError("X and the count column differ in elements per event", path))}
        return {"offsets": torch.from_numpy(offsets)} | {k: torch.from_numpy(v) for k, v in arrays.items()}

    @staticmethod
    def _read(path: Path, number: int, rows: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        try:
            with reading(path):
                file = pq.ParquetFile(path)
            table = file.read_row_group(number, columns=list(TENSOR_FIELDS), use_threads=False).take(rows)
            events = ak.from_arrow(table)
        except InputFileError:
            raise
        except Exception as exc:  # noqa: BLE001 - pyarrow raises OSError, ArrowInvalid and others for bad pages
            raise corrupt_data(exc, path) from None
        return flat_fields(events, path)


def _worker_init(_: int) -> None:
    """A batch system's SIGTERM goes to the whole process group: the training process saves a checkpoint and
    ends the workers itself, so a worker must not die first (its death would abort the training process)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _as_is(item: dict[str, Any]) -> dict[str, Any]:
    return item


@dataclass
class _Reads:
    """What a pass over a plan reads, and when. A unit is a piece, or a whole row group when units are kept."""

    unit: np.ndarray  # unit of each event of the plan
    row: np.ndarray  # its row in the unit's arrays
    order: np.ndarray  # units to read, in the order the batches first need them
    requests: list[tuple[int, np.ndarray]]  # (row group, global event numbers) of each unit to read
    need: np.ndarray  # units read before each batch
    release: list[np.ndarray]  # units dropped after each batch


def _reads(
    catalogue: Catalogue, pieces: Pieces, events: np.ndarray, bounds: np.ndarray, kept: dict | None
) -> _Reads:
    """Units of `events` (batches at `bounds`): pieces holding the events the plan uses, or, when units are
    `kept` (a dict of row groups already read), whole row groups, of which only those not yet kept are read."""
    n_batches = len(bounds) - 1
    if kept is None:
        lo, hi, group = pieces.start, pieces.stop, pieces.group
        used_events = np.unique(events)  # sorted; a piece keeps the events the plan uses
    else:
        lo, hi = catalogue.group_start[:-1], catalogue.group_start[1:]
        group = np.arange(len(lo))
        used_events = np.arange(catalogue.n_events)
    used_lo, used_hi = np.searchsorted(used_events, lo), np.searchsorted(used_events, hi)
    unit = np.searchsorted(lo, events, side="right") - 1
    row = np.searchsorted(used_events, events) - used_lo[unit]
    used, first = np.unique(unit, return_index=True)
    order = used[np.argsort(first, kind="stable")]
    if kept:
        order = order[~np.isin(order, list(kept))]
    rank = np.full(len(lo), -1, dtype=np.int64)
    rank[order] = np.arange(len(order))
    need = np.maximum.reduceat(rank[unit], bounds[:-1]) + 1
    if kept is None:
        last_use = np.zeros(len(lo), dtype=np.int64)
        np.maximum.at(last_use, unit, np.repeat(np.arange(n_batches), np.diff(bounds)))
        by_last = order[np.argsort(last_use[order], kind="stable")]
        release = np.split(by_last, np.searchsorted(last_use[by_last], np.arange(1, n_batches)))
    else:
        release = [np.zeros(0, dtype=np.int64)] * n_batches
    requests = [(int(group[u]), used_events[used_lo[u] : used_hi[u]]) for u in order]
    return _Reads(unit, row, order, requests, need, release)


def batches(
    catalogue: Catalogue,
    pieces: Pieces,
    plan: BatchPlan,
    start: int = 0,
    num_workers: int = 0,
    stats: StreamStats | None = None,
    kept: dict | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """The collated batches of `plan` from batch `start` on, reading only the pieces those batches need; with
    `kept` (a dict), whole row groups are read, added to it and served from it on later passes."""
    events = plan.events[plan.bounds[start] :]
    bounds = plan.bounds[start:] - plan.bounds[start]
    if len(bounds) <= 1:
        return
    stats = stats if stats is not None else StreamStats()
    reads = _reads(catalogue, pieces, events, bounds, kept)
    loader = torch.utils.data.DataLoader(
        _PieceReader(catalogue, reads.requests),
        batch_size=None,
        num_workers=num_workers,
        prefetch_factor=max(1, -(-PREFETCH_PIECES // num_workers)) if num_workers else None,
        worker_init_fn=_worker_init if num_workers else None,
        collate_fn=_as_is,
        generator=torch.Generator(),  # the iterator draws a seed: not from the training's random state
    )
    held: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]] = dict(kept or {})
    n_read = 0
    source = iter(loader) if reads.requests else iter(())  # all kept: no worker to start
    try:
        for b in range(len(bounds) - 1):
            while n_read < reads.need[b]:
                waited = time.perf_counter()
                item = next(source)
                stats.wait_s += time.perf_counter() - waited
                if "error" in item:
                    raise InputFileError(item["error"])
                unit = int(reads.order[n_read])
                held[unit] = (item["offsets"].numpy(), {k: item[k].numpy() for k in TENSOR_FIELDS})
                if kept is not None:
                    kept[unit] = held[unit]
                n_read += 1
                stats.pieces_read += 1
                stats.peak_pieces = max(stats.peak_pieces, len(held))
                stats.peak_events = max(stats.peak_events, sum(len(o) - 1 for o, _ in held.values()))
            lo, hi = bounds[b], bounds[b + 1]
            chosen = []
            for u, r in zip(reads.unit[lo:hi].tolist(), reads.row[lo:hi].tolist(), strict=True):
                offsets, arrays = held[u]
                chosen.append({k: v[offsets[r] : offsets[r + 1]] for k, v in arrays.items()})
            yield collate(chosen)
            for u in reads.release[b].tolist():
                del held[u]
    finally:
        del source  # ends the workers


class TrainingData:
    """The training and validation events of a run as streams of batches (the module docstring)."""

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        validation_fraction: float,
        split_seed: int,
        seed: int,
        batch_size: int,
        window: int,
        num_workers: int = 0,
        rank: int = 0,
        world_size: int = 1,
        keep: bool | None = None,
    ) -> None:
        self.catalogue = cat = Catalogue.read(paths, show_progress=rank == 0)
        train_ids, self.validation_ids = train_validation_split(cat.n_events, validation_fraction, split_seed)
        self.n_train, self.n_validation = len(train_ids), len(self.validation_ids)
        self.plans = EpochPlans(cat, train_ids, batch_size, window, seed, rank, world_size)
        self.batch_size, self.num_workers = batch_size, num_workers
        # A dataset no larger than what the stream holds anyway (the window, a pool, the row groups at its edges
        # and those read ahead) is read once and kept: the same batches, without reading it again every epoch
        # and for every validation.
        largest_group = int(np.diff(cat.group_start).max(initial=0))
        held = window + BUCKET_POOL_BATCHES * batch_size + (PREFETCH_PIECES + 2) * largest_group
        if keep is None:
            keep = cat.n_events <= held
        self.kept: dict | None = {} if keep else None

    def steps(self, epoch: int) -> int:
        return self.plans.steps(epoch)

    def epoch(self, epoch: int) -> BatchPlan:
        return self.plans.epoch(epoch)

    def batches(self, plan: BatchPlan, start: int = 0, stats: StreamStats | None = None) -> Iterator[dict]:
        return batches(self.catalogue, self.plans.pieces, plan, start, self.num_workers, stats, self.kept)

    def validation_plan(self) -> BatchPlan:
        """The validation events in file order, batched as BucketBatchSampler without shuffling."""
        ids = self.validation_ids
        return bucketed(ids, self.catalogue.sizes[ids], self.batch_size, rng=None)

    def validation_batches(self, stats: StreamStats | None = None) -> Iterator[dict]:
        pieces = Pieces.of(self.catalogue)
        return batches(self.catalogue, pieces, self.validation_plan(), 0, self.num_workers, stats, self.kept)
