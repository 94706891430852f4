"""The training contract shared by the Lightning path and the benchmarks.

A trainable module builds its own optimiser and learning-rate schedule for a run of known length
(``build_optimizer(total_steps)``) and reads the run's :class:`Progress` from an attribute set before every step, so
its momentum and temperature schedules take the step explicitly. Lightning's Trainer (built here, in one place) and
the benchmarks' manual steps drive the same modules through this contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.loggers import Logger
from lightly.utils.scheduler import CosineWarmupScheduler
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR

from cass_bench.engine.logs import LOG_EVERY_N_STEPS, learning_rate_monitor
from cass_bench.engine.quiet import interactive, quiet_lightning

if TYPE_CHECKING:
    from cass_bench.config.schema import BenchConfig


@dataclass(frozen=True)
class Progress:
    """Where a training run stands when a step starts.

    Attributes:
        step: optimiser steps already taken.
        total_steps: optimiser steps of the whole run (None: unknown, schedules stay at their start).
        epoch: the current epoch, from 0.
        total_epochs: epochs of the whole run (None: unknown).
    """

    step: int = 0
    total_steps: int | None = None
    epoch: int = 0
    total_epochs: int | None = None


@dataclass(frozen=True)
class Optimization:
    """An optimiser and its learning-rate schedule, stepped once per optimiser step.

    Attributes:
        optimizer: the optimiser over the trainable parameters.
        scheduler: the per-step learning-rate schedule.
    """

    optimizer: torch.optim.Optimizer
    scheduler: LRScheduler

    @classmethod
    def cosine(cls, optimizer: torch.optim.Optimizer, total_steps: int) -> Optimization:
        """``optimizer`` with one cosine decay of its learning rate over ``total_steps`` steps."""
        return cls(optimizer, CosineAnnealingLR(optimizer, T_max=max(1, int(total_steps))))

    @classmethod
    def warmup_cosine(cls, optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float) -> Optimization:
        """A linear warm-up from 0 over ``warmup_fraction`` of ``total_steps``, then one cosine decay to 0 (lightly's
        ``CosineWarmupScheduler``); without warm-up exactly :meth:`cosine`."""
        if warmup_fraction <= 0:
            return cls.cosine(optimizer, total_steps)
        warmup = warmup_steps(total_steps, warmup_fraction)
        return cls(optimizer, CosineWarmupScheduler(optimizer, warmup, max(int(total_steps), warmup + 1),
                                                    end_value=0.0))

    def warmed(self, total_steps: int, warmup_fraction: float) -> Optimization:
        """This schedule after a linear warm-up over ``warmup_fraction`` of ``total_steps`` (unchanged without one):
        for a schedule of its own shape, such as CASS's cycling reference schedule."""
        if warmup_fraction <= 0:
            return self
        warmup = warmup_steps(total_steps, warmup_fraction)
        ramp = LinearLR(self.optimizer, start_factor=1.0 / (warmup + 1), total_iters=warmup)
        return Optimization(self.optimizer, SequentialLR(self.optimizer, [ramp, self.scheduler], milestones=[warmup]))

    def lightning(self) -> dict[str, Any]:
        """The ``configure_optimizers`` answer Lightning expects (the schedule stepped every step)."""
        return {"optimizer": self.optimizer, "lr_scheduler": {"scheduler": self.scheduler, "interval": "step"}}


def warmup_steps(total_steps: int, warmup_fraction: float) -> int:
    """Steps of a warm-up over ``warmup_fraction`` of a run of ``total_steps`` (at least one)."""
    return max(1, round(warmup_fraction * int(total_steps)))


def cosine_annealing(optimizer: torch.optim.Optimizer, total_steps: int) -> dict[str, Any]:
    """A per-step cosine learning-rate schedule in Lightning's scheduler format."""
    return Optimization.cosine(optimizer, total_steps).lightning()["lr_scheduler"]


class RunProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar of a pretraining run, redrawn in place and erased when the run ends.

    It names the epoch out of the run's epochs and leaves out Lightning's logger version (``v_num``).
    """

    def init_train_tqdm(self) -> Any:
        bar = super().init_train_tqdm()
        bar.leave = False
        return bar

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(f"pretraining epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items


def pretrain_trainer(module: pl.LightningModule, cfg: BenchConfig, epochs: int, callbacks: list[pl.Callback],
                     loggers: list[Logger] | None = None) -> pl.Trainer:
    """The Lightning Trainer every pretraining run uses (placement, precision, the method's clipping and sync BN).

    Nothing in it reads a value from the device every step: the curves are written and the progress bar redrawn
    every :data:`LOG_EVERY_N_STEPS` steps. The bar is drawn only on a terminal
    (:func:`cass_bench.engine.quiet.interactive`); Lightning's banners and tips are off unless ``--verbose``
    (:func:`cass_bench.engine.quiet.quiet_lightning`).

    Args:
        module: the pretraining module (its ``gradient_clip_val`` and ``sync_batchnorm`` are applied).
        cfg: the benchmark config (accelerator, devices, nodes, strategy, precision).
        epochs: pretraining epochs.
        callbacks: the measuring callbacks, in the order they run.
        loggers: where the curves go (:func:`cass_bench.engine.logs.run_loggers`; the learning rate is logged too), or
            None for no logging.
    """
    bar = interactive()
    callbacks = [*callbacks, *([RunProgressBar(refresh_rate=LOG_EVERY_N_STEPS)] if bar else [])]
    if loggers:
        callbacks.append(learning_rate_monitor())
    quiet_lightning()
    return pl.Trainer(
        max_epochs=epochs, accelerator=cfg.accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes,
        strategy=cfg.strategy, precision=cfg.precision, logger=loggers or False, enable_checkpointing=False,
        callbacks=callbacks, gradient_clip_val=module.gradient_clip_val, enable_model_summary=False,
        enable_progress_bar=bar,
        sync_batchnorm=module.sync_batchnorm and cfg.devices * cfg.num_nodes > 1,
        log_every_n_steps=min(LOG_EVERY_N_STEPS, cfg.pretrain_batches or LOG_EVERY_N_STEPS),
        limit_train_batches=cfg.pretrain_batches if cfg.pretrain_batches is not None else 1.0,
    )
