"""A plug-in method that runs out of memory on request, so tests can fail a cell the way a too-large batch does on a
GPU (``run --method-module tests.oom_method``): the toy method of :mod:`tests.toy_method`, whose first training
step raises ``torch.cuda.OutOfMemoryError`` while the environment sets :data:`OOM_ENV`. Production code holds no
such hook; the sweep sees the same error a real out-of-memory step raises.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import Tensor

from cass_bench.config.registry import MethodSpec
from tests.toy_method import Toy, ToyConfig, builder

OOM_ENV = "CASS_BENCH_TEST_OOM"
"""Set to 1 to make every pretraining step of this method raise out-of-memory."""


@dataclass(frozen=True)
class FlakyConfig(ToyConfig):
    """The toy recipe under the flaky method's own section (``flaky:``)."""


class Flaky(Toy):
    """The toy method, out of memory at its first step while :data:`OOM_ENV` is 1."""

    def pretrain_loss(self, views: list[Tensor]) -> tuple[Tensor, Tensor]:
        if os.environ.get(OOM_ENV) == "1":
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate 2.00 GiB ({OOM_ENV}=1)")
        return super().pretrain_loss(views)


METHOD = MethodSpec("flaky", "toy method that runs out of memory on request (tests)", joint=False,
                    build=builder(Flaky, FlakyConfig), color="tab:gray", recipe=FlakyConfig)
