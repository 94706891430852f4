"""Lightning callbacks that measure what the efficiency claims are about, and the FLOP counter they share.

Clocks are read with CUDA synchronised at both ends of an epoch; the first epoch (warm-up, worker start,
allocator growth) is reported apart from the median of the rest. GPU peak memory is reset before the
measured phase and read per device; process RSS is the peak resident set of this process.
"""

from __future__ import annotations

import contextlib
import copy
import resource
import statistics
import time
from typing import Any
from unittest import mock

import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.throughput import get_available_flops
from lightning_utilities.core.apply_func import apply_to_collection
from pytorch_lightning.callbacks.throughput_monitor import _plugin_to_compute_dtype
from pytorch_lightning.plugins import Precision
from pytorch_lightning.utilities import measure_flops
from pytorch_lightning.utilities.seed import isolate_rng
from torch import Tensor, nn
from torch.utils.data import DataLoader, IterableDataset

from cass_bench.engine.collapse import centred_rank, feature_spread


def synchronize() -> None:
    """Waits for queued CUDA work so a clock read covers it (no-op without CUDA)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def batch_size_of(batch: Any) -> int:
    """Number of examples in a ``(inputs, labels)`` batch."""
    return int(batch[1].shape[0])


class EpochClock(pl.Callback):
    """Per-epoch wall time, images seen, the time spent waiting for the next batch and, on CPU, the training
    thread's CPU time.

    On CPU the training loop's thread is busy for the whole epoch unless the process is kept waiting (another job on
    the machine takes its cores, or the process is paused), so its CPU time over the wall time (``cpu_share``) says
    whether a time per epoch measured the method or the machine's other load. On an accelerator the thread waits on
    the device by design and no share is taken.

    Attributes:
        epoch_times: seconds per training epoch.
        epoch_images: images per epoch on this process.
        data_wait_s: seconds per epoch between the end of one step and the start of the next.
        epoch_cpu_s: CPU seconds of the training thread per epoch (empty on an accelerator).
    """

    def __init__(self) -> None:
        self.epoch_times: list[float] = []
        self.epoch_images: list[int] = []
        self.data_wait_s: list[float] = []
        self.epoch_cpu_s: list[float] = []
        self._start = self._mark = self._cpu_start = 0.0
        self._on_cpu = False

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
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
        self._mark = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        synchronize()
        self.epoch_times.append(time.perf_counter() - self._start)
        if self._on_cpu:
            self.epoch_cpu_s.append(time.thread_time() - self._cpu_start)

    def summary(self, world_size: int = 1) -> dict[str, float | None]:
        """Epoch-time figures: first epoch apart, median of the rest, throughput over the measured epochs, and the
        training thread's CPU share of those epochs (None on an accelerator)."""
        if not self.epoch_times:
            return {"first_epoch_time_s": None, "epoch_time_s": None, "total_time_s": None,
                    "images_per_s": None, "data_wait_share": None, "cpu_share": None}
        steady = self.epoch_times[1:] or self.epoch_times
        steady_images = self.epoch_images[1:] or self.epoch_images
        steady_wait = self.data_wait_s[1:] or self.data_wait_s
        steady_cpu = self.epoch_cpu_s[1:] or self.epoch_cpu_s
        return {
            "first_epoch_time_s": self.epoch_times[0],
            "epoch_time_s": statistics.median(steady),
            "total_time_s": sum(self.epoch_times),
            "images_per_s": world_size * sum(steady_images) / sum(steady),
            "data_wait_share": sum(steady_wait) / sum(steady),
            "cpu_share": sum(steady_cpu) / sum(steady) if steady_cpu else None,
        }


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

    @staticmethod
    def peak_rss_mb() -> float:
        """Peak resident set size of this process in MiB (Linux reports KiB)."""
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def to_meta(batch: Any) -> Any:
    """``batch`` with every tensor replaced by an empty one of the same shape and dtype on the meta device."""
    return apply_to_collection(batch, Tensor, lambda t: t.to("meta"))


