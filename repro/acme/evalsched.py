"""Part 3 of the Acme chapter: decoupled evaluation scheduling, as a discrete-event simulation.

Evaluating one model on many datasets over N nodes of G GPUs. Each dataset needs GPU inference (seconds on one GPU)
and a metric computation (seconds of CPU work).

* Baseline (one trial per dataset, FIFO): every trial loads the model from remote storage over the node's NIC, which
  concurrent loads on the same node share equally; it then runs inference, then computes its metric while still
  holding the GPU.
* Decoupled (Acme's coordinator), three techniques that can be switched off one by one:
  ``load_once``: one remote load per node into shared memory, then each GPU worker copies it over PCIe once;
  ``cpu_metrics``: metrics run as CPU jobs (``cpu_slots`` per node), so the GPU is free after inference;
  ``partition``: datasets are split or merged by their runtime priors into tasks of about ``task_seconds`` (an
  OpenCompass SizePartitioner-like heuristic) and started longest first.

The simulation advances in fixed steps of ``dt`` seconds; NIC bandwidth is shared equally by the loads active on a
node during a step. All durations in seconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Dataset:
    name: str
    inference_s: float  # GPU seconds on one GPU
    metric_s: float  # CPU seconds


@dataclass(frozen=True)
class Cluster:
    nodes: int
    gpus_per_node: int = 8
    model_gb: float = 14.0  # a 7B model in fp16
    nic_gbps: float = 25.0  # remote storage to one node
    pcie_load_s: float = 2.0  # copying the model from host shared memory to one GPU
    cpu_slots: int = 16  # concurrent metric jobs per node (decoupled mode)

    @property
    def remote_load_s(self) -> float:
        """One model load alone on a node's NIC."""
        return self.model_gb * 8 / self.nic_gbps


@dataclass(frozen=True)
class Policy:
    load_once: bool = False
    cpu_metrics: bool = False
    partition: bool = False
    task_seconds: float | None = None  # target task size for partition; default: total / (GPUs * 4)

    @property
    def name(self) -> str:
        parts = [n for n, on in (("load once", self.load_once), ("CPU metrics", self.cpu_metrics),
                                 ("partition", self.partition)) if on]
        return " + ".join(parts) if parts else "baseline (trial per dataset)"


BASELINE = Policy()
DECOUPLED = Policy(load_once=True, cpu_metrics=True, partition=True)


@dataclass(frozen=True)
class Task:
    inference_s: float
    metric_s: float  # charged to the chunk that completes a dataset
    sources: tuple[str, ...]
    priority_s: float = 0.0  # inference plus the whole metric time of its datasets: what makes it urgent


def partition_tasks(datasets: list[Dataset], task_seconds: float) -> list[Task]:
    """Split datasets longer than ``task_seconds`` into equal chunks, merge short ones up to it (first fit
    decreasing). A split dataset's metric is charged once, to its last chunk (it needs every prediction). Tasks come out
    longest first by inference + metric time, so that long CPU metrics start early, as the paper's coordinator
    does."""
    tasks, small = [], []
    for d in datasets:
        if d.inference_s > task_seconds:
            chunks = int(np.ceil(d.inference_s / task_seconds))
            for i in range(chunks):
                tasks.append(Task(d.inference_s / chunks, d.metric_s if i == chunks - 1 else 0.0, (d.name,),
                                  d.inference_s / chunks + d.metric_s))
        else:
            small.append(d)
    small.sort(key=lambda d: -d.inference_s)
    bins: list[list[Dataset]] = []
    for d in small:  # first fit decreasing
        for b in bins:
            if sum(x.inference_s for x in b) + d.inference_s <= task_seconds:
                b.append(d)
                break
        else:
            bins.append([d])
    for b in bins:
        inference, metric = sum(d.inference_s for d in b), sum(d.metric_s for d in b)
        tasks.append(Task(inference, metric, tuple(d.name for d in b), inference + metric))
    return sorted(tasks, key=lambda t: -t.priority_s)


@dataclass
class _Worker:
    node: int
    phase: str = "idle"  # idle | remote_load | pcie_load | infer | gpu_metric
    remaining: float = 0.0  # seconds (or gigabits for remote_load)
    task: Task | None = None
    loaded: bool = False


@dataclass
class Result:
    makespan_s: float
    gpu_busy_s: float
    gpu_idle_while_held_s: float  # GPU held for loading or metric computation
    timeline: list[tuple[float, int, str]] = field(default_factory=list)  # (time, worker, phase started)


