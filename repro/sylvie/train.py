"""Distributed full-graph training: one process per partition, torch.distributed over gloo (nccl when every rank
has its own GPU), launched with torch.multiprocessing spawn. One launch runs every (method, seed) pair so that the
processes start once."""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from repro.graphs import Graph, edge_cut, partition
from repro.sylvie.exchange import HaloExchange, Method
from repro.sylvie.model import PartitionedGNN, aggregation_matrix, full_graph_aggregate
from repro.sylvie.partition import RankGraph, split
from repro.utils import file_rendezvous

VANILLA = Method("fp32 sync (vanilla)")
PIPEGCN = Method("PipeGCN (fp32, pipelined)", pipeline=True)


def bns(rate: float) -> Method:
    return Method(f"BNS-GCN (p={rate:g})", bns_rate=rate)


def sylvie_s(bits: int = 1) -> Method:
    return Method(f"Sylvie-S (int{bits} sync)", bits=bits)


def sylvie_a(bits: int = 1, k: int = 0) -> Method:
    return Method(f"Sylvie-A (int{bits} pipelined" + (f", k={k})" if k else ")"), bits=bits, pipeline=True,
                  staleness_bound=k)


@dataclass(frozen=True)
class TrainSettings:
    model: str = "sage"
    hidden: int = 128
    layers: int = 3
    dropout: float = 0.5
    lr: float = 0.01
    epochs: int = 100
    eval_every: int = 5
    backend: str = "torch"  # quantiser: torch reference or triton kernels
    device: str = "cpu"



def _accuracy(model, rg, agg0, adjacency, exchange, y) -> tuple[list[float], torch.Tensor]:
    """Global train/val/test accuracy with a full-precision synchronous forward pass."""
    model.eval()
    with torch.no_grad():
        pred = model(rg.x, agg0, adjacency, exchange.eval_features).argmax(1)
    model.train()
    counts = torch.tensor([[float(((pred == y) & m).sum()), float(m.sum())]
                           for m in (rg.train_mask, rg.val_mask, rg.test_mask)], dtype=torch.float64)
    dist.all_reduce(counts)
    return (counts[:, 0] / counts[:, 1].clamp(min=1)).tolist(), pred


def train_one(rg: RankGraph, agg0: torch.Tensor, method: Method, seed: int, cfg: TrainSettings, classes: int,
              queue=None) -> dict:
    """Train one model with one halo-exchange method; every rank calls it, rank 0's return value is complete."""
    device = rg.x.device
    torch.manual_seed(seed)  # the same seed on every rank gives identical initial weights
    model = PartitionedGNN(cfg.model, rg.x.shape[1], cfg.hidden, classes, cfg.layers, cfg.dropout).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    exchange = HaloExchange(rg, method, cfg.hidden, cfg.layers, seed, cfg.backend,
                            wire_device="cpu" if dist.get_backend() == "gloo" else str(device))
    full_adjacency = aggregation_matrix(rg, cfg.model).to(device)
    y, train = rg.y.to(device), rg.train_mask.to(device)
    params = [p for p in model.parameters()]
    per_epoch, curve = [], []
    torch.manual_seed(seed * 1009 + rg.rank)  # dropout streams differ per rank, reproducibly
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        stats = exchange.begin_epoch(epoch)
        keep = exchange.halo_keep()
        adjacency = full_adjacency if keep is None else aggregation_matrix(rg, cfg.model, keep,
                                                                           method.bns_rate).to(device)
        logits = model(rg.x, agg0, adjacency, exchange)
        loss = torch.nn.functional.cross_entropy(logits[train], y[train], reduction="sum") / rg.n_train_total
        optimiser.zero_grad(set_to_none=False)
        loss.backward()
        t1 = time.perf_counter()
        flat = torch.cat([p.grad.flatten() for p in params] + [loss.detach().reshape(1)])
        dist.all_reduce(flat)
        allreduce_s = time.perf_counter() - t1
        offset = 0
        for p in params:
            p.grad.copy_(flat[offset: offset + p.numel()].view_as(p))
            offset += p.numel()
        optimiser.step()
        per_epoch.append([time.perf_counter() - t0, stats.wait_s, stats.codec_s, allreduce_s,
                          stats.bytes_forward, stats.bytes_backward, float(flat[-1]), float(stats.synchronous)])
        if (epoch + 1) % cfg.eval_every == 0 or epoch == cfg.epochs - 1:
            accs, _ = _accuracy(model, rg, agg0, full_adjacency, exchange, y)
            curve.append([epoch + 1, float(flat[-1]), *accs])
        if queue is not None and rg.rank == 0:
            queue.put(1)
    exchange.finish()
    stats = torch.tensor(per_epoch, dtype=torch.float64)
    worst, total = stats.clone(), stats.clone()
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    dist.all_reduce(total)
    best = max(curve, key=lambda row: row[3])  # test accuracy at the best validation accuracy
    grad_bytes = 4 * sum(p.numel() for p in params)
    return {
        "method": method.name, "bits": method.bits, "pipeline": method.pipeline,
        "staleness_bound": method.staleness_bound, "bns_rate": method.bns_rate, "seed": seed,
        "epoch_s": worst[:, 0].tolist(), "wait_s": worst[:, 1].tolist(), "codec_s": worst[:, 2].tolist(),
        "allreduce_s": worst[:, 3].tolist(),
        "bytes_forward_max_rank": worst[:, 4].tolist(), "bytes_backward_max_rank": worst[:, 5].tolist(),
        "bytes_total": (total[:, 4] + total[:, 5]).tolist(), "loss": stats[:, 6].tolist(),
        "synchronous": stats[:, 7].tolist(), "curve": curve, "test_acc": best[4], "val_acc": best[3],
        "final_test_acc": curve[-1][4], "weight_grad_bytes": grad_bytes,
    }


