"""The chapter's claims, with verdicts computed from the runs.

The paper states its claims as directions and curve shapes (abstract; the figures' curves). Every reproduction here
is a :class:`~repro.claims.Superior` on per-seed paired differences (same seed, same environment, same sample
budget), oriented so that positive is the paper's direction. No paper number is quoted: the engineering notes give
none, and the figures' values (Stable Diffusion, aesthetic / ImageReward / PickScore / HPSv2) are not comparable with
a 2-D toy.

Matched proxy: each seed's runs are compared at the same proxy-reward levels (8 levels from the base proxy up to the
lower of 1.0 and the lowest peak any compared run reached); a run's value is the mean over those levels of its
smoothed gold (or mean OOD) reward at the first crossing.
"""
from __future__ import annotations

from repro.claims import CHECK, Claim, Superior, Tolerance
from repro.tdpor import experiment

PAPER = "arXiv 2402.08552"
ABSTRACT = f"{PAPER}, abstract"
FIGS = f"{PAPER}, cross-reward and ablation figures (figure numbers not checked against the PDF)"
NOTES = "engineering notes (figure content to be checked against the PDF)"


def claims(results: list[dict], steps_expected: int) -> list[Claim]:
    out = []
    table = experiment.matched_table(results)
    variants = set(table.variant)
    # premise: the toy overoptimises within the budget (gold falls from its peak while the proxy keeps rising)
    drop = table.assign(drop=table.gold_peak - table.gold_final).groupby("seed")["drop"].mean()
    out.append(Claim(
        "p_overoptimisation", "the environment invites overoptimisation: peak minus final gold reward, mean over "
        "methods, per seed", "premise of the comparisons at matched proxy", "chapter design", None, "gold reward",
        Superior(), samples=[float(v) for v in drop.sort_index()], kind=CHECK))

    eff = experiment.efficiency(results)
    out.append(Claim(
        "c1_sample_efficiency", "TDPO reaches a proxy level (halfway from base to the lower of the two peaks) in "
        "fewer reward queries than DDPO: queries(DDPO) - queries(TDPO), per seed",
        "temporal inductive bias improves sample efficiency (in-domain reward vs reward queries above DDPO's)",
        ABSTRACT + "; " + NOTES, None, "queries", Superior(),
        samples=list(eff["queries DDPO"] - eff["queries TDPO"]), confidence="secondary"))

    for ours in ("TDPO", "TDPO-R"):
        for base in ("DDPO", "AlignProp"):
            for metric, what in (("gold_at_proxy", "gold"), ("ood_at_proxy", "mean OOD")):
                out.append(Claim(
                    f"c2_{ours.lower().replace('-', '')}_vs_{base.lower()}_{what.split()[-1].lower()}",
                    f"at matched proxy, {ours} keeps a higher {what} reward than {base}: difference per seed",
                    f"{ours} overoptimises less than {base} (higher out-of-domain scores at the same in-domain "
                    "score)", FIGS, None, f"{what} reward", Superior(),
                    samples=experiment.paired(table, metric, ours, base), premise="p_overoptimisation",
                    confidence="secondary"))

    for other in ("TDPO + ReDo", "TDPO + full reset", "TDPO"):
        if other not in variants:
            continue
        tag = {"TDPO + ReDo": "redo", "TDPO + full reset": "full_reset", "TDPO": "no_reset"}[other]
        for metric, what in (("gold_at_proxy", "gold"), ("ood_at_proxy", "mean OOD")):
            out.append(Claim(
                f"c3_active_vs_{tag}_{what.split()[-1].lower()}",
                f"at matched proxy, resetting active critic neurons (TDPO-R) beats {other}: {what} reward "
                "difference per seed",
                "resetting active neurons mitigates overoptimisation better than resetting dormant ones, all, or "
                "none", FIGS, None, f"{what} reward", Superior(),
                samples=experiment.paired(table, metric, "TDPO-R", other), premise="p_overoptimisation",
                confidence="secondary"))

    rho = experiment.dormancy_correlation(results)
    out.append(Claim(
        "c4_dormancy_regularises", "across a seed's critic runs, the final dormant share correlates negatively with "
        "the final proxy - gold gap: -Spearman rho per seed (4 runs per seed at default scale)",
        "dormant neurons act as a regulariser against overoptimisation", ABSTRACT, None, "-rho", Superior(),
        samples=[-v for v in rho.sort_index()], confidence="paper"))

    # checks of our implementation
    out.append(Claim("k_logprob", "DDIM eta=1 log-probability (mean over dims) equals the closed-form Gaussian's",
                     "exact", "formula", experiment.logprob_check(), "max abs error", Tolerance(0.0, 1e-5),
                     kind=CHECK))
    tdpo_steps = table[table.variant == "TDPO"].steps_per_epoch
    out.append(Claim("k_steps", f"TDPO makes T x ceil(B/b) = {steps_expected} optimiser steps per epoch",
                     steps_expected, "official update schedule", float(tdpo_steps.mean()), "steps/epoch",
                     Tolerance(float(steps_expected), 0.0), kind=CHECK))
    ddpo_steps = table[table.variant == "DDPO"].steps_per_epoch
    ratio = float(tdpo_steps.mean() / ddpo_steps.mean())
    out.append(Claim("k_steps_ratio", "TDPO makes T times as many optimiser steps per epoch as DDPO", "T = 20",
                     "official update schedule", ratio, "x", Tolerance(20.0, 0.0), kind=CHECK))
    rc = experiment.reset_check()
    out.append(Claim("k_reset_active", f"the reset touches exactly the active neurons ({rc['active']} of "
                     f"{rc['neurons']}) and leaves their Adam moments at zero: wrong neurons + largest moment",
                     0, "neuron_recycler.py", rc["wrong_neurons"] + rc["max_moment"], "", Tolerance(0.0, 0.0),
                     kind=CHECK))
    return out


def determinism_claim(a: dict, b: dict) -> Claim:
    diff = max(float(abs(a["curves"][k] - b["curves"][k]).max()) for k in a["curves"])
    return Claim("k_determinism", "the same seed gives the same curves (one TDPO-R run, twice)", "identical",
                 "handbook rule", diff, "max abs difference", Tolerance(0.0, 0.0), kind=CHECK)
