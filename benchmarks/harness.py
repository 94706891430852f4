"""The harness side of the benchmarks: registry-built modules, fixed view batches, one optimiser step, a Trainer.

A benchmarked *step* is what Lightning does in one ``training_step`` of the harness, through the same training
contract (``cass_bench.engine.trainer``) and without Lightning: the module's ``progress`` is set to the step, then its
``optimizer_zero_grad`` (it zeroes the gradients unless CASS's ``accumulate_gradients``), ``module.batch_loss(batch)``,
backward, the module's ``on_after_backward`` hook, gradient clipping at ``module.gradient_clip_val`` (as the
pretraining Trainer does), the optimiser step and the per-step scheduler step. The optimiser and scheduler are the
module's own ``build_optimizer(SCHEDULE_STEPS)``.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import pytorch_lightning as pl
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from benchmarks.timing import StepIntervals
from cass_bench.config.schema import ARCHS, BenchConfig
from cass_bench.config.load import load_config
from cass_bench.data.bundle import ImageSet
from cass_bench.data.embedded import embedded
from cass_bench.engine.logs import PRETRAIN, run_loggers
from cass_bench.engine.feature_collapse import FeatureCollapse
from cass_bench.engine.flops import StepFlops
from cass_bench.engine.memory import PeakMemory, peak_rss_mb
from cass_bench.engine.timing import EpochClock, synchronize
from cass_bench.methods.contract import PretrainMethod, ViewTransform
from cass_bench.config.registry import PretrainSetup, get_method, parse_run_key, run_keys
from cass_bench.engine.trainer import Optimization, Progress, pretrain_trainer

ROOT = Path(__file__).resolve().parent.parent
SMOKE_CONFIG = ROOT / "configs" / "smoke.yaml"
METHOD_KEYS = tuple(run_keys(ARCHS))
"""Every pretraining run of every registered method (a joint method: one key; the others: one per arch)."""
SCHEDULE_STEPS = 1000

ROUNDS = int(os.environ.get("CASS_BENCH_ROUNDS", "5"))
"""Measured rounds per step benchmark (few, so the smoke set stays within about three minutes on 2 CPU cores)."""
WARMUP_ROUNDS = int(os.environ.get("CASS_BENCH_WARMUP_ROUNDS", "1"))
OVERHEAD_EPOCHS = int(os.environ.get("CASS_BENCH_OVERHEAD_EPOCHS", "5"))
"""Epochs of the harness-vs-plain-loop comparison; the first is warm-up. The sides alternate epoch by epoch, so more
epochs let slow drifts of the machine's speed fall on both sides alike (at 3 epochs one method's ratio spread over
8 points across three runs on the idle CPU: 1.009-1.089)."""
OVERHEAD_STEPS = int(os.environ.get("CASS_BENCH_OVERHEAD_STEPS", "16"))
"""Steps per epoch of the harness-vs-plain-loop comparison (an epoch's first step is not an interval of the harness:
5 epochs of 16 steps give the harness 60 timed iterations after warm-up and the plain loop 64)."""
OVERHEAD_BATCH = int(os.environ.get("CASS_BENCH_OVERHEAD_BATCH", "8"))
"""Batch size of the harness-vs-plain-loop comparison (smaller than the smoke config's, so five methods fit the
benchmarks' time; a smaller step makes a fixed per-step overhead weigh more, not less)."""


def smoke_config() -> BenchConfig:
    """The smoke configuration (`configs/smoke.yaml`: 16 px, resnet18 + vit_tiny with patch 4, batch 16)."""
    return load_config(SMOKE_CONFIG)


def device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def split_key(key: str) -> tuple[str, tuple[str, ...]]:
    """A run key's method and the encoders it trains (see ``cass_bench.config.registry.parse_run_key``)."""
    run = parse_run_key(key, ARCHS)
    return run.method, run.archs


def build_method(key: str, cfg: BenchConfig, batch_size: int, seed: int = 0) -> PretrainMethod:
    """Builds a pretraining module through the registry, as the protocol does.

    Args:
        key: a run key (see ``METHOD_KEYS``).
        cfg: benchmark config.
        batch_size: per-device batch size.
        seed: seed of the run.
    """
    method, archs = split_key(key)
    return get_method(method).make(PretrainSetup(cfg=cfg, archs=archs, batch_size=batch_size, seed=seed))


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
        module: a PretrainMethod (its ``build_optimizer`` and ``progress`` are used) or another module with
            ``batch_loss``, given its ``optimization``.
        batch: the fixed batch every step trains on (already on the module's device).
        optimization: the optimiser and schedule; None asks a PretrainMethod for ``build_optimizer(SCHEDULE_STEPS)``.
        total_epochs: epochs of the run the schedules assume (None: unknown).

    Attributes:
        epoch: the epoch the next step belongs to (epoch-based schedules read it).
    """

    def __init__(self, module: pl.LightningModule, batch: Any, optimization: Optimization | None = None,
                 total_epochs: int | None = None) -> None:
        self.module, self.batch = module, batch
        if optimization is None:
            assert isinstance(module, PretrainMethod), "a module without build_optimizer needs its optimization"
            optimization = module.build_optimizer(SCHEDULE_STEPS)
        self.optimizer = optimization.optimizer
        self.scheduler = optimization.scheduler
        self.clip = getattr(module, "gradient_clip_val", None)
        self.params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.total_epochs = total_epochs
        self.epoch = 0
        self.steps = 0
        module.train()

    def __call__(self) -> Tensor:
        """Takes one step; returns the (detached) loss it optimised."""
        if isinstance(self.module, PretrainMethod):
            self.module.progress = Progress(self.steps, SCHEDULE_STEPS, self.epoch, self.total_epochs)
        self.module.optimizer_zero_grad(self.epoch, self.steps, self.optimizer)
        loss = self.module.batch_loss(self.batch)
        loss.backward()
        self.module.on_after_backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.optimizer.step()
        self.scheduler.step()
        self.steps += 1
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
    return {"peak_memory_mb": peak_rss_mb(), "peak_memory_kind": "process_peak_rss"}


class _Batches(Dataset):
    def __init__(self, batches: Sequence[Any]) -> None:
        self.batches = list(batches)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> Any:
        return self.batches[index]


def trainer_step_time(module: PretrainMethod, cfg: BenchConfig, batches: Sequence[Any], epochs: int,
                      after_epoch: Sequence[pl.Callback] = (), probe: Tensor | None = None) -> dict[str, Any]:
    """Trains ``module`` through the harness's pretraining Trainer (``training.pretrain_trainer``) with the callbacks
    a pretraining run has (``EpochClock``, ``FeatureCollapse`` on ``probe``, ``PeakMemory``, ``StepFlops``) and the
    curves logged as a run logs them (to a temporary folder).

    The loader hands out the fixed, already-augmented ``batches`` (no transform work), so the time is that of the
    training loop alone; the data-loader benchmarks measure the transforms. Every batch is trained in every epoch,
    whatever the config's ``pretrain_batches`` (the smoke config caps its epochs at 8 batches).

    Args:
        module: a registry-built pretraining module.
        cfg: the benchmark config (placement and precision of the Trainer).
        batches: ``(views, labels)`` batches, one epoch's worth.
        epochs: epochs to train; the first is warm-up.
        after_epoch: callbacks placed after the clocks, so work they do at an epoch's end is not timed.
        probe: images of the collapse probe (None: no probe).

    Returns:
        ``step_s`` (EpochClock: median steady epoch time / steps per epoch), ``median_step_s`` (median loop
        iteration after the first epoch), ``steps_timed`` (iterations that median is over), ``first_epoch_time_s``,
        ``epoch_times_s``, ``data_wait_share`` and the harness's ``flops_per_step`` (StepFlops).
    """
    clock, memory, flops, intervals = EpochClock(), PeakMemory(), StepFlops(), StepIntervals()
    collapse = [FeatureCollapse(probe)] if probe is not None else []
    every_batch = dataclasses.replace(cfg, pretrain_batches=None)
    with tempfile.TemporaryDirectory(prefix="cass-bench-logs-") as logs:
        callbacks = [clock, *collapse, memory, flops, intervals, *after_epoch]
        loggers = run_loggers(Path(logs), PRETRAIN, "benchmark")
        trainer = pretrain_trainer(module, every_batch, epochs, callbacks, loggers)
        trainer.fit(module, DataLoader(_Batches(batches), batch_size=None, shuffle=False))
    timing = clock.figures()
    return {
        "step_s": timing.pretrain_epoch_time_s / len(batches),
        "median_step_s": intervals.times.median_step_s,
        "steps_timed": len(intervals.times.steady),
        "first_epoch_time_s": timing.pretrain_first_epoch_time_s,
        "epoch_times_s": clock.epoch_times,
        "data_wait_share": timing.data_wait_share,
        "flops_per_step": flops.flops_per_step,
    }
