"""The chapter's graphs: Cora or CiteSeer (real, via ``repro.data``) and a stochastic block model with random node
ids, both with the node-level random 60/20/20 split TorchGT uses (the graphs themselves are in ``repro.graphs``)."""
from __future__ import annotations

from dataclasses import replace

import torch

from repro import graphs as base
from repro.graphs import Graph


def random_split(graph: Graph, seed: int, train: float = 0.6, val: float = 0.2) -> Graph:
    n = graph.num_nodes
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    masks = [torch.zeros(n, dtype=torch.bool) for _ in range(3)]
    cuts = [0, int(train * n), int((train + val) * n), n]
    for mask, lo, hi in zip(masks, cuts, cuts[1:]):
        mask[order[lo:hi]] = True
    return replace(graph, train_mask=masks[0], val_mask=masks[1], test_mask=masks[2])


def planetoid(name: str, seed: int) -> Graph:
    """``cora`` or ``citeseer`` with TorchGT's random split (CiteSeer's isolated test nodes get one too)."""
    return random_split(base.planetoid(name), seed)


def cora(seed: int) -> Graph:
    return planetoid("cora", seed)


def sbm(num_nodes: int, seed: int, label_noise: float = 0.1, avg_degree: float = 10.0) -> Graph:
    """``repro.graphs.sbm`` (8 blocks, random node ids, features = weak class signal + noise) with a share
    ``label_noise`` of labels redrawn uniformly, so no method can reach 100 %."""
    g = base.sbm(num_nodes, avg_degree=avg_degree, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    flip = torch.rand(num_nodes, generator=gen) < label_noise
    y = g.y.clone()
    y[flip] = torch.randint(0, g.num_classes, (int(flip.sum()),), generator=gen)
    return random_split(replace(g, y=y), seed)
