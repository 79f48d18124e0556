"""Tables, modelled epoch times and the claims of the Sylvie chapter, computed from what the launches measured."""
from __future__ import annotations

import statistics

import numpy as np
import pandas as pd

from repro.claims import AtLeast, Claim, RatioBand, Tolerance
from repro.kernels.lowbit import message_bytes
from repro.sylvie.train import Launch

WARMUP_EPOCHS = 2

# What the paper's side says, and where. The CSVs are the official repository's measurements behind the paper's
# figures (read at commit d8912d2); the arXiv PDF itself was not available here to cross-check.
REDDIT_CSV = "official repo results/speed_pcie4/reddit_n4.csv (GraphSAGE 4x256, 4 GPUs, one node)"
PAPER = {
    "ratio_256": (28.4, "4H/(H/8+4) at H=256, Sylvie's Low-bit Module (fp16 scale and min included)"),
    "speedup_2node": (28.1, "official repo results/speed_pcie4_v2/ogbn-products_n8_2node.csv "
                            "(GCN, 2 nodes x 4 GPUs: 6.076 s fp32 sync vs 0.216 s int1 pipelined)"),
    "speedup_1node": (3.18, REDDIT_CSV + ": 0.369 s fp32 sync vs 0.116 s int1 pipelined"),
    "acc_gap": (-0.05, REDDIT_CSV + ": 97.15 % fp32 sync vs 97.10 % int1 pipelined"),
    "blocking_k": (11.6, "official repo results/speed_pcie4/fixed_synchro/reddit_n4.csv: blocking communication "
                         "12.5 ms at k=5 vs 1.07 ms at k=200 (accuracy 97.04 % vs 96.99 %)"),
}


def _after_warmup(values: list[float]) -> list[float]:
    return values[WARMUP_EPOCHS:] if len(values) > WARMUP_EPOCHS + 1 else values


def run_summary(run: dict) -> dict:
    """Per-epoch medians (seconds) and mean bytes of one run, after the warm-up epochs."""
    med = {k: statistics.median(_after_warmup(run[k])) for k in ("epoch_s", "wait_s", "codec_s", "allreduce_s")}
    halo = [f + b for f, b in zip(run["bytes_forward_max_rank"], run["bytes_backward_max_rank"])]
    return {**med, "compute_s": med["epoch_s"] - med["wait_s"] - med["allreduce_s"],
            "halo_bytes_max_rank": float(np.mean(halo)), "halo_bytes_all_ranks": float(np.mean(run["bytes_total"]))}


def summarize(launch: Launch) -> pd.DataFrame:
    """One row per method: accuracy over seeds (mean, std in points), bytes per epoch and time per epoch."""
    rows = []
    for method in dict.fromkeys(r["method"] for r in launch.runs):
        runs = [r for r in launch.runs if r["method"] == method]
        accs = [100 * r["test_acc"] for r in runs]
        per = [run_summary(r) for r in runs]
        rows.append({
            "method": method, "bits": runs[0]["bits"], "seeds": len(runs),
            "test acc (%)": statistics.mean(accs), "std (pt)": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "halo kB/epoch (all ranks)": statistics.mean(p["halo_bytes_all_ranks"] for p in per) / 1e3,
            "epoch (ms)": 1e3 * statistics.mean(p["epoch_s"] for p in per),
            "blocked on halo (ms)": 1e3 * statistics.mean(p["wait_s"] for p in per),
            "quantiser (ms)": 1e3 * statistics.mean(p["codec_s"] for p in per),
            "all-reduce (ms)": 1e3 * statistics.mean(p["allreduce_s"] for p in per),
        })
    return pd.DataFrame(rows).set_index("method")


def analytic_halo_bytes(launch: Launch, bits: int, hidden: int | None = None) -> int:
    """Bytes per epoch over all ranks that the wire format implies: forward and backward, layers 1..L-1."""
    hidden = hidden or launch.settings.hidden
    per_exchange = sum(message_bytes(n, hidden, bits) for row in launch.pair_rows for n in row if n)
    return 2 * (launch.settings.layers - 1) * per_exchange


