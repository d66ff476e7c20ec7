"""Both backbones train and infer on real hit-level events (tracks + ~9,000 calorimeter hits of full-detail fastsim
ttbar events), in size-bucketed padded batches, with finite losses and outputs; hits go to the calorimeter
elements' encoders and heads."""

from __future__ import annotations

import pytest
import torch

from mlpf.config import validate_section
from mlpf.data.dataset import BucketBatchSampler, ParquetEventDataset, collate
from mlpf.data.features import ELEM_TYPE_HIT, ELEM_TYPE_TRACK
from mlpf.data.parse import parse_file
from mlpf.model.factory import build_model
from mlpf.model.layers import ElementRouting
from mlpf.model.losses import mlpf_loss
from mlpf.sim.pipeline import run_shard


@pytest.fixture(scope="module")
def hit_shard(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hit_level")
    settings = validate_section("fastsim", {"events_per_shard": 3, "hit_detail": "full"})
    run_shard("ttbar", "0", 5, settings, tmp / "ttbar.root", show_progress=False)
    shard = tmp / "hits" / "ttbar" / "0.parquet"
    parse_file(tmp / "ttbar.root", shard, {"elements": "hits"})
    return shard


@pytest.fixture
def one_thread():
    """One core: on a shared machine more threads only wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_hits_are_routed_with_the_calorimeter_elements(hit_shard):
    dataset = ParquetEventDataset([hit_shard])
    batch = collate([dataset[0]])
    X, mask = batch["X"], batch["mask"]
    assert int((X[..., 0] == ELEM_TYPE_HIT).sum()) > 5000
    routing = ElementRouting(X, mask)
    assert torch.equal(routing.is_track, (X[..., 0] == ELEM_TYPE_TRACK) & mask)
    assert bool(routing.is_cluster[X[..., 0] == ELEM_TYPE_HIT].all())


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["gnn_lsh", "transformer"])
def test_a_training_step_and_inference_on_hit_level_events(hit_shard, backbone, one_thread):
    torch.manual_seed(0)
    dataset = ParquetEventDataset([hit_shard])
    sampler = BucketBatchSampler(dataset.sizes(), batch_size=2, seed=1)
    model = build_model({"type": backbone, "width": 16, "num_layers": 1, "num_heads": 2, "head_width": 16})
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    training = validate_section("training", {})
    for indices in sampler:
        batch = collate([dataset[i] for i in indices])
        model.train()
        optimiser.zero_grad()
        loss = mlpf_loss(model(batch["X"], batch["mask"]), batch, training)[0]
        loss.backward()
        optimiser.step()
        assert torch.isfinite(loss)
        model.eval()
        with torch.no_grad():
            outputs = model(batch["X"], batch["mask"])
        assert all(bool(torch.isfinite(o).all()) for o in outputs)
        assert outputs[0].shape[:2] == batch["mask"].shape
