"""Sylvie's Low-bit Module: per-row stochastic min-max quantisation to b bits, bit-packed, and its inverse.

Wire format of one message of ``n`` rows of width ``H`` at ``bits`` b in {1, 2, 4, 8}:

* ``packed``: uint8 ``[ceil(n / r), H]`` with ``r = 8 // b`` rows per byte: row ``g*r + k`` of column ``j`` sits in
  bits ``[k*b, (k+1)*b)`` of ``packed[g, j]`` (the official code packs rows, not columns, the same way);
* ``mn`` and ``step``: fp16 ``[n]``, the row minimum and the quantisation step ``(max - mn) / (2^b - 1)``.

Quantisation is ``q = clamp(floor((x - mn) / step + u), 0, 2^b - 1)`` with ``u ~ U[0, 1)``: stochastic rounding,
unbiased up to the fp16 rounding of ``mn`` and ``step``. Dequantisation is ``mn + q * step``. A constant row (or one
whose step underflows fp16, or whose fp16 min rounds above its max) has ``step = 0`` and dequantises to ``mn``
without NaN.

``quantize_pack_reference`` / ``dequantize_scatter_add_reference`` are the plain-torch references;
``quantize_pack_triton`` / ``dequantize_scatter_add_triton`` are the fused Triton kernels with the same contract.
Given the same uniform noise they agree bit for bit, under ``TRITON_INTERPRET=1`` and natively on a GPU: both
divisions are ``tl.div_rn`` (IEEE round-to-nearest; a plain fp32 ``/`` compiles to an approximate divide on NVIDIA),
and the dequantise product ``q * step`` (an integer below 2^8 times an fp16 step: at most 19 significant bits) is
exact in fp32, so a fused multiply-add rounds the same as the reference's multiply-then-add.

Offsets are computed in int64 (``_row_offsets``), so a message may hold ``n * H >= 2^31`` values. Rows whose range
exceeds the fp16 range (about 65504) get an infinite step and decode to inf/NaN, in the reference and the kernels
alike: the exchange carries activations far inside that range.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

BITS = (1, 2, 4, 8)


def levels(bits: int) -> int:
    return (1 << bits) - 1


def rows_per_byte(bits: int) -> int:
    if bits not in BITS:
        raise ValueError(f"bits must be one of {BITS}, got {bits}")
    return 8 // bits


def packed_rows(n: int, bits: int) -> int:
    r = rows_per_byte(bits)
    return (n + r - 1) // r


def message_bytes(n: int, width: int, bits: int) -> int:
    """Bytes on the wire for ``n`` rows of ``width`` values: packed payload plus fp16 min and step per row.
    ``bits == 32`` means the raw fp32 rows."""
    if bits == 32:
        return 4 * n * width
    return packed_rows(n, bits) * width + 4 * n


# ----------------------------------------------------------------------------------------------- references
def quantize_pack_reference(x: torch.Tensor, bits: int, noise: torch.Tensor):
    """x: [n, H] fp32, noise: [n, H] in [0, 1) -> (packed uint8 [ceil(n/r), H], mn fp16 [n], step fp16 [n])."""
    n, width = x.shape
    r, top = rows_per_byte(bits), levels(bits)
    mn16 = x.amin(dim=1).to(torch.float16)
    mn = mn16.to(torch.float32)
    step16 = ((x.amax(dim=1) - mn) / top).clamp_min(0.0).to(torch.float16)
    step = step16.to(torch.float32)
    live = step > 0
    scaled = (x - mn[:, None]) / torch.where(live, step, torch.ones_like(step))[:, None]
    q = torch.floor(scaled + noise).clamp_(0, top)
    q = torch.where(live[:, None], q, torch.zeros_like(q)).to(torch.int32)
    groups = packed_rows(n, bits)
    q = torch.nn.functional.pad(q, (0, 0, 0, groups * r - n)).view(groups, r, width)
    shifts = (torch.arange(r, dtype=torch.int32, device=x.device) * bits).view(1, r, 1)
    packed = (q << shifts).sum(dim=1).to(torch.uint8)
    return packed, mn16, step16


def dequantize_reference(packed: torch.Tensor, mn16: torch.Tensor, step16: torch.Tensor, bits: int) -> torch.Tensor:
    """Inverse of the packing: -> [n, H] fp32 with n = len(mn16)."""
    n = mn16.numel()
    r, top = rows_per_byte(bits), levels(bits)
    shifts = (torch.arange(r, dtype=torch.int32, device=packed.device) * bits).view(1, r, 1)
    q = (packed.to(torch.int32).unsqueeze(1) >> shifts) & top
    q = q.reshape(-1, packed.shape[1])[:n].to(torch.float32)
    return mn16.to(torch.float32)[:, None] + q * step16.to(torch.float32)[:, None]


def dequantize_scatter_add_reference(packed, mn16, step16, bits: int, index: torch.Tensor, out: torch.Tensor):
    """out[index[i]] += dequantised row i (in place; returns ``out``)."""
    return out.index_add_(0, index, dequantize_reference(packed, mn16, step16, bits))


# ------------------------------------------------------------------------------------------------- kernels
@triton.jit
def _row_offsets(group, width, ROWS: tl.constexpr, BLOCK_H: tl.constexpr):
    """The rows of packed byte-row ``group`` and the int64 offsets of their (row, column) values and of the packed
    bytes: int32 would wrap once ``n * width >= 2^31``."""
    rows = group.to(tl.int64) * ROWS + tl.arange(0, ROWS)
    cols = tl.arange(0, BLOCK_H)
    offs = rows[:, None] * width + cols[None, :]
    packed = group.to(tl.int64) * width + cols
    return rows, cols, offs, packed


@triton.jit
def _offsets_probe(out_ptr, group, width, ROWS: tl.constexpr, BLOCK_H: tl.constexpr):
    """Writes ``_row_offsets`` of a (possibly huge) ``group`` to ``out_ptr`` [ROWS + 1, BLOCK_H] (int64) without
    touching the data it would address: the test of the int64 index arithmetic."""
    rows, cols, offs, packed = _row_offsets(group, width, ROWS, BLOCK_H)
    tl.store(out_ptr + tl.arange(0, ROWS)[:, None] * BLOCK_H + cols[None, :], offs)
    tl.store(out_ptr + ROWS * BLOCK_H + cols, packed)


def row_offsets(group: int, width: int, bits: int, device="cpu") -> torch.Tensor:
    """The kernels' offsets for packed byte-row ``group`` (runs ``_offsets_probe``; [rows + 1, next_pow2(width)])."""
    r, block_h = rows_per_byte(bits), triton.next_power_of_2(width)
    out = torch.empty((r + 1, block_h), dtype=torch.int64, device=device)
    _offsets_probe[(1,)](out, group, width, ROWS=r, BLOCK_H=block_h)
    return out


