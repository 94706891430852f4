"""Peak memory of a training run: GPU memory allocated and reserved per device, and the process's peak RSS, as a
record's :class:`~cass_bench.records.schema.PretrainMemory`."""

from __future__ import annotations

import resource

import pytorch_lightning as pl
import torch

from cass_bench.engine.timing import synchronize
from cass_bench.records.schema import PretrainMemory


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakMemory(pl.Callback):
    """Peak GPU memory (allocated and reserved, per device; reset at fit start) and peak process RSS.

    Attributes:
        allocated_mb, reserved_mb: one value per device (rank), empty without CUDA.
    """

    def __init__(self) -> None:
        self.allocated_mb: list[float] = []
        self.reserved_mb: list[float] = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if pl_module.device.type != "cuda":
            return
        synchronize()
        peaks = torch.tensor(
            [torch.cuda.max_memory_allocated(pl_module.device), torch.cuda.max_memory_reserved(pl_module.device)],
            dtype=torch.float64, device=pl_module.device,
        ) / 2**20
        gathered = trainer.strategy.all_gather(peaks).reshape(-1, 2).cpu()
        self.allocated_mb = gathered[:, 0].tolist()
        self.reserved_mb = gathered[:, 1].tolist()

    def figures(self) -> PretrainMemory:
        """The record's memory figures: the largest device's peaks, every device's, and the process's peak RSS."""
        return PretrainMemory(
            peak_gpu_mem_mb=max(self.allocated_mb) if self.allocated_mb else None,
            peak_gpu_reserved_mb=max(self.reserved_mb) if self.reserved_mb else None,
            peak_gpu_mem_mb_per_device=self.allocated_mb or None,
            peak_rss_mb=peak_rss_mb(),
        )
