"""Tests of the streamed training data: catalogue, epoch plans, ranks, memory bound, batches, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from mlpf.data.dataset import BucketBatchSampler, ParquetEventDataset, collate, train_validation_split
from mlpf.data.stream import (
    BUCKET_POOL_BATCHES,
    Catalogue,
    EpochPlans,
    Pieces,
    StreamStats,
    TrainingData,
)
from mlpf.errors import InputFileError
from model import _synthetic


def _shard(path: Path, n_events: int, seed: int, row_group: int | None = None) -> Path:
    """A synthetic shard, written in row groups of `row_group` events (the parse stage writes one per chunk)."""
    _synthetic.write_parquet(path, n_events, seed)
    if row_group is not None:
        pq.write_table(pq.read_table(path), path, row_group_size=row_group)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("stream")
    return [
        _shard(root / "a.parquet", 60, 1, row_group=20),
        _shard(root / "b.parquet", 35, 2),
        _shard(root / "c.parquet", 45, 3, row_group=10),
    ]


def _data(files: list[Path], **kwargs) -> TrainingData:
    settings = {"validation_fraction": 0.2, "split_seed": 5, "seed": 9, "batch_size": 8, "window": 24}
    return TrainingData(files, **(settings | kwargs))


def test_catalogue_knows_every_event_and_its_size_without_reading_events(files: list[Path]) -> None:
    cat = Catalogue.read(files, show_progress=False)
    in_memory = ParquetEventDataset(files)
    assert cat.n_events == in_memory.n_total == 140
    np.testing.assert_array_equal(cat.sizes, in_memory.sizes())
    assert len(cat.group_number) == 3 + 1 + 5  # row groups of the three files
    np.testing.assert_array_equal(np.diff(cat.group_start)[:4], [20, 20, 20, 35])
    pieces = Pieces.of(cat, parts=3)
    assert pieces.start[0] == 0
    assert pieces.stop[-1] == 140
    np.testing.assert_array_equal(pieces.start[1:], pieces.stop[:-1])  # a partition, in order
    assert len(pieces) == 3 * 9


def test_epoch_plan_is_pure_and_takes_every_training_event_once(files: list[Path]) -> None:
    data = _data(files)
    train, validation = train_validation_split(140, 0.2, seed=5)
    np.testing.assert_array_equal(data.validation_ids, validation)
    plan = data.epoch(0)
    np.testing.assert_array_equal(np.sort(plan.events), train)
    assert len(plan) == data.steps(0) == -(-len(train) // 8)
    lengths = np.diff(plan.bounds)
    assert (lengths == 8).sum() >= len(plan) - 1  # at most one batch of the epoch is short
    again = _data(files).epoch(0)  # a fresh process computes the same batches from the same inputs
    np.testing.assert_array_equal(again.events, plan.events)
    np.testing.assert_array_equal(again.bounds, plan.bounds)
    other = data.epoch(1)
    assert not np.array_equal(other.events, plan.events)
    assert not np.array_equal(_data(files, seed=10).epoch(0).events, plan.events)


def test_batches_hold_events_of_similar_size() -> None:
    rng = np.random.default_rng(0)
    sizes = rng.integers(10, 1000, 4000).astype(np.int32)
    starts = np.arange(0, 4001, 100)
    cat = Catalogue(
        paths=(Path("x.parquet"),),
        group_shard=np.zeros(40, dtype=np.int64),
        group_number=np.arange(40),
        group_start=starts,
        sizes=sizes,
    )
    plan = EpochPlans(cat, np.arange(4000), batch_size=16, window=512, seed=1).epoch(0)
    padding = (
        sum(len(b) * sizes[b].max() - sizes[b].sum() for b in (plan.batch(i) for i in range(len(plan))))
        / sizes.sum()
    )
    random_batches = np.array_split(rng.permutation(4000), 250)
    random_padding = sum(len(b) * sizes[b].max() - sizes[b].sum() for b in random_batches) / sizes.sum()
    assert padding < 0.3 * random_padding
    # interleaved: a pool of batches mixes the events of several row groups, not one after the other
    pool = plan.events[: 16 * BUCKET_POOL_BATCHES]
    assert len(np.unique(pool // 100)) >= 4


def test_ranks_read_disjoint_pieces_and_take_the_same_number_of_steps(files: list[Path]) -> None:
    world = 3
    ranks = [_data(files, rank=r, world_size=world) for r in range(world)]
    train, _ = train_validation_split(140, 0.2, seed=5)
    for epoch in range(3):
        plans = [d.epoch(epoch) for d in ranks]
        steps = ranks[0].steps(epoch)
        assert [len(p) for p in plans] == [steps] * world
        assert all(d.steps(epoch) == steps for d in ranks)
        pieces = ranks[0].plans.pieces
        touched = [set(np.searchsorted(pieces.start, p.events, side="right") - 1) for p in plans]
        assert sum(len(t) for t in touched) == len(set().union(*touched))
        used = np.concatenate([p.events for p in plans])
        assert len(np.unique(used)) == len(used)
        assert np.isin(used, train).all()
        assert len(used) >= len(train) - world * 8 - world * np.diff(pieces.start).max()  # little is left out


def test_memory_holds_a_window_whatever_the_number_of_shards(tmp_path: Path) -> None:
    def peak(n_files: int) -> int:
        paths = [_shard(tmp_path / f"s{n_files}_{k}.parquet", 40, k, row_group=10) for k in range(n_files)]
        data = _data(paths, window=16, batch_size=4)
        assert data.kept is None  # more events than a window, a pool and 4 row groups: streamed
        stats = StreamStats()
        n = sum(1 for _ in data.batches(data.epoch(0), stats=stats))
        assert n == data.steps(0)
        return stats.peak_events

    small, large = peak(12), peak(24)
    # the window (16), a pool (4 x BUCKET_POOL_BATCHES = 128 events) and the row groups around them
    assert large <= 16 + 4 * BUCKET_POOL_BATCHES + 3 * 10
    assert large < 0.25 * 24 * 40 * 0.8  # a quarter of the training events
    assert large <= small + 2 * 10  # twice the data, the same memory (up to the row groups at the edges)


@pytest.mark.parametrize(("num_workers", "keep"), [(0, False), (2, False), (0, True), (2, True)])
def test_batches_are_those_of_the_plan_from_any_start(
    files: list[Path], num_workers: int, keep: bool
) -> None:
    data = _data(files, num_workers=num_workers, keep=keep)
    in_memory = ParquetEventDataset(files)
    plan = data.epoch(2)
    start = 5
    streamed = list(data.batches(plan, start=start))
    assert len(streamed) == len(plan) - start
    for k, batch in enumerate(streamed):
        expected = collate([in_memory[int(i)] for i in plan.batch(start + k)])
        assert batch.keys() == expected.keys()
        assert all(torch.equal(batch[key], expected[key]) for key in expected)


def test_a_small_dataset_is_read_once_for_every_epoch_and_validation(files: list[Path]) -> None:
    kept, streamed = _data(files), _data(files, keep=False)
    assert kept.kept is not None  # 140 events: less than the stream would hold (window, pool, 4 row groups)
    assert streamed.kept is None
    for data, reads in ((kept, 9), (streamed, None)):
        stats = StreamStats()
        for epoch in range(2):
            got = list(data.batches(data.epoch(epoch), stats=stats))
            assert len(got) == data.steps(epoch)
        list(data.validation_batches(stats=stats))
        if reads is not None:
            assert stats.pieces_read == reads  # each row group once
        else:
            assert stats.pieces_read > 2 * 9  # every epoch and the validation read them again


def test_validation_batches_are_the_in_memory_samplers(files: list[Path]) -> None:
    data = _data(files)
    sizes = Catalogue.read(files, show_progress=False).sizes[data.validation_ids]
    expected = BucketBatchSampler(sizes, 8, seed=0, shuffle=False).batches()
    plan = data.validation_plan()
    assert [plan.batch(i).tolist() for i in range(len(plan))] == [
        data.validation_ids[b].tolist() for b in expected
    ]
    in_memory = ParquetEventDataset(files)
    for k, batch in enumerate(data.validation_batches()):
        assert torch.equal(batch["X"], collate([in_memory[int(i)] for i in plan.batch(k)])["X"])


@pytest.mark.parametrize("num_workers", [0, 1])
def test_a_file_damaged_after_indexing_is_a_one_line_error(tmp_path: Path, num_workers: int) -> None:
    path = _shard(tmp_path / "a.parquet", 30, 1)
    data = _data([path], num_workers=num_workers)
    # the X column's first data page overwritten, the footer and the count columns intact
    column = pq.ParquetFile(path).metadata.row_group(0).column(0)
    raw = bytearray(path.read_bytes())
    raw[column.data_page_offset : column.data_page_offset + 64] = b"\xa5" * 64
    path.write_bytes(bytes(raw))
    with pytest.raises(InputFileError) as err:
        list(data.batches(data.epoch(0)))
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_elements_per_event_must_agree_between_fields(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    row = [[0.0] * 7]
    table = pa.table(
        {"X": [[[1.0] * 17, [2.0] * 17]], "ytarget": [row * 2], "ycand": [row]}  # X has 2 elements, ycand 1
    )
    pq.write_table(table, path)
    data = _data([path], validation_fraction=0.0, batch_size=1)
    with pytest.raises(InputFileError, match=r"bad\.parquet: X and the count column differ"):
        list(data.batches(data.epoch(0)))


def test_missing_inputs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="does not exist"):
        _data([tmp_path / "nope.parquet"])
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"X": [[1.0]]}), path)
    with pytest.raises(InputFileError, match=r"bad\.parquet: missing field\(s\) ytarget, ycand"):
        _data([path])
    (tmp_path / "text.parquet").write_text("not parquet")
    with pytest.raises(InputFileError, match="not a readable parquet file"):
        _data([tmp_path / "text.parquet"])
