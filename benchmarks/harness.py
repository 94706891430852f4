"""The harness side of the benchmarks: registry-built modules, fixed view batches, one optimiser step, a Trainer.

A benchmarked *step* is what Lightning does in one ``training_step`` of the harness, without Lightning: the module's
``optimizer_zero_grad`` (it zeroes the gradients unless CASS's ``accumulate_gradients``), ``module.batch_loss(batch)``,
backward, the module's ``on_after_backward`` hook, gradient clipping at ``module.gradient_clip_val`` (as the protocol's
Trainer does), the optimiser step and the per-step scheduler step. The optimiser and scheduler are the module's own
``configure_optimizers()``, called with a stand-in trainer that only tells the schedule length; the stand-in is
detached afterwards, so momentum schedules use their start value.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

import pytorch_lightning as pl
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from cass_bench.config import BenchConfig, load_config
from cass_bench.data.bundle import ImageSet
from cass_bench.data.embedded import embedded
from cass_bench.measure import EpochClock, PeakMemory, StepFlops, synchronize
from cass_bench.method import PretrainMethod, ViewTransform
from cass_bench.protocol import pretrain_trainer
from cass_bench.registry import PretrainSetup, get_method

ROOT = Path(__file__).resolve().parent.parent
SMOKE_CONFIG = ROOT / "configs" / "smoke.yaml"
METHOD_KEYS = ("cass", "dino-cnn", "dino-vit", "byol-cnn", "byol-vit")
SCHEDULE_STEPS = 1000

ROUNDS = int(os.environ.get("CASS_BENCH_ROUNDS", "5"))
"""Measured rounds per step benchmark (few, so the smoke set stays within about three minutes on 2 CPU cores)."""
WARMUP_ROUNDS = int(os.environ.get("CASS_BENCH_WARMUP_ROUNDS", "1"))
OVERHEAD_EPOCHS = int(os.environ.get("CASS_BENCH_OVERHEAD_EPOCHS", "4"))
"""Epochs of the harness-vs-plain-loop comparison; the first is warm-up."""
OVERHEAD_STEPS = int(os.environ.get("CASS_BENCH_OVERHEAD_STEPS", "8"))
"""Steps per epoch of the harness-vs-plain-loop comparison."""


def smoke_config() -> BenchConfig:
    """The smoke configuration (32 px, resnet18 + vit_tiny with patch 8, batch 16)."""
    return load_config(SMOKE_CONFIG)


def device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def split_key(key: str) -> tuple[str, tuple[str, ...]]:
    """``dino-vit`` -> (``dino``, (``vit``,)); ``cass`` -> (``cass``, (``cnn``, ``vit``))."""
    method, _, arch = key.partition("-")
    return method, ((arch,) if arch else ("cnn", "vit"))


def build_method(key: str, cfg: BenchConfig, batch_size: int, seed: int = 0) -> PretrainMethod:
    """Builds a pretraining module through the registry, as the protocol does.

    Args:
        key: ``cass`` or ``<method>-<arch>`` (see ``METHOD_KEYS``).
        cfg: benchmark config.
        batch_size: per-device batch size.
        seed: seed of the run.
    """
    method, archs = split_key(key)
    build = get_method(method).build
    assert build is not None, f"{method} has no pretraining module"
    return build(PretrainSetup(cfg=cfg, archs=archs, batch_size=batch_size, seed=seed))


def train_images(cfg: BenchConfig) -> ImageSet:
    """The training split of the embedded dataset at the config's image size."""
    return embedded(cfg.image_size, cfg.split_seed).train


def view_batch(transform: ViewTransform, images: Sequence[Image.Image]) -> tuple[list[Tensor], Tensor]:
    """One ``(views, labels)`` pretraining batch: ``transform`` applied to each image, stacked view by view."""
    per_image = [transform(image) for image in images]
    return [torch.stack(views) for views in zip(*per_image)], torch.zeros(len(images), dtype=torch.long)


