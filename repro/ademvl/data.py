"""Digit composites and multiple-choice questions in three groups that mirror ScienceQA's IMG / TXT / NO split.

An image is 2x2 tiles of 8x8 scikit-learn digits: 16x16 pixels (``grid`` tiles per side, so 32x32 for grid=4 at
full scale). Questions (four options):

* IMG, need the image: "which digit is at the <position>", "how many <d> are there";
* TXT, the context (hint) answers them although an image is present: "<hint>. which digit is at the <position>";
* NO, text only (no image: the visual prompt is zeroed): "what is <a> plus <b>" (a, b < 5).

The model answers with the option's value ("answer : 7"); the prediction is the option whose token has the highest
logit, so a question is a 4-way choice as in ScienceQA (whose official evaluation maps a decoded letter to A-E; a
value instead of a letter spares the tiny LLM a copy step). Train and test images use disjoint digit samples.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits

GROUPS = ("IMG", "TXT", "NO")
POSITIONS = ("top left", "top right", "bottom left", "bottom right")
SPECIAL = ("<pad>", "<bos>", "<eos>", "<img>")
WORDS = ("question : options : image : answer : the n/a which digit is at how many are there what plus hint tile shows"
         ).split() + [w for p in POSITIONS for w in p.split()]


class Vocab:
    """Word-level vocabulary: specials, template words and the numbers 0..max_number (at least 18, the largest sum;
    a composite of G x G tiles needs G*G for its tile names and counts)."""

    def __init__(self, max_number: int = 18):
        words = list(SPECIAL) + sorted(set(WORDS)) + [str(i) for i in range(max(18, max_number) + 1)]
        self.itos = list(dict.fromkeys(words))
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        return [self.stoi[w] for w in text.split()]

    def decode(self, ids) -> str:
        return " ".join(self.itos[i] for i in ids)


@dataclass
class Items:
    """A batch-able set of questions. ``tokens`` (N, T) padded prompts ending with "answer :"; ``lengths`` (N);
    ``image`` (N, 1, H, W); ``has_image`` (N) bool; ``options`` (N, 4) the options' token ids; ``answer`` (N) in
    0..3, the index of the right option; ``group`` (N) index into GROUPS;
    ``tile_digits`` (N, grid*grid) for the ViT's pretraining; ``image_slot`` (N) the position of the <img> token."""

    tokens: torch.Tensor
    lengths: torch.Tensor
    image: torch.Tensor
    has_image: torch.Tensor
    options: torch.Tensor
    answer: torch.Tensor
    group: torch.Tensor
    tile_digits: torch.Tensor
    image_slot: torch.Tensor

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def target(self) -> torch.Tensor:
        """The right option's token id (N)."""
        return self.options.gather(1, self.answer[:, None]).squeeze(1)

    def to(self, device) -> "Items":
        return Items(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))

    def subset(self, idx) -> "Items":
        return Items(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))


def digit_pools(seed: int) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Disjoint train / test pools of (8x8 images in [0, 1], labels)."""
    d = load_digits()
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(d.target))
    cut = int(0.7 * len(perm))
    img = d.images.astype(np.float32) / 16.0
    return (img[perm[:cut]], d.target[perm[:cut]]), (img[perm[cut:]], d.target[perm[cut:]])


def _options(correct: int, pool: list[int], rng) -> tuple[list[int], int]:
    wrong = [v for v in pool if v != correct]
    opts = [correct] + list(rng.choice(wrong, 3, replace=False))
    order = rng.permutation(4)
    opts = [opts[i] for i in order]
    return opts, int(np.flatnonzero(order == 0)[0])


def make_items(n: int, pool, seed: int, vocab: Vocab, grid: int = 2,
               group_share: tuple[float, float, float] = (0.5, 0.25, 0.25)) -> Items:
    """``n`` questions drawn from the digit ``pool``; ``group_share`` sets the IMG / TXT / NO mix."""
    images, labels = pool
    rng = np.random.default_rng(seed)
    tiles_per_image = grid * grid
    positions = POSITIONS if grid == 2 else tuple(f"tile {i}" for i in range(tiles_per_image))
    prompts, imgs, has_img, answers, groups, tile_digits, option_ids = [], [], [], [], [], [], []
    for _ in range(n):
        pick = rng.integers(0, len(labels), tiles_per_image)
        digits = labels[pick]
        tile = images[pick].reshape(grid, grid, 8, 8).transpose(0, 2, 1, 3).reshape(grid * 8, grid * 8)
        group = int(rng.choice(3, p=group_share))
        context = "n/a"
        if group == 2:
            a, b = (int(v) for v in rng.integers(0, 5, 2))
            opts, ans = _options(a + b, list(range(10)), rng)
            question = f"what is {a} plus {b}"
        elif group == 0 and rng.random() < 0.5:
            target = int(rng.integers(0, 10))
            if rng.random() < 0.5:  # make the count non-trivial: plant the digit somewhere
                digits[rng.integers(0, tiles_per_image)] = target
                tile = _recompose(images, labels, digits, rng, grid)
            count = int((digits == target).sum())
            opts, ans = _options(count, list(range(tiles_per_image + 1)) if tiles_per_image >= 3 else [0, 1, 2, 3], rng)
            question = f"how many {target} are there"
        else:
            pos = int(rng.integers(0, tiles_per_image))
            opts, ans = _options(int(digits[pos]), list(range(10)), rng)
            question = f"which digit is at the {positions[pos]}"
            if group == 1:
                context = f"the {positions[pos]} tile shows {int(digits[pos])}"
        options = " ".join(str(o) for o in opts)
        image_part = "<img>" if group != 2 else "n/a"
        prompts.append(f"<bos> hint : {context} question : {question} options : {options} image : {image_part} "
                       f"answer :")
        option_ids.append([vocab.stoi[str(o)] for o in opts])
        imgs.append(tile if group != 2 else np.zeros_like(tile))
        has_img.append(group != 2)
        answers.append(ans)
        groups.append(group)
        tile_digits.append(digits.copy())
    ids = [vocab.encode(p) for p in prompts]
    length = max(len(i) for i in ids)
    tokens = torch.zeros(n, length, dtype=torch.long)  # left-aligned, right-padded with <pad> = 0
    for r, i in enumerate(ids):
        tokens[r, : len(i)] = torch.tensor(i)
    img_id = vocab.stoi["<img>"]
    slot = torch.tensor([i.index(img_id) if img_id in i else -1 for i in ids])
    return Items(tokens, torch.tensor([len(i) for i in ids]), torch.from_numpy(np.stack(imgs))[:, None],
                 torch.tensor(has_img), torch.tensor(option_ids), torch.tensor(answers), torch.tensor(groups),
                 torch.from_numpy(np.stack(tile_digits)).long(), slot)


def _recompose(images, labels, digits, rng, grid):
    tiles = []
    for d in digits:
        idx = np.flatnonzero(labels == d)
        tiles.append(images[rng.choice(idx)])
    return np.stack(tiles).reshape(grid, grid, 8, 8).transpose(0, 2, 1, 3).reshape(grid * 8, grid * 8)
