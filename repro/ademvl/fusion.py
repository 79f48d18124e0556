"""How the LLM sees the image: ADEM-VL's parameter-free cross-attention and the baselines' fusions.

Shapes: h, u (B, T, d) are a block's residual stream after self-attention and its FFN input RMSNorm(h);
Xv (B, Nv, d) the projected visual tokens; E1, E2 (1, Nv, d) learned offsets shared by every layer.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from repro.kernels.silu_cross_attention import silu_drop_attention_reference, silu_drop_attention_triton

ACTIVATIONS = ("silu", "softmax", "none", "relu")
PLACEMENTS = ("in-out", "in-in", "out-out")  # where the query is read / where the result is added, around the FFN


def adem_attention(query, keys, values, activation: str = "silu", gamma: float = 0.1, backend: str = "torch"):
    """ADEM-VL's fusion Z = (A * M) values with A = act(query) act(keys)^T and M the per-row drop of the lowest
    ``gamma`` share. ``activation`` is Table VIII's study: "silu" (ADEM-VL), "relu", "none" (plain dot product),
    "softmax" (a softmax over the visual tokens of the plain scores, no 1/sqrt(d))."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if activation == "silu":
        if backend == "triton":
            return silu_drop_attention_triton(query, keys, values, gamma)
        return silu_drop_attention_reference(query, keys, values, gamma)
    scores = query @ keys.transpose(-1, -2)
    if activation == "relu":
        scores = F.relu(query) @ F.relu(keys).transpose(-1, -2)
    elif activation == "softmax":
        scores = scores.softmax(-1)
    drop = math.floor(gamma * keys.shape[-2])
    if drop > 0:
        tau = scores.detach().kthvalue(drop + 1, dim=-1, keepdim=True).values
        scores = scores * (scores >= tau)
    return scores @ values


def drop_mask(query, keys, gamma: float) -> torch.Tensor:
    """Which visual tokens each text token keeps (B, T, Nv), for the figure."""
    a = F.silu(query) @ F.silu(keys).transpose(-1, -2)
    drop = math.floor(gamma * keys.shape[-2])
    if drop == 0:
        return torch.ones_like(a, dtype=torch.bool)
    return a >= a.kthvalue(drop + 1, dim=-1, keepdim=True).values


def memvp_attention(query, keys, values):
    """MemVP: Z = silu(query keys^T) values, SiLU after the product, no drop."""
    return F.silu(query @ keys.transpose(-1, -2)) @ values


class FlamingoCrossAttention(nn.Module):
    """Flamingo-style gated cross-attention: tanh(gate) * softmax(q k^T / sqrt(dh)) v with learned Wq, Wk, Wv, Wo
    (4 d^2 weights, no bias) and a zero-initialised scalar gate, so that tuning starts from the frozen LLM."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(dim, dim, bias=False) for _ in range(4))
        self.gate = nn.Parameter(torch.zeros(1))

    def forward(self, u, xv):
        """u (B, T, d) queries, xv (B, Nv, d) visual tokens (zero for text-only items: the output is then 0)."""
        b, t, d = u.shape
        heads = lambda x: x.view(b, -1, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        out = F.scaled_dot_product_attention(heads(self.wq(u)), heads(self.wk(xv)), heads(self.wv(xv)))
        return torch.tanh(self.gate) * self.wo(out.transpose(1, 2).reshape(b, t, d))


class LoRALinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank update B A (B starts at zero)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float = 16.0):
        super().__init__()
        self.base = base
        self.lora_a = nn.Parameter(torch.randn(rank, base.in_features) / math.sqrt(base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        self.scale = alpha / rank

    def forward(self, x):
        return self.base(x) + (x @ self.lora_a.T @ self.lora_b.T) * self.scale
