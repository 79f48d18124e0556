#!/usr/bin/env python3
"""Each Triton kernel against its plain-torch reference on a GPU, and (``--bench``) their benchmarks.

    python tests/gpu/kernels_check.py            # max-error table: several sizes, non-power-of-two tails, full scale
    python tests/gpu/kernels_check.py --bench    # triton.testing.do_bench above L2: GB/s vs the card's peak, SDPA

For GPUs only: on a CPU it refuses in one line (the kernel tests cover the CPU, under the Triton interpreter). The
last line printed starts with "FIGURE:" (tests/gpu/check.sh puts it in its summary table). The pattern follows the
Triton tutorials: kernel, reference, check and ``triton.testing.perf_report`` side by side.

Full-scale shapes: ADEM-VL d = 512, Nv = 320 (repro.ademvl.experiment PLANS["full"]); TorchGT's model at
seq_nodes = 65536 (8 heads of 8) and its kernel benchmark's largest S = 1048576 (4 heads of 16); Sylvie's messages at
sbm_nodes = 500000 rows of hidden 128 and 256. The int64 cases (n * width and H * S * D >= 2^31, > 8.4M tiles) run
when the card has the memory free; only their last rows are checked against the reference.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

GIB = 1 << 30

# datasheet peak memory bandwidth, GB/s; None when the card is not in this table (then GB/s only)
PEAKS = [("H200", 4800.0), ("H100 NVL", 3900.0), ("H100 PCIe", 2000.0), ("H100", 3350.0),
         ("A100-SXM4-80GB", 2039.0), ("A100 80GB PCIe", 1935.0), ("A100-PCIE-80GB", 1935.0), ("A100", 1555.0)]


def peak_gbps(name: str) -> float | None:
    for key, peak in PEAKS:
        if key.lower() in name.lower():
            return peak
    return None


def free_bytes() -> int:
    return torch.cuda.mem_get_info()[0]


ROWS: list[dict] = []


def record(kernel: str, case: str, err: float, tol: float, note: str = "") -> None:
    ROWS.append({"kernel": kernel, "case": case, "err": err, "tol": tol, "ok": err <= tol, "note": note})
    print(f"{kernel:<22} {case:<44} {err:>11.3g} {tol:>9.2g} {'ok' if err <= tol else 'FAIL':<5} {note}", flush=True)


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1e-30))


# ------------------------------------------------------------------------------------------------------ lowbit
LOWBIT_CASES = [(7, 5), (1000, 130), (2**17 + 3, 127), (500_000, 128), (500_000, 256)]


def check_lowbit(dev, cases=LOWBIT_CASES) -> None:
    from repro.kernels import lowbit

    def mismatches(a, b) -> int:
        return int((a != b).sum())

    for n, width in cases:
        gen = torch.Generator(device=dev).manual_seed(n)
        x = torch.randn(n, width, device=dev, generator=gen) * 4
        noise = torch.rand(n, width, device=dev, generator=gen)
        for bits in lowbit.BITS:
            ref = lowbit.quantize_pack_reference(x, bits, noise)
            got = lowbit.quantize_pack_triton(x, bits, noise)
            bad = sum(mismatches(a, b) for a, b in zip(ref, got))
            index = torch.randperm(n, device=dev, generator=gen)
            base = torch.randn(n, width, device=dev, generator=gen)
            r = lowbit.dequantize_scatter_add_reference(*ref, bits, index, base.clone())
            g = lowbit.dequantize_scatter_add_triton(*ref, bits, index, base.clone())
            record("lowbit quantise", f"n={n} H={width} b={bits}", bad, 0, "mismatching values (bit-exact)")
            record("lowbit dequant+scatter", f"n={n} H={width} b={bits}", mismatches(r, g), 0, "mismatching values")
        del x, noise
    # int64: n * width >= 2^31 values; rows are independent, so the reference runs on the last rows only
    n, width, tail = (1 << 24) + 5, 128, 4096
    if free_bytes() < 48 * GIB:
        record("lowbit int64", f"n={n} H={width}", 0, 0, "SKIPPED: under 48 GiB free")
        return
    x = torch.randn(n, width, device=dev)
    noise = torch.rand(n, width, device=dev)
    packed, mn, step = lowbit.quantize_pack_triton(x, 8, noise)
    ref = lowbit.quantize_pack_reference(x[-tail:], 8, noise[-tail:])
    bad = sum(mismatches(a, b) for a, b in zip(ref, (packed[-tail:], mn[-tail:], step[-tail:])))
    record("lowbit quantise int64", f"n={n} H={width} b=8 (last {tail} rows)", bad, 0, "n*H >= 2^31")
    del x, noise
    out = torch.zeros(n, width, device=dev)
    lowbit.dequantize_scatter_add_triton(packed, mn, step, 8, torch.arange(n, device=dev), out)
    want = lowbit.dequantize_reference(packed[-tail:], mn[-tail:], step[-tail:], 8)
    record("lowbit dequant int64", f"n={n} H={width} b=8 (last {tail} rows)", mismatches(out[-tail:], want), 0,
           "n*H >= 2^31")
    del out, packed


# -------------------------------------------------------------------------------------- block-sparse attention
def synthetic_layout(s: int, block: int, per_row: int, dev, fill: float = 0.7, seed: int = 0):
    """Block-CSR with the diagonal tile and ``per_row - 1`` random others (repeats allowed) per block row; ``fill``
    of the tiles full (ECR's), the rest half-dense."""
    gen = torch.Generator(device=dev).manual_seed(seed)
    rows = -(-s // block)
    others = torch.randint(0, rows, (rows, per_row - 1), device=dev, generator=gen)
    cols = torch.cat([torch.arange(rows, device=dev)[:, None], others], 1).sort(1).values
    col_idx = cols.flatten().int()
    row_ptr = (torch.arange(rows + 1, device=dev) * per_row).int()
    nnz = col_idx.numel()
    full = torch.rand(nnz, 1, 1, device=dev, generator=gen) < fill
    masks = full | (torch.rand(nnz, block, block, device=dev, generator=gen) < 0.5)
    keys = col_idx.long()[:, None] * block + torch.arange(block, device=dev)
    masks &= (keys < s)[:, None, :]  # no key past the sequence, as BlockLayout.from_pattern
    return row_ptr, col_idx, masks.to(torch.uint8)


def last_row_reference(q, k, v, row_ptr, col_idx, masks, block, scale):
    """The reference's output for the last block row only (plain softmax over its allowed keys)."""
    h, s, d = q.shape
    r = row_ptr.numel() - 2
    a, b = int(row_ptr[r]), int(row_ptr[r + 1])
    qs = q[:, r * block: min(s, (r + 1) * block)].float()
    key_ids = (col_idx[a:b].long()[:, None] * block + torch.arange(block, device=q.device)).flatten()
    allowed = masks[a:b].bool().permute(1, 0, 2).reshape(block, -1)[: qs.shape[1]]
    allowed = allowed & (key_ids < s)[None, :]
    key_ids = key_ids.clamp_max(s - 1)
    scores = qs @ k[:, key_ids].float().transpose(-1, -2) * scale
    p = torch.softmax(scores.masked_fill(~allowed, float("-inf")), -1).nan_to_num(0.0)
    return p @ v[:, key_ids].float()


BLOCK_CASES = [(1000, 2, 8, 3), (4099, 4, 16, 5), (65536, 8, 8, 8), (1 << 20, 4, 16, 4)]


def check_block(dev, cases=BLOCK_CASES) -> None:
    from repro.kernels import block_sparse_attention as bsa

    for s, h, d, per_row in cases:
        layout = synthetic_layout(s, 16, per_row, dev, seed=s)
        q, k, v = (torch.randn(h, s, d, device=dev) for _ in range(3))
        ref = bsa.block_sparse_attention_reference(q, k, v, *layout, 16)
        name = f"S={s} H={h} D={d} tiles={layout[1].numel()}"
        record("block-sparse fp32", name, rel_err(bsa.block_sparse_attention_triton(q, k, v, *layout, 16), ref), 1e-5)
        record("block-sparse tf32", name, rel_err(bsa.block_sparse_attention_triton(q, k, v, *layout, 16,
                                                                                    precision="tf32"), ref), 2e-2)
        out = bsa.block_sparse_attention_triton(q.bfloat16(), k.bfloat16(), v.bfloat16(), *layout, 16)
        record("block-sparse bf16", name, rel_err(out, ref), 5e-2)
        del q, k, v, ref, out
    # int64: H * S * D >= 2^31 and > 8.4M tiles; the last block row against the reference
    s, h, d, per_row = 1 << 24, 8, 16, 9
    if free_bytes() < 48 * GIB:
        record("block-sparse int64", f"S={s} H={h} D={d}", 0, 0, "SKIPPED: under 48 GiB free")
        return
    layout = synthetic_layout(s, 16, per_row, dev)
    q, k, v = (torch.randn(h, s, d, device=dev) for _ in range(3))
    out = bsa.block_sparse_attention_triton(q, k, v, *layout, 16)
    ref = last_row_reference(q, k, v, *layout, 16, d**-0.5)
    record("block-sparse int64", f"S={s} H={h} D={d} tiles={layout[1].numel()} (last row)",
           rel_err(out[:, -ref.shape[1]:], ref), 1e-5, "H*S*D >= 2^31, tiles > 8.4M")
    del q, k, v, out


# ------------------------------------------------------------------------------------------ SiLU drop attention
SILU_CASES = [(2, 20, 80, 32, 0.1, {}), (3, 37, 100, 200, 0.3, {}), (1, 50, 33, 17, 0.0, {}),
              (16, 64, 320, 512, 0.1, {}), (16, 64, 320, 512, 0.1, {"sort_max": 0}),
              (4, 64, 2000, 512, 0.2, {}), (2, 129, 320, 512, 0.5, {"block_t": 32, "block_n": 32, "block_d": 128})]


def check_silu(dev, cases=SILU_CASES) -> None:
    from repro.kernels import silu_cross_attention as sca

    for b, t, nv, d, gamma, kw in cases:
        gen = torch.Generator(device=dev).manual_seed(nv + d)
        q, k, v = (torch.randn(b, n, d, device=dev, generator=gen) for n in (t, nv, nv))
        ref = sca.silu_drop_attention_reference(q.double(), k.double(), v.double(), gamma)
        out = sca.silu_drop_attention_triton(q, k, v, gamma, **kw)
        # rows with a second score within fp32 rounding of the threshold may keep another entry in fp32: left out
        a = torch.nn.functional.silu(q.double()) @ torch.nn.functional.silu(k.double()).transpose(-1, -2)
        drop = sca.dropped_per_row(nv, gamma)
        clear = torch.ones(b, t, dtype=torch.bool, device=dev)
        if drop:
            tau = a.kthvalue(drop + 1, -1, keepdim=True).values
            clear = ((a - tau).abs() <= 1e-5 * a.abs().amax(-1, keepdim=True)).sum(-1) <= 1
        path = "select" if kw.get("sort_max", 512) < max(16, 1 << (nv - 1).bit_length()) else "sort"
        record("silu drop attention", f"B={b} T={t} Nv={nv} d={d} g={gamma} {path} {kw or ''}".strip(),
               rel_err(out[clear], ref[clear]), 1e-4,
               f"vs fp64 reference; {int((~clear).sum())} near-tie rows left out")


# ----------------------------------------------------------------------------------------------------- bench
def bench(dev) -> str:
    import triton
    import triton.testing

    from repro.kernels import block_sparse_attention as bsa
    from repro.kernels import lowbit
    from repro.kernels import silu_cross_attention as sca

    name = torch.cuda.get_device_name(0)
    peak = peak_gbps(name)
    print(f"\n{name}: peak memory bandwidth {f'{peak:.0f} GB/s (datasheet)' if peak else 'unknown (GB/s only)'}")
    best = {}
    for bits in (1, 8):
        n, width = 1 << 21, 128  # 1 GiB of fp32 rows, far above L2
        table = lowbit.benchmark(n, width, bits, "cuda")
        for kernel, row in table.items():
            pct = f"{100 * row['GB/s'] / peak:5.1f}% of peak" if peak else ""
            print(f"lowbit {kernel:<28} b={bits} n={n} H={width}: {row['ms']:8.3f} ms {row['GB/s']:8.1f} GB/s {pct}")
            best[(kernel, bits)] = row["GB/s"]

    heads, dim, per_row = 4, 16, 8

    @triton.testing.perf_report(triton.testing.Benchmark(
        x_names=["S"], x_vals=[16384, 65536, 262144], line_arg="variant",
        line_vals=["triton-fp32", "triton-tf32", "triton-bf16", "reference-fp32", "sdpa-bf16"],
        line_names=["block-triton fp32 (ieee)", "block-triton tf32", "block-triton bf16", "block-torch fp32",
                    "SDPA bf16 (dense)"], ylabel="ms", plot_name="block-sparse attention forward", args={}))
    def attention(S, variant):
        layout = synthetic_layout(S, 16, per_row, dev, fill=0.9)
        q, k, v = (torch.randn(heads, S, dim, device=dev) for _ in range(3))
        if variant.endswith("bf16"):
            q, k, v = q.bfloat16(), k.bfloat16(), v.bfloat16()
        fns = {"triton-fp32": lambda: bsa.block_sparse_attention_triton(q, k, v, *layout, 16),
               "triton-tf32": lambda: bsa.block_sparse_attention_triton(q, k, v, *layout, 16, precision="tf32"),
               "triton-bf16": lambda: bsa.block_sparse_attention_triton(q, k, v, *layout, 16),
               "reference-fp32": lambda: bsa.block_sparse_attention_reference(q, k, v, *layout, 16),
               "sdpa-bf16": lambda: torch.nn.functional.scaled_dot_product_attention(q[None], k[None], v[None])}
        if variant == "reference-fp32" and S > 65536:
            return float("nan")
        return triton.testing.do_bench(fns[variant], warmup=10, rep=50, return_mode="median")

    frame = attention.run(print_data=True, return_df=True)
    frame = frame[0] if isinstance(frame, list) else frame
    last = frame.iloc[-1]
    ratio = last["SDPA bf16 (dense) (ms)"] / last["block-triton bf16 (ms)"]

    b, t, nv, d = 64, 256, 320, 512  # ADEM-VL full: d = 512, Nv = 320
    q, k, v = (torch.randn(b, n, d, device=dev) for n in (t, nv, nv))
    ms_tri = triton.testing.do_bench(lambda: sca.silu_drop_attention_triton(q, k, v, 0.1), return_mode="median")
    ms_ref = triton.testing.do_bench(lambda: sca.silu_drop_attention_reference(q, k, v, 0.1), return_mode="median")
    print(f"silu drop attention B={b} T={t} Nv={nv} d={d}: triton {ms_tri:.3f} ms, torch reference {ms_ref:.3f} ms")

    q8 = best[("triton quantise", 1)]
    pct = f" ({100 * q8 / peak:.0f}% of peak)" if peak else ""
    return (f"{name}: lowbit quantise b=1 {q8:.0f} GB/s{pct}; block bf16 {ratio:.2f}x faster than dense SDPA bf16 at "
            f"S={int(frame.iloc[-1]['S'])}; silu {ms_ref / ms_tri:.2f}x the torch reference")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bench", action="store_true", help="benchmarks instead of the correctness table")
    args = parser.parse_args()
    if not torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1":
        print("kernels_check.py is for GPUs (torch sees no CUDA device, or TRITON_INTERPRET=1); on a CPU run "
              "`pytest tests/test_kernels.py tests/test_lowbit.py` instead")
        return 2
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False  # the references in fp32
    print(f"GPU: {torch.cuda.get_device_name(0)} | torch {torch.__version__} | CUDA {torch.version.cuda}")
    if args.bench:
        print(f"FIGURE: {bench(dev)}")
        return 0
    print(f"{'kernel':<22} {'case':<44} {'max err':>11} {'tol':>9} {'':<5} note")
    for check in (check_lowbit, check_block, check_silu):
        check(dev)
        torch.cuda.empty_cache()
    bad = [r for r in ROWS if not r["ok"]]
    worst = max((r["err"] / r["tol"] for r in ROWS if r["tol"] > 0), default=0.0)
    exact = sum(1 for r in ROWS if r["tol"] == 0 and "SKIPPED" not in r["note"])
    failed = "; FAILED: " + ", ".join(f"{r['kernel']} {r['case']}" for r in bad) if bad else ""
    print(f"FIGURE: {len(ROWS) - len(bad)}/{len(ROWS)} checks pass ({exact} bit-exact); worst error "
          f"{worst:.2f} of its tolerance{failed}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
