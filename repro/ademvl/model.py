"""The vision-language model per method, on frozen backbones.

Every method trains the same visual side (bottleneck adapters in the ViT blocks and a projector) and differs in how
the LLM sees the result:

* ``adem``: Xv = beta * MLP(pool(F)) (multiscale: the G x G grid and its 2x2-average-pooled grid, pooled before the
  projection as the official code does; the paper's pseudocode pools after), a CLS token inserted at "<img>", and the
  parameter-free cross-attention in every block, parallel to the FFN: out = h + FFN(u) + alpha * Z.
* ``memvp``: the same place, Z = silu(u (Xv+E1)^T)(Xv+E2), single scale, no CLS, no drop.
* ``prefix_lora`` (LLaVA-style): the visual tokens are prepended to the LLM input; LoRA on q and v of every layer.
* ``flamingo``: gated cross-attention with learned Wq, Wk, Wv, Wo in every block (4 d^2 L new weights).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from repro.ademvl.backbones import TinyLlama, TinyViT
from repro.ademvl.fusion import PLACEMENTS, FlamingoCrossAttention, LoRALinear, adem_attention, memvp_attention

METHODS = ("adem", "memvp", "prefix_lora", "flamingo")


@dataclass(frozen=True)
class FusionConfig:
    method: str = "adem"
    activation: str = "silu"
    gamma: float = 0.1
    multiscale: bool = True
    cls_token: bool = True
    placement: str = "in-out"
    alpha: float = 0.1
    beta: float = 0.01
    proj_hidden: int = 32
    lora_rank: int = 8
    backend: str = "torch"

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {self.placement!r}")


def preset(method: str, **changes) -> FusionConfig:
    """A method's own settings: the baselines are single-scale, without the CLS token or the drop."""
    base = {"adem": FusionConfig(),
            "memvp": FusionConfig("memvp", gamma=0.0, multiscale=False, cls_token=False),
            "prefix_lora": FusionConfig("prefix_lora", gamma=0.0, multiscale=False, cls_token=False, beta=1.0),
            "flamingo": FusionConfig("flamingo", gamma=0.0, multiscale=False, cls_token=False, beta=1.0)}[method]
    return replace(base, **changes)


def projector(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.SiLU(), nn.Linear(hidden, outputs))


