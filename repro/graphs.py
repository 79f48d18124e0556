"""Graphs shared by the graph chapters (Sylvie, TorchGT): the ``Graph`` type, the Planetoid citation graphs (Cora,
CiteSeer) resolved through ``repro.data``, a seeded stochastic block model with known structure, the large graphs read
from the data cache, and METIS / random partitions."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Graph:
    """A node-classification graph. ``edge_index`` [2, E] holds both directions, no self loops, no duplicates."""

    name: str
    x: torch.Tensor  # [N, F] float32
    y: torch.Tensor  # [N] int64
    edge_index: torch.Tensor  # [2, E] int64, row 0 = source, row 1 = destination
    train_mask: torch.Tensor
    val_mask: torch.Tensor
    test_mask: torch.Tensor
    num_classes: int

    @property
    def num_nodes(self) -> int:
        return self.x.shape[0]

    @property
    def num_edges(self) -> int:
        return self.edge_index.shape[1]


def _clean_undirected(edge_index: torch.Tensor, n: int) -> torch.Tensor:
    src, dst = edge_index
    keep = src != dst
    src, dst = src[keep], dst[keep]
    both = torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], dim=1)
    key = torch.unique(both[0] * n + both[1])
    return torch.stack([key // n, key % n])


PLANETOID = {"cora": "Cora", "citeseer": "CiteSeer"}  # the chapters' ``graph`` parameter -> display name


def planetoid(name: str = "cora") -> Graph:
    """Cora or CiteSeer with the public Planetoid split (20 per class / 500 / 1000), resolved through ``repro.data``.

    CiteSeer's test index skips 15 ids (isolated papers without features): torch-geometric's Planetoid gives them
    zero features, and they are in no split mask, so no accuracy counts them.
    """
    from repro.data import load_planetoid

    if name not in PLANETOID:
        raise ValueError(f"unknown Planetoid graph {name!r}; known: {', '.join(PLANETOID)}")
    d = load_planetoid(name)
    return Graph(PLANETOID[name], d.x.float(), d.y, _clean_undirected(d.edge_index, d.num_nodes), d.train_mask,
                 d.val_mask, d.test_mask, int(d.y.max()) + 1)


def cora() -> Graph:
    """Cora with the public Planetoid split (140 / 500 / 1000)."""
    return planetoid("cora")


def sbm(num_nodes: int, num_classes: int = 8, avg_degree: float = 10.0, homophily: float = 0.5,
        num_features: int = 32, signal: float = 0.2, seed: int = 0) -> Graph:
    """A stochastic block model with randomly permuted node ids (no locality in the numbering).

    Labels are the blocks. Each node draws about ``avg_degree / 2`` edges, a fraction ``homophily`` inside its block.
    Features are the block's unit-norm mean direction times ``signal`` plus N(0, 1/F) noise per coordinate, so that
    one node alone is a weak witness of its class and aggregating over neighbours helps (the point of a GNN).
    Split: 20 % train, 20 % validation, 60 % test.
    """
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, num_classes, (num_nodes,), generator=g)
    members = [torch.nonzero(y == c).flatten() for c in range(num_classes)]
    per_node = max(1, round(avg_degree / 2))
    src = torch.arange(num_nodes).repeat_interleave(per_node)
    inside = torch.rand(src.numel(), generator=g) < homophily
    dst = torch.randint(0, num_nodes, (src.numel(),), generator=g)
    for c in range(num_classes):
        pick = inside & (y[src] == c)
        dst[pick] = members[c][torch.randint(0, members[c].numel(), (int(pick.sum()),), generator=g)]
    edge_index = _clean_undirected(torch.stack([src, dst]), num_nodes)
    means = torch.nn.functional.normalize(torch.randn(num_classes, num_features, generator=g), dim=1)
    x = signal * means[y] + torch.randn(num_nodes, num_features, generator=g) / num_features**0.5
    order = torch.randperm(num_nodes, generator=g)
    train = torch.zeros(num_nodes, dtype=torch.bool)
    val, test = train.clone(), train.clone()
    train[order[: num_nodes // 5]] = True
    val[order[num_nodes // 5: 2 * num_nodes // 5]] = True
    test[order[2 * num_nodes // 5:]] = True
    return Graph(f"SBM-{num_nodes // 1000}k", x, y, edge_index, train, val, test, num_classes)


CACHED_GRAPHS = {
    # name: (loader, files its loader reads under <cache>/<name>/, where they come from)
    "reddit": ("torch_geometric.datasets.Reddit", ("raw/reddit_data.npz", "raw/reddit_graph.npz"),
               "https://data.dgl.ai/dataset/reddit.zip (unzip into raw/)"),
    "ogbn-products": ("ogb.nodeproppred.PygNodePropPredDataset", ("ogbn_products/raw/",),
                      "https://ogb.stanford.edu (the ogb package downloads it into ogbn_products/)"),
    "ogbn-arxiv": ("ogb.nodeproppred.PygNodePropPredDataset", ("ogbn_arxiv/raw/",),
                   "https://ogb.stanford.edu (the ogb package downloads it into ogbn_arxiv/)"),
}


def from_cache(name: str) -> Graph:
    """Reddit, ogbn-products or ogbn-arxiv, read by their PyG/OGB loaders from the data cache when the files are there.

    These graphs are for the ``full`` scale on a GPU machine. Nothing is downloaded: a missing file stops with a
    message naming it and where to put it.
    """
    from repro.data import DataNotFoundError
    from repro.paths import data_cache

    if name not in CACHED_GRAPHS:
        raise ValueError(f"unknown large graph {name!r}; known: {', '.join(CACHED_GRAPHS)}")
    loader, files, origin = CACHED_GRAPHS[name]
    root = data_cache() / name
    missing = [f for f in files if not (root / f).exists()]
    if missing:
        raise DataNotFoundError(f"graph {name!r} is not in the cache: missing {', '.join(missing)} under {root}/. "
                                f"Fetch it from {origin}, or use large_graph='sbm'.")
    if name == "reddit":
        from torch_geometric.datasets import Reddit

        d = Reddit(str(root))[0]
        masks = d.train_mask, d.val_mask, d.test_mask
    else:
        try:
            from ogb.nodeproppred import PygNodePropPredDataset
        except ImportError as exc:
            raise ImportError(f"{name} needs the ogb package: pip install ogb") from exc
        dataset = PygNodePropPredDataset(name, root=str(root))
        d, split = dataset[0], dataset.get_idx_split()
        d.y = d.y.flatten()
        masks = []
        for key in ("train", "valid", "test"):
            mask = torch.zeros(d.num_nodes, dtype=torch.bool)
            mask[split[key]] = True
            masks.append(mask)
    return Graph(name, d.x.float(), d.y, _clean_undirected(d.edge_index, d.num_nodes), *masks, int(d.y.max()) + 1)


def partition(graph: Graph, parts: int, method: str = "metis", seed: int = 0) -> torch.Tensor:
    """Owner rank of every node: METIS (pymetis, minimising the edge cut) or uniform random."""
    n = graph.num_nodes
    if parts == 1:
        return torch.zeros(n, dtype=torch.long)
    if method == "random":
        # numpy's PCG64 stream, not torch's: a torch generator with the same seed as the graph's would correlate
        # the owners with the labels
        return torch.as_tensor(np.random.default_rng([seed, parts]).integers(0, parts, n), dtype=torch.long)
    if method != "metis":
        raise ValueError(f"partition method must be 'metis' or 'random', got {method!r}")
    return metis_membership(graph.edge_index, n, parts, seed)


def metis_membership(edge_index: torch.Tensor, n: int, parts: int, seed: int = 0) -> torch.Tensor:
    """METIS part of every node (pymetis) for an undirected edge list holding both directions."""
    import pymetis

    src, dst = edge_index
    order = torch.argsort(src * n + dst)
    adjncy = dst[order].numpy().astype(np.int32)
    xadj = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(src.numpy(), minlength=n), out=xadj[1:])
    options = pymetis.Options(seed=seed)
    _, membership = pymetis.part_graph(parts, pymetis.CSRAdjacency(xadj, adjncy), options=options)
    return torch.as_tensor(np.asarray(membership), dtype=torch.long)


def edge_cut(graph: Graph, owner: torch.Tensor) -> int:
    """Undirected edges whose endpoints live on different ranks."""
    src, dst = graph.edge_index
    return int((owner[src] != owner[dst]).sum()) // 2
