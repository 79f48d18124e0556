"""The registry of chapters: one entry per paper, numbered as the handbook orders them.

A chapter whose notebook does not exist yet is *planned*: it is listed, and ``repro run`` says so instead of
failing obscurely. The book's table of contents is generated from this registry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from repro.params import COMMON, Param
from repro.paths import NOTEBOOKS


@dataclass(frozen=True)
class Paper:
    title: str
    authors: str
    venue: str
    arxiv: str
    code: str

    @property
    def arxiv_url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv}"


@dataclass(frozen=True)
class Chapter:
    number: int
    slug: str
    title: str
    paper: Paper
    params: tuple[Param, ...] = field(default=COMMON)
    source: Path | None = None  # the notebook, when it is not notebooks/NN_slug.ipynb (tests use this)

    @property
    def stem(self) -> str:
        return f"{self.number:02d}_{self.slug}"

    @property
    def notebook(self) -> Path:
        return self.source or NOTEBOOKS / f"{self.stem}.ipynb"

    @property
    def planned(self) -> bool:
        return not self.notebook.exists()

    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params}


SYLVIE_PARAMS = COMMON + (
    Param("model", str, "sage", ("sage", "gcn"), help="GraphSAGE-mean or GCN, full-batch"),
    Param("hidden", int, 128, minimum=8, help="hidden width H of every layer"),
    Param("bits", int, 1, (1, 2, 4, 8), help="Sylvie's bit width for features and gradients"),
    Param("staleness_bound", int, 5, minimum=1, help="k of the Bounded Staleness Adaptor: a synchronous epoch every k"),
    Param("bns_rate", float, 0.1, minimum=0.0, help="BNS-GCN boundary sampling rate p"),
    Param("quant_backend", str, "auto", ("auto", "torch", "triton"), help="auto: Triton on CUDA, torch on CPU"),
    Param("graph", str, "cora", ("cora", "citeseer"),
          help="the small real graph (public Planetoid split), resolved through repro.data like every dataset"),
    Param("large_graph", str, "sbm", ("sbm", "reddit", "ogbn-products"),
          help="the graph beside the small one: a seeded SBM, or a real graph from the data cache (full scale)"),
)

ACME_PARAMS = COMMON + (
    Param("trace", str, "auto", ("auto", "real", "synthetic"),
          help="job traces: the real CSVs from the data cache (auto: when present) or the calibrated synthetic one"),
)

ADEMVL_PARAMS = COMMON + (
    Param("kernel", str, "auto", ("auto", "torch", "triton"),
          help="fused SiLU cross-attention for inference: auto = Triton on CUDA, torch on CPU"),
    Param("workers", int, 0, minimum=0, help="worker processes for the tuning runs; 0 = one per CPU core (<= 8)"),
)

JIOC_PARAMS = COMMON + (
    Param("ic_variant", str, "class", ("class", "sample"),
          help="input coordination: per-class weights from accumulated true-class gradients, or per-sample weights"),
    Param("suppression", str, "neglog", ("neglog", "separated"),
          help="output coordination on memory data: -log(1 - P(new heads)), or a separated softmax over old heads"),
    Param("kd_data", str, "all", ("all", "new"),
          help="task-wise distillation on the old heads over the whole batch, or over the new task's data only"),
    Param("workers", int, 0, minimum=0, help="worker processes for the independent runs; 0 = one per CPU core (<= 8)"),
)

TDPOR_PARAMS = COMMON + (
    Param("reset_period", int, 0, minimum=0,
          help="TDPO-R: reset the critic every N epochs; 0 = the scale's plan (smoke 2, default 5, full 10)"),
    Param("tau", float, 0.0, minimum=0.0, help="dormancy threshold tau on s_i (the paper's default is 0)"),
    Param("kl_coef", float, 0.1, minimum=0.0, help="DPOK-style baseline: weight of the per-step KL to the base policy"),
    Param("workers", int, 0, minimum=0, help="worker processes for the fine-tuning runs; 0 = one per CPU core (<= 8)"),
)

TORCHGT_PARAMS = COMMON + (
    Param("model", str, "graphormer_slim", ("graphormer_slim", "gt"),
          help="Graphormer-slim (pre-LN, global token) or GT (post-LN, no global token) for the accuracy runs"),
    Param("ecr_beta", str, "1", ("0", "1", "1.5", "5", "7", "10", "all"),
          help="ECR threshold p = beta * global density, from the auto-tuner's ladder; 'all': p = 1 (released code)"),
    Param("switch_freq", int, 2, minimum=1, help="dual-interleaved attention: full-attention steps per epoch"),
    Param("memory_budget_mb", float, 1024.0, minimum=1.0, help="activation budget for the longest-sequence claim"),
    Param("graph", str, "cora", ("cora", "citeseer"),
          help="the small real graph (public Planetoid split), resolved through repro.data like every dataset"),
    Param("large_graph", str, "sbm", ("sbm", "ogbn-arxiv", "ogbn-products"),
          help="the graph beside the small one: a seeded SBM, or an OGB graph from the data cache (full scale)"),
    Param("workers", int, 0, minimum=0, help="worker processes for the training runs; 0 = one per CPU core (<= 8)"),
)

FHA_PARAMS = COMMON + (
    Param("workers", int, 0, minimum=0, help="worker processes for the benchmark runs; 0 = one per CPU core (<= 8)"),
)

WSOL_PARAMS = COMMON + (
    Param("we_variant", str, "balanced", ("balanced", "fgprob", "uniform"),
          help="weighted-entropy weighting claimed (all run): fg/bg cells count equally, w = p, or plain entropy"),
    Param("workers", int, 0, minimum=0, help="worker processes for the independent runs; 0 = one per CPU core (<= 8)"),
)

CHAPTERS: tuple[Chapter, ...] = (
    Chapter(1, "ademvl", "ADEM-VL: parameter-free cross-attention for vision-language tuning",
            Paper("ADEM-VL: Adaptive and Embedded Fusion for Efficient Vision-Language Tuning",
                  "Zhiwei Hao, Jianyuan Guo, Li Shen, Yong Luo, Han Hu, Yonggang Wen", "IJCV 2025", "2410.17779",
                  "https://github.com/Hao840/ADEM-VL"),
            params=ADEMVL_PARAMS),
    Chapter(2, "jioc", "JIOC: input/output coordination for class-incremental learning",
            Paper("Joint Input and Output Coordination for Class-Incremental Learning",
                  "Shuai Wang, Yibing Zhan, Yong Luo, Han Hu, Wei Yu, Yonggang Wen, Dacheng Tao", "IJCAI 2024",
                  "2409.05620", "(no official code)"),
            params=JIOC_PARAMS),
    Chapter(3, "torchgt", "TorchGT: graph transformer training at scale",
            Paper("TorchGT: A Holistic System for Large-scale Graph Transformer Training",
                  "Meng Zhang, Jie Sun, Qinghao Hu, Peng Sun, Zeke Wang, Yonggang Wen, Tianwei Zhang", "SC'24",
                  "2407.14106", "https://github.com/zxmeng98/torchgt"),
            params=TORCHGT_PARAMS),
    Chapter(4, "acme", "Acme: LLM development in the datacenter",
            Paper("Characterization of Large Language Model Development in the Datacenter",
                  "Qinghao Hu, Zhisheng Ye, Zerui Wang, Guoteng Wang, Meng Zhang, Qiaoling Chen, Peng Sun, Dahua Lin, "
                  "Xiaolin Wang, Yingwei Luo, Yonggang Wen, Tianwei Zhang", "NSDI'24", "2403.07648",
                  "https://github.com/InternLM/AcmeTrace"),
            params=ACME_PARAMS),
    Chapter(5, "tdpor", "TDPO-R: diffusion alignment against reward overoptimization",
            Paper("Confronting Reward Overoptimization for Diffusion Models: A Perspective of Inductive and Primacy "
                  "Biases", "Ziyi Zhang, Sen Zhang, Yibing Zhan, Yong Luo, Yonggang Wen, Dacheng Tao", "ICML 2024",
                  "2402.08552", "https://github.com/ZiyiZhang27/tdpo"),
            params=TDPOR_PARAMS),
    Chapter(6, "partseg", "PartSeg: few-shot part segmentation via part-aware prompts",
            Paper("PartSeg: Few-shot Part Segmentation via Part-aware Prompt Learning",
                  "Mengya Han, Heliang Zheng, Chaoyue Wang, Yong Luo, Han Hu, Jing Zhang, Bo Du",
                  "Pattern Recognition 2025", "2308.12757", "(no official code)")),
    Chapter(7, "wsol", "WSOL with a binary-class detector and weighted-entropy loss",
            Paper("Rethinking the Localization in Weakly Supervised Object Localization",
                  "Rui Xu, Yong Luo, Han Hu, Bo Du, Jialie Shen, Yonggang Wen", "ACM MM 2023", "2308.06161",
                  "(no official code)"),
            params=WSOL_PARAMS),
    Chapter(8, "mas", "MAS: merge-and-split for simultaneous federated tasks",
            Paper("MAS: Towards Resource-Efficient Federated Multiple-Task Learning",
                  "Weiming Zhuang, Yonggang Wen, Lingjuan Lyu, Shuai Zhang", "ICCV 2023", "2307.11285",
                  "https://github.com/EasyFL-AI/EasyFL")),
    Chapter(9, "fha_kitchens", "FHA-Kitchens: fine-grained hand actions in kitchens",
            Paper("FHA-Kitchens: A Novel Dataset for Fine-Grained Hand Action Recognition in Kitchen Scenes",
                  "Ting Zhe, Yongqian Li, Jing Zhang, Yong Luo, Han Hu, Bo Du, Yonggang Wen, Dacheng Tao",
                  "arXiv preprint", "2306.10858", "https://github.com/superZ678/FHA-Kitchens"),
            params=FHA_PARAMS),
    Chapter(10, "sylvie", "Sylvie: one-bit communication for distributed GNN training",
            Paper("Boosting Distributed Full-graph GNN Training with Asynchronous One-bit Communication",
                  "Meng Zhang, Qinghao Hu, Peng Sun, Yonggang Wen, Tianwei Zhang", "arXiv preprint", "2303.01277",
                  "https://github.com/zxmeng98/Sylvie"),
            params=SYLVIE_PARAMS),
)

BY_SLUG = {c.slug: c for c in CHAPTERS}


class UnknownChapterError(KeyError):
    def __str__(self) -> str:
        return self.args[0]


def get(name: str) -> Chapter:
    """Find a chapter by slug, stem ("10_sylvie") or number ("10")."""
    key = name.strip().lower().removesuffix(".ipynb")
    for c in CHAPTERS:
        if key in (c.slug, c.stem, str(c.number), f"{c.number:02d}"):
            return c
    raise UnknownChapterError(
        f"unknown chapter {name!r}; known chapters: {', '.join(c.slug for c in CHAPTERS)} (see `repro list`)"
    )


def available() -> list[Chapter]:
    """The chapters that have a notebook."""
    return [c for c in CHAPTERS if not c.planned]