def simulate(datasets: list[Dataset], cluster: Cluster, policy: Policy, dt: float = 0.5,
             record: bool = False) -> Result:
    """Run the evaluation to completion and return its makespan (the last metric done) and GPU accounting."""
    gpus = cluster.nodes * cluster.gpus_per_node
    if policy.partition:
        target = policy.task_seconds or sum(d.inference_s for d in datasets) / (gpus * 4)
        queue = partition_tasks(datasets, target)
    else:
        queue = [Task(d.inference_s, d.metric_s, (d.name,)) for d in datasets]  # FIFO, dataset order
    queue.reverse()  # pop() takes from the end
    workers = [_Worker(node=g // cluster.gpus_per_node) for g in range(gpus)]
    node_has_model = [False] * cluster.nodes
    node_loading = [False] * cluster.nodes  # load_once: one remote load per node in flight
    node_load_left = [cluster.model_gb * 8] * cluster.nodes
    cpu_jobs: list[list[float]] = [[] for _ in range(cluster.nodes)]  # remaining seconds of running metric jobs
    cpu_waiting: list[list[float]] = [[] for _ in range(cluster.nodes)]
    t, busy, held = 0.0, 0.0, 0.0
    timeline: list[tuple[float, int, str]] = []

    def start(w: int, phase: str, amount: float) -> None:
        workers[w].phase, workers[w].remaining = phase, amount
        if record:
            timeline.append((t, w, phase))

    while True:
        # hand out work to idle GPU workers
        for w, worker in enumerate(workers):
            if worker.phase != "idle":
                continue
            if policy.load_once and worker.loaded:
                if queue:
                    worker.task = queue.pop()
                    start(w, "infer", worker.task.inference_s)
                continue
            if not queue:
                continue
            if policy.load_once:
                if node_has_model[worker.node]:
                    worker.task = None
                    start(w, "pcie_load", cluster.pcie_load_s)
                elif not node_loading[worker.node]:
                    node_loading[worker.node] = True
                    start(w, "remote_load", node_load_left[worker.node])
            else:
                worker.task = queue.pop()
                start(w, "remote_load", cluster.model_gb * 8)
        done_gpus = all(wk.phase == "idle" for wk in workers) and not queue
        if done_gpus and not any(cpu_jobs[n] or cpu_waiting[n] for n in range(cluster.nodes)):
            break
        # advance one step: NIC shared equally among the remote loads of a node
        loads_per_node = [sum(1 for wk in workers if wk.phase == "remote_load" and wk.node == n)
                          for n in range(cluster.nodes)]
        for w, worker in enumerate(workers):
            if worker.phase == "idle":
                continue
            if worker.phase == "infer":
                busy += dt
            else:
                held += dt
            if worker.phase == "remote_load":
                worker.remaining -= cluster.nic_gbps * dt / loads_per_node[worker.node]
            else:
                worker.remaining -= dt
            if worker.remaining > 1e-9:
                continue
            if worker.phase == "remote_load" and policy.load_once:
                node_has_model[worker.node] = True
                start(w, "pcie_load", cluster.pcie_load_s)
            elif worker.phase == "remote_load":
                start(w, "infer", worker.task.inference_s)
            elif worker.phase == "pcie_load":
                worker.loaded = True
                start(w, "idle", 0.0)
            elif worker.phase == "infer":
                if policy.cpu_metrics:
                    if worker.task.metric_s > 0:
                        cpu_waiting[worker.node].append(worker.task.metric_s)
                    start(w, "idle", 0.0)
                else:
                    start(w, "gpu_metric", worker.task.metric_s)
            elif worker.phase == "gpu_metric":
                start(w, "idle", 0.0)
        for n in range(cluster.nodes):
            cpu_jobs[n] = [left - dt for left in cpu_jobs[n] if left - dt > 1e-9]
            while cpu_waiting[n] and len(cpu_jobs[n]) < cluster.cpu_slots:
                cpu_jobs[n].append(cpu_waiting[n].pop(0))
        t += dt
    return Result(t, busy, held, timeline)


def synthetic_suite(count: int = 63, seed: int = 0) -> list[Dataset]:
    """A benchmark suite like the paper's (63 datasets, 7B model): log-normal inference times clipped to 0.5-20 min,
    metric times of a few percent of inference, and a handful of code datasets whose metrics run tests for up to
    30 min. Synthetic; the distribution is stated in the chapter."""
    rng = np.random.default_rng(seed)
    inference = np.clip(rng.lognormal(np.log(180), 1.0, count), 30, 1200)
    metric = inference * rng.uniform(0.02, 0.1, count)
    code = rng.choice(count, size=max(1, count // 12), replace=False)
    metric[code] = rng.uniform(300, 1800, code.size)
    return [Dataset(f"d{i:02d}{'-code' if i in code else ''}", float(a), float(b))
            for i, (a, b) in enumerate(zip(inference, metric))]


def lpt_lower_bound(datasets: list[Dataset], cluster: Cluster) -> float:
    """No schedule beats the total inference spread evenly over every GPU."""
    return sum(d.inference_s for d in datasets) / (cluster.nodes * cluster.gpus_per_node)


def makespan_table(datasets: list[Dataset], node_counts=(1, 2, 4), policies=None, **cluster_kwargs) -> dict:
    """Makespan (s) per policy and node count."""
    policies = policies or [BASELINE, Policy(load_once=True), Policy(cpu_metrics=True), Policy(partition=True),
                            DECOUPLED]
    return {p.name: {n: simulate(datasets, Cluster(n, **cluster_kwargs), p).makespan_s for n in node_counts}
            for p in policies}


__all__ = ["BASELINE", "DECOUPLED", "Cluster", "Dataset", "Policy", "Result", "Task", "lpt_lower_bound",
           "makespan_table", "partition_tasks", "simulate", "synthetic_suite"]
