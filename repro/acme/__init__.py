"""Acme (NSDI'24, arXiv 2403.07648): characterising LLM development in a datacenter.

``characterization``: the job-state mix and telemetry CDFs from the files that AcmeTrace ships (real data).
``trace``: the job-trace schema and its loader (the traces themselves are read from the cache only).
``diagnosis`` and ``log_corpus``: rule-based failure diagnosis and its labelled test corpus.
``localize``: the two-round pairwise all-gather test that finds a slow node, over real gloo processes.
``evalsched``: the decoupled evaluation scheduler against one-trial-per-dataset, as a discrete-event simulation.

Not written yet (the chapter stays "planned" in ``repro list``): the fault-tolerant pretraining run (torchrun,
failure injection, sync vs async checkpoints, automatic recovery), the synthetic trace generator, the notebook.
"""
