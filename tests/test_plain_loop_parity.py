"""The harness counts the same work as hand-written PyTorch loops, so its CASS/DINO/BYOL ratios are undistorted.

The harness's FLOPs per step (``count_step_flops`` on the registry-built module's ``batch_loss``, with a batch of
views from the method's own transform at the smoke size) must equal ``FlopCounterMode``'s count of one step of the
plain loop in ``benchmarks/plain_loops.py`` on the same views. Given the harness's weights, every plain loop must
also compute the same loss and take the same optimiser steps (same parameters, buffers and learning rates after two
steps): CASS under both of its schedules and with gradient accumulation, DINO and BYOL on each encoder.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

from benchmarks.harness import (
    METHOD_KEYS, SCHEDULE_STEPS, HarnessStep, build_method, fixed_batches, smoke_config, train_images,
)
from benchmarks.plain_loops import build_plain, count_flops
from cass_bench.config import BenchConfig
from cass_bench.measure import count_step_flops

BATCH = 16


@pytest.fixture(scope="module")
def cfg() -> BenchConfig:
    return smoke_config()


@pytest.fixture(scope="module")
def step_flops(cfg: BenchConfig) -> dict[str, tuple[int, int]]:
    """(harness FLOPs, plain-loop FLOPs) of one step per method key, on the same batch of views."""
    images = train_images(cfg)
    counts = {}
    for key in METHOD_KEYS:
        module = build_method(key, cfg, BATCH)
        (batch,) = fixed_batches(module.transform, images, BATCH, 1)
        harness = count_step_flops(module, lambda: module.batch_loss(batch))
        del module
        counts[key] = (harness, count_flops(build_plain(key, cfg, batch_size=BATCH), batch[0]))
    return counts


@pytest.mark.parametrize("key", METHOD_KEYS)
def test_harness_flops_per_step_equal_the_plain_loop(step_flops: dict[str, tuple[int, int]], key: str) -> None:
    harness, plain = step_flops[key]
    assert harness > 0
    assert harness == pytest.approx(plain, rel=0.01)


@pytest.mark.parametrize("baseline", [("dino-cnn", "dino-vit"), ("byol-cnn", "byol-vit")])
def test_cass_flops_ratio_matches_the_plain_loop(step_flops: dict[str, tuple[int, int]],
                                                 baseline: tuple[str, str]) -> None:
    harness = step_flops["cass"][0] / sum(step_flops[k][0] for k in baseline)
    plain = step_flops["cass"][1] / sum(step_flops[k][1] for k in baseline)
    assert harness == pytest.approx(plain, rel=0.01)
    assert harness < 1


STEP_CASES = {
    "cass": ("cass", {}),
    "cass-cosine-accumulate": ("cass", {"schedule": "cosine", "accumulate_gradients": True}),
    "dino-cnn": ("dino-cnn", {}),
    "dino-vit": ("dino-vit", {}),
    "byol-cnn": ("byol-cnn", {}),
    "byol-vit": ("byol-vit", {}),
}


@pytest.mark.parametrize(("key", "cass_overrides"), list(STEP_CASES.values()), ids=list(STEP_CASES))
def test_plain_loop_takes_the_harness_steps(cfg: BenchConfig, key: str, cass_overrides: dict[str, Any]) -> None:
    cfg = dataclasses.replace(cfg, cass=dataclasses.replace(cfg.cass, **cass_overrides))
    module = build_method(key, cfg, BATCH)
    (batch,) = fixed_batches(module.transform, train_images(cfg), BATCH, 1)
    plain = build_plain(key, cfg, batch_size=BATCH, total_steps=SCHEDULE_STEPS)
    plain.load_state_dict(module.state_dict())
    step = HarnessStep(module, batch)
    for _ in range(2):
        torch.testing.assert_close(plain.train_step(batch[0]), step())
    assert [g["lr"] for g in plain.optimizer.param_groups] == [g["lr"] for g in step.optimizer.param_groups]
    for name, value in module.state_dict().items():
        torch.testing.assert_close(plain.state_dict()[name], value, msg=lambda m, n=name: f"{n}: {m}")
