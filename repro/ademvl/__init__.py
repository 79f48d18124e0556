"""ADEM-VL (Hao et al., IJCV 2025): parameter-free cross-attention for vision-language tuning, at CPU scale.

``data``: digit composites and ScienceQA-like questions (IMG / TXT / NO groups). ``backbones``: the tiny LLaMA-style
decoder and the tiny ViT, pretrained here and frozen. ``fusion``: ADEM-VL's and the baselines' ways of letting the
LLM see the image. ``model``: the vision-language model per method. ``train``: tuning, evaluation and efficiency.
``experiment``/``report``: what each scale runs, and the claims.
"""