class VisionLanguageModel(nn.Module):
    def __init__(self, llm: TinyLlama, vit: TinyViT, cfg: FusionConfig):
        super().__init__()
        self.cfg = cfg
        self.llm, self.vit = copy.deepcopy(llm), copy.deepcopy(vit)
        # the pretrained LLM's own weights, by identity, before any method adds to it (see llm_new_parameters)
        self._pretrained_llm_ids = frozenset(id(p) for p in self.llm.parameters())
        self.llm.requires_grad_(False)
        self.vit.requires_grad_(False)
        self.vit.add_adapters()  # new modules: trainable
        d, dv, g = llm.cfg.dim, vit.cfg.dim, vit.cfg.grid
        self.visual_tokens = g * g + ((g // 2) ** 2 if cfg.multiscale else 0)
        self.adapter_proj = projector(dv, cfg.proj_hidden, d)
        self.adapter_cls = projector(dv, cfg.proj_hidden, d) if cfg.cls_token else None
        if cfg.method in ("adem", "memvp"):
            self.adapter_e1 = nn.Parameter(torch.randn(1, self.visual_tokens, d) * 0.02)
            self.adapter_e2 = nn.Parameter(torch.zeros(1, self.visual_tokens, d))
        if cfg.method == "flamingo":
            self.adapter_xattn = nn.ModuleList(FlamingoCrossAttention(d, llm.cfg.heads) for _ in self.llm.layers)
        if cfg.method == "prefix_lora":
            for layer in self.llm.layers:
                layer.self_attn.q_proj = LoRALinear(layer.self_attn.q_proj, cfg.lora_rank)
                layer.self_attn.v_proj = LoRALinear(layer.self_attn.v_proj, cfg.lora_rank)

    def llm_new_parameters(self, batch) -> int:
        """Weights that the LLM's forward pass runs through and the pretrained LLM did not have, by introspection.

        Runs ``forward(batch)`` with a forward hook on every module of this model, keeps the modules that execute
        while the LLM's forward is active (its own blocks, and whatever the fusion hook calls from inside them, e.g.
        Flamingo's cross-attention or LoRA wrappers), and counts their parameters that are not the pretrained LLM's
        (identified at construction). Bare tensors used as keys and values (ADEM-VL's and MemVP's offsets E1, E2,
        which the paper counts with the visual prompt) are not modules' weights and are not counted."""
        active, ran = [False], {}

        def enter(module, args, kwargs=None):
            active[0] = True

        def leave(module, args, output):
            active[0] = False

        def seen(module, args, output):
            if active[0]:
                ran[id(module)] = module

        handles = [self.llm.register_forward_pre_hook(enter), self.llm.register_forward_hook(leave)]
        handles += [m.register_forward_hook(seen) for m in self.modules() if m is not self.llm]
        was_training = self.training
        try:
            self.eval()
            with torch.no_grad():
                self(batch)
        finally:
            for h in handles:
                h.remove()
            self.train(was_training)
        new = {id(p): p for m in ran.values() for p in m.parameters(recurse=False)}
        new |= {id(p): p for p in self.llm.parameters()}  # modules added inside the LLM that did not run
        return sum(p.numel() for i, p in new.items() if i not in self._pretrained_llm_ids)

    def visual(self, images, has_image):
        """images (B, 1, H, W) -> Xv (B, Nv, d) (zero for text-only items) and the CLS feature (B, dv)."""
        feats = self.vit.features(images)
        b, _, dv = feats.shape
        g = self.vit.cfg.grid
        grid = feats[:, 1:]
        tokens = [grid]
        if self.cfg.multiscale:  # pool before the projection, as the official code
            pooled = F.avg_pool2d(grid.transpose(1, 2).reshape(b, dv, g, g), 2)
            tokens.append(pooled.flatten(2).transpose(1, 2))
        xv = self.cfg.beta * self.adapter_proj(torch.cat(tokens, 1))
        return xv * has_image[:, None, None].to(xv.dtype), feats[:, 0]

    def fusion_hook(self, xv):
        cfg = self.cfg
        if cfg.method == "flamingo":
            return lambda i, h, u, mlp: h + mlp(u) + self.adapter_xattn[i](u, xv)
        keys, values = xv + self.adapter_e1, xv + self.adapter_e2

        def fuse(query):
            if cfg.method == "memvp":
                return memvp_attention(query, keys, values)
            return adem_attention(query, keys, values, cfg.activation, cfg.gamma, cfg.backend)

        def hook(i, h, u, mlp):
            if cfg.placement == "in-in":
                return h + mlp(u + cfg.alpha * fuse(u))
            if cfg.placement == "out-out":
                f = mlp(u)
                return h + f + cfg.alpha * fuse(f)
            return h + mlp(u) + cfg.alpha * fuse(u)

        return hook

    def inputs(self, batch):
        """Token embeddings (with the CLS token at "<img>"), the padding mask, the fusion hook and the offset of the
        text (the prefix length for ``prefix_lora``)."""
        xv, cls = self.visual(batch.image, batch.has_image)
        emb = self.llm.embed_tokens(batch.tokens)
        t = batch.tokens.shape[1]
        pad_mask = torch.arange(t, device=emb.device)[None] < batch.lengths[:, None]
        if self.adapter_cls is not None:
            slot = batch.image_slot.clamp_min(0)
            insert = F.one_hot(slot, t).bool() & (batch.image_slot >= 0)[:, None]
            emb = torch.where(insert[..., None], self.adapter_cls(cls)[:, None, :], emb)
        if self.cfg.method == "prefix_lora":
            emb = torch.cat([xv, emb], 1)
            pad_mask = torch.cat([torch.ones(len(xv), xv.shape[1], dtype=torch.bool, device=emb.device), pad_mask], 1)
            return emb, pad_mask, None, xv.shape[1]
        return emb, pad_mask, self.fusion_hook(xv), 0

    def forward(self, batch) -> torch.Tensor:
        """Next-token logits (B, V) at the answer position (after "answer :")."""
        emb, pad_mask, hook, offset = self.inputs(batch)
        logits = self.llm(embeds=emb, pad_mask=pad_mask, fusion=hook)
        return logits[torch.arange(len(emb), device=emb.device), offset + batch.lengths - 1]


def trainable_formula(dv: int, hidden: int, d: int, nv: int, vit_blocks: int, adapter: int) -> int:
    """ADEM-VL's trainable parameters: two projectors (Linear dv->hidden, Linear hidden->d, with biases), E1 and E2
    (Nv x d each) and a bias-free bottleneck adapter (2 dv w) in every ViT block."""
    projector_size = dv * hidden + hidden + hidden * d + d
    return 2 * projector_size + 2 * nv * d + vit_blocks * 2 * dv * adapter
