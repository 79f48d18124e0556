"""What each scale runs: pretraining (cached), the four methods and the ablations over seeds, and efficiency."""
from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd
import torch

from repro.ademvl import data, train
from repro.ademvl.backbones import LlamaConfig, ViTConfig, param_count
from repro.ademvl.model import VisionLanguageModel, preset
from repro.utils import pool_map


@dataclass(frozen=True)
class Plan:
    seeds: int
    pretrain_items: int
    tune_items: int
    test_items: int
    budget: train.Budget
    llm: dict
    vit: dict
    grid: int  # tiles per side of a composite
    ablations: bool
    ablation_seeds: int = 2


PLANS = {
    "smoke": Plan(seeds=2, pretrain_items=1200, tune_items=800, test_items=200,
                  budget=train.Budget(llm_steps=100, vit_steps=60, tune_steps=30, lr=1e-2),
                  llm=dict(dim=64, layers=2, heads=4, hidden=172), vit=dict(layers=2), grid=2, ablations=False),
    "default": Plan(seeds=3, pretrain_items=3000, tune_items=2000, test_items=400,
                    budget=train.Budget(llm_steps=350, vit_steps=200, tune_steps=50, lr=1e-2),
                    llm=dict(dim=64, layers=4, heads=4, hidden=172), vit=dict(layers=3), grid=2, ablations=True,
                    ablation_seeds=3),
    # one GPU: d=512, L=8, 64x64 composites (8x8 tiles of digits) on a 16x16 patch grid (+ the 8x8 pooled grid)
    "full": Plan(seeds=3, pretrain_items=20000, tune_items=10000, test_items=2000,
                 budget=train.Budget(llm_steps=6000, vit_steps=3000, tune_steps=2000, lr=1e-2),
                 llm=dict(dim=512, layers=8, heads=8, hidden=1376), vit=dict(image=64, patch=4, dim=256, layers=6),
                 grid=8, ablations=True, ablation_seeds=3),
}

# name -> (method, changes to its preset); the first four are the methods, the rest ADEM-VL's ablations
VARIANTS = {
    "ADEM-VL": ("adem", {}),
    "MemVP": ("memvp", {}),
    "prefix + LoRA": ("prefix_lora", {}),
    "Flamingo x-attn": ("flamingo", {}),
    "ADEM softmax": ("adem", {"activation": "softmax"}),
    "ADEM gamma=0": ("adem", {"gamma": 0.0}),
    "ADEM gamma=0.3": ("adem", {"gamma": 0.3}),
    "ADEM single scale": ("adem", {"multiscale": False}),
    "ADEM no CLS": ("adem", {"cls_token": False}),
    "ADEM in->in": ("adem", {"placement": "in-in"}),
    "ADEM out->out": ("adem", {"placement": "out-out"}),
}
MAIN = tuple(list(VARIANTS)[:4])


def configs(plan: Plan, vocab: data.Vocab) -> tuple[LlamaConfig, ViTConfig]:
    return LlamaConfig(vocab=len(vocab), **plan.llm), ViTConfig(**plan.vit)


@dataclass
class Setup:
    """What every run shares: the frozen backbones and the three item sets."""

    vocab: data.Vocab
    llm: object
    vit: object
    pretrain: data.Items
    tune: data.Items
    test: data.Items
    info: dict


def setup(plan: Plan, seed: int, progress: bool = True, device="cpu") -> Setup:
    vocab = data.Vocab(max_number=plan.grid * plan.grid)
    train_pool, test_pool = data.digit_pools(seed)
    pre = data.make_items(plan.pretrain_items, train_pool, seed + 100, vocab, plan.grid)
    tune = data.make_items(plan.tune_items, train_pool, seed + 200, vocab, plan.grid)
    test = data.make_items(plan.test_items, test_pool, seed + 300, vocab, plan.grid)
    llm_cfg, vit_cfg = configs(plan, vocab)
    llm, vit, info = train.pretrained_backbones(llm_cfg, vit_cfg, plan.budget, seed, pre, vocab, progress, device)
    tune, test = tune.to(device), test.to(device)
    with torch.no_grad():
        cls_logits, tile_logits = vit(test.image)
    info["vit_tile_accuracy"] = float((tile_logits.argmax(-1) == test.tile_digits).float().mean() * 100)
    info["vit_cls_accuracy"] = float((cls_logits.argmax(-1) == test.tile_digits).float().mean() * 100)
    return Setup(vocab, llm, vit, pre, tune, test, info)


