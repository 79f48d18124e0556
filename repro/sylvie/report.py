"""Tables, modelled epoch times and the claims of the Sylvie chapter, computed from what the launches measured."""
from __future__ import annotations

import statistics
from typing import NamedTuple

import numpy as np
import pandas as pd

from repro.claims import AtLeast, Claim, Equivalent, NonInferior, RatioBand, Tolerance
from repro.kernels.lowbit import message_bytes
from repro.sylvie.train import Launch

WARMUP_EPOCHS = 2

# What the paper's side says, where, and how we know it ("code": read in the official repository's result CSVs,
# the measurements behind the paper's figures, at commit d8912d2; the arXiv PDF itself was not available here to
# cross-check, and the 28.4x is the paper's wire-format formula evaluated at H=256).
class PaperValue(NamedTuple):
    value: float
    source: str
    confidence: str


REDDIT_CSV = "official repo results/speed_pcie4/reddit_n4.csv (GraphSAGE 4x256, Reddit, 4 GPUs, one node, 3000 epochs)"
FIXED_SYNCHRO_CSV = ("official repo results/speed_pcie4/fixed_synchro/reddit_n4.csv (GraphSAGE 4x256, int1 pipelined "
                     "with --fixed-synchro k, 4 GPUs, one node, 2000 epochs)")
PAPER = {
    "ratio_256": PaperValue(28.4, "4H/(H/8+4) at H=256, Sylvie's Low-bit Module (fp16 scale and min included)",
                            "paper"),
    "speedup_2node": PaperValue(28.1, "official repo results/speed_pcie4_v2/ogbn-products_n8_2node.csv (GCN, 2 nodes "
                                      "x 4 GPUs: 6.076 s fp32 sync vs 0.216 s int1 pipelined)", "code"),
    "speedup_1node": PaperValue(3.18, REDDIT_CSV + ": 0.369 s fp32 sync vs 0.116 s int1 pipelined", "code"),
    # accuracy gaps to fp32 synchronous training, in points, one per variant
    "acc_gap_sync": PaperValue(-0.02, REDDIT_CSV + ": 97.15 % fp32 sync vs 97.13 % int1 sync", "code"),
    "acc_gap_pipelined": PaperValue(-0.05, REDDIT_CSV + ": 97.15 % fp32 sync vs 97.10 % int1 pipelined", "code"),
    "acc_gap_bounded": PaperValue(-0.11, FIXED_SYNCHRO_CSV + ": 97.04 % at k=5, against " + REDDIT_CSV
                                  + ": 97.15 % fp32 sync (two runs, 2000 vs 3000 epochs)", "code"),
    "acc_gap_k": PaperValue(0.05, FIXED_SYNCHRO_CSV + ": 97.04 % at k=5 vs 96.99 % at k=200; 96.98-97.04 % over "
                                  "k in {5, 10, 20, 100, 200}", "code"),
    "blocking_k": PaperValue(11.6, FIXED_SYNCHRO_CSV + ": blocking communication 12.5 ms at k=5 vs 1.07 ms at k=200",
                             "code"),
}


def magnitude_band(reference: float, no_effect: float) -> tuple[float, float]:
    """The band for a magnitude claim: centred on the paper's value, half the paper's effect either side. Its lower
    edge is exactly halfway from no effect to the paper's value, so it is the widest symmetric band the scoreboard's
    halfway rule allows; every magnitude claim of the chapter uses it (no per-claim choice)."""
    half = (reference - no_effect) / 2
    return tuple(sorted((no_effect + half, reference + half)))


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


def _mean_over_seeds(launch: Launch, method: str, fn) -> float:
    return statistics.mean(fn(r) for r in launch.runs if r["method"] == method)


def paired_gaps(launch: Launch, method: str, reference: str) -> list[float]:
    """Per-seed test-accuracy differences (points), ``method`` minus ``reference``, paired by seed."""
    acc = {(r["method"], r["seed"]): 100 * r["test_acc"] for r in launch.runs}
    seeds = sorted({r["seed"] for r in launch.runs})
    return [acc[(method, s)] - acc[(reference, s)] for s in seeds]


def per_seed(launch: Launch, method: str, fn) -> list[float]:
    """``fn(run)`` for every seed of ``method``, in seed order."""
    return [fn(r) for r in sorted((r for r in launch.runs if r["method"] == method), key=lambda r: r["seed"])]


def mean_wait_s(run: dict) -> float:
    """Mean time per epoch blocked on halo messages, after the warm-up epochs."""
    return float(np.mean(_after_warmup(run["wait_s"])))