def bytes_ratio(launch: Launch, bits: int = 1) -> tuple[float, float]:
    """(measured, analytic) ratio of fp32 to ``bits``-bit halo bytes per epoch for a launch holding both."""
    measured = {r["bits"]: float(np.mean(r["bytes_total"])) for r in launch.runs if not r["pipeline"]
                and r["bns_rate"] is None}
    return measured[32] / measured[bits], analytic_halo_bytes(launch, 32) / analytic_halo_bytes(launch, bits)


def modelled_epoch_s(run: dict, parts: int, gbps: float) -> float:
    """Epoch time on a link of ``gbps`` Gb/s per rank, from the measured compute and the counted bytes.

    Synchronous epochs pay compute + halo/BW; pipelined epochs overlap them, max(compute, halo/BW). Both pay the
    weight-gradient ring all-reduce, 2(P-1)/P x its bytes. Link latency is ignored.
    """
    bandwidth = gbps * 1e9 / 8
    allreduce = 2 * (parts - 1) / parts * run["weight_grad_bytes"] / bandwidth
    times = []
    for e in range(len(run["epoch_s"]))[WARMUP_EPOCHS:]:
        compute = run["epoch_s"][e] - run["wait_s"][e] - run["allreduce_s"][e]
        halo = (run["bytes_forward_max_rank"][e] + run["bytes_backward_max_rank"][e]) / bandwidth
        times.append((compute + halo if run["synchronous"][e] else max(compute, halo)) + allreduce)
    return float(np.mean(times))


def modelled_table(launch: Launch, bandwidths=(1, 10, 100)) -> pd.DataFrame:
    """Mean modelled epoch time (ms) per method and link bandwidth (Gb/s), over seeds."""
    rows = {}
    for method in dict.fromkeys(r["method"] for r in launch.runs):
        runs = [r for r in launch.runs if r["method"] == method]
        rows[method] = {f"{g:g} Gb/s": 1e3 * statistics.mean(modelled_epoch_s(r, launch.parts, g) for r in runs)
                        for g in bandwidths}
    return pd.DataFrame(rows).T


def paired_gap(launch: Launch, method: str, reference: str) -> tuple[float, float | None, int]:
    """Mean and std over seeds of the test-accuracy difference (points), paired by seed."""
    acc = {(r["method"], r["seed"]): 100 * r["test_acc"] for r in launch.runs}
    seeds = sorted({r["seed"] for r in launch.runs})
    gaps = [acc[(method, s)] - acc[(reference, s)] for s in seeds]
    return statistics.mean(gaps), (statistics.stdev(gaps) if len(gaps) > 1 else None), len(gaps)


def _mean_over_seeds(launch: Launch, method: str, fn) -> float:
    return statistics.mean(fn(r) for r in launch.runs if r["method"] == method)


