"""Tests of the parquet dataset, the train/validation split, the bucketed sampler and collate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from mlpf.data.dataset import (
    BucketBatchSampler,
    ParquetEventDataset,
    collate,
    train_validation_split,
)
from mlpf.data.parquet import read_metadata
from mlpf.errors import InputFileError
from model import _synthetic


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("ds")
    return [
        _synthetic.write_parquet(root / "a.parquet", 30, 1),
        _synthetic.write_parquet(root / "b.parquet", 20, 2),
    ]


def test_dataset_indexes_events_of_all_files_in_order(files: list[Path]) -> None:
    ds = ParquetEventDataset(files)
    assert len(ds) == 50
    events = _synthetic.make_events(20, 2)
    first_b = np.asarray(events.X[0].to_numpy())
    np.testing.assert_array_equal(ds[30]["X"], first_b)
    assert ds[30]["ytarget"].shape == (len(first_b), 7)
    assert ds.sizes()[30] == len(first_b)
    assert read_metadata(files[0])["seed"] == 1


def test_split_is_reproducible_disjoint_and_sized() -> None:
    tr, va = train_validation_split(100, 0.2, seed=5)
    tr2, va2 = train_validation_split(100, 0.2, seed=5)
    _, va3 = train_validation_split(100, 0.2, seed=6)
    np.testing.assert_array_equal(va, va2)
    np.testing.assert_array_equal(tr, tr2)
    assert not np.array_equal(va, va3)
    assert len(va) == 20
    assert set(tr) | set(va) == set(range(100))
    assert not set(tr) & set(va)
    assert len(train_validation_split(10, 0.0, 1)[1]) == 0


def test_bucket_sampler_covers_every_event_once_with_less_padding() -> None:
    rng = np.random.default_rng(0)
    sizes = rng.integers(10, 1000, 2000)
    sampler = BucketBatchSampler(sizes, batch_size=16, seed=3)
    batches = sampler.batches()
    assert sorted(i for b in batches for i in b) == list(range(2000))
    assert len(batches) == len(sampler)

    def padding(bs: list[list[int]]) -> float:
        return sum(len(b) * sizes[b].max() - sizes[b].sum() for b in bs) / sizes.sum()

    random_batches = [list(c) for c in np.array_split(rng.permutation(2000), 125)]
    assert padding(batches) < 0.3 * padding(random_batches)
    # deterministic per (seed, epoch), different across epochs
    assert BucketBatchSampler(sizes, 16, seed=3).batches() == batches
    sampler.set_epoch(1)
    assert sampler.batches() != batches


def test_bucket_sampler_splits_batches_between_ranks() -> None:
    sizes = np.arange(100)
    ranks = [BucketBatchSampler(sizes, 8, seed=1, rank=r, world_size=2).batches() for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 6
    assert not {i for b in ranks[0] for i in b} & {i for b in ranks[1] for i in b}


def test_collate_pads_to_longest_event_with_mask() -> None:
    events = [
        {
            "X": np.ones((3, 17), np.float32),
            "ytarget": np.ones((3, 7), np.float32),
            "ycand": np.ones((3, 7), np.float32),
        },
        {
            "X": np.ones((5, 17), np.float32),
            "ytarget": np.ones((5, 7), np.float32),
            "ycand": np.ones((5, 7), np.float32),
        },
    ]
    batch = collate(events)
    assert batch["X"].shape == (2, 5, 17)
    assert batch["ytarget"].shape == batch["ycand"].shape == (2, 5, 7)
    assert batch["X"].dtype == torch.float32
    assert batch["mask"].dtype == torch.bool
    assert batch["mask"].sum().item() == 8
    assert batch["X"][0, 3:].abs().sum() == 0
    assert batch["mask"][0].tolist() == [True] * 3 + [False] * 2


def test_missing_field_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"X": [[1.0]]}), path)
    with pytest.raises(InputFileError, match=r"bad.parquet: missing field\(s\) ytarget, ycand"):
        ParquetEventDataset([path])
    with pytest.raises(InputFileError, match="does not exist"):
        ParquetEventDataset([tmp_path / "nope.parquet"])