def _partitioned_logits(rg: RankGraph, agg0: torch.Tensor, cfg: TrainSettings, classes: int) -> torch.Tensor:
    """This rank's logits of a fresh model (seed 0) in eval mode, with a synchronous fp32 halo exchange."""
    torch.manual_seed(0)
    model = PartitionedGNN(cfg.model, rg.x.shape[1], cfg.hidden, classes, cfg.layers).to(rg.x.device).eval()
    exchange = HaloExchange(rg, VANILLA, cfg.hidden, cfg.layers, seed=0,
                            wire_device="cpu" if dist.get_backend() == "gloo" else str(rg.x.device))
    with torch.no_grad():
        return model(rg.x, agg0, aggregation_matrix(rg, cfg.model).to(rg.x.device), exchange.eval_features)


def _single_process_logits(graph: Graph, agg0: torch.Tensor, cfg: TrainSettings) -> torch.Tensor:
    """The same fresh model on the whole graph in one process: the reference for the partitioned pass."""
    torch.manual_seed(0)
    model = PartitionedGNN(cfg.model, graph.x.shape[1], cfg.hidden, graph.num_classes, cfg.layers).eval()
    whole = split(graph, torch.zeros(graph.num_nodes, dtype=torch.long))[0]
    with torch.no_grad():
        return model(whole.x, agg0, aggregation_matrix(whole, cfg.model), lambda layer, h: h.new_zeros(0, h.shape[1]))


def _worker(rank: int, world: int, init_method: str, job_path: str, result_path: str, queue) -> None:
    job = torch.load(job_path, weights_only=False)
    cfg: TrainSettings = job["settings"]
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    use_nccl = cfg.device == "cuda" and torch.cuda.device_count() >= world
    device = torch.device(f"cuda:{rank % max(1, torch.cuda.device_count())}" if cfg.device == "cuda" else "cpu")
    dist.init_process_group("nccl" if use_nccl else "gloo", init_method=init_method, rank=rank,
                            world_size=world, timeout=timedelta(seconds=job.get("timeout_s", 300)))
    try:
        rg: RankGraph = job["ranks"][rank]
        for name in ("x", "y", "train_mask", "val_mask", "test_mask"):
            setattr(rg, name, getattr(rg, name).to(device))
        agg0 = job["agg0"][rank].to(device)
        if job["verify"]:
            logits = _partitioned_logits(rg, agg0, cfg, job["classes"]).cpu()
            torch.save({"inner": rg.inner, "out": logits}, Path(result_path).with_name(f"logits{rank}.pt"))
        results = []
        for method, seed, settings in job["runs"]:
            results.append({**train_one(rg, agg0, method, seed, settings, job["classes"], queue),
                            "hidden": settings.hidden})
        if rank == 0:
            torch.save(results, result_path)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def verify_exchange(graph: Graph, parts: int, cfg: TrainSettings) -> float:
    """Max |difference| between the partitioned forward pass (real processes, fp32 halo exchange) and the same
    model run on the whole graph in one process. Equal up to the order of fp32 sums (about 1e-6)."""
    return launch(graph, parts, [], [0], cfg, progress=False, verify=True).exchange_max_diff


