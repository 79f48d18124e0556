"""ADEM-VL's parameter-free cross-attention with adaptive drop: the Triton kernel beside its torch reference.

For text rows q (T, d), visual keys k (Nv, d) and values v (Nv, d):

    A = silu(q) @ silu(k).T                      (T, Nv): no softmax, no 1/sqrt(d), no projections
    tau_t = the (floor(gamma * Nv) + 1)-th smallest entry of row t      (torch.kthvalue)
    out = (A * [A >= tau]) @ v                   (T, d)

so each row keeps ceil((1 - gamma) * Nv) entries (more only on ties). ``silu_drop_attention_reference`` is the torch
version (differentiable through the kept entries, as the official code); ``silu_drop_attention_triton`` fuses it.
One program takes a block of ``block_t`` text rows and makes three passes, so that no tile holds all of d or all of
Nv (at ADEM-VL's full scale, d = 512 and Nv = 320, whole-d k and v tiles would not fit in shared memory):

1. scores: for each chunk of ``block_n`` keys, ``tl.dot`` over chunks of ``block_d`` dimensions, written to a
   (B, T, Nv) fp32 scratch buffer;
2. threshold: when Nv padded to a power of two is at most ``sort_max``, one ``tl.sort`` of the row (padding with a
   large finite value, ``PAD``: Triton <= 3.3 sorts by multiplying with masks and inf * 0 is NaN); above it, an exact
   selection in passes: a bisection over the 32-bit order-preserving integer keys of the scores, counting entries
   at or below the candidate chunk by chunk (32 passes over the scratch row, which stays in L2);
3. output: for each chunk of ``block_d`` dimensions, ``tl.dot`` of the masked score chunks with the value chunks.

Forward only. Inputs may carry a leading batch dimension.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

PAD = 3.0e38  # sorts after every finite fp32 score (largest fp32: 3.4e38)


def dropped_per_row(nv: int, gamma: float) -> int:
    return int(math.floor(gamma * nv))


def silu_drop_attention_reference(q, k, v, gamma: float = 0.1):
    """q (..., T, d), k and v (..., Nv, d) -> (..., T, d)."""
    a = F.silu(q) @ F.silu(k).transpose(-1, -2)
    drop = dropped_per_row(k.shape[-2], gamma)
    if drop > 0:
        tau = a.detach().kthvalue(drop + 1, dim=-1, keepdim=True).values
        a = a * (a >= tau)
    return a @ v


@triton.jit
def _order_key(x):
    """fp32 -> int32 with the same order (-0.0 just below +0.0); its own inverse on the int32 bits."""
    bits = x.to(tl.int32, bitcast=True)
    return bits ^ ((bits >> 31) & 0x7FFFFFFF)


@triton.jit
def _kth_smallest(s_base, rows, row_ok, NV, kth, stride_st, BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr):
    """The (kth + 1)-th smallest score of each row, exactly, reading the row in chunks: bisection over the int32
    order keys for the smallest key x with #{key <= x} >= kth + 1 (32 halvings of the 2^32 keys)."""
    lo = tl.full((BLOCK_T,), -2147483648, tl.int64)
    hi = tl.full((BLOCK_T,), 2147483647, tl.int64)
    for _ in range(32):
        mid = lo + (hi - lo) // 2
        count = tl.zeros((BLOCK_T,), tl.int32)
        for n0 in range(0, NV, BLOCK_N):
            cols = n0 + tl.arange(0, BLOCK_N)
            valid = row_ok[:, None] & (cols[None, :] < NV)
            a = tl.load(s_base + rows[:, None] * stride_st + cols[None, :], mask=valid, other=0.0)
            below = valid & (_order_key(a).to(tl.int64) <= mid[:, None])
            count += tl.sum(below.to(tl.int32), axis=1)
        enough = count >= kth + 1
        hi = tl.where(enough, mid, hi)
        lo = tl.where(enough, lo, mid + 1)
    return _order_key(lo.to(tl.int32)).to(tl.float32, bitcast=True)


