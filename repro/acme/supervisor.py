"""Automatic recovery (Acme Sec. 6): run the pretraining job under torchrun, diagnose each failure from its log,
take the action the diagnosis names, and resume from the latest complete checkpoint.

Actions: restart (and "isolate the node" before it, recorded; on one host there is no other node to move to);
roll back for a loss anomaly (resume from the checkpoint before the bad step and skip that step's batch); stop and
report for framework and script errors, which a restart would only repeat.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from repro.acme import log_corpus
from repro.acme.diagnosis import REPORT, ROLLBACK, diagnose
from repro.acme.pretrain import latest_checkpoint, parse_injection
from repro.paths import REPO_ROOT


@dataclass
class Attempt:
    injection: str | None
    resumed_from_step: int
    exit_code: int
    last_step: int  # the last step rank 0 completed in this attempt
    wall_s: float
    lost_steps: int = 0  # steps completed after the last complete checkpoint: redone by the next attempt
    injected_log: str = ""  # id of the corpus log the injected failure printed
    reason: str = ""
    failure_class: str = ""
    action: str = ""
    evidence: str = ""


@dataclass
class JobResult:
    status: str  # "finished" | "reported" | "gave up"
    attempts: list[Attempt] = field(default_factory=list)
    losses: dict[int, float] = field(default_factory=dict)  # step -> loss of the attempt that finished it
    stalls: list[float] = field(default_factory=list)  # seconds the loop blocked per checkpoint

    @property
    def final_loss(self) -> float | None:
        return self.losses[max(self.losses)] if self.losses else None

    def to_dict(self) -> dict:
        return {"status": self.status, "attempts": [asdict(a) for a in self.attempts],
                "final_loss": self.final_loss, "stalls": self.stalls}


def _read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_job(out: Path, steps: int = 30, injections: list[str] | None = None, ckpt: str = "async",
            ckpt_every: int = 5, seed: int = 0, width: int = 64, max_attempts: int = 6,
            collective_timeout: float = 6.0, timeout_s: float = 300.0, device: str = "cpu",
            log_part: str = log_corpus.TEST) -> JobResult:
    """Run the job to completion, injecting ``injections[i]`` into attempt i, recovering automatically.

    Each injected failure prints a log of its kind drawn (seeded by ``seed`` and the attempt) from the ``log_part``
    of the corpus: the test part, unless a test of the recovery mechanics asks for the development part."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = out / "metrics_rank0.jsonl"
    injections = list(injections or [])
    result, skip = JobResult("gave up"), []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    for index in range(max_attempts):
        checkpoint = latest_checkpoint(out / "checkpoints")
        resumed = int(checkpoint.stem.split("_")[1]) if checkpoint else 0
        injection = injections[index] if index < len(injections) else None
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "--max-restarts", "0", "-m", "repro.acme.pretrain", "--out", str(out), "--steps", str(steps),
               "--ckpt", ckpt, "--ckpt-every", str(ckpt_every), "--seed", str(seed), "--width", str(width),
               "--collective-timeout", str(collective_timeout), "--device", device]
        if checkpoint:
            cmd += ["--resume-from", str(checkpoint)]
        if skip:
            cmd += ["--skip", *map(str, skip)]
        drawn = None
        if injection:
            cmd += ["--inject", injection]
            drawn = log_corpus.injection_log(parse_injection(injection)[0], index, seed, part=log_part)
            log_file = out / f"injected_log_{index}.txt"
            log_file.write_text(drawn.text)
            cmd += ["--failure-log", str(log_file)]
        seen = len(_read_metrics(metrics))
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
        records = _read_metrics(metrics)[seen:]
        for r in records:
            result.losses[r["step"]] = r["loss"]
            if r["ckpt_stall_s"] > 0:
                result.stalls.append(r["ckpt_stall_s"])
        attempt = Attempt(injection, resumed, proc.returncode, records[-1]["step"] if records else resumed,
                          time.perf_counter() - started)
        attempt.injected_log = drawn.id if drawn else ""
        result.attempts.append(attempt)
        if proc.returncode == 0:
            result.status = "finished"
            break
        after = latest_checkpoint(out / "checkpoints")
        attempt.lost_steps = attempt.last_step - (int(after.stem.split("_")[1]) if after else 0)
        found = diagnose(proc.stdout + "\n" + proc.stderr)
        attempt.reason, attempt.failure_class, attempt.action, attempt.evidence = (
            found.reason, found.failure_class, found.action, found.evidence)
        if found.action == REPORT:
            result.status = "reported"
            break
        if found.action == ROLLBACK:
            skip.append(attempt.last_step + 1)  # the step whose loss went bad
    return result  # steps redone by a later attempt carry that attempt's loss
