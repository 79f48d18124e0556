"""Acme (NSDI'24, arXiv 2403.07648): characterising LLM development in a datacenter.

``characterization``: the job-state mix and telemetry CDFs from the files that AcmeTrace ships (real data).
``trace``: the job-trace schema and its loader (the traces themselves are read from the cache only).
``diagnosis`` and ``log_corpus``: rule-based failure diagnosis, and labelled failure logs split into a development
part (the rules were revised against it) and a test part (where they are scored).
``localize``: the two-round pairwise all-gather test that finds a slow node, over real gloo processes.
``pretrain`` and ``supervisor``: a 2-rank torchrun GPT job with failure injection, sync and async checkpoints, and
automatic recovery from diagnosed failures (bitwise equal to the clean run on CPU).
``evalsched``: the decoupled evaluation scheduler against one-trial-per-dataset, as a discrete-event simulation.
``synthetic``: a job trace calibrated to cluster_summary.csv, for when the real traces are not cached.
``experiment`` and ``report``: what each scale runs, and the chapter's claims.
"""
