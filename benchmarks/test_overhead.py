"""Does the harness cost anything measurable? Every method's harness step against its plain-PyTorch loop, one run.

For every pretraining run (CASS, DINO-cnn, DINO-vit, BYOL-cnn, BYOL-vit) in turn, the registry-built module trains
through the Trainer built by ``training.pretrain_trainer`` with every callback a pretraining run has (epoch clock,
collapse probe, peak memory, FLOP count, curves logged), and after each of its epochs the plain-PyTorch loop of the
same method trains one epoch on the same fixed batches. Alternating epochs exposes both sides to the same load from
other processes. A side's step time is the median, over the epochs after the first, of whole loop iterations (the
harness: from one batch's end to the next, data fetching and every hook included; the plain loop: one
``train_step``), 60 of them per side at the default counts. The issue's target is harness/plain <= 1.05 for
every method; the CASS/(DINO-cnn + DINO-vit) time ratios of both sides are compared too (within 15%).

Timing is never asserted: the numbers go to ``extra_info`` (and so to the benchmark JSON) and are printed.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from benchmarks.harness import (
    METHOD_KEYS, OVERHEAD_BATCH, OVERHEAD_EPOCHS, OVERHEAD_STEPS, build_method, device, fixed_batches, to_device,
    trainer_step_time,
)
from benchmarks.plain_loops import PlainMethod, build_plain, time_epoch
from benchmarks.timing import StepTimes
from cass_bench.bench.ratios import OVERHEAD_BUDGET, overhead_lines, overhead_ratio
from cass_bench.config.schema import BenchConfig
from cass_bench.data.bundle import ImageSet

AGREEMENT = 0.15
PROBE_IMAGES = 32


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


def side_by_side(cfg: BenchConfig, images: ImageSet, epochs: int, steps: int, batch_size: int) -> dict[str, Any]:
    """Times harness and plain loop, epoch by epoch in turn, for every run key.

    Args:
        cfg: the smoke config.
        images: training images.
        epochs: epochs per run (the first is warm-up).
        steps: steps (batches) per epoch.
        batch_size: images per batch.

    Returns:
        Per run key: seconds per step of each side (median loop iteration, and EpochClock's median epoch time /
        steps), iterations timed, harness/plain ratio, the harness's data-wait share and FLOPs; and the CASS/DINO
        time ratios of both sides with their relative difference.
    """
    dev = device()
    sides: dict[str, dict[str, Any]] = {name: {} for name in (
        "harness_step_s", "plain_step_s", "harness_median_step_s", "plain_median_step_s", "harness_steps_timed",
        "plain_steps_timed", "data_wait_share", "harness_flops_per_step")}
    for index, key in enumerate(METHOD_KEYS):
        torch.manual_seed(index)
        module = build_method(key, cfg, batch_size)
        batches = fixed_batches(module.transform, images, batch_size, steps, seed=index)
        probe = torch.cat([views[0] for views, _ in batches])[:PROBE_IMAGES]
        plain = build_plain(key, cfg, batch_size=batch_size, total_steps=epochs * steps, total_epochs=epochs).to(dev)
        alongside = PlainAlongside(plain, [to_device(views, dev) for views, _ in batches])
        timed = trainer_step_time(module, cfg, batches, epochs, after_epoch=[alongside], probe=probe)
        for name, value in (("harness_step_s", timed["step_s"]), ("plain_step_s", alongside.times.epoch_step_s),
                            ("harness_median_step_s", timed["median_step_s"]),
                            ("plain_median_step_s", alongside.times.median_step_s),
                            ("harness_steps_timed", timed["steps_timed"]),
                            ("plain_steps_timed", len(alongside.times.steady)),
                            ("data_wait_share", timed["data_wait_share"]),
                            ("harness_flops_per_step", timed["flops_per_step"])):
            sides[name][key] = value
        del module, plain, alongside

    harness_median, plain_median = sides["harness_median_step_s"], sides["plain_median_step_s"]
    ratio = {k: harness_median[k] / plain_median[k] for k in METHOD_KEYS}
    harness_cass_dino, plain_cass_dino = overhead_ratio(sides["harness_step_s"]), overhead_ratio(sides["plain_step_s"])
    return {
        "kind": "overhead",
        "epochs": epochs,
        "steps_per_epoch": steps,
        "batch_size": batch_size,
        "image_size": cfg.image_size,
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
        **sides,
        "harness_plain_ratio": ratio,
        "harness_plain_epoch_ratio": {k: sides["harness_step_s"][k] / sides["plain_step_s"][k] for k in METHOD_KEYS},
        "harness_overhead": {k: r - 1 for k, r in ratio.items()},
        "overhead_budget": OVERHEAD_BUDGET,
        "harness_cass_dino_time_ratio": harness_cass_dino,
        "plain_cass_dino_time_ratio": plain_cass_dino,
        "relative_difference": harness_cass_dino / plain_cass_dino - 1,
        "median_relative_difference": overhead_ratio(harness_median) / overhead_ratio(plain_median) - 1,
        "agreement_threshold": AGREEMENT,
    }


def test_overhead_every_method(benchmark: Any, cfg: BenchConfig, images: ImageSet,
                               capsys: pytest.CaptureFixture[str]) -> None:
    """Harness and plain-loop time per step of every pretraining run, in one run."""
    benchmark.group = "overhead"
    result: dict[str, Any] = {}

    def run() -> None:
        result.update(side_by_side(cfg, images, OVERHEAD_EPOCHS, OVERHEAD_STEPS, OVERHEAD_BATCH))

    benchmark.pedantic(run, rounds=1, warmup_rounds=0, iterations=1)
    benchmark.extra_info.update({**result, "key": "overhead", "flops_per_step": None})
    with capsys.disabled():
        print("\n" + "\n".join(overhead_lines(result)))