def fixed_batches(transform: ViewTransform, images: ImageSet, batch_size: int, count: int,
                  seed: int = 0) -> list[tuple[list[Tensor], Tensor]]:
    """``count`` consecutive pretraining batches of the first images, with seeded augmentations."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return [view_batch(transform, [images.images.load(i) for i in range(k * batch_size, (k + 1) * batch_size)])
                for k in range(count)]


def to_device(batch: Any, dev: torch.device) -> Any:
    """Moves every tensor of a (nested) batch to ``dev``."""
    if isinstance(batch, Tensor):
        return batch.to(dev)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, dev) for b in batch)
    return batch


class HarnessStep:
    """One training step of a module with ``batch_loss``, using the module's own optimiser and schedule.

    Args:
        module: a PretrainMethod or FinetuneModule.
        batch: the fixed batch every step trains on (already on the module's device).
    """

    def __init__(self, module: pl.LightningModule, batch: Any) -> None:
        self.module, self.batch = module, batch
        module.trainer = SimpleNamespace(estimated_stepping_batches=SCHEDULE_STEPS, max_epochs=None,
                                         global_step=0, current_epoch=0)
        config = module.configure_optimizers()
        module.trainer = None
        self.optimizer: torch.optim.Optimizer = config["optimizer"]
        self.scheduler = config["lr_scheduler"]["scheduler"]
        self.clip = getattr(module, "gradient_clip_val", None)
        self.params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.device = next(module.parameters()).device
        self.steps = 0
        module.train()

    def __call__(self) -> Tensor:
        """Takes one step; returns the (detached) loss it optimised."""
        self.module.optimizer_zero_grad(0, self.steps, self.optimizer)
        loss = self.module.batch_loss(self.batch)
        loss.backward()
        self.module.on_after_backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.optimizer.step()
        self.scheduler.step()
        self.steps += 1
        if self.device.type == "cuda":
            synchronize()
        return loss.detach()


def reset_peak_memory(dev: torch.device) -> None:
    """Resets CUDA's peak counters (nothing to reset for process RSS)."""
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)


def peak_memory(dev: torch.device) -> dict[str, Any]:
    """Peak memory: CUDA max allocated since the last reset, else the process's peak RSS (whole session)."""
    if dev.type == "cuda":
        synchronize()
        return {"peak_memory_mb": torch.cuda.max_memory_allocated(dev) / 2**20,
                "peak_memory_kind": "cuda_max_allocated"}
    return {"peak_memory_mb": PeakMemory.peak_rss_mb(), "peak_memory_kind": "process_peak_rss"}


class _Batches(Dataset):
    def __init__(self, batches: Sequence[Any]) -> None:
        self.batches = list(batches)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> Any:
        return self.batches[index]


class StepIntervals(pl.Callback):
    """Seconds between consecutive ``on_train_batch_end`` calls within an epoch: whole loop iterations.

    Each epoch's first step (which starts at the epoch boundary) is left out. Medians of these intervals are
    less sensitive than epoch times to bursts of load from other processes.

    Attributes:
        epochs: intervals per epoch.
    """

    def __init__(self) -> None:
        self.epochs: list[list[float]] = []
        self._last: float | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epochs.append([])
        self._last = None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        synchronize()
        now = time.perf_counter()
        if self._last is not None:
            self.epochs[-1].append(now - self._last)
        self._last = now

    def median_s(self) -> float:
        """Median interval after the first epoch (all epochs if there is only one)."""
        steady = [t for e in self.epochs[1:] for t in e] or [t for e in self.epochs for t in e]
        return statistics.median(steady)


def trainer_step_time(module: PretrainMethod, cfg: BenchConfig, batches: Sequence[Any], epochs: int,
                      after_epoch: Sequence[pl.Callback] = ()) -> dict[str, Any]:
    """Trains ``module`` through the harness's pretraining Trainer (``protocol.pretrain_trainer``), timed by EpochClock.

    The loader hands out the fixed, already-augmented ``batches`` (no transform work), so the time is that of the
    training loop alone; the data-loader benchmarks measure the transforms.

    Args:
        module: a registry-built pretraining module.
        cfg: the benchmark config (placement and precision of the Trainer).
        batches: ``(views, labels)`` batches, one epoch's worth.
        epochs: epochs to train; the first is warm-up.
        after_epoch: callbacks placed after the clocks, so work they do at an epoch's end is not timed.

    Returns:
        ``step_s`` (EpochClock: median steady epoch time / steps per epoch), ``median_step_s`` (median loop
        iteration), ``first_epoch_time_s``, ``epoch_times_s`` and the harness's ``flops_per_step`` (StepFlops).
    """
    clock, memory, flops, intervals = EpochClock(), PeakMemory(), StepFlops(), StepIntervals()
    trainer = pretrain_trainer(module, cfg, epochs, [clock, memory, flops, intervals, *after_epoch])
    trainer.fit(module, DataLoader(_Batches(batches), batch_size=None, shuffle=False))
    summary = clock.summary()
    return {
        "step_s": summary["epoch_time_s"] / len(batches),
        "median_step_s": intervals.median_s(),
        "first_epoch_time_s": summary["first_epoch_time_s"],
        "epoch_times_s": clock.epoch_times,
        "flops_per_step": flops.flops_per_step,
    }