@triton.jit
def _quantize_pack_kernel(x_ptr, noise_ptr, packed_ptr, mn_ptr, step_ptr, n, width, seed,
                          BITS: tl.constexpr, ROWS: tl.constexpr, BLOCK_H: tl.constexpr, USE_NOISE: tl.constexpr):
    # One program per packed byte-row: ROWS = 8 // BITS input rows share each output byte.
    group = tl.program_id(0)
    rows, cols, offs, packed_offs = _row_offsets(group, width, ROWS, BLOCK_H)
    row_ok = rows < n
    mask = row_ok[:, None] & (cols[None, :] < width)
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    mn16 = tl.min(tl.where(mask, x, float("inf")), axis=1).to(tl.float16)
    mn = mn16.to(tl.float32)
    mx = tl.max(tl.where(mask, x, float("-inf")), axis=1)
    top = (1 << BITS) - 1
    step16 = tl.maximum(tl.div_rn(mx - mn, top * 1.0), 0.0).to(tl.float16)
    step = step16.to(tl.float32)
    live = step > 0
    if USE_NOISE:
        u = tl.load(noise_ptr + offs, mask=mask, other=0.0)
    else:
        u = tl.rand(seed, offs.to(tl.int32))  # the 32-bit Philox stream (wraps only past 2^32 values)
    scaled = tl.div_rn(x - mn[:, None], tl.where(live, step, 1.0)[:, None])
    q = tl.minimum(tl.maximum(tl.floor(scaled + u), 0.0), top * 1.0)
    q = tl.where(live[:, None] & mask, q, 0.0).to(tl.int32)
    shifts = (tl.arange(0, ROWS) * BITS)[:, None]
    packed = tl.sum(q << shifts, axis=0)
    tl.store(packed_ptr + packed_offs, packed.to(tl.uint8), mask=cols < width)
    tl.store(mn_ptr + rows, mn16, mask=row_ok)
    tl.store(step_ptr + rows, step16, mask=row_ok)


