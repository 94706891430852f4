"""What the libraries may print during a run: quiet by default, everything with ``--verbose``.

Lightning's informational lines (device banners, the litlogger tip, "Loading `train_dataloader` ...", "`Trainer.fit`
stopped ...") are INFO records of its ``pytorch_lightning`` logger, which Lightning resets to INFO when it is
imported; :func:`quiet_lightning` raises the level to WARNING where a Trainer is built, so Lightning's own warnings
still show. Library warnings the harness cannot act on are silenced at their source module, each named once in
:data:`LIBRARY_WARNINGS` with the reason. ``--verbose`` (:data:`VERBOSE_ENV` in the environment, inherited by cell
processes and local jobs) leaves both as the libraries set them.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from dataclasses import dataclass

from sklearn.exceptions import ConvergenceWarning

VERBOSE_ENV = "CASS_BENCH_VERBOSE"
"""Set to 1 (``run --verbose``) to keep every library line and warning, in this process and the cells it starts."""
LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric")


@dataclass(frozen=True)
class LibraryWarning:
    """A library warning the harness silences at its source.

    Attributes:
        module: the module the warning is attributed to (where the offending call is).
        message: the start of its text (a regular expression).
        category: its warning class.
        reason: why the harness cannot act on it.
    """

    module: str
    message: str
    category: type[Warning]
    reason: str


LIBRARY_WARNINGS = (
    LibraryWarning("pytorch_lightning.utilities._pytree", r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                   FutureWarning, "Lightning's own use of a torch API torch deprecated; nothing the harness calls"),
    LibraryWarning("torch.nn.utils.weight_norm", r"`torch.nn.utils.weight_norm` is deprecated", FutureWarning,
                   "lightly's DINO projection head is built with torch's old weight_norm; the head is lightly's"),
    LibraryWarning("sklearn.linear_model._logistic", r"lbfgs failed to converge", ConvergenceWarning,
                   "the linear probe's weakest-regularised C values on separable features stop at max_iter; "
                   "cross-validation chooses C on held-out folds, so such a fit counts only as well as it scores "
                   "(docs/protocol.md)"),
    LibraryWarning("pytorch_lightning.trainer.configuration_validator",
                   r"You defined a `validation_step` but have no `val_dataloader`", UserWarning,
                   "fine-tuning keeps its validation step for select: best_val and has no validation set with "
                   "select: last, by design"),
    LibraryWarning("lightning_fabric.loggers.csv_logs", r"Experiment logs directory .* exists and is not empty",
                   UserWarning, "a cell that is run again (a resumed or retried sweep) writes its log afresh under its "
                   "checkpoint key; the interrupted attempt's partial log is replaced by design"),
)


def verbose() -> bool:
    """Whether every library line and warning is shown (``run --verbose``)."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def set_verbose(on: bool) -> None:
    """Shows (True) or quiets (False) library output in this process and in every process it starts."""
    if on:
        os.environ[VERBOSE_ENV] = "1"
    else:
        os.environ.pop(VERBOSE_ENV, None)


def silence_library_warnings() -> None:
    """Ignores each of :data:`LIBRARY_WARNINGS` at its source module, unless verbose; other warnings still show."""
    if verbose():
        return
    for item in LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=item.message, category=item.category,
                                module=re.escape(item.module) + r"\Z")


def quiet_lightning() -> None:
    """Lightning's loggers at WARNING (its banners, tips and "stopped" lines off), unless verbose.

    Call it after ``pytorch_lightning`` is imported (its import sets its logger to INFO) and before a Trainer is built.
    """
    silence_library_warnings()
    if verbose():
        return
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def interactive() -> bool:
    """Whether progress bars redraw in place: standard output is a terminal and no ``CI`` variable is set."""
    return sys.stdout.isatty() and not os.environ.get("CI")