@dataclass
class Launch:
    """What one launch measured: the partition and every (method, seed) run."""

    graph: str
    parts: int
    nodes: int
    edges: int
    edge_cut: int
    halo_rows: list[int]
    boundary_rows: list[int]
    pair_rows: list[list[int]]  # pair_rows[r][s]: boundary rows that rank r sends to rank s each exchange
    settings: TrainSettings
    runs: list[dict]
    wall_s: float
    exchange_max_diff: float | None = None  # partitioned vs single-process forward, when verify=True

    def to_dict(self) -> dict:
        return asdict(self)


def launch(graph: Graph, parts: int, methods: list[Method], seeds: list[int], cfg: TrainSettings,
           partition_method: str = "metis", progress: bool = True, timeout_s: int = 300,
           extra: list[tuple[Method, int, TrainSettings]] = (), verify: bool = False) -> Launch:
    """Partition ``graph`` into ``parts`` ranks, spawn them once, and train every method for every seed (plus any
    ``extra`` (method, seed, settings) runs, e.g. at another hidden size). ``verify`` also checks the partitioned
    forward pass against the single-process one. Processes start once per launch: starting them costs seconds."""
    started = time.perf_counter()
    owner = partition(graph, parts, partition_method, seed=seeds[0])
    ranks = split(graph, owner)
    agg0 = full_graph_aggregate(graph.x, graph.edge_index, cfg.model)
    runs = [(m, s, cfg) for m in methods for s in seeds] + list(extra)
    job = {"ranks": ranks, "agg0": [agg0[r.inner] for r in ranks], "runs": runs, "settings": cfg,
           "classes": graph.num_classes, "timeout_s": timeout_s, "verify": verify}
    worst = None
    with tempfile.TemporaryDirectory(prefix="repro-sylvie-") as tmp:
        job_path, result_path = str(Path(tmp) / "job.pt"), str(Path(tmp) / "result.pt")
        torch.save(job, job_path)
        queue = mp.get_context("spawn").SimpleQueue()
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=sum(c.epochs for _, _, c in runs), desc=f"{graph.name} P={parts}", unit="epoch",
                       leave=False)
        procs = mp.start_processes(_worker, args=(parts, file_rendezvous(tmp), job_path, result_path, queue),
                                   nprocs=parts, join=False, start_method="spawn")
        while not procs.join(timeout=0.2):
            while not queue.empty():
                queue.get()
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()
        results = torch.load(result_path, weights_only=False)
        if verify:
            reference = _single_process_logits(graph, agg0, cfg)
            worst = 0.0
            for r in range(parts):
                got = torch.load(Path(tmp) / f"logits{r}.pt")
                worst = max(worst, float((got["out"] - reference[got["inner"]]).abs().max()))
    return Launch(graph.name, parts, graph.num_nodes, graph.num_edges // 2, edge_cut(graph, owner),
                  [r.n_halo for r in ranks], [int(sum(len(i) for i in r.send_index)) for r in ranks],
                  [[len(i) for i in r.send_index] for r in ranks], cfg, results,
                  time.perf_counter() - started, worst)


def subset(result: Launch, hidden: int) -> Launch:
    """The runs of a launch at one hidden size, as a launch of their own (for the byte formulas)."""
    return replace(result, settings=replace(result.settings, hidden=hidden),
                   runs=[r for r in result.runs if r["hidden"] == hidden])
