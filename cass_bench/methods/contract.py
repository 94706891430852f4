"""The contract every pretraining method fulfils, so the protocol treats CASS, DINO and BYOL alike."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable

import pytorch_lightning as pl
import torch
from lightly.utils.debug import std_of_l2_normalized
from PIL import Image
from torch import Tensor, nn

from cass_bench.errors import DivergedError
from cass_bench.engine.logs import LOG_EVERY_N_STEPS
from cass_bench.engine.trainer import Optimization, Progress, cosine_annealing

__all__ = ["PretrainMethod", "ViewTransform", "cosine_annealing"]

ViewTransform = Callable[[Image.Image], list[Tensor]]
CHECK_EVERY_N_STEPS = LOG_EVERY_N_STEPS
"""Batches between two reads of the loss and the collapse signal from the device (each read waits for it)."""


class PretrainMethod(pl.LightningModule, ABC):
    """A self-supervised pretraining method as a LightningModule.

    Subclasses build their encoders with :func:`cass_bench.models.encoders.build_encoder`, set ``self.transform``
    (PIL image -> list of views) and implement :meth:`encoders`, :meth:`pretrain_loss` and :meth:`build_optimizer`.
    Their schedules read :attr:`progress`, which Lightning's training loop sets before every step (the benchmarks
    set it themselves). The base class stops on a non-finite loss and tracks the collapse signal: the standard
    deviation of the L2-normalised outputs the loss compares (about ``1/sqrt(dim)`` when healthy, 0 when
    collapsed), averaged per epoch over every :data:`CHECK_EVERY_N_STEPS`-th batch (the first included). Neither
    waits for the device on other steps: the losses are summed where they are, and the sum is checked on the
    sampled steps and at the epoch's end, so a divergence stops the run within that many steps.

    Attributes:
        progress: where the run stands at the current step (step 0 of a run of unknown length until set).
    """

    transform: ViewTransform
    gradient_clip_val: float | None = None
    sync_batchnorm: bool = False

    def __init__(self) -> None:
        super().__init__()
        self.progress = Progress()
        self.embedding_std_history: list[float] = []
        self.embedding_dim: int = 0
        self._std_sum = 0.0
        self._std_batches = 0
        self._loss_sum: Tensor | None = None
        self._last_batch = 0

    @abstractmethod
    def encoders(self) -> dict[str, nn.Module]:
        """The trained encoders keyed by architecture (``cnn``/``vit``), timm models with pooled output."""

    @abstractmethod
    def pretrain_loss(self, views: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Loss of one batch of views and the ``(B, D)`` outputs it compares (for the collapse signal)."""

    @abstractmethod
    def build_optimizer(self, total_steps: int) -> Optimization:
        """The method's optimiser and per-step learning-rate schedule for a run of ``total_steps`` steps."""

    def batch_loss(self, batch: tuple[list[Tensor], Any]) -> Tensor:
        """The loss of one ``(views, labels)`` batch, as optimised by ``training_step`` (used to count FLOPs)."""
        return self.pretrain_loss(list(batch[0]))[0]

    def configure_optimizers(self) -> dict[str, Any]:
        return self.build_optimizer(self.trainer.estimated_stepping_batches).lightning()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        max_epochs = self.trainer.max_epochs
        self.progress = Progress(self.global_step, self.trainer.estimated_stepping_batches, self.current_epoch,
                                 max_epochs if max_epochs is not None and max_epochs > 0 else None)

    def training_step(self, batch: tuple[list[Tensor], Any], batch_idx: int) -> Tensor:
        views, _ = batch
        loss, outputs = self.pretrain_loss(list(views))
        detached = loss.detach()
        self._last_batch = batch_idx
        self._loss_sum = detached if self._loss_sum is None else self._loss_sum + detached
        if batch_idx % CHECK_EVERY_N_STEPS == 0:
            self._check_finite(batch_idx)
            with torch.no_grad():
                self._std_sum += float(std_of_l2_normalized(outputs.detach().float()))
            self._std_batches += 1
            self.embedding_dim = outputs.shape[1]
        self.log("pretrain_loss", loss, on_step=True, on_epoch=True, batch_size=views[0].shape[0])
        return loss

    def _check_finite(self, batch_idx: int) -> None:
        """Raises DivergedError when a loss since the last check was not finite (the sum carries a NaN or inf)."""
        if self._loss_sum is not None and not torch.isfinite(self._loss_sum):
            raise DivergedError(f"pretraining loss became {self._loss_sum.item()} at epoch {self.current_epoch}, "
                                f"by step {batch_idx}")
        self._loss_sum = None

    def on_train_epoch_end(self) -> None:
        self._check_finite(self._last_batch)
        if self._std_batches:
            std = self._std_sum / self._std_batches
            self.embedding_std_history.append(std)
            self.log("embedding_std", std, prog_bar=True)
        self._std_sum, self._std_batches = 0.0, 0
