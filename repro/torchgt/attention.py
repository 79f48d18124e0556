"""The attention variants the chapter compares. Every function takes q, k, v of shape (H, S, D) and returns (H, S, D),
with scores q_i . k_j / sqrt(D).

- ``dense_attention``: an explicit S x S softmax (GP-RAW in the paper), optionally masked.
- ``sdpa_attention``: ``torch.nn.functional.scaled_dot_product_attention`` (GP-Flash's role on a GPU).
- ``topology_attention``: the sparse "topology" attention over edges j -> i, by gather / scatter (GP-Sparse), with a
  max-subtracted edge softmax; ``softmax="clamp"`` is the official code's variant (scores clamped to [-5, 5],
  no max subtraction, +1e-6 in the denominator).
- ``block_attention``: the block-sparse kernel on the block-CSR layout (TorchGT's ECR path).

Note: the official code's full-attention paths multiply q by sqrt(d) instead of dividing; we divide everywhere.
"""
from __future__ import annotations

import torch

from repro.kernels.block_sparse_attention import block_sparse_attention_reference, block_sparse_attention_triton

SOFTMAX = ("safe", "clamp")


def dense_attention(q, k, v, mask: torch.Tensor | None = None, bias: torch.Tensor | None = None):
    """mask (S, S) bool: True where query i may attend key j (row i = query); bias (H, S, S) or (S, S) float: added
    to the scores (Graphormer's spatial encoding)."""
    scores = q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5
    if bias is not None:
        scores = scores + bias
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1).nan_to_num(0.0) @ v


def sdpa_attention(q, k, v, mask: torch.Tensor | None = None):
    """mask: bool (True = attend) or float (added to the scores, e.g. an attention bias)."""
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def topology_attention(q, k, v, dst: torch.Tensor, src: torch.Tensor, softmax: str = "safe"):
    """Edge softmax over the edges src[e] -> dst[e] (query dst, key src). A query with no edge gets 0."""
    if softmax not in SOFTMAX:
        raise ValueError(f"softmax must be one of {SOFTMAX}, got {softmax!r}")
    h, s, d = q.shape
    scores = (q[:, dst] * k[:, src]).sum(-1) * d**-0.5  # (H, E)
    if softmax == "clamp":
        e = torch.exp(scores.clamp(-5.0, 5.0))
        denom = q.new_zeros(h, s).index_add(1, dst, e) + 1e-6
    else:
        with torch.no_grad():  # the shift cancels in the softmax, so it needs no gradient
            row_max = q.new_full((h, s), float("-inf")).scatter_reduce(1, dst.expand(h, -1), scores, "amax")
        e = torch.exp(scores - row_max[:, dst])
        denom = q.new_zeros(h, s).index_add(1, dst, e)
    alpha = e / denom[:, dst]
    return q.new_zeros(h, s, d).index_add(1, dst, alpha.unsqueeze(-1) * v[:, src])


def block_attention(q, k, v, layout, backend: str = "torch"):
    """Block-sparse attention on ``layout`` (a ``BlockLayout``); backend "triton" is forward-only."""
    fn = block_sparse_attention_triton if backend == "triton" else block_sparse_attention_reference
    return fn(q, k, v, layout.row_ptr, layout.col_idx, layout.masks, layout.block)
