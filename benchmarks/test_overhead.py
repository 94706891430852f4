"""Does the harness distort the CASS/DINO time ratio? The harness and the plain loops, side by side, one run.

For CASS, DINO-CNN and DINO-ViT in turn, the registry-built module trains through a Lightning Trainer built like
``protocol.pretrain``'s (timed by ``EpochClock``), then the plain-PyTorch loop of the same method trains on the
same fixed batches (timed step by step, summarised with the same statistic: median over the epochs after the
first of epoch time / steps). CASS trains both encoders in one step, so it is compared with DINO-CNN + DINO-ViT.

The acceptance check of the issue is that the two CASS/DINO ratios agree within 15% on a quiet 2-core CPU. Timing
is never asserted: the numbers go to ``extra_info`` (and so to the benchmark JSON) and are printed.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from benchmarks.harness import (
    OVERHEAD_EPOCHS, OVERHEAD_STEPS, build_method, device, fixed_batches, to_device, trainer_step_time,
)
from benchmarks.compare import OVERHEAD_KEYS, overhead_lines
from benchmarks.plain_loops import build_plain, time_steps
from cass_bench.config import BenchConfig
from cass_bench.data.bundle import ImageSet

AGREEMENT = 0.15


def side_by_side(cfg: BenchConfig, images: ImageSet, epochs: int, steps: int) -> dict[str, Any]:
    """Times harness and plain loop, alternating per method, and derives the CASS/DINO ratios.

    Args:
        cfg: the smoke config.
        images: training images.
        epochs: epochs per run (the first is warm-up).
        steps: steps (batches) per epoch.

    Returns:
        Seconds per step of each side and method, and the ratios with their relative difference.
    """
    dev = device()
    batch_size = cfg.batch_sizes[0]
    harness_s: dict[str, float] = {}
    plain_s: dict[str, float] = {}
    plain_median_s: dict[str, float] = {}
    flops: dict[str, int | None] = {}
    for index, key in enumerate(OVERHEAD_KEYS):
        torch.manual_seed(index)
        module = build_method(key, cfg, batch_size)
        batches = fixed_batches(module.transform, images, batch_size, steps, seed=index)
        timed = trainer_step_time(module, batches, epochs)
        harness_s[key], flops[key] = timed["step_s"], timed["flops_per_step"]
        del module
        plain = build_plain(key, cfg, batch_size=batch_size, total_steps=epochs * steps).to(dev)
        times = time_steps(plain, [to_device(views, dev) for views, _ in batches], epochs)
        plain_s[key], plain_median_s[key] = times.epoch_step_s, times.median_step_s
        del plain
    dino = ("dino-cnn", "dino-vit")
    harness_ratio = harness_s["cass"] / sum(harness_s[k] for k in dino)
    plain_ratio = plain_s["cass"] / sum(plain_s[k] for k in dino)
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
        "plain_median_step_s": plain_median_s,
        "harness_flops_per_step": flops,
        "harness_cass_dino_time_ratio": harness_ratio,
        "plain_cass_dino_time_ratio": plain_ratio,
        "relative_difference": harness_ratio / plain_ratio - 1,
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
