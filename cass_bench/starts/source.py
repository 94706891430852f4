"""Training the formula-driven supervised start: both encoders learn to classify FractalDB-style images.

A plain, seeded PyTorch loop (no Lightning): the images come from :func:`cass_bench.starts.fractal.fractal_dataset`,
rendered at ``source.render_size`` (or the benchmark's image size) and resized to the image size the cells use,
grey replicated to three channels and ImageNet-normalised as :func:`cass_bench.data.loaders.eval_transform` does.
Each encoder is built by :func:`cass_bench.models.encoders.build_encoder` exactly as the cells build it (timm name,
small-image stem, ViT patch size) with a classifier of ``source.classes`` outputs, trained with cross-entropy, and
scored on the held-out instances of every class. Every random draw (images, split, initialisation, batch order,
augmentation) is seeded from ``source.seed``, never from a cell's seed.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cass_bench.config.schema import ARCHS, BackboneConfig, SourceConfig
from cass_bench.data.loaders import IMAGENET_NORMALIZE
from cass_bench.models.encoders import build_encoder
from cass_bench.starts.fractal import FractalRecipe, fractal_dataset

LOG = logging.getLogger("cass_bench.starts")
EVAL_BATCH = 256


@dataclass
class SourceData:
    """The source images as normalised tensors, split into training and held-out instances.

    Attributes:
        train_x, holdout_x: ``(N, 3, S, S)`` float32 images.
        train_y, holdout_y: ``(N,)`` int64 class indices.
    """

    train_x: Tensor
    train_y: Tensor
    holdout_x: Tensor
    holdout_y: Tensor


def part_seed(seed: int, tag: str) -> int:
    """A 63-bit seed for one part of the start (``cnn/init``, ``vit/batches``, ...) derived from the recipe seed."""
    return int.from_bytes(hashlib.sha256(f"start:{seed}:{tag}".encode()).digest()[:8], "big") >> 1


def fractal_recipe(source: SourceConfig, image_size: int) -> FractalRecipe:
    """The generator recipe of a source section (rendered at ``render_size``, or ``image_size`` when unset)."""
    return FractalRecipe(classes=source.classes, instances=source.instances,
                         image_size=source.render_size or image_size, points=source.points,
                         min_fill=source.min_fill, perturbation=source.perturbation, seed=source.seed)


def holdout_count(source: SourceConfig) -> int:
    """Held-out instances per class: ``holdout`` of them rounded, at least one, leaving at least one to train on."""
    if source.instances < 2:
        return 0
    return min(source.instances - 1, max(1, round(source.holdout * source.instances)))


def normalised(images: np.ndarray, image_size: int) -> Tensor:
    """uint8 grey ``(N, H, W)`` images as ImageNet-normalised ``(N, 3, image_size, image_size)`` float32 tensors."""
    x = torch.from_numpy(images).float().div_(255.0).unsqueeze(1)
    if x.shape[-1] != image_size:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(IMAGENET_NORMALIZE["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_NORMALIZE["std"]).view(1, 3, 1, 1)
    return ((x.clamp(0.0, 1.0).expand(-1, 3, -1, -1) - mean) / std).contiguous()


def source_data(source: SourceConfig, image_size: int) -> SourceData:
    """Renders the source images and splits off the last :func:`holdout_count` instances of every class."""
    images, labels = fractal_dataset(fractal_recipe(source, image_size))
    x, y = normalised(images, image_size), torch.from_numpy(labels)
    instance = torch.arange(len(y)) % source.instances
    held = instance >= source.instances - holdout_count(source)
    return SourceData(x[~held], y[~held], x[held], y[held])


def augment(batch: Tensor, generator: torch.Generator) -> Tensor:
    """Random shifts of up to 1/8 of the side (edge-replicated) and left-right flips, per image."""
    n, _, size, _ = batch.shape
    pad = max(1, size // 8)
    padded = F.pad(batch, (pad, pad, pad, pad), mode="replicate")
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy.view(n, 1) + torch.arange(size).view(1, size)).view(n, 1, size, 1).expand(n, 3, size, size + 2 * pad)
    shifted = padded.gather(2, rows)
    cols = (dx.view(n, 1) + torch.arange(size).view(1, size)).view(n, 1, 1, size).expand(n, 3, size, size)
    shifted = shifted.gather(3, cols)
    flip = torch.rand(n, generator=generator) < 0.5
    return torch.where(flip.view(n, 1, 1, 1), shifted.flip(-1), shifted)


def _optimizer(model: nn.Module, source: SourceConfig, lr: float) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": source.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    if source.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)
    if source.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr)
    return torch.optim.AdamW(groups, lr=lr)


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then a cosine decay to zero at ``total`` steps."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float | None:
    """Top-1 accuracy of ``model`` on ``(x, y)`` in eval mode (None without examples)."""
    if len(y) == 0:
        return None
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(chunk).argmax(dim=1) for chunk in x.split(EVAL_BATCH)])
    return float((predicted == y).float().mean())


def train_encoder(arch: str, source: SourceConfig, backbones: BackboneConfig, image_size: int,
                  data: SourceData) -> tuple[dict[str, Tensor], dict[str, float | None]]:
    """Trains one encoder with its classifier on the source images.

    Args:
        arch: ``cnn`` or ``vit``.
        source: the recipe.
        backbones: the timm encoders (built as the cells build them).
        image_size: side of the images.
        data: the rendered, split source images.

    Returns:
        The encoder's state dict with its classifier, and its figures: ``source_accuracy`` (held-out top-1),
        ``train_accuracy`` (last epoch, augmented batches), ``train_time_s``, ``epochs``.
    """
    epochs = source.vit_epochs if arch == "vit" and source.vit_epochs is not None else source.epochs
    lr = source.vit_lr if arch == "vit" and source.vit_lr is not None else source.lr
    model = build_encoder(arch, backbones, image_size, part_seed(source.seed, f"{arch}/init"),
                          num_classes=source.classes)
    optimizer = _optimizer(model, source, lr)
    generator = torch.Generator().manual_seed(part_seed(source.seed, f"{arch}/batches"))
    n = len(data.train_y)
    batch_size = min(source.batch_size, n)
    per_epoch = max(1, n // batch_size)
    total, warmup = epochs * per_epoch, round(source.warmup_epochs * per_epoch)
    start, step, train_acc = time.perf_counter(), 0, None
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(n, generator=generator)
        seen = correct = 0
        loss_sum = 0.0
        for b in range(per_epoch):
            idx = order[b * batch_size:(b + 1) * batch_size]
            x, y = data.train_x[idx], data.train_y[idx]
            if source.augment:
                x = augment(x, generator)
            for group in optimizer.param_groups:
                group["lr"] = lr * lr_factor(step, total, warmup)
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=source.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            seen += len(y)
            correct += int((logits.argmax(dim=1) == y).sum())
            loss_sum += float(loss.detach()) * len(y)
        train_acc = correct / seen
        LOG.info("[start] %s epoch %d/%d: loss %.3f, train accuracy %.3f, %.0f s", arch, epoch + 1, epochs,
                 loss_sum / seen, train_acc, time.perf_counter() - start)
    elapsed = time.perf_counter() - start
    held = accuracy(model, data.holdout_x, data.holdout_y)
    LOG.info("[start] %s held-out source accuracy %s after %.0f s", arch,
             "n/a" if held is None else f"{held:.3f}", elapsed)
    model.eval()
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return state, {"source_accuracy": held, "train_accuracy": train_acc, "train_time_s": elapsed,
                   "epochs": float(epochs)}


def train_start(source: SourceConfig, backbones: BackboneConfig, image_size: int,
                archs: tuple[str, ...] = ARCHS) -> tuple[dict[str, dict[str, Tensor]], dict[str, object]]:
    """Renders the source images and trains every encoder of ``archs`` on them.

    The weights are bit-identical for the same recipe, machine type and torch thread count (the thread count
    changes the order of floating-point sums, so it is kept in the measures as ``torch_threads``).

    Returns:
        ``states``: each arch's state dict with its classifier; ``measures``: ``source_accuracy``,
        ``train_accuracy`` and ``train_time_s`` per arch, ``render_time_s``, ``torch_threads``, ``classes``,
        ``train_images``, ``holdout_images``.
    """
    started = time.perf_counter()
    data = source_data(source, image_size)
    render_time = time.perf_counter() - started
    LOG.info("[start] rendered %d training and %d held-out images of %d classes in %.0f s", len(data.train_y),
             len(data.holdout_y), source.classes, render_time)
    states: dict[str, dict[str, Tensor]] = {}
    figures: dict[str, dict[str, float | None]] = {}
    for arch in archs:
        states[arch], figures[arch] = train_encoder(arch, source, backbones, image_size, data)
    measures: dict[str, object] = {
        "source_accuracy": {arch: f["source_accuracy"] for arch, f in figures.items()},
        "train_accuracy": {arch: f["train_accuracy"] for arch, f in figures.items()},
        "train_time_s": {arch: f["train_time_s"] for arch, f in figures.items()},
        "render_time_s": render_time,
        "torch_threads": torch.get_num_threads(),
        "classes": source.classes,
        "train_images": len(data.train_y),
        "holdout_images": len(data.holdout_y),
    }
    return states, measures
