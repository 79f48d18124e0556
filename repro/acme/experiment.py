"""What each scale of the Acme chapter runs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from repro.acme import localize, pretrain, supervisor
from repro.acme.diagnosis import INFRASTRUCTURE, LOSS


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
    failed = [a for r in runs.values() for a in r.attempts if a.exit_code != 0]
    recoverable = [a for a in failed if a.failure_class in (INFRASTRUCTURE, LOSS)]
    auto = [a for a in recoverable if any(r.status == "finished" and a in r.attempts for r in runs.values())]
    return {"runs": runs, "clean_loss": runs["clean"].final_loss, "faulty_loss": runs["faulty"].final_loss,
            "failures": len(plan.injections), "recoverable": len(recoverable), "auto": len(auto)}


def checkpoint_stalls(plan: Plan, folder: Path) -> dict[float, dict[str, float]]:
    return {mb: {mode: pretrain.checkpoint_stall(mode, mb, folder / f"{mode}{mb:g}") for mode in ("sync", "async")}
            for mb in plan.checkpoint_mb}


def localisation(plan: Plan) -> dict | None:
    if not plan.localise:
        return None
    planted = [plan.world - 2]
    found = localize.two_round_test(plan.world, planted)
    return {"world": plan.world, "planted": planted, "found": found["faulty"], "suspects": found["suspects"],
            "tests": found["tests"], "linear_scan_tests": localize.linear_scan_tests(plan.world)}
