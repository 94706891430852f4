"""Evaluating one encoder at a label fraction: fine-tuning, linear probe or kNN, and the chance levels of its test
predictions. Every method's encoders go through the same code."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from pytorch_lightning.loggers import Logger
from torch import nn

from cass_bench.evaluation.chance import above_chance_pvalue, is_above_chance, majority_f1, random_f1, score_macro_f1
from cass_bench.config.schema import BenchConfig
from cass_bench.data.bundle import DatasetBundle
from cass_bench.data.splits import class_counts, label_fraction_indices
from cass_bench.models.encoders import build_encoder
from cass_bench.config.vocabulary import Eval
from cass_bench.evaluation.finetune import finetune
from cass_bench.evaluation.probes import extract_features, knn_scores, linear_probe_scores
from cass_bench.records.schema import Chance, Evaluation


def param_count(module: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in module.parameters())


@dataclass
class Evaluated:
    """One evaluation's test predictions and what it did."""

    y_true: np.ndarray
    y_score: np.ndarray
    evaluation: Evaluation


class EncoderEvaluator:
    """Evaluates one encoder (of seed ``seed``) at each label fraction: fine-tuning, linear probe and kNN.

    Frozen features are extracted once per encoder and shared by the fractions; fine-tuning starts from a fresh
    copy of the encoder each time.
    """

    def __init__(self, seed: int, arch: str, cfg: BenchConfig, bundle: DatasetBundle, state: dict | None,
                 weights: str | None = None) -> None:
        self.seed, self.arch, self.cfg, self.bundle, self.state = seed, arch, cfg, bundle, state
        self.weights = cfg.init if weights is None else weights  # a resolved start's file for init: fractal
        self._features: tuple[np.ndarray, np.ndarray] | None = None
        self.params = param_count(self.encoder())

    def encoder(self) -> nn.Module:
        """A fresh copy of the encoder as pretraining left it (or as initialised, for ``supervised``)."""
        init = "random" if self.state is not None else self.weights
        encoder = build_encoder(self.arch, self.cfg.backbones, self.cfg.image_size, self.seed, init=init)
        if self.state is not None:
            encoder.load_state_dict(self.state)
        return encoder

    def features(self) -> tuple[np.ndarray, np.ndarray]:
        """Frozen pooled features of the training and test images."""
        if self._features is None:
            encoder = self.encoder()
            device = torch.device("cuda" if torch.cuda.is_available() and self.cfg.accelerator != "cpu" else "cpu")
            self._features = (extract_features(encoder, self.bundle.train, device=device),
                              extract_features(encoder, self.bundle.test, device=device))
        return self._features

    def run(self, fraction: float, evaluation: str, loggers: list[Logger] | None = None) -> Evaluated:
        """Test labels and scores of one evaluation at one label fraction (``loggers``: the fine-tune's curves).

        Raises:
            UserError: ``evaluation`` names no :class:`~cass_bench.config.vocabulary.Eval`.
        """
        bundle, ev, seed = self.bundle, self.cfg.eval, self.seed
        kind = Eval.parse(evaluation)
        if kind is Eval.FINETUNE:
            result = finetune(self.encoder(), bundle, fraction, seed, self.cfg, loggers)
            return Evaluated(result.y_true, result.y_score, Evaluation(
                n_labelled=result.n_labelled, finetune_steps_taken=result.steps, selected_step=result.selected_step,
                finetune_time_s=result.time_s, finetune_flops_per_image=result.flops_per_image,
                finetune_mfu=result.mfu, encoder_params=self.params))
        indices = label_fraction_indices(bundle.train.labels, fraction, seed, bundle.task)
        train_x, test_x = self.features()
        labels = bundle.train.labels[indices]
        if kind is Eval.KNN:
            scores = knn_scores(train_x[indices], labels, test_x, bundle.num_classes, bundle.task, ev.knn_k,
                                ev.knn_temperature)
            done = Evaluation(n_labelled=len(indices), knn_k=min(ev.knn_k, len(indices)), encoder_params=self.params)
        else:  # Eval.LINEAR, the one evaluation left
            scores, c = linear_probe_scores(train_x[indices], labels, test_x, bundle.num_classes, bundle.task,
                                            ev.linear_c_grid, ev.linear_folds, seed)
            done = Evaluation(n_labelled=len(indices), linear_c=c, encoder_params=self.params)
        return Evaluated(bundle.test.labels, scores, done)


def chance_figures(bundle: DatasetBundle, fraction: float, seed: int, y_true: np.ndarray, y_score: np.ndarray,
                   cfg: BenchConfig) -> Chance:
    """The chance levels of a record's test set and whether its predictions are significantly above them."""
    labels = bundle.train.labels[label_fraction_indices(bundle.train.labels, fraction, seed, bundle.task)]
    p = above_chance_pvalue(y_true, y_score, bundle.task, cfg.eval.chance_permutations, seed)
    majority = majority_f1(y_true, bundle.num_classes, bundle.task, labels)
    random = random_f1(y_true, bundle.num_classes, bundle.task, labels, seed=seed)
    return Chance(
        chance_f1_majority=majority,
        chance_f1_random=random,
        above_chance_p=p,
        above_chance=is_above_chance(score_macro_f1(y_true, y_score), p, majority, random, cfg.eval.chance_alpha),
        labelled_per_class=class_counts(labels, bundle.num_classes).astype(int).tolist(),
    )
