"""Building blocks of the MLPF backbones: feed-forward nets, per-element-type encoders, attention and LSH layers.

Both backbone layers keep memory linear in the number of elements on their default paths: attention goes
through `F.scaled_dot_product_attention` (memory-efficient kernels where the backend has them), and the
GNN-LSH layer only builds [bin_size x bin_size] kernels inside bins, never an N x N matrix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mlpf.model.targets import ELEMENT_TRACK, X_TYPE

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "elu": nn.ELU, "silu": nn.SiLU}

# GNN-LSH in-bin kernel exp(-KERNEL_SCALE * squared distance) (upstream CombinedGraphLayer: exp(-0.1 L2)).
KERNEL_SCALE = 0.1
# The kernel exponent is capped so that no weight is a subnormal float: subnormals slowed upstream's CPU training
# step 3x (docs/performance.md); exp(-50) ~ 2e-22 is still far above the float32 normal range limit.
KERNEL_MAX_EXPONENT = 50.0
# Seed of the fixed random LSH projection (a buffer, saved in checkpoints; the seed only fixes its initial draw).
LSH_PROJECTION_SEED = 0x15A


class FFN(nn.Sequential):
    """Linear -> activation -> LayerNorm -> Dropout -> Linear (upstream's FFN of encoders and heads)."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int, activation: str = "gelu", dropout: float = 0.0):
        super().__init__(
            nn.Linear(n_in, n_hidden),
            ACTIVATIONS[activation](),
            nn.LayerNorm(n_hidden),
            nn.Dropout(dropout),
            nn.Linear(n_hidden, n_out),
        )


class FeedForward(nn.Sequential):
    """Linear -> activation -> Dropout -> Linear: the feed-forward block inside a backbone layer, whose input is
    already layer-normalised (pre-LN); a second LayerNorm on the wide hidden activations (as in FFN) cost 5 % of
    the transformer's inference time and the block is normalised again before the next layer anyway."""

    def __init__(self, width: int, n_hidden: int, activation: str, dropout: float):
        super().__init__(
            nn.Linear(width, n_hidden),
            ACTIVATIONS[activation](),
            nn.Dropout(dropout),
            nn.Linear(n_hidden, width),
        )


class ElementRouting:
    """Which rows of a [B, N, ...] tensor are tracks and which are clusters, computed once per forward pass.

    Per-type modules (encoders, heads) then run on their own rows only, instead of on every element with the
    wrong half thrown away (2x the cost of those modules, and padding evaluated too). Tracing an ONNX graph
    cannot keep the data-dependent row counts, so there `route` evaluates every module on all elements and
    selects, which gives the same values (tested).
    """

    def __init__(self, X: torch.Tensor, mask: torch.Tensor) -> None:
        self.shape = mask.shape
        self.is_track = (X[..., X_TYPE] == ELEMENT_TRACK) & mask
        self.is_cluster = (X[..., X_TYPE] != ELEMENT_TRACK) & mask
        self.static = torch.onnx.is_in_onnx_export()
        if not self.static:
            self.track_rows = torch.nonzero(self.is_track.reshape(-1)).squeeze(1)
            self.cluster_rows = torch.nonzero(self.is_cluster.reshape(-1)).squeeze(1)

    def route(self, x: torch.Tensor, track: nn.Module, cluster: nn.Module) -> torch.Tensor:
        """track(x) on track rows, cluster(x) on cluster rows, zero on padding; both outputs of equal width."""
        if self.static:
            out = torch.where(self.is_track[..., None], track(x), cluster(x))
            return out * (self.is_track | self.is_cluster)[..., None].to(out.dtype)
        flat = x.reshape(-1, x.shape[-1])
        from_tracks = track(flat.index_select(0, self.track_rows))
        from_clusters = cluster(flat.index_select(0, self.cluster_rows))
        out = flat.new_zeros(flat.shape[0], from_tracks.shape[-1])
        out = out.index_copy(0, self.track_rows, from_tracks).index_copy(0, self.cluster_rows, from_clusters)
        return out.reshape(*self.shape, -1)


def attention_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, 1, 1, N] additive attention mask: 0 for elements, -inf for padding.

    Equivalent to SDPA's boolean mask (True = attend), and 1.8x faster on the CPU flash kernel with heads of 16
    (37.9 vs 20.9 ms for B = 16, N = 256, 16 heads, one thread; torch 2.13).
    """
    bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, float("-inf"))
    return bias[:, None, None, :]


def normalise_features(X: torch.Tensor) -> torch.Tensor:
    """Compress the wide dynamic range of element features (GeV, mm, hit counts): sign(x) log(1 + |x|) is ~x
    near 0 and ~log for large values and needs no dataset statistics, so the exported model takes raw features."""
    return torch.sign(X) * torch.log(1.0 + X.abs())


class TypeSplitEncoder(nn.Module):
    """One FFN per element type (tracks, clusters), each run on its own elements; upstream's `split` encoding."""

    def __init__(self, n_in: int, width: int, activation: str, dropout: float):
        super().__init__()
        self.track = FFN(n_in, width, width, activation, dropout)
        self.cluster = FFN(n_in, width, width, activation, dropout)

    def forward(self, Xn: torch.Tensor, routing: ElementRouting) -> torch.Tensor:
        return routing.route(Xn, self.track, self.cluster)


