"""Training curves: one version folder per pretraining run and per fine-tune under ``<out>/logs/``.

Lightning's ``CSVLogger`` always writes ``metrics.csv``; its ``TensorBoardLogger`` writes event files beside it when
``tensorboard`` is installed (the ``tensorboard`` extra). Loss and learning rate are logged every
:data:`LOG_EVERY_N_STEPS` optimiser steps and per epoch, so logging adds no per-step work to the timed epochs.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from pytorch_lightning.callbacks import LearningRateMonitor
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger

LOGS = "logs"
PRETRAIN, FINETUNE = "pretrain", "finetune"
LOG_EVERY_N_STEPS = 10
"""Optimiser steps between two logged values of a per-step curve (loss, learning rate)."""


def tensorboard_available() -> bool:
    """Whether TensorBoard event files can be written (the ``tensorboard`` package is installed)."""
    return find_spec("tensorboard") is not None


def log_dir(stage: str, version: str) -> str:
    """The log folder of one run relative to the results folder, as records name it: ``logs/<stage>/<version>``."""
    return f"{LOGS}/{stage}/{version}"


def run_loggers(out: Path, stage: str, version: str) -> list[Logger]:
    """The loggers of one run, all writing to ``<out>/logs/<stage>/<version>/``.

    Args:
        out: the results folder.
        stage: ``pretrain`` or ``finetune``.
        version: the run's name: the checkpoint key of a pretraining run, the record id of a fine-tune.
    """
    root = Path(out) / LOGS
    loggers: list[Logger] = [CSVLogger(root, name=stage, version=version)]
    if tensorboard_available():
        loggers.append(TensorBoardLogger(root, name=stage, version=version, default_hp_metric=False))
    return loggers


def learning_rate_monitor() -> LearningRateMonitor:
    """Logs every optimiser parameter group's learning rate with the other per-step curves."""
    return LearningRateMonitor()
