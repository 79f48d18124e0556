"""Labelled failed-job logs for Acme's diagnosis, and their development / test split.

The logs live in ``failure_logs.txt`` beside this module: written for this handbook in the wording the stacks print
(torch.distributed / torchrun, NCCL, gloo, CUDA and the NVIDIA driver, the kernel's OOM killer, Slurm, Kubernetes,
botocore, Lustre, Python tracebacks from user code), with routine lines around the error and several formats per
failure type. No AcmeTrace logs are public, so none of them is a real job's log.

The split (:func:`split`) is stratified by ground-truth class and seeded: within each class the ids are sorted,
shuffled with ``random.Random(SPLIT_SEED)`` and the first half (rounded down) is the development part. The
diagnosis rules (``repro.acme.diagnosis``) may be written against the development part only; accuracy and the
auto-recovery share are measured on the test part, and the failures injected into pretraining print messages drawn
from the test part (:func:`injection_log`). The same person wrote the logs and the rules, so the test part guards
against fitting the rules to the very messages they are scored on, not against a shared idea of what logs look like.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from repro.acme.diagnosis import FRAMEWORK, INFRASTRUCTURE, LOSS, SCRIPT

CORPUS_FILE = Path(__file__).with_name("failure_logs.txt")
CLASSES = (INFRASTRUCTURE, FRAMEWORK, SCRIPT, LOSS)
SPLIT_SEED = 20240311  # fixed once, before the rules were revised against the development part
DEV, TEST = "development", "test"
# the log of an injected failure is drawn from test-part logs of these reasons (pretrain.py's injection kinds)
INJECTION_REASONS = {
    "kill": ("NodeFailure", "ECCError", "NVLinkError"),  # the rank dies: a node or GPU fault
    "hang": ("NCCLTimeout",),  # the rank stops answering collectives
    "nan": ("LossAnomaly",),
    "oom": ("OutOfMemory",),
    "keyerror": ("KeyError", "TypeError", "FileNotFoundError", "ImportError", "NameError", "IndexError"),
}
_HEADER = re.compile(r"^### (\S+) \| (\S+) \| (.+)$")


@dataclass(frozen=True)
class FailureLog:
    id: str
    reason: str  # the failure type (the paper's Table 3 names, plus StorageError for file systems)
    failure_class: str  # ground truth
    text: str


@cache
def load() -> tuple[FailureLog, ...]:
    """Every log of the corpus file, in file order."""
    logs, header, lines = [], None, []

    def close():
        if header is not None:
            logs.append(FailureLog(*header, "\n".join(lines).strip("\n")))

    for line in CORPUS_FILE.read_text().splitlines():
        match = _HEADER.match(line)
        if match:
            close()
            header, lines = match.groups(), []
            if header[2] not in CLASSES:
                raise ValueError(f"{header[0]}: unknown class {header[2]!r}")
        elif header is not None:
            lines.append(line)
    close()
    ids = [log.id for log in logs]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate log ids in the corpus")
    return tuple(logs)


@cache
def split(seed: int = SPLIT_SEED) -> dict[str, tuple[FailureLog, ...]]:
    """{"development": logs, "test": logs}: per class, a seeded shuffle of the sorted ids; the first half (rounded
    down) is development, the rest test."""
    parts = {DEV: [], TEST: []}
    for cls in CLASSES:
        members = sorted((log for log in load() if log.failure_class == cls), key=lambda log: log.id)
        random.Random(f"{seed}:{cls}").shuffle(members)
        half = len(members) // 2
        parts[DEV] += members[:half]
        parts[TEST] += members[half:]
    return {name: tuple(sorted(logs, key=lambda log: log.id)) for name, logs in parts.items()}


def injection_log(kind: str, draw: int, seed: int = 0, part: str = TEST) -> FailureLog:
    """The log that an injected failure of ``kind`` prints (the ``draw``-th injection of the run), from the test
    part unless ``part`` says otherwise."""
    pool = [log for log in split()[part] if log.reason in INJECTION_REASONS[kind]]
    if not pool:
        raise LookupError(f"the {part} part has no log for injection kind {kind!r}")
    return random.Random(f"{seed}:{kind}:{draw}").choice(pool)


RECOVERABLE = (INFRASTRUCTURE, LOSS)  # the classes whose action is automatic (restart, isolate, roll back)


def score(logs) -> dict:
    """Diagnose each log and compare with its ground truth.

    Returns per-log rows (id, true and diagnosed reason and class, action) under "rows", and: "class_accuracy" and
    "reason_accuracy" (percent of logs), "per_class" ({class: (correct, count)}), and the auto-recovery share:
    "auto_recovered" of "recoverable" logs, the denominator being the logs whose *ground-truth* class is
    infrastructure or a loss anomaly, the numerator those among them that the diagnosis puts in that same class
    (so the job is restarted, or rolled back, without a human). A recoverable failure diagnosed into another class
    is reported to a human, or handled by the wrong action."""
    from repro.acme.diagnosis import diagnose

    rows = []
    for log in logs:
        found = diagnose(log.text)
        rows.append({"id": log.id, "reason": log.reason, "class": log.failure_class, "diagnosed reason": found.reason,
                     "diagnosed class": found.failure_class, "action": found.action,
                     "class correct": found.failure_class == log.failure_class,
                     "reason correct": found.reason == log.reason})
    per_class = {cls: (sum(r["class correct"] for r in rows if r["class"] == cls),
                       sum(r["class"] == cls for r in rows)) for cls in CLASSES}
    recoverable = [r for r in rows if r["class"] in RECOVERABLE]
    n = max(len(rows), 1)
    return {"rows": rows, "per_class": per_class,
            "class_accuracy": 100 * sum(r["class correct"] for r in rows) / n,
            "reason_accuracy": 100 * sum(r["reason correct"] for r in rows) / n,
            "recoverable": len(recoverable), "auto_recovered": sum(r["class correct"] for r in recoverable),
            "auto_recovered_share": 100 * sum(r["class correct"] for r in recoverable) / max(len(recoverable), 1)}
