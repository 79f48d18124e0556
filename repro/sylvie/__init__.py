"""Sylvie (arXiv 2303.01277): one-bit quantised, pipelined halo exchange for distributed full-graph GNN training.

The graphs (Cora or CiteSeer, a seeded stochastic block model) and the METIS partitions are shared with the TorchGT
chapter, in ``repro.graphs``. ``partition``: the halo bookkeeping of a partitioned graph.
``model``: GraphSAGE / GCN layers over a rank's inner + halo rows. ``exchange``: the halo exchange (sync,
pipelined, bounded staleness, BNS sampling) with the Low-bit Module and exact byte counts. ``train``: the
distributed worker, launched with ``torch.multiprocessing`` over gloo (nccl on GPUs). ``report``: the tables, the
modelled epoch times on stated links, the analytic byte ratio and the claims. ``experiment``: what each scale runs.
"""
