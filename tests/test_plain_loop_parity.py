"""The harness counts the same work as hand-written PyTorch loops, so its CASS/DINO/BYOL ratios are undistorted.

The harness's FLOPs per step (``count_step_flops``: the registry-built module's ``batch_loss`` on a meta-device copy,
with a batch of views from the method's own transform at the smoke size) must equal ``FlopCounterMode``'s count of one
step of the plain loop in ``benchmarks/plain_loops.py`` (on a meta-device copy too) on the same views. Given the
harness's weights, every plain loop must also compute the same loss and take the same optimiser steps (same
parameters, buffers and learning rates after two steps), with the momentum schedules running: every registered method on each of its runs, CASS also under its
cosine schedule with gradient accumulation, DINO also in the teacher-temperature warm-up of a short run (where
lightly's own uncut warm-up would differ) and after its last-layer freeze.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

from benchmarks.harness import (
    METHOD_KEYS, SCHEDULE_STEPS, HarnessStep, build_method, fixed_batches, smoke_config, split_key, train_images,
    trainer_step_time,
)
from benchmarks.plain_loops import build_plain, count_flops
from cass_bench.config.schema import BenchConfig
from cass_bench.engine.flops import count_step_flops

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
        harness = count_step_flops(module, batch)
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


STEP_CASES: dict[str, tuple[str, dict[str, Any], int, int | None]] = {
    **{key: (key, {}, 0, None) for key in METHOD_KEYS},
    "cass-cosine-accumulate": ("cass", {"schedule": "cosine", "accumulate_gradients": True}, 0, None),
    "dino-vit-temperature-warmup": ("dino-vit", {"warmup_teacher_temp": 0.02, "teacher_temp": 0.06}, 1, 3),
    "dino-cnn-after-freeze": ("dino-cnn", {"freeze_last_layer": 1}, 2, 2),
}
"""id -> (run key, recipe overrides of its method, epoch of the two steps, epochs of the run)."""


def test_every_run_of_every_method_is_pinned_step_for_step() -> None:
    assert set(METHOD_KEYS) <= {key for key, *_ in STEP_CASES.values()}


@pytest.mark.parametrize(("key", "overrides", "epoch", "total_epochs"), list(STEP_CASES.values()), ids=list(STEP_CASES))
def test_plain_loop_takes_the_harness_steps(cfg: BenchConfig, key: str, overrides: dict[str, Any], epoch: int,
                                           total_epochs: int | None) -> None:
    method, _ = split_key(key)
    cfg = cfg.with_recipe(dataclasses.replace(cfg.recipes[method], **overrides))
    module = build_method(key, cfg, BATCH)
    (batch,) = fixed_batches(module.transform, train_images(cfg), BATCH, 1)
    plain = build_plain(key, cfg, batch_size=BATCH, total_steps=SCHEDULE_STEPS, total_epochs=total_epochs)
    plain.load_state_dict(module.state_dict())
    step = HarnessStep(module, batch, total_epochs=total_epochs)
    step.epoch = plain.epoch = epoch
    for _ in range(2):
        torch.testing.assert_close(plain.train_step(batch[0]), step())
    assert [g["lr"] for g in plain.optimizer.param_groups] == [g["lr"] for g in step.optimizer.param_groups]
    for name, value in module.state_dict().items():
        torch.testing.assert_close(plain.state_dict()[name], value, msg=lambda m, n=name: f"{n}: {m}")


def test_the_overhead_benchmark_times_every_batch_it_is_given(cfg: BenchConfig) -> None:
    """The smoke config caps a run's epoch at ``pretrain_batches``; the timed harness must still train them all."""
    count = 10
    assert cfg.pretrain_batches is not None and cfg.pretrain_batches < count
    module = build_method("byol-vit", cfg, 2)
    batches = fixed_batches(module.transform, train_images(cfg), 2, count)
    timed = trainer_step_time(module, cfg, batches, epochs=2)
    assert len(timed["epoch_times_s"]) == 2
    assert timed["steps_timed"] == count - 1
