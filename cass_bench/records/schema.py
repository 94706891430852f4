"""The record: one JSON line per (cell, encoder, label fraction, evaluation), defined once here.

A :class:`Record` is made of typed parts (identity, metrics, chance, pretraining figures, evaluation figures,
environment, files); it is written flat, every field of every part in this order, null where not measured. Every other
module (the protocol that writes records, the report that reads them, the README's field table) takes its field
list from these classes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, get_type_hints

import pandas as pd
from tabulate import tabulate

from cass_bench.config.vocabulary import Status

OK = Status.OK
DOC = "doc"


def _doc(text: str) -> Any:
    return field(metadata={DOC: text})


def _opt(text: str) -> Any:
    return field(default=None, metadata={DOC: text})


@dataclass(frozen=True)
class Identity:
    """What a record is of: the cell, the encoder, the label fraction, the evaluation and every setting hashed."""

    record_id: str = _doc("hash of the cell, encoder, label fraction, evaluation and `config_hash`")
    dataset: str = _doc("dataset name as given to `--dataset`")
    task: str | None = _doc("`multiclass` or `multilabel`")
    method: str = _doc("registered method (`python -m cass_bench list`)")
    arch: str = _doc("the evaluated encoder: `cnn` or `vit`")
    eval: str = _doc("`finetune`, `linear` or `knn`")
    encoders: str = _doc("encoders of the pretraining run (`cnn+vit` for CASS's joint run)")
    backbone: str = _doc("timm model name of the encoder")
    init: str = _doc("starting weights: `random`, `imagenet`, `fractal` (the formula-driven start) or a checkpoint "
                     "path")
    small_input_stem: bool = _doc("whether the CNN's small-image stem was used")
    label_fraction: float = _doc("share of the training labels used")
    batch_size: int | None = _doc("per-device pretraining batch size (null without pretraining)")
    pretrain_epochs: int = _doc("pretraining epochs (0 without pretraining)")
    finetune_budget: str = _doc("`steps` or `epochs`")
    finetune_steps: int | None = _doc("fine-tuning optimiser steps (budget `steps`)")
    finetune_epochs: int | None = _doc("fine-tuning epochs (budget `epochs`)")
    finetune_select: str = _doc("`last` or `best_val`")
    image_size: int = _doc("image side in pixels")
    seed: int = _doc("seed of initialisation, augmentation and label subset")
    precision: str = _doc("Lightning precision")
    config_hash: str = _doc("hash of every setting the record depends on besides the cell")
    start_key: str | None = _opt("hash of the `fractal` start's recipe (`source` section, backbones, image size), "
                                 "its cache folder's name (null for other inits)")


@dataclass(frozen=True)
class Metrics:
    """Test metrics of the evaluated model (torchmetrics)."""

    f1_macro: float | None = _opt("macro-F1 (primary)")
    f1_micro: float | None = _opt("micro-F1")
    f1_seed_code: float | None = _opt("the reference notebook's F1 (sigmoid > 0.5 on every class, pooled)")
    balanced_accuracy: float | None = _opt("balanced accuracy")
    auroc: float | None = _opt("macro AUROC over the classes present in the test split")
    accuracy: float | None = _opt("accuracy (multi-label: exact match)")


@dataclass(frozen=True)
class Chance:
    """The chance levels of the record's test set and the above-chance test."""

    chance_f1_majority: float | None = _opt("macro-F1 of always predicting the labelled subset's majority class")
    chance_f1_random: float | None = _opt("expected macro-F1 of guessing with the labelled subset's frequencies")
    above_chance_p: float | None = _opt("one-sided permutation p-value of the test macro-F1")
    above_chance: bool | None = _opt("p < 0.05 and macro-F1 above both chance levels")
    labelled_per_class: list[int] | None = _opt("labelled training examples per class")


@dataclass(frozen=True)
class PretrainTiming:
    """The pretraining run's clock and what it shared the machine with
    (:class:`cass_bench.engine.timing.EpochClock`)."""

    pretrain_epoch_time_s: float | None = _opt("median epoch wall time after the first (s)")
    pretrain_first_epoch_time_s: float | None = _opt("first epoch wall time (s)")
    pretrain_time_s: float | None = _opt("total pretraining wall time (s)")
    images_per_s: float | None = _opt("pretraining throughput")
    data_wait_share: float | None = _opt("share of step time spent waiting for data")
    pretrain_cpu_share: float | None = _opt("training thread CPU / wall time, measured epochs (CPU; < 0.8: held up)")
    pretrain_threads: int | None = _opt("torch threads of the pretraining process (part of a cost setting)")
    pretrain_other_processes: int | None = _opt("most other training processes of the harness seen running on the "
                                                "machine during the measured epochs (0: timed alone; null: not "
                                                "checked)")


@dataclass(frozen=True)
class PretrainMemory:
    """The pretraining run's memory peaks (:class:`cass_bench.engine.memory.PeakMemory`)."""

    peak_gpu_mem_mb: float | None = _opt("peak GPU memory allocated, largest device (null on CPU)")
    peak_gpu_reserved_mb: float | None = _opt("peak GPU memory reserved (null on CPU)")
    peak_gpu_mem_mb_per_device: list[float] | None = _opt("peak GPU memory allocated per device")
    peak_rss_mb: float | None = _opt("peak process RSS (MB)")


