"""JIOC (Wang et al., IJCAI 2024): input and output coordination for class-incremental learning.

``data``: the digits task stream (balanced or long-tailed within each task). ``models``: the MLP learner with an
expanding head, and DER's expandable representation. ``coordination``: the input weights (IC) and the output
losses (OC), each with its named variants. ``learners``: the four base methods and the training loop.
``experiment``: what each scale runs. ``report``: the claims.
"""
