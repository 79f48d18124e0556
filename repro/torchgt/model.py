"""Graphormer-slim and GT for node classification, with the attention pattern passed in at each call.

In TorchGT's reorder mode Graphormer's attention bias is off, so the graph enters only through *which* pairs attend
(``Attend``). Full attention sees the graph only through Graphormer's spatial encoding: ``Attend(..., spd=...)``
carries the bucketed shortest-path distance of every pair, and the model adds a learned per-head scalar per bucket
to the attention scores (the S x S bias of the non-reorder path). Shapes: node features x (N, F) -> logits (N, C);
inside, a sequence of S = N (+1 global token) rows.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from repro.torchgt import attention
from repro.torchgt.layout import BlockLayout, Pattern

KINDS = ("dense", "sdpa", "sparse", "block", "block-triton")
MAX_DISTANCE = 5  # shortest-path distances 0..5 get a bucket each; farther or unreachable pairs share one
SPD_BUCKETS = MAX_DISTANCE + 3  # ... and pairs with the global token another (Graphormer's virtual distance)


@dataclass
class Attend:
    """How one forward pass attends: full ("dense" explicit softmax, "sdpa"), over a pattern's edges ("sparse"),
    or over a block layout ("block"; "block-triton" is forward-only). Full attention may carry ``spd`` (S, S)
    distance buckets; the model turns them into ``bias`` (H, S, S), added to the scores."""

    kind: str
    pattern: Pattern | None = None
    layout: BlockLayout | None = None
    softmax: str = "safe"
    spd: torch.Tensor | None = None
    bias: torch.Tensor | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"attention kind must be one of {KINDS}, got {self.kind!r}")
        if (self.spd is not None or self.bias is not None) and self.kind not in ("dense", "sdpa"):
            raise ValueError("an attention bias goes with full attention ('dense' or 'sdpa') only")

    def __call__(self, q, k, v):
        if self.kind == "dense":
            return attention.dense_attention(q, k, v, bias=self.bias)
        if self.kind == "sdpa":
            return attention.sdpa_attention(q, k, v, self.bias)
        if self.kind == "sparse":
            return attention.topology_attention(q, k, v, self.pattern.dst, self.pattern.src, self.softmax)
        return attention.block_attention(q, k, v, self.layout, "triton" if self.kind == "block-triton" else "torch")


class MultiHeadAttention(nn.Module):
    """x (S, d) -> (S, d) with H heads of d/H; the pattern decides which pairs attend."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s, d = x.shape
        return self.qkv(x).view(s, 3, self.heads, d // self.heads).permute(1, 2, 0, 3).unbind(0)  # 3 x (H, S, D)

    def forward(self, x: torch.Tensor, attend: Attend) -> torch.Tensor:
        q, k, v = self.project(x)
        return self.out(attend(q, k, v).transpose(0, 1).reshape(x.shape))


class Layer(nn.Module):
    def __init__(self, dim: int, heads: int, ffn: int, pre_norm: bool, dropout: float):
        super().__init__()
        self.pre_norm = pre_norm
        self.attn = MultiHeadAttention(dim, heads)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(), nn.Linear(ffn, dim))
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, attend):
        if self.pre_norm:  # Graphormer
            x = x + self.drop(self.attn(self.norm1(x), attend))
            return x + self.drop(self.ffn(self.norm2(x)))
        x = self.norm1(x + self.drop(self.attn(x, attend)))  # GT (post-LN); the FFN reads the normalised residual
        return self.norm2(x + self.drop(self.ffn(x)))


class GraphTransformer(nn.Module):
    """``graphormer_slim``: pre-LN, a learned global token at sequence index 0 (it attends to and from every node,
    through the pattern). ``gt``: post-LN, no global token. Defaults follow GPH_Slim: d=64, 8 heads, FFN 64."""

    def __init__(self, in_dim: int, classes: int, dim: int = 64, heads: int = 8, layers: int = 2, ffn: int = 64,
                 kind: str = "graphormer_slim", dropout: float = 0.1):
        super().__init__()
        if kind not in ("graphormer_slim", "gt"):
            raise ValueError(f"model kind must be 'graphormer_slim' or 'gt', got {kind!r}")
        self.global_token = kind == "graphormer_slim"
        self.embed = nn.Linear(in_dim, dim)
        self.token = nn.Parameter(torch.zeros(1, dim)) if self.global_token else None
        self.layers = nn.ModuleList(Layer(dim, heads, ffn, self.global_token, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim) if self.global_token else nn.Identity()
        self.head = nn.Linear(dim, classes)
        # Graphormer's spatial encoding, shared by the layers; used only when ``attend.spd`` is given (created last,
        # and on a forked generator, so that the other weights and the dropout draws do not depend on it)
        with torch.random.fork_rng(devices=[]):
            self.spatial = nn.Embedding(SPD_BUCKETS, heads)

    def forward(self, x: torch.Tensor, attend: Attend) -> torch.Tensor:
        if attend.spd is not None:
            attend = replace(attend, bias=self.spatial(attend.spd).permute(2, 0, 1))
        h = self.embed(x)
        if self.global_token:
            h = torch.cat([self.token, h], dim=0)
        for layer in self.layers:
            h = layer(h, attend)
        h = self.norm(h)
        return self.head(h[1:] if self.global_token else h)