@dataclass(frozen=True)
class PretrainFlops:
    """The pretraining step's FLOPs and how much of the hardware's peak they used
    (:class:`cass_bench.engine.flops.StepFlops`)."""

    flops_per_image: float | None = _opt("FLOPs per image of one training step, forward + backward")
    peak_flops: float | None = _opt("peak FLOP/s of one device the MFU divides by (CPU: per-thread peak x torch "
                                    "threads)")
    mfu: float | None = _opt("FLOPs/image x images/s / (`peak_flops` x world size): model-FLOPs utilisation")


@dataclass(frozen=True)
class PretrainModule:
    """The pretraining module's size, placement and output spread."""

    pretrain_params: int | None = _opt("parameters of the pretraining module")
    embedding_std: float | None = _opt("spread of the method's outputs after the last epoch")
    embedding_std_history: list[float] | None = _opt("spread of the method's outputs per epoch")
    embedding_dim: int | None = _opt("width of the method's outputs")
    world_size: int | None = _opt("processes of the run")
    effective_batch_size: int | None = _opt("batch size x world size")


@dataclass(frozen=True)
class EncoderFeatures:
    """The collapse signals of the encoder (:class:`cass_bench.engine.feature_collapse.FeatureCollapse`) and of the
    method's outputs."""

    feature_std_history: list[float] | None = _opt("spread of the encoder's pooled features, before and per epoch")
    centred_rank_history: list[float] | None = _opt("effective rank (RankMe) of the centred, L2-normalised pooled "
                                                    "features, before and per epoch")
    feature_std: float | None = _opt("last `feature_std_history` value")
    centred_rank: float | None = _opt("last `centred_rank_history` value")
    collapsed: bool | None = _opt("the encoder's final centred rank is below 2 (null: not measured)")
    embedding_collapsed: bool | None = _opt("the method's outputs ended near constant")


@dataclass(frozen=True)
class Pretraining:
    """What the pretraining run behind the encoder cost, and its collapse signals (all null without one): one part
    per measuring callback, written flat like every other part."""

    timing: PretrainTiming = field(default_factory=PretrainTiming)
    memory: PretrainMemory = field(default_factory=PretrainMemory)
    flops: PretrainFlops = field(default_factory=PretrainFlops)
    module: PretrainModule = field(default_factory=PretrainModule)
    features: EncoderFeatures = field(default_factory=EncoderFeatures)


@dataclass(frozen=True)
class Evaluation:
    """What the evaluation did besides its metrics."""

    n_labelled: int | None = _opt("labelled training examples")
    finetune_steps_taken: int | None = _opt("optimiser steps fine-tuning took")
    selected_step: int | None = _opt("step of the reported fine-tuned model")
    finetune_time_s: float | None = _opt("fine-tuning wall time (s)")
    finetune_flops_per_image: float | None = _opt("FLOPs per image of one fine-tuning step")
    finetune_mfu: float | None = _opt("fine-tuning's model-FLOPs utilisation, against the peak `peak_flops` "
                                      "describes")
    linear_c: float | None = _opt("the linear probe's chosen `C`")
    knn_k: int | None = _opt("neighbours of the kNN vote")
    start_source_accuracy: float | None = _opt("held-out source accuracy of the encoder's `fractal` start (null for "
                                               "other inits)")
    encoder_params: int | None = _opt("parameters of the evaluated encoder")


@dataclass(frozen=True)
class Spent:
    """Where the cell's wall time went (:mod:`cass_bench.report.breakdown`); the per-cell figures repeat on every
    record its process wrote, named by ``cell_process``."""

    cell_process: str | None = _opt("id of the cell process that wrote the record")
    cell_startup_s: float | None = _opt("the cell process's start-up before its first work: interpreter, imports (s)")
    cell_wait_s: float | None = _opt("seconds the cell waited for its own lock (another process ran the same cell)")
    data_time_s: float | None = _opt("seconds the cell process spent loading and decoding the dataset")
    pretrain_wait_s: float | None = _opt("seconds the cell waited for the pretraining lock (`--pretrain-alone`)")
    pretrain_wall_s: float | None = _opt("wall time of the cell's whole pretraining stage: module, FLOP count, "
                                         "collapse probes, epochs, checkpoint (null: loaded from the cache)")
    eval_wait_s: float | None = _opt("seconds this evaluation waited for the pretraining lock (`--pretrain-alone`)")
    eval_time_s: float | None = _opt("wall time of this record's evaluation: fine-tune or probe (with any feature "
                                     "extraction it triggered), test, metrics, chance test")
    start_train_s: float | None = _opt("training time of the `fractal` start, once per recipe and shared by every "
                                       "cell (null for other inits)")


@dataclass(frozen=True)
class Environment:
    """Where and with what the record was made."""

    device: str = _doc("GPU name, or the CPU with its core count")
    torch_threads: int = _doc("torch threads of the process")
    versions: dict[str, str] = _doc("python, torch, timm, lightly, pytorch_lightning, torchmetrics versions")
    git_commit: str | None = _doc("commit of the harness checkout")
    created_at: str = _doc("UTC time the record was written")


