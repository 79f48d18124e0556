"""TorchGT (Zhang et al., SC'24): graph transformer training with topology attention, cluster-aware graph
parallelism and elastic computation reformation (ECR).

``attention``: dense, SDPA, topology (edge-softmax) and block-sparse attention. ``layout``: METIS reordering, the
block-CSR layout, ECR and the dual-interleaved condition check. ``model``: Graphormer-slim and GT. ``parallel``:
Ulysses sequence parallelism over torch.distributed. ``train``/``bench``: the chapter's runs. ``report``: claims.
"""
