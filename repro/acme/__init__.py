"""Acme (NSDI'24, arXiv 2403.07648): characterising LLM development in a datacenter.

``characterization``: the job-state mix and telemetry CDFs from the files that AcmeTrace ships (real data).
``evalsched``: the decoupled evaluation scheduler against one-trial-per-dataset, as a discrete-event simulation.

The chapter's notebook and its fault-tolerant pretraining part (torchrun, failure injection, checkpointing,
recovery, diagnosis, localisation) are not written yet: ``repro list`` shows the chapter as planned.
"""
