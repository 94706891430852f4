"""Plumbing the harness and the plain-loop oracle share: synchronised step timing and its statistics."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pytorch_lightning as pl

from cass_bench.engine.timing import synchronize


def timed(fn: Callable[[], Any]) -> float:
    """Seconds ``fn`` takes, with queued CUDA work synchronised before and after."""
    synchronize()
    start = time.perf_counter()
    fn()
    synchronize()
    return time.perf_counter() - start


@dataclass
class StepTimes:
    """Wall time of every step of a timed run, grouped by epoch (the first epoch is warm-up).

    Attributes:
        epochs: seconds per step, one list per epoch.
    """

    epochs: list[list[float]] = field(default_factory=list)

    @property
    def steady(self) -> list[float]:
        """Step times after the first epoch (all of them if there is only one epoch)."""
        rest = [t for epoch in self.epochs[1:] for t in epoch]
        return rest or [t for epoch in self.epochs for t in epoch]

    @property
    def median_step_s(self) -> float:
        """Median seconds per step after the first epoch."""
        return statistics.median(self.steady)

    @property
    def epoch_step_s(self) -> float:
        """Median over the epochs after the first of (epoch time / steps): the statistic ``EpochClock`` gives."""
        epochs = self.epochs[1:] or self.epochs
        return statistics.median(sum(e) / len(e) for e in epochs)


class StepIntervals(pl.Callback):
    """Seconds between consecutive ``on_train_batch_end`` calls within an epoch: whole loop iterations.

    Each epoch's first step (which starts at the epoch boundary) is left out. Medians of these intervals are
    less sensitive than epoch times to bursts of load from other processes.

    Attributes:
        times: intervals per epoch.
    """

    def __init__(self) -> None:
        self.times = StepTimes()
        self._last: float | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.times.epochs.append([])
        self._last = None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        synchronize()
        now = time.perf_counter()
        if self._last is not None:
            self.times.epochs[-1].append(now - self._last)
        self._last = now
