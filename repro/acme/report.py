"""The Acme chapter's claims, computed from what the three parts measured."""
from __future__ import annotations

import math

from repro.claims import CHECK, AtLeast, Claim, RatioBand, Superior, Tolerance

SECONDARY = "paper via review notes, not checked against the PDF here"
CODE = "AcmeTrace's shipped CDF pickles (data/utilization/util_pkl), as converted to CSV"
# The evaluation coordinator's makespan reduction (Sec. 7, [secondary]): 7B model, 63 datasets.
PAPER_MAKESPAN = {1: 1.3, 4: 1.8}


def halfway_ratio_band(paper: float, no_effect: float = 1.0) -> tuple[float, float]:
    """The narrowest-sided ratio band the scoreboard allows around a paper's ratio: its lower edge (as a ratio to
    ``paper``) sits exactly halfway from ``no_effect`` to ``paper`` (rounded up to 3 decimals), the upper edge is its
    reciprocal (a band symmetric in log ratio)."""
    lo = math.ceil(1000 * (no_effect + (paper - no_effect) / 2) / paper) / 1000
    return lo, round(1 / lo, 3)


def claims(stats: dict, recovery: dict, checkpoint: dict, localisation: dict | None, makespan: dict,
           diagnosis: dict) -> list[Claim]:
    """``stats``: characterization.headline_statistics(); ``recovery``: experiment.recovery_runs();
    ``checkpoint``: stall seconds per mode at the largest size; ``localisation``: experiment.localisation() (None
    when the scale leaves the test out); ``makespan``: {nodes: (baseline_s, decoupled_s)}; ``diagnosis``:
    log_corpus.score() on the corpus's test part."""
    trials = localisation["trials"] if localisation else []
    world = localisation["world"] if localisation else "several"
    out = [
        Claim("a1_gpu_util_seren", "our loader reads the shipped Seren GPU-utilisation CDF's median",
              "99 % (the shipped curve)", CODE, stats["median_gpu_util_seren"], "%", Tolerance(99, 1.0), kind=CHECK,
              note="a check, not a reproduction: the value compared with is read off the same curve. The secondary "
                   "notes quote medians of 97 % / 99 % without saying which cluster is which"),
        Claim("a1_gpu_util_kalos", "our loader reads the shipped Kalos GPU-utilisation CDF's median",
              "97-98 % (the shipped curve)", CODE, stats["median_gpu_util_kalos"], "%", Tolerance(97.5, 1.0),
              kind=CHECK, note="a check, not a reproduction: the value compared with is read off the same curve"),
        Claim("a1_gpu_util_philly", "median GPU utilisation on Philly (prior work)", "48 %",
              f"Sec. 4 / Fig. 7 ({SECONDARY})", stats["median_gpu_util_philly"], "%", Tolerance(48, 2.0),
              states="magnitude", confidence="secondary"),
        Claim("a1_nic_idle", "InfiniBand NICs are idle most of the time (send = 0)", "> 60 % of the time",
              f"Sec. 4 / Fig. 8 ({SECONDARY})", stats["ib_send_idle_share"], "% of samples", AtLeast(60),
              states="direction", confidence="secondary"),
        Claim("a1_power_kalos", "Kalos GPUs above 400 W", "12.5 %", f"Sec. 4 / Fig. 8 ({SECONDARY})",
              stats["power_above_400w_kalos"], "% of samples", Tolerance(12.5, 0.5), states="magnitude",
              confidence="secondary"),
        Claim("a1_power_seren", "Seren GPUs above 400 W", "22.1 %", f"Sec. 4 / Fig. 8 ({SECONDARY})",
              stats["power_above_400w_seren"], "% of samples", Tolerance(22.1, 1.0), states="magnitude",
              confidence="secondary",
              note="the shipped Seren power CDF covers August only; the paper's figure covers the whole period"),
        Claim("a2_recovery_bitwise", f"after {recovery['failures']} injected infrastructure failures, automatic "
              "recovery ends with the uninterrupted run's final loss", "training resumes from the latest checkpoint",
              "Sec. 6.3 (qualitative)", abs(recovery["faulty_loss"] - recovery["clean_loss"]), "|loss difference|",
              Tolerance(0.0, 0.0), kind=CHECK, note="determinism of our restart path, not a paper number"),
        Claim("a2_auto_recovered", f"share of the held-out test logs whose ground truth is recoverable "
              f"(infrastructure or loss anomaly, {diagnosis['recoverable']} logs) that the rules diagnose into that "
              "class, so the job restarts or rolls back without a human", "about 90 % less manual intervention",
              f"Sec. 6.2 ({SECONDARY}); a different measure: ours is a share of held-out failure logs",
              diagnosis["auto_recovered_share"], "%", Tolerance(90, 10, no_effect=0), states="magnitude",
              confidence="secondary",
              note="rules (no LLM agent) on logs written for this handbook, split into development and test parts"),
        Claim("a2_async_checkpoint", f"asynchronous checkpoints block training less than synchronous ones "
              f"({checkpoint['size_mb']:g} MB state)", "3.6-58.7x lower overhead", f"Sec. 6.1 ({SECONDARY})",
              checkpoint["sync_s"] / checkpoint["async_s"], "x", AtLeast(1.0, band=(3.6, 58.7), reference=3.6),
              states="magnitude", confidence="secondary",
              note="the paper's range spans 7B to 123B models; the reference is its smaller end"),
        Claim("a2_localisation", f"the two-round pairwise test finds the planted slow node among {world} ranks "
              f"more often than a guess (1 in {world}), over {len(trials) or 'several'} trials with planted delays "
              "down to just above the detection slack", "finds faulty nodes", f"Sec. 6.3 (qualitative; {SECONDARY})",
              None, "share found exactly", Superior(no_effect=1 / world if localisation else 0.0),
              samples=[float(t["found exactly"]) for t in trials], states="direction", confidence="secondary",
              note="left out at smoke scale (it starts a process per rank); runs at default"),
    ]
    gains = {}
    for nodes, paper in PAPER_MAKESPAN.items():
        base, ours = makespan[nodes]
        gains[nodes] = base / ours
        lo, hi = halfway_ratio_band(paper)
        out.append(Claim(f"a3_makespan_{nodes}node", f"decoupled evaluation scheduling shortens the makespan on "
                         f"{nodes} node(s) of 8 GPUs (63 datasets, simulated)", f"{paper}x",
                         f"Sec. 7 ({SECONDARY})", gains[nodes], "x", RatioBand(paper, lo, hi, pivot=1.0),
                         states="magnitude", confidence="secondary", note="synthetic dataset sizes"))
    trend = round(PAPER_MAKESPAN[4] / PAPER_MAKESPAN[1], 3)
    lo, hi = halfway_ratio_band(trend)
    out.append(Claim("a3_makespan_trend", "the coordinator's gain grows with the cluster: the 4-node speed-up over "
                     "the 1-node speed-up", f"{PAPER_MAKESPAN[4]}x / {PAPER_MAKESPAN[1]}x = {trend:.3g}",
                     f"Sec. 7 ({SECONDARY})", gains[4] / gains[1], "ratio of speed-ups",
                     RatioBand(trend, lo, hi, pivot=1.0), states="magnitude", confidence="secondary",
                     note="synthetic dataset sizes"))
    return out
