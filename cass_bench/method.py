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
from cass_bench.training import Optimization, Progress, cosine_annealing

__all__ = ["PretrainMethod", "ViewTransform", "cosine_annealing"]

ViewTransform = Callable[[Image.Image], list[Tensor]]


class PretrainMethod(pl.LightningModule, ABC):
    """A self-supervised pretraining method as a LightningModule.

    Subclasses build their encoders with :func:`cass_bench.encoders.build_encoder`, set ``self.transform``
    (PIL image -> list of views) and implement :meth:`encoders`, :meth:`pretrain_loss` and :meth:`build_optimizer`.
    Their schedules read :attr:`progress`, which Lightning's training loop sets before every step (the benchmarks
    set it themselves). The base class stops on a non-finite loss and tracks the collapse signal: the standard
    deviation of the L2-normalised outputs the loss compares (about ``1/sqrt(dim)`` when healthy, 0 when
    collapsed), averaged per epoch.

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
        if not torch.isfinite(loss):
            raise DivergedError(f"pretraining loss became {loss.item()} at epoch {self.current_epoch}, step {batch_idx}")
        with torch.no_grad():
            self._std_sum += float(std_of_l2_normalized(outputs.detach().float()))
            self._std_batches += 1
            self.embedding_dim = outputs.shape[1]
        self.log("pretrain_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=views[0].shape[0])
        return loss

    def on_train_epoch_end(self) -> None:
        if self._std_batches:
            std = self._std_sum / self._std_batches
            self.embedding_std_history.append(std)
            self.log("embedding_std", std, prog_bar=True)
        self._std_sum, self._std_batches = 0.0, 0