@triton.jit
def _dequantize_scatter_add_kernel(packed_ptr, mn_ptr, step_ptr, index_ptr, out_ptr, n, width,
                                   BITS: tl.constexpr, ROWS: tl.constexpr, BLOCK_H: tl.constexpr):
    group = tl.program_id(0)
    rows, cols, offs, packed_offs = _row_offsets(group, width, ROWS, BLOCK_H)
    row_ok = rows < n
    mask = row_ok[:, None] & (cols[None, :] < width)
    byte = tl.load(packed_ptr + packed_offs, mask=cols < width, other=0).to(tl.int32)
    shifts = (tl.arange(0, ROWS) * BITS)[:, None]
    q = ((byte[None, :] >> shifts) & ((1 << BITS) - 1)).to(tl.float32)
    mn = tl.load(mn_ptr + rows, mask=row_ok, other=0.0).to(tl.float32)
    step = tl.load(step_ptr + rows, mask=row_ok, other=0.0).to(tl.float32)
    value = mn[:, None] + q * step[:, None]
    dest = tl.load(index_ptr + rows, mask=row_ok, other=0).to(tl.int64)
    tl.atomic_add(out_ptr + dest[:, None] * width + cols[None, :], value, mask=mask, sem="relaxed")


def quantize_pack_triton(x: torch.Tensor, bits: int, noise: torch.Tensor | None = None, seed: int = 0):
    """Fused row min/max + stochastic rounding + packing. ``noise=None`` draws Philox noise in the kernel."""
    x = x.contiguous()
    n, width = x.shape
    r = rows_per_byte(bits)
    groups = packed_rows(n, bits)
    packed = torch.empty((groups, width), dtype=torch.uint8, device=x.device)
    mn16 = torch.empty(n, dtype=torch.float16, device=x.device)
    step16 = torch.empty(n, dtype=torch.float16, device=x.device)
    if n == 0:
        return packed, mn16, step16
    use_noise = noise is not None
    _quantize_pack_kernel[(groups,)](
        x, noise.contiguous() if use_noise else x, packed, mn16, step16, n, width, seed,
        BITS=bits, ROWS=r, BLOCK_H=triton.next_power_of_2(width), USE_NOISE=use_noise,
    )
    return packed, mn16, step16


def dequantize_scatter_add_triton(packed, mn16, step16, bits: int, index: torch.Tensor, out: torch.Tensor):
    """Fused unpack + dequantise + scatter-add: out[index[i]] += dequantised row i (atomic, in place)."""
    n, width = mn16.numel(), out.shape[1]
    if n == 0:
        return out
    _dequantize_scatter_add_kernel[(packed.shape[0],)](
        packed.contiguous(), mn16, step16, index.contiguous(), out, n, width,
        BITS=bits, ROWS=rows_per_byte(bits), BLOCK_H=triton.next_power_of_2(width),
    )
    return out


# ------------------------------------------------------------------------------------------------ benchmark
def bench_ms(fn, device: str) -> float:
    """Median milliseconds of one call: ``triton.testing.do_bench`` on CUDA (CUDA events, L2 flushed between
    calls), ``repro.utils.time_it`` elsewhere."""
    if str(device).startswith("cuda"):
        import triton.testing

        return float(triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median"))
    from repro.utils import time_it

    return time_it(fn, repeats=5, warmup=1).median * 1e3


def benchmark(n: int = 1 << 20, width: int = 128, bits: int = 1, device: str = "cuda") -> dict:
    """Effective bandwidth (GB/s) of both kernels and their torch references on ``device``.

    Bytes moved per call: quantise reads the fp32 rows and writes the packed rows plus fp16 min and step (the
    in-kernel Philox stream reads no noise; the reference is handed pre-drawn noise, which it also reads);
    dequantise-scatter reads the message and the destination rows and writes them back. The default 2^20 x 128 rows
    (512 MiB) are far above any L2; a case that fits in L2 measures the cache and the launch overhead, not memory.
    On a CPU only the references run: the Triton interpreter is for correctness, not speed.
    """
    x = torch.randn(n, width, device=device)
    noise = torch.rand(n, width, device=device)
    index = torch.randperm(n, device=device)
    out = torch.zeros(n, width, device=device)
    msg_bytes = message_bytes(n, width, bits)
    quant_bytes = 4 * n * width + msg_bytes
    dequant_bytes = msg_bytes + 2 * 4 * n * width
    message = quantize_pack_reference(x, bits, noise)
    dev = x.device.type
    rows = {"torch quantise": (bench_ms(lambda: quantize_pack_reference(x, bits, noise), dev),
                               quant_bytes + 4 * n * width),
            "torch dequantise+scatter": (bench_ms(lambda: dequantize_scatter_add_reference(*message, bits, index, out),
                                                  dev), dequant_bytes)}
    if x.is_cuda:
        rows["triton quantise"] = (bench_ms(lambda: quantize_pack_triton(x, bits, None, seed=1), dev), quant_bytes)
        rows["triton dequantise+scatter"] = (
            bench_ms(lambda: dequantize_scatter_add_triton(*message, bits, index, out), dev), dequant_bytes)
    return {name: {"ms": ms, "GB/s": moved / ms / 1e6} for name, (ms, moved) in rows.items()}