@triton.jit
def _silu_drop_fwd(q_ptr, k_ptr, v_ptr, o_ptr, s_ptr, T, NV, D, kth,
                   stride_qb, stride_qt, stride_kb, stride_kn, stride_vb, stride_vn, stride_ob, stride_ot,
                   stride_sb, stride_st, DROP: tl.constexpr, SORT: tl.constexpr, NV_SORT: tl.constexpr,
                   BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    b = tl.program_id(1).to(tl.int64)
    rows = tl.program_id(0).to(tl.int64) * BLOCK_T + tl.arange(0, BLOCK_T)
    row_ok = rows < T
    q_base, k_base, v_base = q_ptr + b * stride_qb, k_ptr + b * stride_kb, v_ptr + b * stride_vb
    s_base, o_base = s_ptr + b * stride_sb, o_ptr + b * stride_ob
    # 1. scores, chunk by chunk of keys, each a sum of dots over chunks of d
    for n0 in range(0, NV, BLOCK_N):
        cols = n0 + tl.arange(0, BLOCK_N)
        a = tl.zeros((BLOCK_T, BLOCK_N), tl.float32)
        for d0 in range(0, D, BLOCK_D):
            dims = d0 + tl.arange(0, BLOCK_D)
            q = tl.load(q_base + rows[:, None] * stride_qt + dims[None, :],
                        mask=row_ok[:, None] & (dims[None, :] < D), other=0.0)
            k = tl.load(k_base + cols[:, None] * stride_kn + dims[None, :],
                        mask=(cols[:, None] < NV) & (dims[None, :] < D), other=0.0)
            a += tl.dot(q * tl.sigmoid(q), tl.trans(k * tl.sigmoid(k)), input_precision="ieee")
        tl.store(s_base + rows[:, None] * stride_st + cols[None, :], a, mask=row_ok[:, None] & (cols[None, :] < NV))
    tl.debug_barrier()  # the passes below read scores that other threads of this program wrote
    # 2. the threshold of each row
    if DROP:
        if SORT:
            cols = tl.arange(0, NV_SORT)
            valid = row_ok[:, None] & (cols[None, :] < NV)
            a = tl.load(s_base + rows[:, None] * stride_st + cols[None, :], mask=valid, other=PAD)
            ordered = tl.sort(tl.where(valid, a, PAD), dim=1)  # padding sorts last: kth < NV never reaches it
            tau = tl.sum(tl.where(cols[None, :] == kth, ordered, 0.0), axis=1)
        else:
            tau = _kth_smallest(s_base, rows, row_ok, NV, kth, stride_st, BLOCK_T, BLOCK_N)
    else:
        tau = tl.full((BLOCK_T,), float("-inf"), tl.float32)
    # 3. out = (A * [A >= tau]) @ v, chunk by chunk of d, summing over chunks of keys
    for d0 in range(0, D, BLOCK_D):
        dims = d0 + tl.arange(0, BLOCK_D)
        acc = tl.zeros((BLOCK_T, BLOCK_D), tl.float32)
        for n0 in range(0, NV, BLOCK_N):
            cols = n0 + tl.arange(0, BLOCK_N)
            valid = row_ok[:, None] & (cols[None, :] < NV)
            a = tl.load(s_base + rows[:, None] * stride_st + cols[None, :], mask=valid, other=0.0)
            keep = valid & (a >= tau[:, None])
            v = tl.load(v_base + cols[:, None] * stride_vn + dims[None, :],
                        mask=(cols[:, None] < NV) & (dims[None, :] < D), other=0.0)
            acc += tl.dot(tl.where(keep, a, 0.0), v, input_precision="ieee")
        tl.store(o_base + rows[:, None] * stride_ot + dims[None, :], acc, mask=row_ok[:, None] & (dims[None, :] < D))


def silu_drop_attention_triton(q, k, v, gamma: float = 0.1, block_t: int = 16, block_n: int = 64,
                               block_d: int = 64, sort_max: int = 512):
    """Same contract as the reference (fp32 result). ``block_t``, ``block_n`` and ``block_d`` (powers of two >= 16,
    for ``tl.dot``) are the row, key and dimension chunks; the threshold sorts the row in one tile when Nv padded to a
    power of two is at most ``sort_max``, and selects in passes over the key chunks otherwise (``sort_max=0``
    always selects)."""
    for name, size in (("block_t", block_t), ("block_n", block_n), ("block_d", block_d)):
        if size < 16 or size & (size - 1):
            raise ValueError(f"{name} must be a power of two >= 16 for tl.dot, got {size}")
    squeeze = q.dim() == 2
    if squeeze:
        q, k, v = q[None], k[None], v[None]
    b, t, d = q.shape
    nv = k.shape[1]
    q, k, v = q.contiguous().float(), k.contiguous().float(), v.contiguous().float()
    out = torch.empty(b, t, d, device=q.device, dtype=torch.float32)
    if t == 0 or d == 0 or b == 0:
        return out[0] if squeeze else out
    if nv == 0:
        out.zero_()
        return out[0] if squeeze else out
    scores = torch.empty(b, t, nv, device=q.device, dtype=torch.float32)
    drop = dropped_per_row(nv, gamma)
    nv_sort = max(16, triton.next_power_of_2(nv))
    grid = (triton.cdiv(t, block_t), b)
    _silu_drop_fwd[grid](q, k, v, out, scores, t, nv, d, drop, q.stride(0), q.stride(1), k.stride(0), k.stride(1),
                         v.stride(0), v.stride(1), out.stride(0), out.stride(1), scores.stride(0), scores.stride(1),
                         DROP=drop > 0, SORT=nv_sort <= sort_max, NV_SORT=nv_sort,
                         BLOCK_T=block_t, BLOCK_N=block_n, BLOCK_D=block_d)
    return out[0] if squeeze else out
