"""Node-level training on sequences of nodes: full, sparse (topology), dual-interleaved and ECR attention.

An epoch walks over the graph cut into sequences of about ``seq_nodes`` nodes (METIS parts of the whole graph, so
that a sequence keeps most of its edges; TorchGT samples S random nodes of a much larger graph instead, which on
Cora-sized graphs would drop most edges); each sequence is the induced subgraph, relabelled so that its own METIS
clusters are contiguous (or in random order), preceded by the global token. Each sequence is one optimiser step.

Variants: ``full`` is the paper's full-attention baseline (GP-RAW / GP-Flash, Graphormer's non-reorder path): SDPA
over every pair, with Graphormer's spatial encoding (a learned per-head bias for each shortest-path distance), so it
sees the graph; ``full-nograph`` is the same full attention without that bias, which sees no graph at all (a
reference, not the paper's baseline); ``sparse`` attends along the edges; ``dual`` interleaves ``switch_freq``
plain full-attention steps (no bias, as TorchGT's reorder mode) per epoch; ``ecr`` attends over the ECR tiles.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from repro.graphs import Graph
from repro.torchgt import layout as lay
from repro.torchgt.model import MAX_DISTANCE, Attend, GraphTransformer

VARIANTS = ("full", "full-nograph", "sparse", "dual", "ecr")


@dataclass
class Sequence:
    nodes: torch.Tensor  # graph ids, in sequence order
    x: torch.Tensor
    y: torch.Tensor
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    exact: lay.Pattern  # the true edges + self-loops (+ global token)
    ecr: lay.Reformation
    ecr_layout: lay.BlockLayout
    conditions: dict
    spd: torch.Tensor | None = None  # (S, S) distance buckets for the spatial encoding (full attention only)

    def to(self, device) -> "Sequence":
        ecr = replace(self.ecr, pattern=self.ecr.pattern.to(device))
        return replace(self, x=self.x.to(device), y=self.y.to(device), train=self.train.to(device),
                       val=self.val.to(device), test=self.test.to(device), exact=self.exact.to(device), ecr=ecr,
                       ecr_layout=self.ecr_layout.to(device), spd=None if self.spd is None else self.spd.to(device))


def induced(graph: Graph, nodes: torch.Tensor) -> torch.Tensor:
    """Edges among ``nodes``, numbered by position in ``nodes``."""
    pos = torch.full((graph.num_nodes,), -1, dtype=torch.long)
    pos[nodes] = torch.arange(nodes.numel())
    e = pos[graph.edge_index]
    return e[:, (e >= 0).all(0)]


def spd_buckets(edges: torch.Tensor, n: int, global_token: bool, max_distance: int = MAX_DISTANCE) -> torch.Tensor:
    """(S, S) long: the shortest-path distance i -> j in the sequence's graph (``edges`` (2, E) among n nodes,
    unweighted, undirected as TorchGT's graphs are), clipped to ``max_distance + 1`` for farther or unreachable
    pairs; with the global token (index 0), its row and column get ``max_distance + 2`` (Graphormer's virtual
    distance). S = n (+ 1)."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import shortest_path

    adj = sp.coo_matrix((np.ones(edges.shape[1]), (edges[0].numpy(), edges[1].numpy())), shape=(n, n)).tocsr()
    dist = shortest_path(adj, method="D", directed=False, unweighted=True)
    buckets = np.where(np.isfinite(dist), np.minimum(dist, max_distance + 1), max_distance + 1).astype(np.int64)
    out = torch.from_numpy(buckets)
    if global_token:
        out = torch.nn.functional.pad(out, (1, 0, 1, 0), value=max_distance + 2)
    return out


def make_sequences(graph: Graph, seq_nodes: int, seed: int, order: str = "metis", clusters: int = 8,
                   beta=1.0, block: int = 16, global_token: bool = True, with_spd: bool = False) -> list[Sequence]:
    """The graph cut into sequences (see the module docstring). ``with_spd``: also the distance buckets of every
    pair, for full attention's spatial encoding (S^2 memory per sequence)."""
    count = max(1, round(graph.num_nodes / seq_nodes))
    if count > 1:  # cluster-aware sequences: METIS parts of the graph, so that a sequence keeps most of its edges
        whole, sizes = lay.metis_order(graph.edge_index, graph.num_nodes, count, seed=seed)
        chunks = whole.split(sizes.tolist())
    else:
        chunks = [torch.arange(graph.num_nodes)]
    out = []
    for i, chunk in enumerate(chunks):
        chunk = chunk.sort().values
        edges = induced(graph, chunk)
        n = chunk.numel()
        if order == "metis":
            new_order, sizes = lay.metis_order(edges, n, clusters, seed=seed)
        else:
            new_order, sizes = lay.random_order(n, seed + i), np.array([n])
        nodes = chunk[new_order]
        edges = lay.relabel(edges, new_order)
        exact = lay.sequence_pattern(edges, n, global_token)
        ecr = lay.reform(exact, sizes, beta, block, seed=seed + i, offset=int(global_token))
        out.append(Sequence(nodes, graph.x[nodes], graph.y[nodes], graph.train_mask[nodes], graph.val_mask[nodes],
                            graph.test_mask[nodes], exact, ecr, lay.BlockLayout.from_pattern(ecr.pattern, block),
                            lay.check_conditions(exact), spd_buckets(edges, n, global_token) if with_spd else None))
    return out


