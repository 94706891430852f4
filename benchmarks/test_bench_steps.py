"""Smoke benchmarks: one pretraining step per method, one fine-tuning step per encoder, one loader batch per method.

Each benchmark runs in pedantic mode (``ROUNDS`` rounds after ``WARMUP_ROUNDS`` warm-up rounds, one iteration
each) and stores in ``extra_info`` the FLOPs of one step (``cass_bench.engine.flops.count_step_flops``), the peak
memory (CUDA max allocated when on a GPU, else the process's peak RSS) and the shapes it ran on. A step is the
one ``benchmarks.harness.HarnessStep`` defines: forward, backward and optimiser step of the module's loss on
one fixed batch made by the method's own transform (the fine-tuning step: Adam at ``finetune.lr``, cosine-annealed,
as ``FinetuneModule`` configures it).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
import torch

from benchmarks.harness import (
    METHOD_KEYS, ROUNDS, SCHEDULE_STEPS, WARMUP_ROUNDS, HarnessStep, device, fixed_batches, peak_memory,
    reset_peak_memory, split_key, to_device,
)
from cass_bench.config.schema import ARCHS, BenchConfig
from cass_bench.data.bundle import ImageSet
from cass_bench.data.loaders import finetune_train_transform, make_loader
from cass_bench.models.encoders import build_encoder
from cass_bench.evaluation.finetune import FinetuneModule
from cass_bench.engine.flops import count_step_flops
from cass_bench.methods.contract import PretrainMethod
from cass_bench.run.cell import param_count
from cass_bench.config.registry import pretraining_methods, run_key
from cass_bench.engine.trainer import Optimization

LOADER_METHODS = {method: run_key(method, ARCHS[:1]) for method in pretraining_methods()}
"""Each pretraining method's first run key, whose module's transform the loader benchmark uses."""


def _run(benchmark: Any, fn: Callable[[], Any]) -> None:
    benchmark.pedantic(fn, rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS, iterations=1)


def _common_info(cfg: BenchConfig, batch_size: int, views: list[torch.Tensor]) -> dict[str, Any]:
    dev = device()
    return {
        "batch_size": batch_size,
        "image_size": cfg.image_size,
        "views": [list(v.shape) for v in views],
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
        "rounds": ROUNDS,
        "warmup_rounds": WARMUP_ROUNDS,
    }


@pytest.mark.parametrize("key", METHOD_KEYS)
def test_pretrain_step(benchmark: Any, key: str, cfg: BenchConfig, images: ImageSet,
                       method_factory: Callable[[str], PretrainMethod]) -> None:
    """One pretraining step of a registry-built method on a fixed batch of its own views."""
    benchmark.group = "pretrain-step"
    dev = device()
    batch_size = cfg.batch_sizes[0]
    module = method_factory(key).to(dev)
    (batch,) = fixed_batches(module.transform, images, batch_size, 1)
    batch = to_device(batch, dev)
    flops = count_step_flops(module, batch)
    step = HarnessStep(module, batch)
    reset_peak_memory(dev)
    _run(benchmark, step)
    method, archs = split_key(key)
    benchmark.extra_info.update({
        "kind": "pretrain_step", "key": key, "method": method, "archs": list(archs),
        "flops_per_step": flops, "flops_per_image": flops / batch_size, "params": param_count(module),
        **_common_info(cfg, batch_size, batch[0]), **peak_memory(dev),
    })


@pytest.mark.parametrize("arch", ["cnn", "vit"])
def test_finetune_step(benchmark: Any, arch: str, cfg: BenchConfig, images: ImageSet) -> None:
    """One fine-tuning step (encoder + linear head, weighted focal loss, Adam) on a fixed labelled batch."""
    benchmark.group = "finetune-step"
    dev = device()
    ft = cfg.finetune
    batch_size = ft.batch_size
    encoder = build_encoder(arch, cfg.backbones, cfg.image_size, seed=0, init=cfg.init)
    num_classes = 10
    module = FinetuneModule(encoder, num_classes, "multiclass", np.ones(num_classes, dtype=np.float32),
                            ft.lr, ft.focal_alpha, ft.focal_gamma).to(dev)
    transform = finetune_train_transform(cfg.image_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        x = torch.stack([transform(images.images.load(i)) for i in range(batch_size)])
    y = torch.as_tensor(images.labels[:batch_size], dtype=torch.long)
    batch = to_device((x, y), dev)
    flops = count_step_flops(module, batch)
    optimization = Optimization.cosine(torch.optim.Adam(module.parameters(), lr=ft.lr), SCHEDULE_STEPS)
    step = HarnessStep(module, batch, optimization)
    reset_peak_memory(dev)
    _run(benchmark, step)
    benchmark.extra_info.update({
        "kind": "finetune_step", "key": f"finetune-{arch}", "method": "finetune", "archs": [arch],
        "flops_per_step": flops, "flops_per_image": flops / batch_size, "params": param_count(module),
        **_common_info(cfg, batch_size, [x]), **peak_memory(dev),
    })


@pytest.mark.parametrize("method", list(LOADER_METHODS))
def test_loader_batch(benchmark: Any, method: str, cfg: BenchConfig, images: ImageSet,
                      method_factory: Callable[[str], PretrainMethod]) -> None:
    """One batch of the pretraining loader with the method's transform (``cfg.num_workers`` workers)."""
    benchmark.group = "loader-batch"
    batch_size = cfg.batch_sizes[0]
    transform = method_factory(LOADER_METHODS[method]).transform
    loader = make_loader(images, transform, batch_size, True, cfg.num_workers, drop_last=True)
    torch.manual_seed(0)
    result: dict[str, Any] = {}

    def one_batch() -> None:
        result["batch"] = next(iter(loader))

    _run(benchmark, one_batch)
    views = result["batch"][0]
    median = benchmark.stats.stats.median if benchmark.stats is not None else None  # None: --benchmark-disable
    benchmark.extra_info.update({
        "kind": "loader_batch", "key": f"loader-{method}", "method": method, "archs": [],
        "flops_per_step": None, "flops_per_image": None, "num_workers": cfg.num_workers,
        "images_per_s": batch_size / median if median else None,
        **_common_info(cfg, batch_size, list(views)), **peak_memory(device()),
    })
