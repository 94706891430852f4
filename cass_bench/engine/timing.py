"""The epoch clock: wall time per epoch, images, data wait, the training thread's CPU share and the other training
processes on the machine, as a record's :class:`~cass_bench.records.schema.PretrainTiming`.

Clocks are read with CUDA synchronised at both ends of an epoch; the first epoch (warm-up, worker start,
allocator growth) is reported apart from the median of the rest.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import pytorch_lightning as pl
import torch

from cass_bench.engine.neighbours import other_training
from cass_bench.records.schema import PretrainTiming

SAMPLE_EVERY = 10
"""Training steps between two counts of the other training processes (also counted at each epoch's ends)."""


def synchronize() -> None:
    """Waits for queued CUDA work so a clock read covers it (no-op without CUDA)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def batch_size_of(batch: Any) -> int:
    """Number of examples in a ``(inputs, labels)`` batch."""
    return int(batch[1].shape[0])


class EpochClock(pl.Callback):
    """Per-epoch wall time, images seen, the time spent waiting for the next batch, on CPU the training thread's CPU
    time, and the most other training processes seen on the machine.

    On CPU the training loop's thread is busy for the whole epoch unless the process is kept waiting (another job on
    the machine takes its cores, or the process is paused), so its CPU time over the wall time (``cpu_share``) says
    whether a time per epoch measured the method or the machine's other load. On an accelerator the thread waits on
    the device by design and no share is taken. The CPU share cannot see two runs that each keep a core of their
    own while sharing the machine's caches and memory bandwidth; the count of other training processes
    (:func:`cass_bench.engine.neighbours.other_training`, at each epoch's ends and every :data:`SAMPLE_EVERY` steps)
    does.

    Args:
        count_others: how the other training processes are counted (a test passes its own).

    Attributes:
        epoch_times: seconds per training epoch.
        epoch_images: images per epoch on this process.
        data_wait_s: seconds per epoch between the end of one step and the start of the next.
        epoch_cpu_s: CPU seconds of the training thread per epoch (empty on an accelerator).
        epoch_others: per epoch, the most other training processes seen.
    """

    def __init__(self, count_others: Callable[[], int] = other_training) -> None:
        self.count_others = count_others
        self.epoch_times: list[float] = []
        self.epoch_images: list[int] = []
        self.data_wait_s: list[float] = []
        self.epoch_cpu_s: list[float] = []
        self.epoch_others: list[int] = []
        self._start = self._mark = self._cpu_start = 0.0
        self._on_cpu = False

    def _sample(self) -> None:
        self.epoch_others[-1] = max(self.epoch_others[-1], int(self.count_others()))

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epoch_others.append(0)
        self._sample()
        synchronize()
        self._on_cpu = pl_module.device.type == "cpu"
        self._cpu_start = time.thread_time()
        self._start = self._mark = time.perf_counter()
        self.epoch_images.append(0)
        self.data_wait_s.append(0.0)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        self.data_wait_s[-1] += time.perf_counter() - self._mark

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.epoch_images[-1] += batch_size_of(batch)
        if batch_idx % SAMPLE_EVERY == SAMPLE_EVERY - 1:
            self._sample()
        self._mark = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        synchronize()
        self.epoch_times.append(time.perf_counter() - self._start)
        if self._on_cpu:
            self.epoch_cpu_s.append(time.thread_time() - self._cpu_start)
        self._sample()

    @property
    def total_time_s(self) -> float | None:
        """Wall time of every epoch together (None before the first)."""
        return sum(self.epoch_times) if self.epoch_times else None

    def images_per_s(self, world_size: int = 1) -> float | None:
        """Throughput over the measured epochs (every epoch after the first; the first when it is the only one)."""
        if not self.epoch_times:
            return None
        steady = self.epoch_times[1:] or self.epoch_times
        return world_size * sum(self.epoch_images[1:] or self.epoch_images) / sum(steady)

    def figures(self, world_size: int = 1) -> PretrainTiming:
        """The record's timing figures: first epoch apart, median of the rest, throughput, data wait, CPU share
        (None on an accelerator) and the most other training processes over the measured epochs."""
        if not self.epoch_times:
            return PretrainTiming(pretrain_threads=torch.get_num_threads())
        steady = self.epoch_times[1:] or self.epoch_times
        steady_wait = self.data_wait_s[1:] or self.data_wait_s
        steady_cpu = self.epoch_cpu_s[1:] or self.epoch_cpu_s
        steady_others = self.epoch_others[1:] or self.epoch_others
        return PretrainTiming(
            pretrain_epoch_time_s=statistics.median(steady),
            pretrain_first_epoch_time_s=self.epoch_times[0],
            pretrain_time_s=self.total_time_s,
            images_per_s=self.images_per_s(world_size),
            data_wait_share=sum(steady_wait) / sum(steady),
            pretrain_cpu_share=sum(steady_cpu) / sum(steady) if steady_cpu else None,
            pretrain_threads=torch.get_num_threads(),
            pretrain_other_processes=max(steady_others),
        )
