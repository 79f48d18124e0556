"""What each scale of the Acme chapter runs."""
from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

from repro.acme import localize, log_corpus, pretrain, supervisor


@dataclass(frozen=True)
class Plan:
    steps: int  # pretraining steps per run
    injections: tuple[str, ...]  # failures injected into the recovery run, one per attempt
    other_failures: bool  # also run a framework error (reported) and a NaN loss (rolled back)
    checkpoint_mb: tuple[float, ...]
    world: int  # ranks in the localisation test
    nodes: tuple[int, ...]  # node counts for the evaluation simulator
    dt: float  # simulator step (s)
    synthetic_jobs: int
    width: int = 64
    localise: bool = True  # the localisation test starts `world` processes: left out at smoke scale for time
    # planted delay of each localisation trial, as a multiple of the detection slack (repeats x delay / slack):
    # from clearly slow down to just above the edge of detection
    delay_over_slack: tuple[float, ...] = (8 / 3, 2.0, 1.5, 1.25, 1.1)


PLANS = {
    "smoke": Plan(10, ("kill@6:1",), False, (16,), 4, (1, 4), 5.0, 2_000, localise=False),
    "default": Plan(18, ("kill@7:1", "hang@13:0"), True, (16, 64, 256), 5, (1, 2, 4, 8), 2.0, 20_000),
    "full": Plan(60, ("kill@17:1", "hang@33:0", "kill@48:0"), True, (64, 256, 1024), 6, (1, 2, 4, 8, 16), 1.0,
                 200_000, width=256),
}


def recovery_runs(plan: Plan, folder: Path, seed: int, device: str = "cpu") -> dict:
    """The clean run, the run with injected failures, and (default scale) a reported and a rolled-back failure.
    ``device="cuda"`` trains on the GPU (unverified here: no GPU was available when this was written)."""
    common = {"steps": plan.steps, "seed": seed, "width": plan.width, "device": device}
    runs = {"clean": supervisor.run_job(folder / "clean", **common),
            "faulty": supervisor.run_job(folder / "faulty", injections=list(plan.injections), **common)}
    if plan.other_failures:
        runs["framework error"] = supervisor.run_job(folder / "oom", injections=["oom@3:0"], **common)
        runs["NaN loss"] = supervisor.run_job(folder / "nan", injections=[f"nan@{plan.steps // 2}:1"], **common)
    # ground truth of a failed attempt: the class of the corpus log its injected failure printed, not the diagnosis
    truth = {log.id: log.failure_class for log in log_corpus.load()}
    failed = [a for r in runs.values() for a in r.attempts if a.exit_code != 0]
    recoverable = [a for a in failed if truth.get(a.injected_log) in log_corpus.RECOVERABLE]
    auto = [a for a in recoverable if any(r.status == "finished" and a in r.attempts for r in runs.values())]
    return {"runs": runs, "clean_loss": runs["clean"].final_loss, "faulty_loss": runs["faulty"].final_loss,
            "failures": len(plan.injections), "recoverable": len(recoverable), "auto": len(auto)}


def checkpoint_stalls(plan: Plan, folder: Path) -> dict[float, dict[str, float]]:
    return {mb: {mode: pretrain.checkpoint_stall(mode, mb, folder / f"{mode}{mb:g}") for mode in ("sync", "async")}
            for mb in plan.checkpoint_mb}


def localisation(plan: Plan, seed: int = 0, repeats: int = 4, slack_s: float = 0.15) -> dict | None:
    """The two-round test over ``plan.world`` ranks, once per entry of ``plan.delay_over_slack``, each time with a
    different planted rank (seeded) and delay. Returns the per-trial rows and the test counts."""
    if not plan.localise:
        return None
    rng = random.Random(f"localise:{seed}")
    trials = [([rng.randrange(plan.world)], ratio * slack_s / repeats) for ratio in plan.delay_over_slack]
    found = localize.two_round_trials(plan.world, trials, repeats=repeats, slack_s=slack_s)
    rows = [{"planted": t["planted"], "delay over slack": ratio, "delay per collective (s)": t["delay_s"],
             "suspects": t["suspects"], "found": t["faulty"], "found exactly": t["faulty"] == t["planted"],
             "tests": t["tests"]} for ratio, t in zip(plan.delay_over_slack, found)]
    return {"world": plan.world, "trials": rows, "tests": max(r["tests"] for r in rows),
            "linear_scan_tests": localize.linear_scan_tests(plan.world)}


def scratch() -> tempfile.TemporaryDirectory:
    """A scratch folder for one run (checkpoints, training logs). ``.cleanup()`` removes it; if the run fails before
    that, the folder is removed when the interpreter (the notebook's kernel) exits, failed or not."""
    return tempfile.TemporaryDirectory(prefix="repro-acme-")
