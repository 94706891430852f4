"""The collapse signals of a pretraining run's encoders, measured per epoch off the clock: the spread and centred
effective rank of each encoder's pooled features on a fixed probe batch (the rules: :mod:`cass_bench.engine.collapse`).
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import Tensor

from cass_bench.engine.collapse import centred_rank, feature_spread


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