class SelfAttentionLayer(nn.Module):
    """Pre-LayerNorm multi-head attention + feed-forward block with residuals; padded keys are masked.

    With `query` given (the last layer), the queries come from those embeddings (upstream PR #343 queries the
    last layer with the input element embeddings) while keys and values come from the running stream. Other
    layers project queries, keys and values in one matrix product.
    """

    def __init__(
        self,
        width: int,
        num_heads: int,
        ffn_multiplier: int,
        activation: str,
        dropout: float,
        external_query: bool = False,
    ):
        super().__init__()
        if width % num_heads:
            raise ValueError(f"width {width} is not a multiple of num_heads {num_heads}")
        self.num_heads = num_heads
        self.dropout = dropout
        self.norm_attn = nn.LayerNorm(width)
        self.external_query = external_query
        if external_query:
            self.norm_query = nn.LayerNorm(width)
            self.q = nn.Linear(width, width)
            self.kv = nn.Linear(width, 2 * width)
        else:
            self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.norm_ffn = nn.LayerNorm(width)
        self.ffn = FeedForward(width, ffn_multiplier * width, activation, dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor, query: torch.Tensor | None = None) -> torch.Tensor:
        """`bias` is the additive key mask of `attention_bias`; padded rows carry values nobody attends to."""
        B, N, D = x.shape
        H = self.num_heads
        h = self.norm_attn(x)
        if self.external_query:
            q = (
                self.q(self.norm_query(query if query is not None else x))
                .reshape(B, N, H, D // H)
                .transpose(1, 2)
            )
            k, v = self.kv(h).reshape(B, N, 2, H, D // H).permute(2, 0, 3, 1, 4)
        else:
            q, k, v = self.qkv(h).reshape(B, N, 3, H, D // H).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=self.dropout if self.training else 0.0
        )
        x = x + self.out(a.transpose(1, 2).reshape(B, N, D))
        return x + self.ffn(self.norm_ffn(x))  # the feed-forward output is added (upstream v2.5.0 dropped it)


class LshGraphLayer(nn.Module):
    """The paper's GNN layer with locality-sensitive hashing (arXiv:2309.06782; upstream CombinedGraphLayer).

    A learnable FFN maps each element to a `distance_dim` space; a fixed random projection R hashes it to a bin
    code (argmax over [xR, -xR]); elements are sorted by code and cut into bins of `bin_size`; inside each bin a
    Gaussian kernel of the learned distances weights `num_node_messages` gated message-passing steps. Cost and
    memory are O(N * bin_size).
    """

    def __init__(
        self,
        width: int,
        distance_dim: int,
        bin_size: int,
        max_num_bins: int,
        num_node_messages: int,
        ffn_multiplier: int,
        activation: str,
        dropout: float,
    ):
        super().__init__()
        self.bin_size = bin_size
        self.max_num_bins = max_num_bins
        self.norm = nn.LayerNorm(width)
        self.distance = FFN(width, width, distance_dim, activation, dropout)
        gen = torch.Generator().manual_seed(LSH_PROJECTION_SEED)
        self.register_buffer(
            "projection", torch.randn(distance_dim, max(1, max_num_bins // 2), generator=gen)
        )
        self.messages = nn.ModuleList(nn.Linear(width, width) for _ in range(num_node_messages))
        self.gates = nn.ModuleList(nn.Linear(width, width) for _ in range(num_node_messages))
        self.act = ACTIVATIONS[activation]()
        self.norm_ffn = nn.LayerNorm(width)
        self.ffn = FeedForward(width, ffn_multiplier * width, activation, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        bs = self.bin_size
        n_pad = (bs - N % bs) % bs
        h = F.pad(self.norm(x), (0, 0, 0, n_pad))
        m = F.pad(mask, (0, n_pad))
        Np = N + n_pad
        n_bins = Np // bs
        dist = self.distance(h)  # [B, Np, distance_dim]

        # LSH code: argmax over [xR, -xR] using as many codes as bins (at most max_num_bins); the count is a
        # tensor and unused columns are masked (not sliced) so that an exported graph keeps it dynamic.
        n_codes = torch.clamp(
            torch.div(torch.clamp(torch.as_tensor(n_bins), max=self.max_num_bins), 2, rounding_mode="floor"),
            min=1,
        )
        proj = dist.detach() @ self.projection
        used = torch.arange(self.projection.shape[1], device=x.device) < n_codes
        masked = torch.full_like(proj, float("-inf"))
        code = torch.argmax(
            torch.cat([torch.where(used, proj, masked), torch.where(used, -proj, masked)], -1), -1
        )
        padded_code = torch.full_like(code, 2 * self.projection.shape[1])
        key = torch.where(m, code, padded_code) * Np + torch.arange(Np, device=x.device)
        perm = torch.argsort(key, dim=1)  # keys are unique, so the order is deterministic
        inverse = torch.argsort(perm, dim=1)

        hb = torch.gather(h, 1, perm[..., None].expand(B, Np, D)).reshape(B, n_bins, bs, D)
        db = torch.gather(dist, 1, perm[..., None].expand(B, Np, dist.shape[-1])).reshape(B, n_bins, bs, -1)
        mb = torch.gather(m, 1, perm).reshape(B, n_bins, bs)

        # In-bin Gaussian kernel of squared distances, [B, bins, bs, bs]: linear in N.
        sq = (db * db).sum(-1)
        d2 = (sq[..., :, None] + sq[..., None, :] - 2.0 * db @ db.transpose(-1, -2)).clamp_min(0.0)
        adj = torch.exp(-(KERNEL_SCALE * d2).clamp(max=KERNEL_MAX_EXPONENT)) * mb[..., None, :].to(h.dtype)
        adj = adj / (adj.sum(-1, keepdim=True) + 1e-6)

        z = hb
        for message, gate in zip(self.messages, self.gates, strict=True):
            z = z + self.act(message(adj @ z)) * torch.sigmoid(gate(z))
        delta = (z - hb).reshape(B, Np, D)
        delta = torch.gather(delta, 1, inverse[..., None].expand(B, Np, D))[:, :N]
        x = x + delta
        x = x + self.ffn(self.norm_ffn(x))
        return x * mask[..., None]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