def claims(cora: Launch, sbm: Launch, bytes_256: Launch, names: dict[str, str], bits: int, k: int,
           tolerance_pt: float = 1.0) -> list[Claim]:
    """The chapter's claims. ``names`` maps roles (vanilla, sync, pipelined, bounded) to method names."""
    out = []
    measured_256, analytic_256 = bytes_ratio(bytes_256, 1)
    value, source = PAPER["ratio_256"]
    out.append(Claim("c1_bytes_256", "1-bit halo messages are ~28.4x smaller than fp32 at hidden size 256",
                     value, source, measured_256, "x", RatioBand(value, 0.95, 1.05, pivot=1.0),
                     note=f"Cora, P=2; analytic for our row counts {analytic_256:.2f}x"))
    measured_h, analytic_h = bytes_ratio(cora, bits)
    out.append(Claim("c1_bytes_formula", f"bytes counted at the send call equal the wire-format formula "
                     f"(int{bits}, H={cora.settings.hidden})", f"{analytic_h:.3f}x (formula)",
                     "message_bytes(): packed rows + fp16 min and step", measured_h / analytic_h, "measured/formula",
                     Tolerance(1.0, 1e-6)))
    value, source = PAPER["acc_gap"]
    for key, graph, launch in (("cora", "Cora", cora), ("large", sbm.graph, sbm)):
        for role in ("sync", "bounded"):
            gap, std, n = paired_gap(launch, names[role], names["vanilla"])
            out.append(Claim(f"c2_acc_{role}_{key}",
                             f"{names[role]} keeps fp32 test accuracy on {graph} (within {tolerance_pt:g} pt)",
                             f"{value:+.2f} pt", source, gap, "pt vs fp32", AtLeast(-tolerance_pt), std=std,
                             seeds=n))
    vanilla = _mean_over_seeds(sbm, names["vanilla"], lambda r: run_summary(r)["epoch_s"])
    pipelined = _mean_over_seeds(sbm, names["pipelined"], lambda r: run_summary(r)["epoch_s"])
    value, source = PAPER["speedup_1node"]
    out.append(Claim("c3_speedup_loopback", f"{names['pipelined']} is faster per epoch than fp32 sync "
                     f"({sbm.graph}, P={sbm.parts}, measured on loopback)", f"{value}x (one node)", source,
                     vanilla / pipelined, "x", RatioBand(value, 0.5, 2.0, pivot=1.0),
                     note="loopback is far faster than any real link, and the CPU quantiser is slow"))
    for gbps, key in ((10, "speedup_2node"), (100, "speedup_1node")):
        value, source = PAPER[key]
        def modelled(r: dict, gbps: float = gbps) -> float:
            return modelled_epoch_s(r, sbm.parts, gbps)

        ratio = _mean_over_seeds(sbm, names["vanilla"], modelled) / _mean_over_seeds(sbm, names["pipelined"], modelled)
        out.append(Claim(f"c3_speedup_{gbps}g", f"{names['pipelined']} vs fp32 sync, modelled epoch time at a "
                         f"{gbps} Gb/s link", f"{value}x", source, ratio, "x", RatioBand(value, 0.5, 2.0, pivot=1.0),
                         note="modelled from measured compute and counted bytes"))
    gap, std, n = paired_gap(sbm, names["bounded"], names["pipelined"])
    out.append(Claim("c4_staleness_accuracy", f"the staleness bound k={k} narrows the pipelined variant's accuracy "
                     f"gap ({sbm.graph})", "97.04 % (k=5) vs 96.99 % (k=200): +0.05 pt",
                     PAPER["blocking_k"][1], gap, "pt vs unbounded", AtLeast(0.0, margin_std=1.0), std=std, seeds=n))
    def mean_wait(r: dict) -> float:
        return float(np.mean(_after_warmup(r["wait_s"])))

    bounded_wait = _mean_over_seeds(sbm, names["bounded"], mean_wait)
    free_wait = _mean_over_seeds(sbm, names["pipelined"], mean_wait)
    value, source = PAPER["blocking_k"]
    out.append(Claim("c4_staleness_cost", f"the bound costs blocking communication: mean blocked time per epoch, "
                     f"k={k} vs unbounded", f"{value}x (k=5 vs k=200)", source, bounded_wait / max(free_wait, 1e-9),
                     "x", AtLeast(1.0)))
    return out


def crossover_gbps(launch: Launch, fast: str, slow: str, lo: float = 1e-3, hi: float = 1e4) -> float | None:
    """The link bandwidth (Gb/s) below which ``fast`` beats ``slow`` in modelled epoch time (None: never or always
    within [lo, hi]). Bisection in log space; the modelled time is monotone in the bandwidth."""

    def advantage(gbps: float) -> float:
        def mean(method: str) -> float:
            return _mean_over_seeds(launch, method, lambda r: modelled_epoch_s(r, launch.parts, gbps))

        return mean(slow) - mean(fast)

    if (advantage(lo) > 0) == (advantage(hi) > 0):
        return None
    for _ in range(60):
        mid = (lo * hi) ** 0.5
        if (advantage(mid) > 0) == (advantage(lo) > 0):
            lo = mid
        else:
            hi = mid
    return (lo * hi) ** 0.5