def meta_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose parameters, buffers and other tensor attributes live on the meta device.

    The copy holds shapes and dtypes only, no memory; gradients are not copied, other attributes are deep-copied
    (a LightningModule leaves its trainer behind).
    """
    memo: dict[int, Any] = {id(p): nn.Parameter(p.detach().to("meta"), requires_grad=p.requires_grad)
                            for p in module.parameters()}
    for tensor in (*module.buffers(), *(v for m in module.modules() for v in vars(m).values())):
        if isinstance(tensor, Tensor) and id(tensor) not in memo:
            memo[id(tensor)] = tensor.detach().to("meta")
    return copy.deepcopy(module, memo)


def count_step_flops(module: nn.Module, batch: Any, precision: Precision | None = None) -> int:
    """FLOPs of one training step (forward and backward of ``module.batch_loss(batch)``) on a meta-device copy.

    Nothing runs on the module's device and nothing is allocated there, so the count costs neither time on a
    run's clock nor memory on its peak, and the module is left untouched. On the meta device attention takes the
    composite path, whose matrix products are counted, on every device alike (a CPU run's fused attention kernel
    has no FLOP formula and would count as nothing). Collectives (DINO's centre all-reduce,
    sync batch norm) are per-rank communication, not FLOPs, and cannot run on meta tensors: the copy runs as one
    process.

    Args:
        module: a module with ``batch_loss(batch) -> Tensor``.
        batch: one batch (on any device; only its shapes and dtypes are used).
        precision: the run's precision plugin: the batch is converted and the step runs in its forward context.

    Returns:
        Total FLOPs of the forward and backward pass (``torch.utils.flop_counter``).
    """
    copied = meta_copy(module)
    inputs = to_meta(batch)
    context: Any = contextlib.nullcontext()
    if precision is not None:
        inputs, context = precision.convert_input(inputs), precision.forward_context()
    with context, mock.patch.object(torch.distributed, "is_initialized", return_value=False):
        return int(measure_flops(copied, lambda: copied.batch_loss(inputs), loss_fn=lambda loss: loss))


def sample_batch(loader: DataLoader) -> Any:
    """One batch assembled in this process from the first items of ``loader``'s (map-style) dataset.

    No worker starts, no sampler or iterator of the loader is touched and the random generators are restored
    afterwards, so a run's own batches are unchanged.

    Raises:
        TypeError: the dataset cannot be indexed (an iterable-style dataset).
    """
    dataset = loader.dataset
    if isinstance(dataset, IterableDataset):
        raise TypeError("an iterable-style dataset cannot be sampled by index")
    with isolate_rng():
        if loader.batch_size is None:
            return loader.collate_fn(dataset[0])
        return loader.collate_fn([dataset[i] for i in range(min(loader.batch_size, len(dataset)))])  # type: ignore[arg-type]


def peak_flops(trainer: pl.Trainer) -> int | None:
    """The theoretical FLOP/s of one of the trainer's devices at the run's compute precision.

    Lightning's table (``get_available_flops``, the dtype as its ``ThroughputMonitor`` derives it); None on CPU
    and on a device the table does not list.
    """
    return get_available_flops(trainer.strategy.root_device, _plugin_to_compute_dtype(trainer.precision_plugin))


def model_flops_utilisation(flops_per_image: float | None, images_per_s: float | None,
                            device_peak_flops: float | None, world_size: int = 1) -> float | None:
    """Model-FLOPs utilisation: the FLOP/s the training steps needed over what the devices could deliver.

    Args:
        flops_per_image: FLOPs of one training step per image (forward + backward).
        images_per_s: images per second over all devices.
        device_peak_flops: theoretical FLOP/s of one device (:func:`peak_flops`).
        world_size: devices the images were spread over.

    Returns:
        ``flops_per_image * images_per_s / (device_peak_flops * world_size)``, or None when a figure is missing.
    """
    if flops_per_image is None or images_per_s is None or not device_peak_flops:
        return None
    return flops_per_image * images_per_s / (device_peak_flops * world_size)


class StepFlops(pl.Callback):
    """FLOPs of one training step per image, counted off the clock and off the memory peak, and the device's peak.

    The count (:func:`count_step_flops`, on a meta-device copy under the run's precision) happens at train start,
    before any epoch is timed, on a batch assembled from the training dataset (:func:`sample_batch`); a loader
    whose dataset cannot be indexed is counted on its first batch instead, still on the meta device.
    The module must offer ``batch_loss(batch) -> Tensor``, the loss its ``training_step`` optimises.

    Attributes:
        flops_per_step, flops_per_image: None until counted.
        device_peak_flops: one device's theoretical FLOP/s at the run's precision (:func:`peak_flops`; None on CPU).
    """

    def __init__(self) -> None:
        self.flops_per_step: int | None = None
        self.flops_per_image: float | None = None
        self.device_peak_flops: int | None = None

    def utilisation(self, images_per_s: float | None, world_size: int = 1) -> float | None:
        """Model-FLOPs utilisation at ``images_per_s`` over ``world_size`` devices (None on CPU)."""
        return model_flops_utilisation(self.flops_per_image, images_per_s, self.device_peak_flops, world_size)

    def _count(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any) -> None:
        self.flops_per_step = count_step_flops(pl_module, batch, trainer.precision_plugin)
        self.flops_per_image = self.flops_per_step / batch_size_of(batch)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.device_peak_flops = peak_flops(trainer)
        loader = trainer.train_dataloader
        if isinstance(loader, DataLoader):
            with contextlib.suppress(TypeError):
                self._count(trainer, pl_module, sample_batch(loader))

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        if self.flops_per_step is None:
            self._count(trainer, pl_module, batch)


class FeatureCollapse(pl.Callback):
    """The spread and centred effective rank of each encoder's pooled features on a fixed probe batch, per epoch.

    The rank is :func:`cass_bench.engine.collapse.centred_rank` (RankMe of the centred, L2-normalised features,
    directions below the spread floor counted as zero), the measure the ``collapsed`` rule reads.

    Measured before the first epoch and after each epoch, off the epoch clock (put it after :class:`EpochClock`),
    in eval mode without gradients, on the features that fine-tuning starts from (not the projection outputs), and
    written to the trainer's loggers (``collapse/<arch>_rank``, ``collapse/<arch>_std``).
    The module must offer ``encoders() -> dict[str, nn.Module]``.

    Args:
        images: the probe batch (already transformed), e.g. 256 training images.

    Attributes:
        std_history, rank_history: per arch, one value before training and one per epoch (``rank_history``: the
            centred rank).
    """

    def __init__(self, images: Tensor) -> None:
        self.images = images
        self.std_history: dict[str, list[float]] = {}
        self.rank_history: dict[str, list[float]] = {}

    def _measure(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        images = self.images.to(pl_module.device)
        for arch, encoder in pl_module.encoders().items():  # type: ignore[operator]
            was_training = encoder.training
            encoder.eval()
            with torch.no_grad():
                features = torch.cat([encoder(chunk).float() for chunk in images.split(128)]).cpu()
            encoder.train(was_training)
            self.std_history.setdefault(arch, []).append(feature_spread(features))
            self.rank_history.setdefault(arch, []).append(centred_rank(features))
        self._log(trainer)

    def _log(self, trainer: pl.Trainer) -> None:
        """Writes the latest values to the trainer's loggers, ``collapse_epoch`` 0 being before training."""
        metrics = {f"collapse/{arch}_{what}": history[-1] for what, histories in
                   (("rank", self.rank_history), ("std", self.std_history)) for arch, history in histories.items()}
        metrics["collapse_epoch"] = len(next(iter(self.rank_history.values()), [])) - 1
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._measure(trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._measure(trainer, pl_module)