def claims(cora: Launch, sbm: Launch, bytes_256: Launch, names: dict[str, str], bits: int, k: int,
           tolerance_pt: float = 1.0) -> list[Claim]:
    """The chapter's claims. ``names`` maps roles (vanilla, sync, pipelined, bounded) to method names.

    ``tolerance_pt`` is the parity margin for accuracy (points): about ten times the largest gap in the paper's CSVs
    (0.11 pt), fixed before any run."""
    out = []
    # C1. Checks, not reproductions: a message's size must equal message_bytes() or the receive fails, so the
    # counted bytes follow the wire format by construction; the 28.4x is the paper's own formula.
    measured_256, analytic_256 = bytes_ratio(bytes_256, 1)
    paper = PAPER["ratio_256"]
    out.append(Claim("c1_bytes_256", "our wire format gives the paper's fp32/1-bit byte ratio at hidden size 256",
                     paper.value, paper.source, measured_256, "x", RatioBand(paper.value, 0.95, 1.05),
                     kind="check",
                     note=f"{bytes_256.graph}, P={bytes_256.parts}; formula for our row counts {analytic_256:.2f}x"))
    measured_h, analytic_h = bytes_ratio(cora, bits)
    out.append(Claim("c1_bytes_formula", f"bytes counted at the send call equal the wire-format formula "
                     f"(int{bits}, H={cora.settings.hidden})", f"{analytic_h:.3f}x (formula)",
                     "message_bytes(): packed rows + fp16 min and step", measured_h / analytic_h, "measured/formula",
                     Tolerance(1.0, 1e-6), kind="check"))
    # C2. Accuracy parity with fp32 synchronous training, each variant against the paper's figure for that variant.
    for key, graph, launch in (("cora", cora.graph, cora), ("large", sbm.graph, sbm)):
        for role in ("sync", "pipelined", "bounded"):
            paper = PAPER[f"acc_gap_{role}"]
            out.append(Claim(f"c2_acc_{role}_{key}", f"{names[role]} keeps fp32 sync test accuracy on {graph} "
                             f"(no worse by more than {tolerance_pt:g} pt)", f"{paper.value:+.2f} pt", paper.source,
                             None, "pt vs fp32", NonInferior(tolerance_pt), states="parity",
                             confidence=paper.confidence,
                             samples=paired_gaps(launch, names[role], names["vanilla"])))
    # C3. Epoch time, measured on loopback (the only link measured here; the modelled link table is a diagnostic).
    paper = PAPER["speedup_1node"]
    speedups = [v / p for v, p in zip(per_seed(sbm, names["vanilla"], lambda r: run_summary(r)["epoch_s"]),
                                      per_seed(sbm, names["pipelined"], lambda r: run_summary(r)["epoch_s"]))]
    band = magnitude_band(paper.value, 1.0)
    out.append(Claim("c3_speedup_loopback", f"{names['pipelined']} is faster per epoch than fp32 sync "
                     f"({sbm.graph}, P={sbm.parts}, measured on loopback)", f"{paper.value}x (one node, 4 GPUs)",
                     paper.source, None, "x", AtLeast(1.0, band=band, reference=paper.value), states="magnitude",
                     confidence=paper.confidence, samples=speedups,
                     note="loopback is far faster than any real link, and the CPU quantiser is slow"))
    # C4. The staleness bound: accuracy flat across k, blocking communication grows as k falls.
    paper = PAPER["acc_gap_k"]
    out.append(Claim("c4_staleness_accuracy", f"accuracy with the staleness bound k={k} equals accuracy without it "
                     f"(within +-{tolerance_pt:g} pt, {sbm.graph})", f"{paper.value:+.2f} pt (k=5 vs k=200; flat)",
                     paper.source, None, "pt vs unbounded", Equivalent(tolerance_pt), states="parity",
                     confidence=paper.confidence, samples=paired_gaps(sbm, names["bounded"], names["pipelined"]),
                     note="ours compares k with no bound at all; the paper's loosest bound is k=200"))
    paper = PAPER["blocking_k"]
    costs = [b / max(f, 1e-9) for b, f in zip(per_seed(sbm, names["bounded"], mean_wait_s),
                                              per_seed(sbm, names["pipelined"], mean_wait_s))]
    out.append(Claim("c4_staleness_cost", f"the bound costs blocking communication: mean blocked time per epoch, "
                     f"k={k} vs unbounded", f"{paper.value}x (k=5 vs k=200)", paper.source, None, "x",
                     AtLeast(1.0, band=magnitude_band(paper.value, 1.0), reference=paper.value), states="magnitude",
                     confidence=paper.confidence, samples=costs,
                     note="ours: k vs no bound (never synchronous); the paper's k=200 still syncs every 200 epochs"))
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
