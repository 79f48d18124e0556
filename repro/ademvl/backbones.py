"""The frozen backbones, pretrained in the chapter: a tiny LLaMA-style decoder and a tiny ViT.

``TinyLlama``: token embedding, L blocks of [RMSNorm -> causal self-attention with RoPE (rotate-half convention,
as Hugging Face LLaMA) -> residual, RMSNorm -> SwiGLU FFN -> residual], final RMSNorm, LM head. Each block calls an
optional ``fusion`` hook beside its FFN, which is where ADEM-VL and MemVP enter; the LLM itself never changes.
``load_hf_llama`` maps a local Hugging Face LLaMA checkpoint (config.json + safetensors) onto it.

``TinyViT``: patch embedding, CLS, pre-LN blocks, each with an optional bottleneck adapter parallel to the MLP
(ADEM-VL trains those); ``features`` returns the penultimate block's output after the final LayerNorm.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class LlamaConfig:
    vocab: int
    dim: int = 128
    layers: int = 4
    heads: int = 4
    hidden: int = 344  # SwiGLU width, ~ 8/3 d
    max_len: int = 256
    rope_theta: float = 10000.0
    eps: float = 1e-6


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(cfg: LlamaConfig) -> tuple[torch.Tensor, torch.Tensor]:
    half = cfg.dim // cfg.heads // 2
    inv = 1.0 / cfg.rope_theta ** (torch.arange(half).float() / half)
    angles = torch.outer(torch.arange(cfg.max_len).float(), inv)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat([-b, a], dim=-1)


class SelfAttention(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.heads = cfg.heads
        self.q_proj = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.k_proj = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.v_proj = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.o_proj = nn.Linear(cfg.dim, cfg.dim, bias=False)

    def forward(self, x, cos, sin, pad_mask, cache=None):
        """x (B, T, d); cos/sin (T, dh) for these positions; pad_mask (B, T_total) True for real tokens;
        cache: dict with "k"/"v" (B, H, T_past, dh), extended in place."""
        b, t, d = x.shape
        shape = (b, t, self.heads, d // self.heads)
        q, k, v = (p(x).view(shape).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        if cache is not None:
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
            cache["k"], cache["v"] = k, v
        total = k.shape[2]
        causal = torch.ones(t, total, dtype=torch.bool, device=x.device).tril(total - t)
        mask = causal[None, None] & pad_mask[:, None, None, :total]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, d))


class SwiGLU(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.dim, cfg.hidden, bias=False)
        self.up_proj = nn.Linear(cfg.dim, cfg.hidden, bias=False)
        self.down_proj = nn.Linear(cfg.hidden, cfg.dim, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaBlock(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.dim, cfg.eps)
        self.self_attn = SelfAttention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.dim, cfg.eps)
        self.mlp = SwiGLU(cfg)

    def forward(self, x, cos, sin, pad_mask, index: int, fusion=None, cache=None):
        h = x + self.self_attn(self.input_layernorm(x), cos, sin, pad_mask, cache)
        u = self.post_attention_layernorm(h)
        if fusion is None:
            return h + self.mlp(u)
        return fusion(index, h, u, self.mlp)


class TinyLlama(nn.Module):
    """Shapes: tokens (B, T) -> logits (B, T, V). ``embeds`` may replace the token embeddings (for prefixes)."""

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab, cfg.dim)
        self.layers = nn.ModuleList(LlamaBlock(cfg) for _ in range(cfg.layers))
        self.norm = RMSNorm(cfg.dim, cfg.eps)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab, bias=False)
        cos, sin = rope_tables(cfg)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, tokens=None, embeds=None, pad_mask=None, fusion=None, caches=None, start: int = 0):
        x = self.embed_tokens(tokens) if embeds is None else embeds
        b, t, _ = x.shape
        if pad_mask is None:
            pad_mask = torch.ones(b, start + t, dtype=torch.bool, device=x.device)
        cos, sin = self.cos[start:start + t], self.sin[start:start + t]
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, pad_mask, i, fusion, None if caches is None else caches[i])
        return self.lm_head(self.norm(x))


HF_NAMES = {"model.embed_tokens.weight": "embed_tokens.weight", "model.norm.weight": "norm.weight",
            "lm_head.weight": "lm_head.weight"}


def load_hf_llama(path: str | Path) -> TinyLlama:
    """Build a ``TinyLlama`` from a local Hugging Face LLaMA-family checkpoint directory (``config.json`` and
    ``*.safetensors``), for users who have one. Nothing is downloaded. Grouped-query attention is not supported."""
    from safetensors.torch import load_file

    path = Path(path)
    hf = json.loads((path / "config.json").read_text())
    if hf.get("num_key_value_heads", hf["num_attention_heads"]) != hf["num_attention_heads"]:
        raise ValueError("grouped-query attention (num_key_value_heads < num_attention_heads) is not supported")
    cfg = LlamaConfig(vocab=hf["vocab_size"], dim=hf["hidden_size"], layers=hf["num_hidden_layers"],
                      heads=hf["num_attention_heads"], hidden=hf["intermediate_size"],
                      max_len=hf.get("max_position_embeddings", 2048), rope_theta=hf.get("rope_theta", 10000.0),
                      eps=hf.get("rms_norm_eps", 1e-6))
    state = {}
    for file in sorted(path.glob("*.safetensors")):
        state.update(load_file(file))
    mapped = {}
    for name, tensor in state.items():
        if name in HF_NAMES:
            mapped[HF_NAMES[name]] = tensor
        elif name.startswith("model.layers."):
            mapped[name.removeprefix("model.")] = tensor
    if "lm_head.weight" not in mapped:  # tied embeddings
        mapped["lm_head.weight"] = mapped["embed_tokens.weight"]
    model = TinyLlama(cfg)
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    if missing or unexpected:
        raise ValueError(f"checkpoint does not match a LLaMA layout: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    return model


def save_hf_llama(model: TinyLlama, path: str | Path) -> None:
    """The inverse of ``load_hf_llama`` (the tests use it to write a tiny random checkpoint)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    inverse = {v: k for k, v in HF_NAMES.items()}
    state = {inverse.get(k, f"model.{k}"): v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, path / "model.safetensors")
    c = model.cfg
    (path / "config.json").write_text(json.dumps({
        "vocab_size": c.vocab, "hidden_size": c.dim, "num_hidden_layers": c.layers, "num_attention_heads": c.heads,
        "num_key_value_heads": c.heads, "intermediate_size": c.hidden, "max_position_embeddings": c.max_len,
        "rope_theta": c.rope_theta, "rms_norm_eps": c.eps, "model_type": "llama"}))


