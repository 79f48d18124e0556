"""What each scale runs, and the job functions the worker pool calls."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from repro.torchgt import bench, graphs, train
from repro.torchgt import layout as lay
from repro.torchgt.model import Attend, GraphTransformer, MultiHeadAttention
from repro.utils import pool_map

BETAS = ("0", "1", "1.5", "5", "7", "10", "all")  # the auto-tuner's ladder; "all" = p = 1, the released code


def beta_value(beta: str):
    """The chapter's string parameter to ``layout.reform``'s beta ("1" there means p = 1)."""
    return "1" if beta == "all" else float(beta)


@dataclass(frozen=True)
class Plan:
    seeds: int
    epochs: int
    eval_every: int
    seq_nodes: int
    sbm_nodes: int  # the SBM graph of the accuracy runs
    bench_sizes: tuple[int, ...]
    dense_max: int  # the largest S the full-attention variants run at
    bench_repeats: int
    layers: int
    parallel_ranks: tuple[int, ...]
    parallel_size: int
    step_repeats: int = 3  # timed training steps per variant (median), after one warm-up step


PLANS = {
    "smoke": Plan(seeds=1, epochs=6, eval_every=3, seq_nodes=512, sbm_nodes=1000, bench_sizes=(512, 1024, 2048),
                  dense_max=1024, bench_repeats=1, layers=2, parallel_ranks=(2, 4), parallel_size=512),
    # sized to the 4-minute budget on 2 cores: the dense step and the dense benchmark stop at S = 2048 (three dense
    # sizes, as the max-length fit needs), and the SBM has 1,000 nodes
    "default": Plan(seeds=3, epochs=15, eval_every=5, seq_nodes=512, sbm_nodes=1000,
                    bench_sizes=(512, 1024, 2048, 4096, 8192), dense_max=2048, bench_repeats=2, layers=2,
                    parallel_ranks=(2, 4), parallel_size=2048),
    "full": Plan(seeds=3, epochs=200, eval_every=10, seq_nodes=65536, sbm_nodes=200_000,
                 bench_sizes=(16384, 65536, 262144, 524288, 1048576), dense_max=65536, bench_repeats=5, layers=4,
                 parallel_ranks=(2, 4), parallel_size=65536),
}


@dataclass(frozen=True)
class AccuracyJob:
    graph: str  # "cora" or "sbm"
    variant: str  # train.VARIANTS or "gcn"
    seed: int
    plan: Plan
    beta: str = "1"
    switch_freq: int = 2
    model_kind: str = "graphormer_slim"
    large_graph: str = "sbm"
    device: str = "cpu"
    small_graph: str = "cora"  # the real graph behind the "cora" rows: "cora" or "citeseer"


def load_graph(name: str, seed: int, plan: Plan, large_graph: str = "sbm", small_graph: str = "cora"):
    """The small real graph ("cora": Cora or CiteSeer, by ``small_graph``), or the large graph: the seeded SBM, or
    ogbn-arxiv / ogbn-products from the data cache (full scale)."""
    if name == "cora":
        return graphs.planetoid(small_graph, seed)
    if large_graph == "sbm":
        return graphs.sbm(plan.sbm_nodes, seed)
    from repro.graphs import from_cache

    return graphs.random_split(from_cache(large_graph), seed)


def run_accuracy(job: AccuracyJob) -> dict:
    g = load_graph(job.graph, job.seed, job.plan, job.large_graph, job.small_graph)
    record = {"graph": job.graph, "variant": job.variant, "seed": job.seed, "beta": job.beta}
    if job.variant == "gcn":
        return record | {"test": train.train_gcn(g, job.seed, max(100, job.plan.epochs * 5), device=job.device)}
    seqs = train.make_sequences(g, job.plan.seq_nodes, job.seed, beta=beta_value(job.beta),
                                global_token=job.model_kind == "graphormer_slim", with_spd=job.variant == "full")
    hist = train.train(seqs, job.variant, g.num_classes, job.seed, job.plan.epochs, layers=job.plan.layers,
                       switch_freq=job.switch_freq, eval_every=job.plan.eval_every, model_kind=job.model_kind,
                       device=job.device)
    return record | {"test": hist.best_test, "test_true_edges": hist.test_true_edges,
                     "epoch_s": float(sum(hist.epoch_s) / len(hist.epoch_s)), "curve_epochs": hist.epochs,
                     "curve_val": hist.val, "sequences": len(seqs),
                     "conditions": all(s.conditions["self_loops"] and s.conditions["connected"] for s in seqs),
                     "ecr_nnz_ratio": sum(s.ecr.pattern.nnz for s in seqs) / sum(s.exact.nnz for s in seqs)}


def accuracy_jobs(plan: Plan, seed: int, beta: str, switch_freq: int, model_kind: str, large_graph: str = "sbm",
                  device: str = "cpu", small_graph: str = "cora") -> list[AccuracyJob]:
    """The small and the large graph (labelled "cora" and "sbm" in the results whatever ``small_graph`` and
    ``large_graph`` are)."""
    return [AccuracyJob(g, v, s, plan, beta, switch_freq, model_kind, large_graph, device, small_graph)
            for g in ("cora", "sbm") for s in range(seed, seed + plan.seeds) for v in (*train.VARIANTS, "gcn")]


def run_accuracy_jobs(jobs, workers=None, progress=True) -> pd.DataFrame:
    """On a GPU the runs go one after another in this process; on a CPU, to single-threaded worker processes."""
    if jobs and jobs[0].device != "cpu":
        workers = 1
    return pd.DataFrame(pool_map(run_accuracy, jobs, workers, progress, desc="training runs"))


def conditions(plan: Plan, seed: int, large_graph: str = "sbm", small_graph: str = "cora") -> pd.DataFrame:
    """The paper's condition check on each dataset's sequences, with and without the global token."""
    rows = []
    for name in ("cora", "sbm"):
        g = load_graph(name, seed, plan, large_graph, small_graph)
        for token in (True, False):
            seqs = train.make_sequences(g, plan.seq_nodes, seed, global_token=token)
            rows.append({"graph": name, "global token": token, "sequences": len(seqs),
                         "self-loops": all(s.conditions["self_loops"] for s in seqs),
                         "connected": all(s.conditions["connected"] for s in seqs),
                         "largest component count": max(s.conditions["components"] for s in seqs)})
    return pd.DataFrame(rows)


def epoch_speedup(size: int, seed: int, beta: str, layers: int, repeats: int = 3, device="cpu") -> dict:
    """Median seconds of one training step (over ``repeats`` timed steps, after a warm-up) of the dense graph
    transformer (explicit softmax and SDPA) against the TorchGT configuration (METIS order + ECR tiles) and the plain
    topology attention, on an SBM sequence of ``size``."""
    g = graphs.sbm(size, seed)
    order, sizes = lay.metis_order(g.edge_index, size, 8, seed=seed)
    x = g.x[order]
    exact = lay.sequence_pattern(lay.relabel(g.edge_index, order), size, global_token=True)
    ecr = lay.reform(exact, sizes, beta_value(beta), seed=seed)
    torch.manual_seed(seed)
    model = GraphTransformer(x.shape[1], g.num_classes, layers=layers).to(device)
    x = x.to(device)
    attends = {"dense": Attend("dense"), "sdpa": Attend("sdpa"), "sparse": Attend("sparse", pattern=exact.to(device)),
               "torchgt (METIS + ECR tiles)": Attend("block",
                                                     layout=lay.BlockLayout.from_pattern(ecr.pattern).to(device))}
    return {name: bench.step_time(model, x, a, repeats) for name, a in attends.items()}


def parallel_check(plan: Plan, seed: int) -> pd.DataFrame:
    """One Ulysses attention layer over P gloo processes, on an SBM sequence in random and in METIS order: its
    largest deviation from the single-process layer; the bytes rank 0 wrote to its sockets during the layer's
    all-to-alls and during an all-gather of K and V on the same shards (measured), beside the formulas (4-byte
    floats) and gloo's headers (measured on one-float collectives); the H x S x S bias all-gather by formula only
    (too large to run); and the shards' edge cut."""
    from repro.torchgt import parallel

    size = plan.parallel_size
    g = graphs.sbm(size, seed)
    order, _ = lay.metis_order(g.edge_index, size, 8, seed=seed)
    torch.manual_seed(seed)
    layer = MultiHeadAttention(64, 8)
    x = torch.randn(size, 64)
    cases = {"random": (x, lay.sequence_pattern(g.edge_index, size, False)),
             "metis": (x[order], lay.sequence_pattern(lay.relabel(g.edge_index, order), size, False))}
    rows = []
    for ranks in plan.parallel_ranks:
        inputs = [(xx, Attend("sparse", pattern=p)) for xx, p in cases.values()]
        outs = parallel.run_ulysses(inputs, layer, ranks)
        for name, (xi, attend), t in zip(cases, inputs, outs):
            with torch.no_grad():
                ref = layer(xi, attend)
            vol = parallel.analytic_volume(size, 64, 8, ranks)
            rows.append({"order": name, "P": ranks, "S": size, "max_abs_error": float((t.out - ref).abs().max()),
                         "ulysses_elements": t.sent_elements, "ulysses_bytes": t.ulysses_bytes,
                         "ulysses_formula_bytes": 4 * vol.ulysses, "kv_allgather_bytes": t.kv_allgather_bytes,
                         "kv_formula_bytes": 4 * vol.kv_allgather, "bias_formula_bytes": 4 * vol.bias_allgather,
                         "ulysses_overhead_bytes": 4 * t.a2a_overhead if t.a2a_overhead is not None else None,
                         "kv_overhead_bytes": 2 * t.gather_overhead if t.gather_overhead is not None else None,
                         "edge_cut": lay.shard_edge_cut(lay.relabel(g.edge_index, order) if name == "metis"
                                                        else g.edge_index, size, ranks)})
    return pd.DataFrame(rows)
