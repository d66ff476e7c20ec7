"""Torch dataset over parsed parquet shards (docs/contracts.md sections 2 and 3).

Each shard is read on first use (only the columns training needs) and kept as flat float32 arrays with
event offsets, so an event is two slices, not an awkward record. Events are split reproducibly into training
and validation sets from the seed, and a size-bucketed batch sampler groups events of similar length so that
padding stays small (the paper's TF pipeline bucketed by length, upstream section 8.4).

Inference reads its inputs this way; training streams its events from the row groups instead, in bounded memory
(mlpf.data.stream), with the same split, conversion (`flat_fields`) and collation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import torch

from mlpf.data.features import N_FEATURES
from mlpf.data.parquet import reading
from mlpf.data.targets import N_PARTICLE_COLUMNS
from mlpf.errors import InputFileError

# Contract section 2: element features and particle rows.
TENSOR_FIELDS = ("X", "ytarget", "ycand")
REQUIRED_FIELDS = ("X", "ytarget", "ycand")
FIELD_WIDTHS = {"X": N_FEATURES, "ytarget": N_PARTICLE_COLUMNS, "ycand": N_PARTICLE_COLUMNS}

# Size bucketing: events are shuffled, cut into pools of this many batches, sorted by length inside a pool and
# batched, so batches hold events of similar size while the epoch order stays random.
BUCKET_POOL_BATCHES = 32


def corrupt_data(exc: Exception, path: Path) -> InputFileError:
    """The one-line error of a page that cannot be read (the footer can be intact)."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return InputFileError(f"corrupt data, cannot be read ({reason})", path=path)


def check_fields(names: Sequence[str], path: Path) -> None:
    """A one-line error naming `path` if a field training needs is not among the columns `names`."""
    missing = [f for f in REQUIRED_FIELDS if f not in set(names)]
    if missing:
        raise InputFileError(
            f"missing field(s) {', '.join(missing)} (see docs/contracts.md section 2)", path=path
        )


def flat_fields(events: ak.Array, path: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The tensor fields of `events` as flat float32 [n_elements, width] arrays (non-finite values -> 0) and
    the event offsets into them; a field of the wrong shape is a one-line error naming `path`."""
    counts = ak.to_numpy(ak.num(events["X"], axis=1)).astype(np.int64)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    arrays = {}
    for name in TENSOR_FIELDS:
        flat = ak.flatten(events[name], axis=1)
        try:
            arr = np.asarray(ak.to_numpy(flat), dtype=np.float32)
        except ValueError:
            raise InputFileError(f"field {name} rows are not all the same width", path=path) from None
        if len(flat) == 0:
            arr = np.zeros((0, FIELD_WIDTHS[name]), dtype=np.float32)
        if arr.ndim != 2 or arr.shape[1] != FIELD_WIDTHS[name]:
            raise InputFileError(
                f"field {name} must have {FIELD_WIDTHS[name]} columns, found shape {arr.shape}", path=path
            )
        arrays[name] = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
    return arrays, offsets


class _Shard:
    """One parquet file: row count known up front, arrays read on first access."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with reading(path):
            meta = pq.ParquetFile(path).metadata
        self.n_events = meta.num_rows
        check_fields(pq.read_schema(path).names, path)
        self._arrays: dict[str, np.ndarray] | None = None
        self._offsets: np.ndarray | None = None

    def _read(self) -> ak.Array:
        """The tensor fields; a damaged page (the footer can be intact) is a one-line error naming the file."""
        try:
            return ak.from_parquet(self.path, columns=list(TENSOR_FIELDS))
        except Exception as exc:  # noqa: BLE001 - pyarrow raises OSError, ArrowInvalid and others for bad pages
            raise corrupt_data(exc, self.path) from None

    def _load(self) -> None:
        self._arrays, self._offsets = flat_fields(self._read(), self.path)

    @property
    def offsets(self) -> np.ndarray:
        if self._offsets is None:
            self._load()
        assert self._offsets is not None
        return self._offsets

    def event(self, i: int) -> dict[str, np.ndarray]:
        offsets = self.offsets
        assert self._arrays is not None
        lo, hi = offsets[i], offsets[i + 1]
        return {name: arr[lo:hi] for name, arr in self._arrays.items()}


class ParquetEventDataset(torch.utils.data.Dataset):
    """Events of one or more parquet shards, indexed globally in file order.

    `indices` restricts the dataset to a subset of the global event numbers (e.g. the validation split).
    """

    def __init__(self, paths: Sequence[str | Path], indices: np.ndarray | None = None) -> None:
        if not paths:
            raise InputFileError("no input parquet files given")
        self.shards: list[_Shard] = []
        for p in paths:
            path = Path(p)
            if not path.is_file():
                raise InputFileError("dataset file does not exist", path=path)
            self.shards.append(_Shard(path))
        counts = np.array([s.n_events for s in self.shards], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(counts)])
        self.n_total = int(self._starts[-1])
        self.indices = np.arange(self.n_total) if indices is None else np.asarray(indices, dtype=np.int64)
        self._sizes: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def _locate(self, global_index: int) -> tuple[_Shard, int]:
        k = int(np.searchsorted(self._starts, global_index, side="right") - 1)
        return self.shards[k], int(global_index - self._starts[k])

    def locate(self, i: int) -> tuple[Path, int]:
        """(file, event number in that file) of the i-th event of this dataset, for error messages."""
        shard, local = self._locate(int(self.indices[i]))
        return shard.path, local

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        shard, local = self._locate(int(self.indices[i]))
        return shard.event(local)

    def subset(self, indices: np.ndarray) -> ParquetEventDataset:
        """A view over the given global event numbers sharing the loaded shards."""
        view = object.__new__(ParquetEventDataset)
        view.shards, view._starts, view.n_total = self.shards, self._starts, self.n_total
        view.indices = np.asarray(indices, dtype=np.int64)
        view._sizes = None
        return view

    def sizes(self) -> np.ndarray:
        """Number of elements of each event of this dataset (loads the shards)."""
        if self._sizes is None:
            all_sizes = np.concatenate([np.diff(s.offsets) for s in self.shards])
            self._sizes = all_sizes[self.indices]
        return self._sizes