@dataclass(frozen=True)
class ViTConfig:
    image: int = 16
    patch: int = 2
    dim: int = 64
    layers: int = 3
    heads: int = 4
    adapter: int = 12  # bottleneck width of ADEM-VL's adapters

    @property
    def grid(self) -> int:
        return self.image // self.patch


class Adapter(nn.Module):
    """ADEM-VL's bias-free bottleneck, parallel to a ViT block's MLP, scaled by 0.1; W2 starts at zero."""

    def __init__(self, dim: int, width: int):
        super().__init__()
        self.down = nn.Linear(dim, width, bias=False)
        self.up = nn.Linear(width, dim, bias=False)
        nn.init.zeros_(self.up.weight)

    def forward(self, x):
        return 0.1 * self.up(F.gelu(self.down(x)))


class ViTBlock(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(cfg.dim), nn.LayerNorm(cfg.dim)
        self.attn = nn.MultiheadAttention(cfg.dim, cfg.heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(cfg.dim, 4 * cfg.dim), nn.GELU(), nn.Linear(4 * cfg.dim, cfg.dim))
        self.adapter: Adapter | None = None

    def forward(self, x):
        y = self.norm1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        y = self.norm2(x)
        return x + self.mlp(y) + (self.adapter(y) if self.adapter is not None else 0)


class TinyViT(nn.Module):
    """images (B, 1, H, W) -> tokens (B, 1 + G*G, d): CLS then the G x G patch grid, row-major."""

    def __init__(self, cfg: ViTConfig, classes_per_tile: int = 10, tiles: int = 4):
        super().__init__()
        self.cfg = cfg
        self.patch = nn.Conv2d(1, cfg.dim, cfg.patch, cfg.patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos = nn.Parameter(torch.randn(1, 1 + cfg.grid**2, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(ViTBlock(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.dim)
        self.tiles = tiles
        self.head = nn.Linear(cfg.dim, classes_per_tile * tiles)  # pretraining only: the digit in every tile
        self.tile_head = nn.Linear(cfg.dim, classes_per_tile)

    def add_adapters(self) -> None:
        for block in self.blocks:
            block.adapter = Adapter(self.cfg.dim, self.cfg.adapter)

    def _run(self, images, upto: int):
        x = self.patch(images).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(len(x), -1, -1), x], 1) + self.pos
        for block in self.blocks[:upto]:
            x = block(x)
        return self.norm(x)

    def features(self, images):
        """The penultimate block's output, after the final LayerNorm (as ADEM-VL takes CLIP's)."""
        return self._run(images, self.cfg.layers - 1)

    def forward(self, images):
        """Pretraining logits (B, tiles, 10) twice: from CLS (one head per tile), and from each tile's own patches
        (mean-pooled, one shared head), so that both CLS and the patch grid carry the digits."""
        x = self._run(images, self.cfg.layers)
        b, g, side = len(images), self.cfg.grid, int(self.tiles**0.5)
        patches = x[:, 1:].reshape(b, side, g // side, side, g // side, -1).mean((2, 4)).reshape(b, self.tiles, -1)
        return self.head(x[:, 0]).view(b, self.tiles, -1), self.tile_head(patches)


def param_count(module: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def config_key(*configs, seed: int, version: int = 1) -> str:
    """A short hash of the configurations, seed and code version: the pretrained weights' cache key."""
    import hashlib

    text = json.dumps([asdict(c) for c in configs] + [seed, version], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


