"""Pretraining the backbones (cached), tuning one method, evaluation per group, and the efficiency measurements."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from repro.ademvl import data
from repro.ademvl.backbones import LlamaConfig, TinyLlama, TinyViT, ViTConfig, config_key
from repro.ademvl.model import VisionLanguageModel
from repro.utils import time_it

PRETRAINING_VERSION = 2  # part of the cache key: bump it when pretraining changes


@dataclass(frozen=True)
class Budget:
    llm_steps: int
    vit_steps: int
    tune_steps: int
    batch: int = 32
    lr: float = 2e-3


def _batches(n: int, batch: int, steps: int, gen: torch.Generator):
    for _ in range(steps):
        yield torch.randint(0, n, (batch,), generator=gen)


def _fit(model, loss_of, n: int, steps: int, seed: int, batch: int, progress=None):
    """The backbones' pretraining loop: AdamW (lr 3e-3, one-cycle schedule) on ``loss_of(batch indices)``."""
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    for idx in _batches(n, batch, steps, gen):
        loss = loss_of(idx)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if progress is not None:
            progress.update(1)
    return model.eval()


def pretrain_llm(cfg: LlamaConfig, items: data.Items, vocab: data.Vocab, steps: int, seed: int, batch: int = 32,
                 progress=None, device="cpu") -> TinyLlama:
    """Language modelling on the questions' text with their answers ("... answer : 7 <eos>"), images absent:
    the LLM learns the template, copying from hints and the sums, but cannot know image answers."""
    torch.manual_seed(seed)
    model = TinyLlama(cfg).to(device)
    items = items.to(device)
    answers = items.target
    seq = torch.cat([items.tokens, items.tokens.new_zeros(len(items), 2)], 1)
    rows = torch.arange(len(items), device=seq.device)
    seq[rows, items.lengths] = answers
    seq[rows, items.lengths + 1] = vocab.stoi["<eos>"]
    length = items.lengths + 2

    def loss_of(idx):
        x = seq[idx]
        pad = torch.arange(x.shape[1], device=x.device)[None] < length[idx, None]
        logits = model(x[:, :-1], pad_mask=pad[:, :-1])
        target = x[:, 1:].masked_fill(~pad[:, 1:], -100)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100)

    return _fit(model, loss_of, len(items), steps, seed, batch, progress)


def pretrain_vit(cfg: ViTConfig, items: data.Items, steps: int, seed: int, batch: int = 64, progress=None,
                 device="cpu") -> TinyViT:
    """Classify the digit of every tile of the composites, from CLS and from the tile's patches."""
    torch.manual_seed(seed)
    tiles = items.tile_digits.shape[1]
    model = TinyViT(cfg, tiles=tiles).to(device)
    items = items.to(device)

    def loss_of(idx):
        target = items.tile_digits[idx].reshape(-1)
        return sum(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target) for logits in model(items.image[idx]))

    return _fit(model, loss_of, len(items), steps, seed, batch, progress)


def pretrained_backbones(llm_cfg: LlamaConfig, vit_cfg: ViTConfig, budget: Budget, seed: int, pretrain_items,
                         vocab, progress: bool = True, device="cpu") -> tuple[TinyLlama, TinyViT, dict]:
    """The frozen LLM and ViT, from the data cache when this (configs, budget, seed) was pretrained before."""
    from tqdm.auto import tqdm

    from repro.paths import data_cache

    key = config_key(llm_cfg, vit_cfg, budget, seed=seed, version=PRETRAINING_VERSION)
    path = data_cache() / "ademvl" / f"backbones-{key}.pt"
    info = {"cache": str(path), "cached": path.exists()}
    if path.exists():
        state = torch.load(path, weights_only=True)
        llm, vit = TinyLlama(llm_cfg), TinyViT(vit_cfg, tiles=pretrain_items.tile_digits.shape[1])
        llm.load_state_dict(state["llm"])
        vit.load_state_dict(state["vit"])
        return llm.to(device).eval(), vit.to(device).eval(), info | {"pretrain_s": 0.0}
    start = time.perf_counter()
    with tqdm(total=budget.llm_steps + budget.vit_steps, desc="pretraining backbones", disable=not progress) as bar:
        llm = pretrain_llm(llm_cfg, pretrain_items, vocab, budget.llm_steps, seed, budget.batch, bar, device)
        vit = pretrain_vit(vit_cfg, pretrain_items, budget.vit_steps, seed, progress=bar, device=device)
    path.parent.mkdir(parents=True, exist_ok=True)
    cpu = lambda m: {k: v.cpu() for k, v in m.state_dict().items()}  # noqa: E731
    torch.save({"llm": cpu(llm), "vit": cpu(vit)}, path)
    return llm, vit, info | {"pretrain_s": time.perf_counter() - start}


