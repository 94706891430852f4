"""Shared settings and fixtures of the smoke benchmarks (``python -m pytest benchmarks --benchmark-only``).

Round and step counts live in ``benchmarks.harness`` (raise them through the environment for a longer run). The
session keeps freed host memory as a run's cell does (:func:`cass_bench.engine.allocator.keep_freed_memory`), so harness
and plain loop are timed under the same allocator settings as the runs.
"""

from __future__ import annotations

from typing import Callable

import pytest

from benchmarks.harness import build_method, smoke_config, train_images
from cass_bench.engine.allocator import keep_freed_memory
from cass_bench.config.schema import BenchConfig
from cass_bench.data.bundle import ImageSet
from cass_bench.methods.contract import PretrainMethod

keep_freed_memory()


@pytest.fixture(scope="session")
def cfg() -> BenchConfig:
    """The smoke configuration."""
    return smoke_config()


@pytest.fixture(scope="session")
def images(cfg: BenchConfig) -> ImageSet:
    """Training images of the embedded dataset at the smoke image size."""
    return train_images(cfg)


@pytest.fixture(scope="session")
def method_factory(cfg: BenchConfig) -> Callable[[str], PretrainMethod]:
    """Builds (once per session) the registry module of a run key (see ``benchmarks.harness.METHOD_KEYS``)."""
    cache: dict[str, PretrainMethod] = {}

    def get(key: str) -> PretrainMethod:
        if key not in cache:
            cache[key] = build_method(key, cfg, cfg.batch_sizes[0])
        return cache[key]

    return get
