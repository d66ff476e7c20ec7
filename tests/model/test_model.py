"""Tests of the MLPF network: shapes, masking, gradients to every parameter, E >= |p|, LSH binning."""

from __future__ import annotations

import pytest
import torch

from mlpf.model.factory import build_model
from mlpf.model.layers import LshGraphLayer
from mlpf.model.targets import decode

SMALL = {"width": 32, "num_layers": 2, "num_heads": 4, "head_width": 16, "bin_size": 8, "distance_dim": 8}


def _batch(B: int = 3, N: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(B, N, 17, generator=g).abs() * 5
    X[..., 0] = torch.randint(1, 3, (B, N), generator=g).float()
    X[..., 2] = torch.randn(B, N, generator=g)
    phi = torch.rand(B, N, generator=g) * 6.28
    X[..., 3], X[..., 4] = torch.sin(phi), torch.cos(phi)
    X[..., 5] = X[..., 1] * torch.cosh(X[..., 2])
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[0, 15:] = False
    mask[1, 7:] = False
    X = X * mask[..., None]
    return X, mask


@pytest.mark.parametrize("kind", ["transformer", "gnn_lsh"])
def test_output_shapes_and_padding_is_zero(kind: str) -> None:
    torch.manual_seed(0)
    model = build_model({"type": kind, **SMALL}).eval()
    X, mask = _batch()
    binary, pid, charge, momentum = model(X, mask)
    assert binary.shape == (3, 20, 2)
    assert pid.shape == (3, 20, 6)
    assert charge.shape == (3, 20, 3)
    assert momentum.shape == (3, 20, 5)
    assert momentum[~mask].abs().sum() == 0
    assert torch.isfinite(momentum).all()


@pytest.mark.parametrize("kind", ["transformer", "gnn_lsh"])
def test_every_parameter_receives_a_gradient(kind: str) -> None:
    """Catches dropped branches such as the upstream attention FFN whose output was never added."""
    torch.manual_seed(0)
    model = build_model({"type": kind, **SMALL})
    X, mask = _batch()
    out = model(X, mask)
    sum(o[mask].pow(2).sum() for o in out).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_transformer_outputs_do_not_depend_on_padding() -> None:
    torch.manual_seed(0)
    model = build_model({"type": "transformer", **SMALL}).eval()
    X, mask = _batch()
    Xp = torch.cat([X, 100 * torch.rand(3, 7, 17)], dim=1)  # garbage in padded slots must not leak
    maskp = torch.cat([mask, torch.zeros(3, 7, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        a = model(X, mask)
        b = model(Xp, maskp)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x[mask], y[:, :20][mask], atol=1e-5, rtol=1e-4)


# For the GNN-LSH all 20 elements share one bin (bin_size 32), so message passing sees the same neighbours.
@pytest.mark.parametrize("settings", [{"type": "transformer"}, {"type": "gnn_lsh", "bin_size": 32}])
def test_permuting_the_elements_permutes_the_outputs(settings: dict) -> None:
    torch.manual_seed(0)
    model = build_model({**SMALL, **settings}).eval()
    X, mask = _batch()
    mask[:] = True
    perm = torch.randperm(20)
    with torch.no_grad():
        a = model(X, mask)
        b = model(X[:, perm], mask[:, perm])
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x[:, perm], y, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", ["transformer", "gnn_lsh"])
def test_decoded_energy_is_at_least_momentum(kind: str) -> None:
    torch.manual_seed(1)
    model = build_model({"type": kind, **SMALL}).eval()
    with torch.no_grad():
        model.head_reg.track[-1].bias.fill_(-20.0)  # push the energy term to its floor
        model.head_reg.cluster[-1].bias[-1].fill_(-20.0)
        model.head_id[-1].bias[:2].copy_(torch.tensor([-5.0, 5.0]))  # everything is a particle
        X, mask = _batch()
        ypred, proba = decode(X, mask, *model(X, mask))
    has = ypred[..., 0] > 0
    assert has.sum() == mask.sum()
    p = ypred[..., 2] * torch.cosh(ypred[..., 3])
    assert torch.all(ypred[..., 6][has] >= p[has] * (1 - 1e-5))
    torch.testing.assert_close(proba[mask].sum(-1), torch.ones(int(mask.sum())))
    assert torch.all(ypred[~mask] == 0)


def test_lsh_layer_groups_close_elements_in_bins_and_never_builds_n_by_n() -> None:
    """Adjacency tensors are [B, bins, bin_size, bin_size]: with N = 512 and bins of 16 nothing is N x N."""
    torch.manual_seed(0)
    layer = LshGraphLayer(
        16,
        4,
        bin_size=16,
        max_num_bins=200,
        num_node_messages=1,
        ffn_multiplier=1,
        activation="gelu",
        dropout=0.0,
    )
    shapes: list[tuple[int, ...]] = []

    def record(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        shapes.append(tuple(inputs[0].shape))

    layer.messages[0].register_forward_hook(record)
    x = torch.randn(2, 512, 16)
    out = layer(x, torch.ones(2, 512, dtype=torch.bool))
    assert out.shape == x.shape
    assert shapes == [(2, 32, 16, 16)]


@pytest.mark.parametrize("kind", ["transformer", "gnn_lsh"])
def test_tracks_keep_their_measured_momentum_clusters_get_a_learned_one(kind: str) -> None:
    # a track measures its particle's pt and direction; learned corrections only added noise out of distribution
    torch.manual_seed(0)
    model = build_model({"type": kind, **SMALL}).eval()
    X, mask = _batch()
    with torch.no_grad():
        momentum = model(X, mask)[3]
    is_track = (X[..., 0] == 1) & mask
    is_cluster = (X[..., 0] == 2) & mask
    # momentum columns 1-3 = eta, sin phi, cos phi; X columns 2-4 the element's own
    assert torch.equal(momentum[is_track][:, 1:4], X[is_track][:, 2:5])
    assert not torch.allclose(momentum[is_cluster][:, 1:4], X[is_cluster][:, 2:5])
    # momentum column 0 = log(pt / element pt): exactly 0 (pt = track pt) for tracks, learned for clusters
    assert torch.equal(momentum[is_track][:, 0], torch.zeros(int(is_track.sum())))
    assert momentum[is_cluster][:, 0].abs().min() > 0


@pytest.mark.parametrize("kind", ["transformer", "gnn_lsh"])
def test_routed_per_type_modules_give_the_exported_graphs_values(kind: str, monkeypatch) -> None:
    """Encoders and heads run on their own element type only; the ONNX graph (static shapes) evaluates every
    module on every element and selects. Both must give the same outputs."""
    torch.manual_seed(0)
    model = build_model({"type": kind, **SMALL}).eval()
    X, mask = _batch()
    with torch.no_grad():
        routed = model(X, mask)
        monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
        static = model(X, mask)
    for a, b in zip(routed, static, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("kind", ["transformer", "gnn_lsh"])
def test_no_tensor_grows_as_the_square_of_the_elements(kind: str) -> None:
    """Every tensor the forward pass creates (every op's output, recorded at the dispatcher) stays far below
    N x N elements for an event of N = 1500 elements with every input on (calorimeter-point link sums)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class LargestOutput(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.largest = (0, "")

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, tuple | list) else (out,):
                if isinstance(t, torch.Tensor) and t.numel() > self.largest[0]:
                    self.largest = (t.numel(), str(func))
            return out

    N = 1500
    torch.manual_seed(0)
    model = build_model({"type": kind, **SMALL, "calorimeter_features": True}).eval()
    X, _ = _batch(B=2, N=N)  # keep the first event: all of its elements are real
    X, mask = X[:1], torch.ones(1, N, dtype=torch.bool)
    recorder = LargestOutput()
    with torch.no_grad(), recorder:
        model(X, mask)
    numel, op = recorder.largest
    assert numel < N * N / 4, f"{op} made a tensor of {numel} elements"
