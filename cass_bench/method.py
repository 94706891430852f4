"""The contract every pretraining method fulfils, so the protocol treats CASS, DINO and BYOL alike."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable

import pytorch_lightning as pl
import torch
from lightly.utils.debug import std_of_l2_normalized
from lightly.utils.scheduler import cosine_schedule
from PIL import Image
from torch import Tensor, nn

from cass_bench.errors import DivergedError

ViewTransform = Callable[[Image.Image], list[Tensor]]


class PretrainMethod(pl.LightningModule, ABC):
    """A self-supervised pretraining method as a LightningModule.

    Subclasses build their encoders with :func:`cass_bench.encoders.build_encoder`, set ``self.transform``
    (PIL image -> list of views) and implement :meth:`encoders` and :meth:`pretrain_loss`. The base class
    stops on a non-finite loss and tracks the collapse signal: the standard deviation of the L2-normalised
    outputs the loss compares (about ``1/sqrt(dim)`` when healthy, 0 when collapsed), averaged per epoch.
    """

    transform: ViewTransform
    gradient_clip_val: float | None = None
    sync_batchnorm: bool = False

    def __init__(self) -> None:
        super().__init__()
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

    def batch_loss(self, batch: tuple[list[Tensor], Any]) -> Tensor:
        """The loss of one ``(views, labels)`` batch, as optimised by ``training_step`` (used to count FLOPs)."""
        return self.pretrain_loss(list(batch[0]))[0]

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

    def ema_momentum(self, start: float, end: float) -> float:
        """EMA momentum of the current step: cosine from ``start`` to ``end`` over the run.

        Without a trainer (manual stepping) the total is unknown and ``start`` is used.
        """
        if self._trainer is None:
            return start
        return cosine_schedule(self.global_step, self.trainer.estimated_stepping_batches, start, end)

    def on_train_epoch_end(self) -> None:
        if self._std_batches:
            std = self._std_sum / self._std_batches
            self.embedding_std_history.append(std)
            self.log("embedding_std", std, prog_bar=True)
        self._std_sum, self._std_batches = 0.0, 0


def cosine_annealing(optimizer: torch.optim.Optimizer, total_steps: int) -> dict[str, Any]:
    """A per-step cosine learning-rate schedule in Lightning's scheduler format."""
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    return {"scheduler": scheduler, "interval": "step"}