def dense_steps(iterations: int, switch_freq: int) -> set[int]:
    """The dual-interleaved schedule: ``switch_freq`` full-attention iterations per epoch, evenly spaced (the last
    iteration of each of ``switch_freq`` segments); the others are sparse."""
    switch_freq = min(switch_freq, iterations)
    return {int(iterations * (i + 1) / switch_freq) - 1 for i in range(switch_freq)}


def train_attend(seq: Sequence, variant: str, dense: bool, block_backend: str = "block") -> Attend:
    if variant == "full":
        if seq.spd is None:
            raise ValueError("the full-attention baseline needs the distance buckets: make_sequences(with_spd=True)")
        return Attend("sdpa", spd=seq.spd)
    if variant == "full-nograph" or (variant == "dual" and dense):
        return Attend("sdpa")
    if variant == "ecr":
        return Attend(block_backend, layout=seq.ecr_layout)
    return Attend("sparse", pattern=seq.exact)


@dataclass
class History:
    variant: str
    epochs: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    val: list[float] = field(default_factory=list)
    test: list[float] = field(default_factory=list)
    epoch_s: list[float] = field(default_factory=list)
    test_true_edges: float | None = None  # ECR-trained model evaluated with the exact edges

    @property
    def best_test(self) -> float:
        """Test accuracy at the best validation accuracy."""
        return self.test[int(np.argmax(self.val))]


@torch.no_grad()
def evaluate(model, sequences, attend_of) -> tuple[float, float]:
    model.eval()
    correct = {"val": 0, "test": 0}
    total = {"val": 0, "test": 0}
    for seq in sequences:
        pred = model(seq.x, attend_of(seq)).argmax(1)
        for split in ("val", "test"):
            mask = getattr(seq, split)
            correct[split] += int((pred[mask] == seq.y[mask]).sum())
            total[split] += int(mask.sum())
    return 100 * correct["val"] / max(1, total["val"]), 100 * correct["test"] / max(1, total["test"])


def train(sequences: list[Sequence], variant: str, classes: int, seed: int, epochs: int, layers: int = 2,
          lr: float = 5e-3, switch_freq: int = 2, eval_every: int = 5, model_kind: str = "graphormer_slim",
          progress=None, device="cpu") -> History:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    torch.manual_seed(seed)
    model = GraphTransformer(sequences[0].x.shape[1], classes, layers=layers, kind=model_kind).to(device)
    sequences = [s.to(device) for s in sequences]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(seed)
    dense_at = dense_steps(len(sequences), switch_freq) if variant == "dual" else set()
    hist = History(variant)
    eval_attend = {"full": lambda s: train_attend(s, "full", True), "full-nograph": lambda s: Attend("sdpa"),
                   "ecr": lambda s: Attend("block", layout=s.ecr_layout)}.get(
        variant, lambda s: Attend("sparse", pattern=s.exact))
    for epoch in range(1, epochs + 1):
        model.train()
        start, losses = time.perf_counter(), []
        for it, i in enumerate(torch.randperm(len(sequences), generator=gen).tolist()):
            seq = sequences[i]
            logits = model(seq.x, train_attend(seq, variant, it in dense_at))
            loss = F.cross_entropy(logits[seq.train], seq.y[seq.train])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        hist.epoch_s.append(time.perf_counter() - start)
        if epoch % eval_every == 0 or epoch == epochs:
            val, test = evaluate(model, sequences, eval_attend)
            hist.epochs.append(epoch)
            hist.loss.append(float(np.mean(losses)))
            hist.val.append(val)
            hist.test.append(test)
        if progress is not None:
            progress.update(1)
    if variant == "ecr":
        hist.test_true_edges = evaluate(model, sequences, lambda s: Attend("sparse", pattern=s.exact))[1]
    return hist


def train_gcn(graph: Graph, seed: int, epochs: int, hidden: int = 64, lr: float = 1e-2, device="cpu") -> float:
    """torch-geometric's GCN (2 layers) on the whole graph: the message-passing reference. Test accuracy at the
    best validation accuracy."""
    from torch_geometric.nn import GCNConv

    torch.manual_seed(seed)

    class GCN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = GCNConv(graph.x.shape[1], hidden)
            self.c2 = GCNConv(hidden, graph.num_classes)

        def forward(self, x, e):
            return self.c2(F.dropout(F.relu(self.c1(x, e)), 0.5, self.training), e)

    model = GCN().to(device)
    graph = replace(graph, x=graph.x.to(device), y=graph.y.to(device), edge_index=graph.edge_index.to(device),
                    train_mask=graph.train_mask.to(device), val_mask=graph.val_mask.to(device),
                    test_mask=graph.test_mask.to(device))
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=5e-4)
    best_val, best_test = -1.0, 0.0
    for _ in range(epochs):
        model.train()
        loss = F.cross_entropy(model(graph.x, graph.edge_index)[graph.train_mask], graph.y[graph.train_mask])
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            pred = model(graph.x, graph.edge_index).argmax(1)
        val = float((pred[graph.val_mask] == graph.y[graph.val_mask]).float().mean() * 100)
        if val > best_val:
            best_val, best_test = val, float((pred[graph.test_mask] == graph.y[graph.test_mask]).float().mean() * 100)
    return best_test