def train_validation_split(
    n_events: int, validation_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Reproducible split of event numbers 0..n-1: a seeded permutation, the first fraction is validation.

    At least one event stays in training; validation is empty only if the fraction is 0.
    """
    rng = np.random.default_rng([seed, 0x5B1D])
    perm = rng.permutation(n_events)
    n_val = round(validation_fraction * n_events)
    if validation_fraction > 0:
        n_val = min(max(n_val, 1), n_events - 1)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


class BucketBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of `batch_size` events of similar size, reshuffled per epoch from (seed, epoch).

    For distributed training each rank takes every `world_size`-th batch; the batch count is cut to a
    multiple of `world_size` so that all ranks step together.
    """

    def __init__(
        self,
        sizes: np.ndarray,
        batch_size: int,
        seed: int,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.sizes = np.asarray(sizes)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        n = len(self.sizes)
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch, 0xB0C7])
            order = rng.permutation(n)
        else:
            rng, order = None, np.arange(n)
        pool = self.batch_size * BUCKET_POOL_BATCHES
        batches: list[list[int]] = []
        for lo in range(0, n, pool):
            chunk = order[lo : lo + pool]
            chunk = chunk[np.argsort(self.sizes[chunk], kind="stable")]
            batches.extend(
                chunk[i : i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)
            )
        if rng is not None:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        if self.world_size > 1:
            usable = len(batches) - len(batches) % self.world_size
            batches = batches[:usable][self.rank :: self.world_size]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        n_batches = -(-len(self.sizes) // self.batch_size) if len(self.sizes) else 0
        if self.world_size > 1:
            return n_batches // self.world_size
        return n_batches


def collate(events: Sequence[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Pad a list of events to the longest one (contract section 3)."""
    n_max = max(1, *(len(e["X"]) for e in events))
    batch: dict[str, torch.Tensor] = {}
    for name in TENSOR_FIELDS:
        out = np.zeros((len(events), n_max, FIELD_WIDTHS[name]), dtype=np.float32)
        for i, e in enumerate(events):  # one copy per event: a handful per batch
            out[i, : len(e[name])] = e[name]
        batch[name] = torch.from_numpy(out)
    mask = np.zeros((len(events), n_max), dtype=bool)
    for i, e in enumerate(events):
        mask[i, : len(e["X"])] = True
    batch["mask"] = torch.from_numpy(mask)
    return batch