def tune(model: VisionLanguageModel, items: data.Items, vocab, steps: int, seed: int, batch: int = 32,
         lr: float = 2e-3) -> list[float]:
    """Train the method's trainable parameters on the answer token (AdamW, cosine schedule)."""
    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.02)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    target = items.target
    gen = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    for idx in _batches(len(items), batch, steps, gen):
        loss = F.cross_entropy(model(items.subset(idx)), target[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def evaluate(model: VisionLanguageModel, items: data.Items, vocab, batch: int = 256) -> dict[str, float]:
    """Accuracy (%) overall and per group: the prediction is the option whose token has the highest logit."""
    model.eval()
    preds = []
    for start in range(0, len(items), batch):
        part = items.subset(slice(start, start + batch))
        preds.append(model(part).gather(1, part.options).argmax(1))
    correct = (torch.cat(preds) == items.answer).float()
    out = {"average": float(correct.mean() * 100)}
    for g, name in enumerate(data.GROUPS):
        mask = items.group == g
        out[name] = float(correct[mask].mean() * 100) if mask.any() else float("nan")
    return out


def step_flops(model: VisionLanguageModel, batch: data.Items) -> int:
    """FLOPs of one forward pass (torch's FlopCounterMode), the paper's Table V measure."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(batch)
    return int(counter.get_total_flops())


def step_seconds(model: VisionLanguageModel, batch: data.Items, vocab, repeats: int = 5) -> float:
    """Median wall time of one training step (forward, backward, optimiser) on ``batch``."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    target = batch.target

    def step():
        loss = F.cross_entropy(model(batch), target)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return time_it(step, repeats=repeats, warmup=1).median


def kv_visual_tokens(caches: list[dict], text_tokens: int) -> int:
    """Visual tokens held in a KV cache, read from its tensors: the cached positions (the key tensors' sequence
    length, the same in every layer and equal to the values') minus the text tokens that went through the LLM
    (the prompt's and the generated ones)."""
    lengths = {c[name].shape[2] for c in caches for name in ("k", "v")}
    if len(lengths) != 1:
        raise ValueError(f"the layers' caches disagree on their length: {sorted(lengths)}")
    return lengths.pop() - text_tokens


@torch.no_grad()
def decode_latency(model: VisionLanguageModel, batch: data.Items, new_tokens: int = 64, repeats: int = 5,
                   warmup: int = 1) -> dict[str, float]:
    """Greedy decoding with a KV cache: the median over ``repeats`` (after ``warmup`` untimed runs) of the seconds
    per generated token over ``new_tokens`` tokens, and the cache after the last run, read from its tensors: its
    positions, its bytes and the visual tokens in it (positions minus the text tokens)."""
    model.eval()
    emb, pad_mask, hook, _ = model.inputs(batch)
    b, t, _ = emb.shape
    text = batch.tokens.shape[1]
    if t + new_tokens > model.llm.cfg.max_len:
        raise ValueError(f"{t} prompt + {new_tokens} new positions exceed the LLM's {model.llm.cfg.max_len}")
    sync = torch.cuda.synchronize if emb.device.type == "cuda" else (lambda: None)

    def run():
        caches = [{} for _ in model.llm.layers]
        logits = model.llm(embeds=emb, pad_mask=pad_mask, fusion=hook, caches=caches)
        token, mask = logits[:, -1].argmax(-1), pad_mask
        sync()
        start = time.perf_counter()
        for step in range(new_tokens):
            mask = torch.cat([mask, mask.new_ones(b, 1)], 1)
            logits = model.llm(tokens=token[:, None], pad_mask=mask, fusion=hook, caches=caches, start=t + step)
            token = logits[:, -1].argmax(-1)
        sync()
        return (time.perf_counter() - start) / new_tokens, caches

    for _ in range(warmup):
        run()
    samples = []
    for _ in range(repeats):
        per_token, caches = run()
        samples.append(per_token)
    positions = caches[0]["k"].shape[2]
    kv_bytes = sum(c[name].numel() * c[name].element_size() for c in caches for name in ("k", "v"))
    return {"s_per_token": statistics.median(samples), "kv_positions": positions, "kv_bytes": kv_bytes,
            "visual_in_cache": kv_visual_tokens(caches, text + new_tokens), "new_tokens": new_tokens,
            "repeats": repeats}
