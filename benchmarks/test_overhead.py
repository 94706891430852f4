"""Does the harness distort the CASS/DINO time ratio? The harness and the plain loops, side by side, one run.

For CASS, DINO-CNN and DINO-ViT in turn, the registry-built module trains through a Lightning Trainer built by
``training.pretrain_trainer`` (timed by ``EpochClock``), and after each of its epochs the plain-PyTorch loop of the same
method trains one epoch on the same fixed batches (timed step by step, summarised with the same statistic: median
over the epochs after the first of epoch time / steps). Alternating epochs exposes both sides of a method to the
same load from other processes, so the ratio of ratios stays meaningful on a busy machine. CASS trains both
encoders in one step, so it is compared with DINO-CNN + DINO-ViT.

The acceptance check of the issue is that the two CASS/DINO ratios agree within 15% on a quiet 2-core CPU. Timing
is never asserted: the numbers go to ``extra_info`` (and so to the benchmark JSON) and are printed.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from benchmarks.harness import (
    OVERHEAD_EPOCHS, OVERHEAD_STEPS, build_method, device, fixed_batches, to_device, trainer_step_time,
)
from benchmarks.plain_loops import PlainMethod, build_plain, time_epoch
from benchmarks.timing import StepTimes
from cass_bench.bench_ratios import OVERHEAD_KEYS, overhead_lines, overhead_ratio
from cass_bench.config import BenchConfig
from cass_bench.data.bundle import ImageSet

AGREEMENT = 0.15


class PlainAlongside(pl.Callback):
    """Runs one epoch of the plain loop after each harness epoch, so both sides meet the same machine load.

    Attributes:
        times: the plain loop's step times, grouped by epoch.
    """

    def __init__(self, plain: PlainMethod, batches: list[list[torch.Tensor]]) -> None:
        self.plain, self.batches = plain, batches
        self.times = StepTimes()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        with torch.enable_grad():
            self.times.epochs.append(time_epoch(self.plain, self.batches, trainer.current_epoch))


def side_by_side(cfg: BenchConfig, images: ImageSet, epochs: int, steps: int) -> dict[str, Any]:
    """Times harness and plain loop, epoch by epoch in turn, per method, and derives the CASS/DINO ratios.

    Args:
        cfg: the smoke config.
        images: training images.
        epochs: epochs per run (the first is warm-up).
        steps: steps (batches) per epoch.

    Returns:
        Seconds per step of each side and method, and the ratios with their relative difference, both for the
        EpochClock statistic (median epoch time / steps) and for the median loop iteration.
    """
    dev = device()
    batch_size = cfg.batch_sizes[0]
    harness_s: dict[str, float] = {}
    harness_median_s: dict[str, float] = {}
    plain_s: dict[str, float] = {}
    plain_median_s: dict[str, float] = {}
    flops: dict[str, int | None] = {}
    for index, key in enumerate(OVERHEAD_KEYS):
        torch.manual_seed(index)
        module = build_method(key, cfg, batch_size)
        batches = fixed_batches(module.transform, images, batch_size, steps, seed=index)
        plain = build_plain(key, cfg, batch_size=batch_size, total_steps=epochs * steps, total_epochs=epochs).to(dev)
        alongside = PlainAlongside(plain, [to_device(views, dev) for views, _ in batches])
        timed = trainer_step_time(module, cfg, batches, epochs, after_epoch=[alongside])
        harness_s[key], harness_median_s[key] = timed["step_s"], timed["median_step_s"]
        flops[key] = timed["flops_per_step"]
        plain_s[key], plain_median_s[key] = alongside.times.epoch_step_s, alongside.times.median_step_s
        del module, plain, alongside

    harness_ratio, plain_ratio = overhead_ratio(harness_s), overhead_ratio(plain_s)
    return {
        "kind": "overhead",
        "epochs": epochs,
        "steps_per_epoch": steps,
        "batch_size": batch_size,
        "image_size": cfg.image_size,
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
        "harness_step_s": harness_s,
        "plain_step_s": plain_s,
        "harness_median_step_s": harness_median_s,
        "plain_median_step_s": plain_median_s,
        "harness_flops_per_step": flops,
        "harness_cass_dino_time_ratio": harness_ratio,
        "plain_cass_dino_time_ratio": plain_ratio,
        "relative_difference": harness_ratio / plain_ratio - 1,
        "median_relative_difference": overhead_ratio(harness_median_s) / overhead_ratio(plain_median_s) - 1,
        "harness_overhead": {k: harness_s[k] / plain_s[k] - 1 for k in OVERHEAD_KEYS},
        "agreement_threshold": AGREEMENT,
    }


def test_overhead_cass_vs_dino(benchmark: Any, cfg: BenchConfig, images: ImageSet,
                               capsys: pytest.CaptureFixture[str]) -> None:
    """Harness and plain-loop time per step of CASS and DINO (both encoders), in one run."""
    benchmark.group = "overhead"
    result: dict[str, Any] = {}

    def run() -> None:
        result.update(side_by_side(cfg, images, OVERHEAD_EPOCHS, OVERHEAD_STEPS))

    benchmark.pedantic(run, rounds=1, warmup_rounds=0, iterations=1)
    benchmark.extra_info.update({**result, "key": "overhead", "flops_per_step": None})
    with capsys.disabled():
        print("\n" + "\n".join(overhead_lines(result)))
