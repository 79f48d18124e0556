"""Sylvie (arXiv 2303.01277): one-bit quantised, pipelined halo exchange for distributed full-graph GNN training.

``graphs``: Cora and a seeded stochastic-block-model graph. ``partition``: METIS partitions and halo bookkeeping.
``model``: GraphSAGE / GCN layers over a rank's inner + halo rows. ``exchange``: the halo exchange (sync,
pipelined, bounded staleness, BNS sampling) with the Low-bit Module and exact byte counts. ``train``: the
distributed worker, launched with ``torch.multiprocessing`` over gloo (nccl on GPUs). ``analysis``: modelled
epoch times and the analytic byte ratio.
"""
