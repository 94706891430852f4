"""The downstream stage, identical for every method: a new zero-initialised linear head on batch-normalised
features, focal loss, a step budget.

Recipe (CASS reference): end-to-end fine-tuning, Adam lr 3e-4 with a cosine schedule, sigmoid focal loss
(alpha 1, gamma 2) multiplied by class weights (class counts min-max scaled to [0.2, 1]). The budget is counted in
optimiser steps, the same at every label fraction (as SimCLR's semi-supervised protocol, the head starts at zero),
and the final model is reported; the reference's epochs with best-validation selection remain a config choice.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.loggers import Logger
from torch import Tensor, nn
from torch.utils.data import RandomSampler
from torchmetrics import functional as tmf
from torchvision.ops import sigmoid_focal_loss

from cass_bench.evaluation.auroc import macro_auroc
from cass_bench.config.schema import BenchConfig
from cass_bench.data.bundle import MULTILABEL, DatasetBundle, ImageSet
from cass_bench.data.loaders import (
    eval_transform, finetune_train_transform, loader_workers, make_loader,
)
from cass_bench.data.splits import class_weights, label_fraction_indices
from cass_bench.errors import DivergedError
from cass_bench.engine.logs import LOG_EVERY_N_STEPS, learning_rate_monitor
from cass_bench.engine.flops import StepFlops
from cass_bench.engine.quiet import quiet_lightning
from cass_bench.engine.timing import EpochClock
from cass_bench.engine.trainer import cosine_annealing
from cass_bench.records.schema import METRIC_FIELDS, Metrics

FLOP_COUNTS: dict[tuple, int] = {}
"""FLOP counts of fine-tuning steps made in this process, by step shape: the fine-tunes of one encoder architecture
at every label fraction take the same step, counted once (:func:`cass_bench.engine.flops.step_signature`)."""


def weighted_focal_loss(logits: Tensor, targets: Tensor, weights: Tensor, alpha: float, gamma: float) -> Tensor:
    """Sigmoid focal loss times per-class weights, mean over examples and classes.

    As in the CASS reference, ``alpha`` is a constant factor (torchvision's class-balancing ``alpha_t`` is off:
    with alpha 1 it would drop every negative term).

    Args:
        logits: ``(B, C)`` raw scores.
        targets: ``(B, C)`` 0/1 targets (one-hot for multi-class).
        weights: ``(C,)`` class weights.
        alpha: constant factor.
        gamma: focusing parameter.
    """
    loss = sigmoid_focal_loss(logits, targets, alpha=-1, gamma=gamma, reduction="none")
    return alpha * (loss * weights).mean()


def compute_metrics(scores: Tensor, targets: Tensor, task: str) -> Metrics:
    """Every reported metric from per-class sigmoid scores.

    Multi-class predictions are the arg-max; multi-label uses 0.5 on each label. ``f1_seed_code`` is the CASS
    reference notebook's score: sigmoid > 0.5 on every class, TP/FP/FN pooled (a micro-F1, even for multi-class).
    ``auroc`` averages over the classes present in ``targets`` (:func:`cass_bench.evaluation.auroc.macro_auroc`).

    Args:
        scores: ``(N, C)`` sigmoid scores.
        targets: ``(N,)`` class indices or ``(N, C)`` 0/1 labels.
        task: ``multiclass`` or ``multilabel``.
    """
    num = scores.shape[1]
    if task == MULTILABEL:
        t = targets.long()
        recall = tmf.classification.multilabel_recall(scores, t, num_labels=num, average="macro")
        specificity = tmf.classification.multilabel_specificity(scores, t, num_labels=num, average="macro")
        values = {
            "f1_macro": tmf.classification.multilabel_f1_score(scores, t, num_labels=num, average="macro"),
            "f1_micro": tmf.classification.multilabel_f1_score(scores, t, num_labels=num, average="micro"),
            "balanced_accuracy": (recall + specificity) / 2,
            "auroc": macro_auroc(scores, t, task),
            "accuracy": tmf.classification.multilabel_exact_match(scores, t, num_labels=num),
        }
        one_hot = t
    else:
        t = targets.long()
        values = {
            "f1_macro": tmf.classification.multiclass_f1_score(scores, t, num_classes=num, average="macro"),
            "f1_micro": tmf.classification.multiclass_f1_score(scores, t, num_classes=num, average="micro"),
            "balanced_accuracy": tmf.classification.multiclass_recall(scores, t, num_classes=num, average="macro"),
            "auroc": macro_auroc(scores, t, task),
            "accuracy": tmf.classification.multiclass_accuracy(scores, t, num_classes=num, average="micro"),
        }
        one_hot = F.one_hot(t, num)
    values["f1_seed_code"] = tmf.classification.multilabel_f1_score(
        scores, one_hot, num_labels=num, average="micro", threshold=0.5
    )
    return Metrics(**{name: None if values[name] is None else float(values[name]) for name in METRIC_FIELDS})


class FinetuneModule(pl.LightningModule):
    """An encoder with a new head, trained with the weighted focal loss.

    The head is a ``BatchNorm1d`` without affine parameters followed by a zero-initialised linear layer (MAE's
    probe head). The normalisation matters for encoders whose pooled features barely vary between images, as a
    randomly initialised ViT's class token: a zero-initialised linear layer on them learns only the class prior,
    and fine-tuning stays at chance (measured on the embedded digits: supervised ViT at 10% labels, macro-F1 0.06
    without it, 0.72 with it).

    Args:
        encoder: a timm model with pooled output (``num_features``).
        num_classes: classes (multi-class) or labels (multi-label).
        task: ``multiclass`` or ``multilabel``.
        weights: per-class loss weights.
        lr, alpha, gamma: the shared fine-tuning recipe.
    """

    def __init__(self, encoder: nn.Module, num_classes: int, task: str, weights: np.ndarray,
                 lr: float, alpha: float, gamma: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.norm = nn.BatchNorm1d(encoder.num_features, affine=False)
        self.head = nn.Linear(encoder.num_features, num_classes)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.task, self.lr, self.alpha, self.gamma = task, lr, alpha, gamma
        self.register_buffer("class_weights", torch.as_tensor(weights, dtype=torch.float32))
        self._scores: list[Tensor] = []
        self._targets: list[Tensor] = []
        self.test_scores = np.zeros((0, num_classes), dtype=np.float32)
        self.test_targets = np.zeros(0)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.norm(self.encoder(x)))

    def _targets_matrix(self, y: Tensor, num: int) -> Tensor:
        return y.float() if self.task == MULTILABEL else F.one_hot(y, num).float()

    def batch_loss(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        """The weighted focal loss of one ``(images, labels)`` batch."""
        x, y = batch
        logits = self(x)
        return weighted_focal_loss(logits.float(), self._targets_matrix(y, logits.shape[1]),
                                   self.class_weights, self.alpha, self.gamma)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = self.batch_loss(batch)
        if not torch.isfinite(loss):
            raise DivergedError(f"fine-tuning loss became {loss.item()} at epoch {self.current_epoch}")
        self.log("finetune_loss", loss, prog_bar=True, batch_size=batch[1].shape[0])
        return loss

    def _collect(self, batch: tuple[Tensor, Tensor]) -> None:
        x, y = batch
        self._scores.append(torch.sigmoid(self(x).float()).cpu())
        self._targets.append(y.cpu())

    def _gathered(self) -> tuple[Tensor, Tensor]:
        scores, targets = torch.cat(self._scores), torch.cat(self._targets)
        self._scores, self._targets = [], []
        return scores, targets

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._collect(batch)

    def on_validation_epoch_end(self) -> None:
        scores, targets = self._gathered()
        self.log("val_f1_macro", compute_metrics(scores, targets, self.task).f1_macro, prog_bar=True)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._collect(batch)

    def on_test_epoch_end(self) -> None:
        scores, targets = self._gathered()
        self.test_scores, self.test_targets = scores.numpy(), targets.numpy()

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.Adam(self.parameters(), lr=self.lr)
        return {"optimizer": optimizer, "lr_scheduler": cosine_annealing(optimizer, self.trainer.estimated_stepping_batches)}


@dataclass(frozen=True)
class FinetuneResult:
    """Test predictions of the reported model and what produced them (metrics: :func:`compute_metrics`).

    Attributes:
        y_true: test labels, ``(N,)`` class indices or ``(N, L)`` 0/1.
        y_score: ``(N, C)`` sigmoid scores.
        steps: optimiser steps taken.
        selected_step: the optimiser step of the reported model (the last one with ``select: last``).
        n_labelled: training examples used.
        time_s: wall time of the training loop.
        flops_per_image: FLOPs of one fine-tuning step per image.
        mfu: model-FLOPs utilisation of the training loop (None where the device's peak is unknown).
    """

    y_true: np.ndarray
    y_score: np.ndarray
    steps: int
    selected_step: int
    n_labelled: int
    time_s: float | None
    flops_per_image: float | None
    mfu: float | None = None


def _step_sampler(n: int, steps: int, batch_size: int, seed: int) -> RandomSampler:
    generator = torch.Generator().manual_seed(seed)
    return RandomSampler(range(n), replacement=True, num_samples=steps * batch_size, generator=generator)


def selection_subset(val: ImageSet, size: int, seed: int, task: str) -> ImageSet:
    """The validation images used to select a model: at most ``size`` of them, stratified and seeded."""
    if len(val) <= size:
        return val
    return val.subset(label_fraction_indices(val.labels, size / len(val), seed, task)[:size])


def finetune(encoder: nn.Module, bundle: DatasetBundle, fraction: float, seed: int, cfg: BenchConfig,
             loggers: list[Logger] | None = None) -> FinetuneResult:
    """Fine-tunes ``encoder`` with a zero-initialised head on ``fraction`` of the training labels and tests it.

    With ``finetune.budget: steps`` every label fraction gets the same number of optimiser steps, batches drawn
    with replacement from the labelled subset; with ``epochs`` it gets passes over the subset. The final model is
    tested (``select: last``) or the one with the best validation macro-F1 (``select: best_val``; the
    validation set is then no larger than the labelled subset).

    Args:
        encoder: the pretrained (or freshly initialised) encoder; it is trained in place.
        bundle: the dataset.
        fraction: share of training labels used.
        seed: seed of the label subset, the head and the data order.
        cfg: the benchmark config (fine-tuning recipe, image size, precision, workers).
        loggers: where the loss, learning rate and validation macro-F1 curves go
            (:func:`cass_bench.engine.logs.run_loggers`), or None for no logging.

    Returns:
        The test labels and scores of the reported model, with how it was trained.
    """
    ft = cfg.finetune
    workers = loader_workers(cfg.num_workers)
    pl.seed_everything(seed, workers=True, verbose=False)
    indices = label_fraction_indices(bundle.train.labels, fraction, seed, bundle.task)
    labelled = bundle.train.subset(indices)
    weights = class_weights(labelled.labels, bundle.num_classes, ft.min_class_weight)
    module = FinetuneModule(encoder, bundle.num_classes, bundle.task, weights, ft.lr, ft.focal_alpha, ft.focal_gamma)
    if cfg.channels_last:
        module = module.to(memory_format=torch.channels_last)
    train_transform = finetune_train_transform(cfg.image_size)
    selecting = ft.select == "best_val"
    limits: dict[str, Any]
    if ft.budget == "steps":
        train = make_loader(labelled, train_transform, ft.batch_size, False, workers,
                            sampler=_step_sampler(len(labelled), ft.steps, ft.batch_size, seed))
        limits = {"max_steps": ft.steps, "max_epochs": 1, "val_check_interval": min(ft.val_every, ft.steps)}
    else:
        batch_size = min(ft.batch_size, len(labelled))
        drop_last = len(labelled) > batch_size and len(labelled) % batch_size == 1
        train = make_loader(labelled, train_transform, batch_size, True, workers, drop_last)
        limits = {"max_epochs": ft.epochs}
    val = make_loader(selection_subset(bundle.val, len(labelled), seed, bundle.task), eval_transform(),
                      ft.batch_size, False, workers) if selecting else None
    test = make_loader(bundle.test, eval_transform(), ft.batch_size, False, workers)
    clock, flops = EpochClock(), StepFlops(cfg.cpu_peak_gflops, memo=FLOP_COUNTS)
    with tempfile.TemporaryDirectory(prefix="cass-bench-ft-") as tmp:
        callbacks: list[pl.Callback] = [clock, flops, *([learning_rate_monitor()] if loggers else [])]
        best = None
        if selecting:
            best = pl.callbacks.ModelCheckpoint(dirpath=tmp, monitor="val_f1_macro", mode="max", save_top_k=1,
                                                save_weights_only=True)
            callbacks.append(best)
            if ft.patience > 0:
                callbacks.append(pl.callbacks.EarlyStopping(monitor="val_f1_macro", mode="max", patience=ft.patience))
        quiet_lightning()
        trainer = pl.Trainer(
            accelerator=cfg.accelerator, devices=1, precision=cfg.precision, logger=loggers or False,
            log_every_n_steps=min(LOG_EVERY_N_STEPS, ft.steps) if ft.budget == "steps" else LOG_EVERY_N_STEPS,
            callbacks=callbacks,
            enable_model_summary=False, enable_checkpointing=selecting, enable_progress_bar=False,
            num_sanity_val_steps=0, default_root_dir=tmp, limit_val_batches=1.0 if selecting else 0, **limits,
        )
        trainer.fit(module, train, val)
        steps = trainer.global_step
        selected_step = steps
        if best is not None and best.best_model_path:
            selected_step = int(torch.load(best.best_model_path, map_location="cpu", weights_only=True)["global_step"])
            trainer.test(module, test, ckpt_path=best.best_model_path, verbose=False, weights_only=True)
        else:
            trainer.test(module, test, verbose=False)
    return FinetuneResult(
        y_true=module.test_targets,
        y_score=module.test_scores,
        steps=steps,
        selected_step=selected_step,
        n_labelled=len(labelled),
        time_s=clock.total_time_s,
        flops_per_image=flops.flops_per_image,
        mfu=flops.utilisation(clock.images_per_s()),
    )