def build(s: Setup, name: str, seed: int = 0, backend: str = "torch") -> VisionLanguageModel:
    """The variant's model on the frozen backbones; its new weights are initialised from ``seed`` (a worker process
    runs several jobs, so the global random state would otherwise depend on which jobs ran there before)."""
    torch.manual_seed(seed)
    method, changes = VARIANTS[name]
    cfg = preset(method, **changes)
    model = VisionLanguageModel(s.llm, s.vit, replace(cfg, backend=backend) if method == "adem" else cfg)
    return model.to(s.test.tokens.device)


@dataclass(frozen=True)
class Job:
    name: str
    seed: int
    plan: Plan
    data_seed: int
    device: str = "cpu"


def run_job(job: Job) -> dict:
    s = setup(job.plan, job.data_seed, progress=False, device=job.device)
    model = build(s, job.name, job.seed)
    untuned = train.evaluate(model, s.test, s.vocab)  # this seed's model before tuning: the paired baseline
    losses = train.tune(model, s.tune, s.vocab, job.plan.budget.tune_steps, job.seed, job.plan.budget.batch,
                        job.plan.budget.lr)
    acc = train.evaluate(model, s.test, s.vocab)
    record = {"variant": job.name, "seed": job.seed, **acc, "final_loss": sum(losses[-10:]) / 10,
              "trainable": param_count(model), "llm_new": model.llm_new_parameters(s.test.subset(slice(0, 4))),
              **{f"untuned {k}": v for k, v in untuned.items()}}
    if job.name == "ADEM-VL" and job.seed == job.data_seed:  # kept for the drop figure, so it is not retrained
        record["trained"] = {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}
    return record


def run_all(plan: Plan, seed: int, workers=None, progress=True, device: str = "cpu") -> pd.DataFrame:
    """Every variant over seeds: on a GPU one after another in this process, on a CPU in worker processes."""
    jobs = [Job(n, s, plan, seed, device) for n in MAIN for s in range(seed, seed + plan.seeds)]
    if plan.ablations:
        jobs += [Job(n, s, plan, seed, device) for n in VARIANTS if n not in MAIN
                 for s in range(seed, seed + plan.ablation_seeds)]
    return pd.DataFrame(pool_map(run_job, jobs, 1 if device != "cpu" else workers, progress, desc="tuning runs"))


def efficiency(s: Setup, batch_size: int = 8, new_tokens: int = 64, repeats: int = 5) -> pd.DataFrame:
    """FLOPs of one forward pass, seconds per training step and per generated token (median of ``repeats`` runs of
    ``new_tokens`` greedy tokens after a warm-up), and the KV cache after decoding, read from its tensors."""
    batch = s.test.subset(s.test.has_image.nonzero().flatten()[:batch_size])
    rows = []
    for name in MAIN:
        model = build(s, name)
        dec = train.decode_latency(model, batch, new_tokens, repeats)
        rows.append({"method": name, "forward GFLOPs": train.step_flops(model, batch) / 1e9,
                     "train s/step": train.step_seconds(model, batch, s.vocab),
                     "decode ms/token": dec["s_per_token"] * 1e3, "KV cache positions": dec["kv_positions"],
                     "KV cache KB": dec["kv_bytes"] / 1024, "visual tokens in the cache": dec["visual_in_cache"],
                     "text tokens": int(batch.lengths.max()), "visual tokens": model.visual_tokens,
                     "trainable": param_count(model), "new LLM weights": model.llm_new_parameters(batch)})
    return pd.DataFrame(rows).set_index("method")


@torch.no_grad()
def drop_map(model: VisionLanguageModel, item: data.Items) -> torch.Tensor:
    """For one item (a batch of 1): which visual tokens the answer position keeps in every layer, (L, Nv) bool."""
    from repro.ademvl.fusion import drop_mask

    model.eval()
    emb, pad_mask, hook, _ = model.inputs(item)
    xv, _ = model.visual(item.image, item.has_image)
    keys = xv + model.adapter_e1
    kept = []

    def capture(i, h, u, mlp):
        kept.append(drop_mask(u[:, item.lengths[0] - 1:item.lengths[0]], keys, model.cfg.gamma)[0, 0])
        return hook(i, h, u, mlp)

    model.llm(embeds=emb, pad_mask=pad_mask, fusion=capture)
    return torch.stack(kept)
