"""Block-sparse attention on a block-CSR layout: the Triton kernel beside its plain-torch reference.

Layout (``BlockLayout`` in ``repro.torchgt.layout``): the sequence of S tokens is cut into blocks of B rows; the
nonzero (query block r, key block c) tiles are listed row by row, ``row_ptr`` [R+1] indexing ``col_idx`` [nnz], and
``masks`` [nnz, B, B] (uint8) says which (query, key) pairs of a tile are edges. Under ECR most tiles are full.

For each head and query i: ``out_i = sum_j softmax_j(q_i . k_j * scale) v_j`` over the keys j allowed by the layout.
A query with no allowed key gets 0. The softmax subtracts the row maximum (the official code clamps scores to
[-5, 5] instead; see ``repro.torchgt.attention``).

``block_sparse_attention_reference``: gathers every nonzero tile, computes its scores with one batched matmul, and
normalises across the tiles of a row with scatter max/sum; differentiable, and the CPU path of the chapter.
``block_sparse_attention_triton``: one program per (query block row, head) walks the row's nonzero key tiles,
``tl.dot`` for the scores, the in-tile mask, an online softmax, and ``tl.dot`` with V. Forward only: training uses
the reference's autograd.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


def _tiles(x: torch.Tensor, block: int) -> torch.Tensor:
    """(H, S, D) -> (H, ceil(S/B), B, D), zero-padded."""
    h, s, d = x.shape
    rows = -(-s // block)
    if rows * block != s:
        x = torch.cat([x, x.new_zeros(h, rows * block - s, d)], dim=1)
    return x.view(h, rows, block, d)


def block_sparse_attention_reference(q, k, v, row_ptr, col_idx, masks, block: int, scale: float | None = None):
    """q, k, v (H, S, D); returns (H, S, D)."""
    h, s, d = q.shape
    scale = d**-0.5 if scale is None else scale
    rows = row_ptr.numel() - 1
    row_of = torch.repeat_interleave(torch.arange(rows, device=q.device), row_ptr.diff())
    qt, kt, vt = _tiles(q, block), _tiles(k, block), _tiles(v, block)
    scores = qt[:, row_of] @ kt[:, col_idx].transpose(-1, -2) * scale  # (H, nnz, B, B)
    allowed = masks.bool().unsqueeze(0)
    scores = scores.masked_fill(~allowed, float("-inf"))
    with torch.no_grad():  # the shift cancels in the softmax, so it needs no gradient
        tile_max = scores.amax(-1)  # (H, nnz, B)
        row_max = torch.full((h, rows, block), float("-inf"), device=q.device, dtype=q.dtype)
        row_max = row_max.scatter_reduce(1, row_of.view(1, -1, 1).expand_as(tile_max), tile_max, "amax")
        shift = row_max[:, row_of].nan_to_num(neginf=0.0)  # rows without any key: nothing to shift
    p = torch.exp(scores - shift.unsqueeze(-1)) * allowed
    denom = q.new_zeros(h, rows, block).index_add(1, row_of, p.sum(-1))
    out = q.new_zeros(h, rows, block, d).index_add(1, row_of, p @ vt[:, col_idx])
    out = out / denom.clamp_min(torch.finfo(q.dtype).tiny).unsqueeze(-1)
    return out.reshape(h, rows * block, d)[:, :s]


@triton.jit
def _block_sparse_fwd(q_ptr, k_ptr, v_ptr, o_ptr, row_ptr, col_idx, mask_ptr, S, scale,
                      stride_h, stride_s, BLOCK: tl.constexpr, D: tl.constexpr):
    row = tl.program_id(0)
    head = tl.program_id(1)
    offs_m = row * BLOCK + tl.arange(0, BLOCK)
    offs_n = tl.arange(0, BLOCK)
    offs_d = tl.arange(0, D)
    base = head * stride_h
    q = tl.load(q_ptr + base + offs_m[:, None] * stride_s + offs_d[None, :], mask=offs_m[:, None] < S, other=0.0)
    m_i = tl.full((BLOCK,), -1.0e30, tl.float32)
    l_i = tl.zeros((BLOCK,), tl.float32)
    acc = tl.zeros((BLOCK, D), tl.float32)
    start = tl.load(row_ptr + row)
    end = tl.load(row_ptr + row + 1)
    for t in range(start, end):
        col = tl.load(col_idx + t)
        keys = col * BLOCK + offs_n
        kv_off = base + keys[:, None] * stride_s + offs_d[None, :]
        k = tl.load(k_ptr + kv_off, mask=keys[:, None] < S, other=0.0)
        v = tl.load(v_ptr + kv_off, mask=keys[:, None] < S, other=0.0)
        allowed = tl.load(mask_ptr + t * BLOCK * BLOCK + offs_n[:, None] * BLOCK + offs_n[None, :]) != 0
        s = tl.dot(q, tl.trans(k), input_precision="ieee") * scale
        s = tl.where(allowed, s, -1.0e30)
        m_new = tl.maximum(m_i, tl.max(s, 1))
        p = tl.where(allowed, tl.exp(s - m_new[:, None]), 0.0)
        alpha = tl.exp(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p, v, input_precision="ieee")
        m_i = m_new
    out = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]
    tl.store(o_ptr + base + offs_m[:, None] * stride_s + offs_d[None, :], out, mask=offs_m[:, None] < S)


def block_sparse_attention_triton(q, k, v, row_ptr, col_idx, masks, block: int, scale: float | None = None):
    """Same contract as the reference. The head dimension is zero-padded to a power of two >= 16 for ``tl.dot``."""
    h, s, d = q.shape
    if block < 16 or block & (block - 1):
        raise ValueError(f"block must be a power of two >= 16 for tl.dot, got {block}")
    scale = d**-0.5 if scale is None else scale
    dp = max(16, triton.next_power_of_2(d))
    if dp != d:
        q, k, v = (torch.nn.functional.pad(t, (0, dp - d)) for t in (q, k, v))
    q, k, v = q.contiguous().float(), k.contiguous().float(), v.contiguous().float()
    out = torch.empty_like(q)
    rows = row_ptr.numel() - 1
    _block_sparse_fwd[(rows, h)](q, k, v, out, row_ptr.int(), col_idx.int(), masks.to(torch.uint8).contiguous(), s,
                                 scale, q.stride(0), q.stride(1), BLOCK=block, D=dp)
    return out[..., :d]
