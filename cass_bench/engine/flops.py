"""FLOPs of one training step, counted on a meta-device copy off the clock, and the model-FLOPs utilisation (MFU)
they give against the hardware's peak, as a record's :class:`~cass_bench.records.schema.PretrainFlops`.

The peak of a GPU is Lightning's table (``get_available_flops``) at the run's compute precision; the peak of a CPU
is one thread's (:mod:`cass_bench.engine.cpu_peak`: instruction set and clock, or the config's
``cpu_peak_gflops``) times the torch threads.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any, Callable, Iterator

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from lightning_fabric.utilities.throughput import get_available_flops
from lightning_utilities.core.apply_func import apply_to_collection
from pytorch_lightning.plugins import Precision
from pytorch_lightning.utilities import measure_flops
from pytorch_lightning.utilities.seed import isolate_rng
from torch import Tensor, nn
from torch.utils.data import DataLoader, IterableDataset

from cass_bench.engine.cpu_peak import thread_peak_flops
from cass_bench.engine.timing import batch_size_of
from cass_bench.records.schema import PretrainFlops


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


@contextlib.contextmanager
def single_process() -> Iterator[None]:
    """Within the block, ``torch.distributed.is_initialized()`` answers False, so code that all-reduces when a
    process group exists (DINO's centre, sync batch norm) computes as one process: collectives cannot run on meta
    tensors and are communication, not FLOPs. The function is put back when the block ends."""
    original = dist.is_initialized
    dist.is_initialized = lambda: False  # type: ignore[assignment]
    try:
        yield
    finally:
        dist.is_initialized = original  # type: ignore[assignment]


def count_step_flops(module: nn.Module, batch: Any, precision: Precision | None = None) -> int:
    """FLOPs of one training step (forward and backward of ``module.batch_loss(batch)``) on a meta-device copy.

    Nothing runs on the module's device and nothing is allocated there, so the count costs neither time on a
    run's clock nor memory on its peak, and the module is left untouched. On the meta device attention takes the
    composite path, whose matrix products are counted, on every device alike (a CPU run's fused attention kernel
    has no FLOP formula and would count as nothing). The copy runs as one process (:func:`single_process`).

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
    with context, single_process():
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


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype a Lightning precision (``32-true``, ``bf16-mixed``, ``16-mixed``, ``64``...) computes in."""
    text = str(precision)
    if text.startswith("bf16"):
        return torch.bfloat16
    if text.startswith("16"):
        return torch.float16
    if text.startswith("64"):
        return torch.float64
    return torch.float32


def device_peak_flops(device: torch.device, precision: str, cpu_peak_gflops: float | None = None) -> float | None:
    """The peak FLOP/s of one device of a run: a GPU's from Lightning's table at the run's compute precision; the
    CPU's as its per-thread peak times the torch threads (:func:`cass_bench.engine.cpu_peak.thread_peak_flops`;
    ``cpu_peak_gflops`` overrides the detected per-thread figure). None where it is not known."""
    if device.type == "cpu":
        per_thread = thread_peak_flops(cpu_peak_gflops)
        return per_thread * torch.get_num_threads() if per_thread else None
    peak = get_available_flops(device, compute_dtype(precision))
    return float(peak) if peak else None


def model_flops_utilisation(flops_per_image: float | None, images_per_s: float | None,
                            device_peak_flops: float | None, world_size: int = 1) -> float | None:
    """Model-FLOPs utilisation: the FLOP/s the training steps needed over what the devices could deliver.

    Args:
        flops_per_image: FLOPs of one training step per image (forward + backward).
        images_per_s: images per second over all devices.
        device_peak_flops: peak FLOP/s of one device (:func:`device_peak_flops`).
        world_size: devices the images were spread over.

    Returns:
        ``flops_per_image * images_per_s / (device_peak_flops * world_size)``, or None when a figure is missing.
    """
    if flops_per_image is None or images_per_s is None or not device_peak_flops:
        return None
    return flops_per_image * images_per_s / (device_peak_flops * world_size)


def step_signature(module: nn.Module, batch: Any, precision: str) -> tuple:
    """What a training step's FLOP count depends on for a feed-forward module: its class, every parameter's and
    buffer's name, shape and dtype, the batch's shapes and dtypes, and the precision."""
    tensors = [*module.named_parameters(), *module.named_buffers()]
    shapes: list[Any] = []
    apply_to_collection(batch, Tensor, lambda t: shapes.append((tuple(t.shape), t.dtype)))
    return (type(module).__qualname__, tuple((n, tuple(t.shape), t.dtype) for n, t in tensors), tuple(shapes),
            precision)


class StepFlops(pl.Callback):
    """FLOPs of one training step per image, counted off the clock and off the memory peak, and the device's peak.

    The count (:func:`count_step_flops`, on a meta-device copy under the run's precision) happens at train start,
    before any epoch is timed, on a batch assembled from the training dataset (:func:`sample_batch`); a loader
    whose dataset cannot be indexed is counted on its first batch instead, still on the meta device.
    The module must offer ``batch_loss(batch) -> Tensor``, the loss its ``training_step`` optimises.

    Args:
        cpu_peak_gflops: the config's per-thread CPU peak (None: detected).
        peak: how the device's peak is found (a test passes its own).
        memo: counts already made, by :func:`step_signature`, reused instead of counting again (for the many
            fine-tunes of one encoder architecture in a process; None: always count).

    Attributes:
        flops_per_step, flops_per_image: None until counted.
        device_peak_flops: one device's peak FLOP/s (:func:`device_peak_flops`; None where unknown).
    """

    def __init__(self, cpu_peak_gflops: float | None = None,
                 peak: Callable[[torch.device, str, float | None], float | None] = device_peak_flops,
                 memo: dict[tuple, int] | None = None) -> None:
        self.cpu_peak_gflops, self.peak, self.memo = cpu_peak_gflops, peak, memo
        self.flops_per_step: int | None = None
        self.flops_per_image: float | None = None
        self.device_peak_flops: float | None = None

    def utilisation(self, images_per_s: float | None, world_size: int = 1) -> float | None:
        """Model-FLOPs utilisation at ``images_per_s`` over ``world_size`` devices (None where the peak is unknown)."""
        return model_flops_utilisation(self.flops_per_image, images_per_s, self.device_peak_flops, world_size)

    def figures(self, images_per_s: float | None, world_size: int = 1) -> PretrainFlops:
        """The record's FLOP figures at the run's throughput."""
        return PretrainFlops(flops_per_image=self.flops_per_image, peak_flops=self.device_peak_flops,
                             mfu=self.utilisation(images_per_s, world_size))

    def _count(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any) -> None:
        if self.memo is None:
            self.flops_per_step = count_step_flops(pl_module, batch, trainer.precision_plugin)
        else:
            key = step_signature(pl_module, batch, str(trainer.precision))
            if key not in self.memo:
                self.memo[key] = count_step_flops(pl_module, batch, trainer.precision_plugin)
            self.flops_per_step = self.memo[key]
        self.flops_per_image = self.flops_per_step / batch_size_of(batch)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.device_peak_flops = self.peak(trainer.strategy.root_device, str(trainer.precision),
                                           self.cpu_peak_gflops)
        loader = trainer.train_dataloader
        if isinstance(loader, DataLoader):
            with contextlib.suppress(TypeError):
                self._count(trainer, pl_module, sample_batch(loader))

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        if self.flops_per_step is None:
            self._count(trainer, pl_module, batch)
