"""Faulty-node localisation (Acme Sec. 6.3): the two-round pairwise all-gather test, over real processes.

Round 1 pairs the nodes (a triple when the count is odd) and times an all-gather inside each group; the members of
a group that runs slow are suspects. Round 2 pairs each suspect with a node that passed round 1; a suspect that is
slow again is faulty. Each rank here stands for one node; the planted fault makes a rank slow in every collective
(a degraded NIC or GPU), which is the case the test is built for. ``linear_scan`` is the baseline: test every node
against one reference node, one at a time.
"""
from __future__ import annotations

import tempfile
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from repro.utils import file_rendezvous


def round_one_groups(world: int) -> list[list[int]]:
    """Pairs (0,1), (2,3), ...; the last three form a triple when ``world`` is odd."""
    groups = [[r, r + 1] for r in range(0, world - 1, 2)]
    if world % 2:
        groups[-1].append(world - 1)
    return groups


def _timed_allgather(group, members: list[int], rank: int, repeats: int, delay_s: float, size: int) -> float:
    payload = torch.ones(size)
    gathered = [torch.empty(size) for _ in members]
    start = time.perf_counter()
    for _ in range(repeats):
        if delay_s:
            time.sleep(delay_s)  # the planted fault: this node is slow in every collective
        dist.all_gather(gathered, payload, group=group)
    return time.perf_counter() - start


def _one_trial(rank: int, world: int, faulty: list[int], delay_s: float, repeats: int, slack_s: float) -> dict:
    delay = delay_s if rank in faulty else 0.0
    # round 1: every rank creates every group (new_group is collective), then times its own
    groups = round_one_groups(world)
    handles = [dist.new_group(g) for g in groups]
    mine = next(i for i, g in enumerate(groups) if rank in g)
    elapsed = _timed_allgather(handles[mine], groups[mine], rank, repeats, delay, 1024)
    times = [torch.zeros(1) for _ in range(world)]
    dist.all_gather(times, torch.tensor([elapsed]))
    group_time = [max(float(times[m]) for m in g) for g in groups]
    fastest = min(group_time)
    # slow means twice the fastest group *and* a margin above it: on a shared CPU, scheduling jitter alone can
    # double a millisecond-scale all-gather
    threshold = max(2 * fastest, fastest + slack_s)
    slow_groups = [i for i, t in enumerate(group_time) if t > threshold]
    suspects = sorted(m for i in slow_groups for m in groups[i])
    healthy = sorted(m for i, g in enumerate(groups) if i not in slow_groups for m in g)
    # round 2: each suspect with a healthy partner, one pair at a time (a partner must not serve two pairs)
    verdict = []
    for k, suspect in enumerate(suspects):
        partner = healthy[k % len(healthy)] if healthy else None
        if partner is None:
            verdict.append(suspect)
            continue
        pair = sorted([suspect, partner])
        handle = dist.new_group(pair)
        t = torch.zeros(1)
        if rank in pair:
            t = torch.tensor([_timed_allgather(handle, pair, rank, repeats, delay, 1024)])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        if float(t) > threshold:
            verdict.append(suspect)
    return {"planted": list(faulty), "delay_s": delay_s, "suspects": suspects, "faulty": verdict,
            "round_one_s": group_time, "threshold_s": threshold, "tests": len(groups) + len(suspects)}


def _worker(rank: int, world: int, init_method: str, trials: list[tuple[list[int], float]], out: str, repeats: int,
            slack_s: float) -> None:
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world,
                            timeout=timedelta(seconds=120))
    try:
        results = []
        for faulty, delay_s in trials:
            results.append(_one_trial(rank, world, faulty, delay_s, repeats, slack_s))
            dist.barrier()
        if rank == 0:
            torch.save(results, out)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def two_round_trials(world: int, trials: list[tuple[list[int], float]], repeats: int = 4,
                     slack_s: float = 0.15) -> list[dict]:
    """Spawn ``world`` gloo processes once and run the two-round test once per trial ``(faulty ranks, delay_s)``:
    the faulty ranks are slowed by ``delay_s`` per collective. Returns, per trial, what the test found: suspects
    after round 1, the faulty ranks, the group times, the threshold and the test count. A group is slow above
    max(2 x fastest, fastest + ``slack_s``) seconds for ``repeats`` all-gathers, so a planted node adds about
    ``repeats * delay_s`` to its group: near ``slack_s`` it is at the edge of detection."""
    with tempfile.TemporaryDirectory(prefix="repro-acme-") as tmp:
        out = str(Path(tmp) / "result.pt")
        planted = [(list(f), float(d)) for f, d in trials]
        mp.start_processes(_worker, args=(world, file_rendezvous(tmp), planted, out, repeats, slack_s), nprocs=world,
                           start_method="spawn")
        return torch.load(out)


def two_round_test(world: int, faulty: list[int], delay_s: float = 0.1, repeats: int = 4,
                   slack_s: float = 0.15) -> dict:
    """One trial of :func:`two_round_trials`."""
    return two_round_trials(world, [(faulty, delay_s)], repeats, slack_s)[0]


def linear_scan_tests(world: int) -> int:
    """Group tests the baseline needs: every node against one reference, one at a time."""
    return world - 1


__all__ = ["linear_scan_tests", "round_one_groups", "two_round_test", "two_round_trials"]