@dataclass(frozen=True)
class Outcome:
    """Whether the record finished."""

    status: str = _doc("`ok`, `oom`, `diverged`, `error` or `interrupted` (ended by a signal: a rerun runs it again)")
    error: str | None = _doc("the failure in one line (null when ok)")


@dataclass(frozen=True)
class Files:
    """Where the record's run left its files, relative to the results folder (null where there is none)."""

    checkpoint_key: str | None = _opt("pretraining checkpoint key: `checkpoints/<key>.pt` (null without one)")
    pretrain_log_dir: str | None = _opt("pretraining curves: loss, lr, collapse per epoch (`metrics.csv`)")
    finetune_log_dir: str | None = _opt("fine-tuning curves: loss, lr, validation macro-F1 (`finetune` only)")


PARTS: tuple[type, ...] = (Identity, Outcome, Metrics, Chance, Pretraining, Evaluation, Spent, Environment, Files)


@dataclass(frozen=True)
class Record:
    """One record: its parts, written flat in :data:`PARTS` order."""

    identity: Identity
    outcome: Outcome
    metrics: Metrics
    chance: Chance
    pretraining: Pretraining
    evaluation: Evaluation
    environment: Environment
    files: Files = field(default_factory=Files)
    spent: Spent = field(default_factory=Spent)

    def to_json(self) -> dict[str, Any]:
        """The record as one flat JSON object."""
        return {name: value for part in self._parts() for name, value in flat_values(part).items()}

    def _parts(self) -> tuple[Any, ...]:
        return (self.identity, self.outcome, self.metrics, self.chance, self.pretraining, self.evaluation,
                self.spent, self.environment, self.files)


def ok_record(identity: Identity, metrics: Metrics, chance: Chance, pretraining: Pretraining,
              evaluation: Evaluation, environment: Environment, files: Files | None = None,
              spent: Spent | None = None) -> Record:
    """A finished record."""
    return Record(identity, Outcome(OK, None), metrics, chance, pretraining, evaluation, environment,
                  files or Files(), spent or Spent())


def failed_record(identity: Identity, status: str, error: str, environment: Environment,
                  files: Files | None = None) -> Record:
    """A record that did not finish: its identity, why, where its files are, and nothing measured."""
    return Record(identity, Outcome(status, error), Metrics(), Chance(), Pretraining(), Evaluation(), environment,
                  files or Files())


def _is_part(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def leaf_fields(part: type) -> tuple[tuple[dataclasses.Field, Any], ...]:
    """The written fields of a part with their type hints, in order: a field holding a part of its own (as
    :class:`Pretraining`'s) contributes that part's fields in its place."""
    hints = get_type_hints(part)
    out: list[tuple[dataclasses.Field, Any]] = []
    for f in dataclasses.fields(part):
        out.extend(leaf_fields(hints[f.name]) if _is_part(hints[f.name]) else [(f, hints[f.name])])
    return tuple(out)


def flat_values(part: Any) -> dict[str, Any]:
    """A part's written fields and their values, flat (:func:`leaf_fields`)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(part):
        value = getattr(part, f.name)
        out.update(flat_values(value) if dataclasses.is_dataclass(value) else {f.name: value})
    return out


def field_names(part: type) -> tuple[str, ...]:
    """Written field names of one part, in order (:func:`leaf_fields`)."""
    return tuple(f.name for f, _ in leaf_fields(part))


RECORD_FIELDS: tuple[str, ...] = tuple(name for part in PARTS for name in field_names(part))
RETIRED_FIELDS = {
    "feature_rank": "effective rank of uncentred pooled features (record schema 1): read a shared mean direction "
                    "as collapse; replaced by `centred_rank` and never read",
    "feature_rank_history": "its per-epoch history (record schema 1); replaced by `centred_rank_history`",
}
"""Fields records of an older schema hold that no current code reads, with why (older records keep them)."""
METRIC_FIELDS = field_names(Metrics)


def _is(kind: Callable[[type], bool], annotation: Any) -> bool:
    return any(isinstance(t, type) and kind(t) for t in getattr(annotation, "__args__", (annotation,)))


def _typed(predicate: Callable[[type], bool]) -> tuple[str, ...]:
    hints = {f.name: hint for part in PARTS for f, hint in leaf_fields(part)}
    return tuple(name for name in RECORD_FIELDS if _is(predicate, hints[name]))


NUMERIC_FIELDS = _typed(lambda t: t in (int, float))
"""Fields holding one number (lists, flags and text are not)."""

def field_table() -> str:
    """The README's table of record fields (Markdown), generated from the parts' docs."""
    rows = [(f"`{f.name}`", part.__name__.lower(), f.metadata[DOC]) for part in PARTS for f, _ in leaf_fields(part)]
    return tabulate(pd.DataFrame(rows, columns=["field", "part", "what it holds"]), headers="keys",
                    tablefmt="pipe", showindex=False, disable_numparse=True)
