"""ADEM-VL's parameter-free cross-attention with adaptive drop: the Triton kernel beside its torch reference.

For text rows q (T, d), visual keys k (Nv, d) and values v (Nv, d):

    A = silu(q) @ silu(k).T                      (T, Nv): no softmax, no 1/sqrt(d), no projections
    tau_t = the (floor(gamma * Nv) + 1)-th smallest entry of row t      (torch.kthvalue)
    out = (A * [A >= tau]) @ v                   (T, d)

so each row keeps ceil((1 - gamma) * Nv) entries (more only on ties). ``silu_drop_attention_reference`` is the torch
version (differentiable through the kept entries, as the official code); ``silu_drop_attention_triton`` fuses it:
one program loads a block of text rows and all Nv keys, computes the scores with ``tl.dot``, sorts each row to find
its threshold, masks, and multiplies with V by ``tl.dot``. Forward only. Inputs may carry a leading batch dimension.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import triton
import triton.language as tl


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
def _silu_drop_fwd(q_ptr, k_ptr, v_ptr, o_ptr, T, NV, kth, stride_qb, stride_qt, stride_kb, stride_kn, stride_ob,
                   stride_ot, D: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr):
    pid_t = tl.program_id(0)
    b = tl.program_id(1)
    rows = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    cols = tl.arange(0, BLOCK_N)
    dims = tl.arange(0, D)
    q = tl.load(q_ptr + b * stride_qb + rows[:, None] * stride_qt + dims[None, :], mask=rows[:, None] < T, other=0.0)
    k = tl.load(k_ptr + b * stride_kb + cols[:, None] * stride_kn + dims[None, :], mask=cols[:, None] < NV, other=0.0)
    v = tl.load(v_ptr + b * stride_kb + cols[:, None] * stride_kn + dims[None, :], mask=cols[:, None] < NV, other=0.0)
    q = q * tl.sigmoid(q)
    k = k * tl.sigmoid(k)
    a = tl.dot(q, tl.trans(k), input_precision="ieee")  # (BLOCK_T, BLOCK_N)
    valid = cols[None, :] < NV
    ordered = tl.sort(tl.where(valid, a, float("inf")), dim=1)  # padding sorts last
    tau = tl.sum(tl.where(cols[None, :] == kth, ordered, 0.0), axis=1)
    keep = valid & (a >= tau[:, None])
    out = tl.dot(tl.where(keep, a, 0.0), v, input_precision="ieee")
    tl.store(o_ptr + b * stride_ob + rows[:, None] * stride_ot + dims[None, :], out, mask=rows[:, None] < T)


def silu_drop_attention_triton(q, k, v, gamma: float = 0.1, block_t: int = 16):
    """Same contract as the reference; d is zero-padded to a power of two >= 16 (silu(0) = 0 keeps the scores)."""
    squeeze = q.dim() == 2
    if squeeze:
        q, k, v = q[None], k[None], v[None]
    b, t, d = q.shape
    nv = k.shape[1]
    dp = max(16, triton.next_power_of_2(d))
    if dp != d:
        q, k, v = (F.pad(x, (0, dp - d)) for x in (q, k, v))
    q, k, v = q.contiguous().float(), k.contiguous().float(), v.contiguous().float()
    out = torch.empty(b, t, dp, device=q.device, dtype=torch.float32)
    block_n = max(16, triton.next_power_of_2(nv))
    grid = (triton.cdiv(t, block_t), b)
    _silu_drop_fwd[grid](q, k, v, out, t, nv, dropped_per_row(nv, gamma), q.stride(0), q.stride(1), k.stride(0),
                         k.stride(1), out.stride(0), out.stride(1), D=dp, BLOCK_T=block_t, BLOCK_N=block_n)
    out = out[..., :d]
    return out[0] if squeeze else out
