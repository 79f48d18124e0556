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
``tl.dot`` for the scores, the in-tile mask, an online softmax, and ``tl.dot`` with V. The kernel is forward only;
when q, k or v requires grad the call goes through ``_TritonForward``, whose backward recomputes the reference under
autograd (correct gradients at the reference's memory cost, never the silent zero gradients of a bare kernel call).
Offsets are int64 (``_tile_offsets``): past about 8.4M tiles of 16 x 16, or H * S * D >= 2^31, int32 would wrap.
fp32 operands use ``tl.dot`` in "ieee" precision (exact against the reference) unless ``precision="tf32"``; bf16 or
fp16 operands stay in their dtype (the tensor cores' inputs) and accumulate in fp32.
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
def _tile_offsets(row, head, col, t, stride_h, stride_s, BLOCK: tl.constexpr, D: tl.constexpr):
    """int64 offsets of query block ``row`` and key block ``col`` of ``head`` (rows x D) and of tile ``t``'s mask
    (``tl.cast``: the interpreter's loop variables are Python ints)."""
    offs_n = tl.arange(0, BLOCK)
    offs_d = tl.arange(0, D)
    base = tl.cast(head, tl.int64) * stride_h
    queries = tl.cast(row, tl.int64) * BLOCK + offs_n
    keys = tl.cast(col, tl.int64) * BLOCK + offs_n
    q_off = base + queries[:, None] * stride_s + offs_d[None, :]
    kv_off = base + keys[:, None] * stride_s + offs_d[None, :]
    mask_off = tl.cast(t, tl.int64) * (BLOCK * BLOCK) + offs_n[:, None] * BLOCK + offs_n[None, :]
    return queries, keys, q_off, kv_off, mask_off


@triton.jit
def _offsets_probe(out_ptr, row, head, col, t, stride_h, stride_s, BLOCK: tl.constexpr, D: tl.constexpr):
    """Writes the last query, key and mask offsets ``_tile_offsets`` gives for these (possibly huge) indices to
    ``out_ptr`` [3] (int64), touching nothing they address: the test of the int64 index arithmetic."""
    queries, keys, q_off, kv_off, mask_off = _tile_offsets(row, head, col, t, stride_h, stride_s, BLOCK, D)
    tl.store(out_ptr, tl.max(tl.max(q_off, 1), 0))
    tl.store(out_ptr + 1, tl.max(tl.max(kv_off, 1), 0))
    tl.store(out_ptr + 2, tl.max(tl.max(mask_off, 1), 0))


def tile_offsets(row: int, head: int, col: int, tile: int, seq: int, dim: int, block: int, device="cpu"):
    """The kernel's largest (query, key/value, mask) offsets for these indices in a contiguous (H, seq, dim) tensor
    (``dim`` a power of two >= 16): runs ``_offsets_probe`` without allocating the tensors."""
    out = torch.empty(3, dtype=torch.int64, device=device)
    _offsets_probe[(1,)](out, row, head, col, tile, seq * dim, dim, BLOCK=block, D=dim)
    return [int(x) for x in out.cpu()]


@triton.jit
def _block_sparse_fwd(q_ptr, k_ptr, v_ptr, o_ptr, row_ptr, col_idx, mask_ptr, S, scale,
                      stride_h, stride_s, BLOCK: tl.constexpr, D: tl.constexpr, PRECISION: tl.constexpr):
    row = tl.program_id(0)
    head = tl.program_id(1)
    start = tl.load(row_ptr + row)
    end = tl.load(row_ptr + row + 1)
    queries, _, q_off, _, _ = _tile_offsets(row, head, row, start, stride_h, stride_s, BLOCK, D)
    q = tl.load(q_ptr + q_off, mask=queries[:, None] < S, other=0.0)
    m_i = tl.full((BLOCK,), -1.0e30, tl.float32)
    l_i = tl.zeros((BLOCK,), tl.float32)
    acc = tl.zeros((BLOCK, D), tl.float32)
    for t in range(start, end):
        col = tl.load(col_idx + t)
        _, keys, _, kv_off, mask_off = _tile_offsets(row, head, col, t, stride_h, stride_s, BLOCK, D)
        k = tl.load(k_ptr + kv_off, mask=keys[:, None] < S, other=0.0)
        v = tl.load(v_ptr + kv_off, mask=keys[:, None] < S, other=0.0)
        allowed = tl.load(mask_ptr + mask_off) != 0
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * scale
        s = tl.where(allowed, s, -1.0e30)
        m_new = tl.maximum(m_i, tl.max(s, 1))
        p = tl.where(allowed, tl.exp(s - m_new[:, None]), 0.0)
        alpha = tl.exp(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
        m_i = m_new
    out = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]
    tl.store(o_ptr + q_off, out.to(o_ptr.dtype.element_ty), mask=queries[:, None] < S)


PRECISIONS = ("ieee", "tf32")


def _forward(q, k, v, row_ptr, col_idx, masks, block: int, scale: float, precision: str):
    h, s, d = q.shape
    dp = max(16, triton.next_power_of_2(d))
    if dp != d:
        q, k, v = (torch.nn.functional.pad(t, (0, dp - d)) for t in (q, k, v))
    dtype = q.dtype if q.dtype in (torch.bfloat16, torch.float16) else torch.float32
    q, k, v = (t.contiguous().to(dtype) for t in (q, k, v))
    out = torch.empty_like(q)
    rows = row_ptr.numel() - 1
    if rows and h:
        _block_sparse_fwd[(rows, h)](q, k, v, out, row_ptr.int(), col_idx.int(), masks.to(torch.uint8).contiguous(),
                                     s, scale, q.stride(0), q.stride(1), BLOCK=block, D=dp,
                                     PRECISION=precision if dtype == torch.float32 else "tf32")
    return out[..., :d]


class _TritonForward(torch.autograd.Function):
    """The Triton forward; the backward recomputes the reference under autograd (the kernel has no backward)."""

    @staticmethod
    def forward(ctx, q, k, v, row_ptr, col_idx, masks, block, scale, precision):
        ctx.save_for_backward(q, k, v, row_ptr, col_idx, masks)
        ctx.block, ctx.scale = block, scale
        return _forward(q, k, v, row_ptr, col_idx, masks, block, scale, precision)

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, row_ptr, col_idx, masks = ctx.saved_tensors
        with torch.enable_grad():
            inputs = [t.detach().requires_grad_(need) for t, need in zip((q, k, v), ctx.needs_input_grad[:3])]
            out = block_sparse_attention_reference(*inputs, row_ptr, col_idx, masks, ctx.block, ctx.scale)
            wanted = [t for t in inputs if t.requires_grad]
            grads = iter(torch.autograd.grad(out, wanted, grad_out.to(out.dtype)))
        return (*(next(grads) if t.requires_grad else None for t in inputs), None, None, None, None, None, None)


def block_sparse_attention_triton(q, k, v, row_ptr, col_idx, masks, block: int, scale: float | None = None,
                                  precision: str = "ieee"):
    """Same contract as the reference. The head dimension is zero-padded to a power of two >= 16 for ``tl.dot``.
    ``precision``: "ieee" (exact fp32) or "tf32" for fp32 operands; bf16/fp16 operands keep their dtype. With
    autograd on and an input that requires grad, the backward recomputes the reference (see ``_TritonForward``)."""
    h, s, d = q.shape
    if block < 16 or block & (block - 1):
        raise ValueError(f"block must be a power of two >= 16 for tl.dot, got {block}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    scale = d**-0.5 if scale is None else scale
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        return _TritonForward.apply(q, k, v, row_ptr, col_idx, masks, block, scale, precision)
    return _forward(q, k, v, row_ptr, col_idx, masks, block, scale, precision)
