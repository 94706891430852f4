"""Running the tuning stage: each trial pretrains on the training images less a validation part and is scored on
that part; once every trial has its record, the chosen values go into the results folder's ``config.yaml``.

What the trials are and how the values are chosen: :mod:`cass_bench.run.tuning` (torch-free). No trial sees a test
image: the validation part is carved from the training split (:func:`validation_bundle`), and the trial's
frozen-feature evaluation fits on the rest of the training images and scores the validation part.
"""

from __future__ import annotations

import datetime as dt
import math
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from cass_bench.config.schema import BenchConfig
from cass_bench.config.vocabulary import Status
from cass_bench.data.bundle import DatasetBundle
from cass_bench.data.sources import load_dataset
from cass_bench.data.splits import stratified_split
from cass_bench.evaluation.chance import score_macro_f1
from cass_bench.evaluation.evaluate import EncoderEvaluator
from cass_bench.records.environment import git_commit
from cass_bench.records.identity import Cell, start_key
from cass_bench.run.cell import failure_status, pretrain
from cass_bench.records.locks import file_lock
from cass_bench.records.store import TUNING, RecordStore
from cass_bench.run.tuning import Trial, trial_config, trial_id
from cass_bench.starts.cache import ensure_start, start_weights


def validation_bundle(bundle: DatasetBundle, share: float, seed: int) -> DatasetBundle:
    """The bundle a tuning trial sees: ``share`` of the training images (stratified, seeded) held out as its
    validation part, which stands in for the test split; the test split itself is not in it."""
    keep, held = stratified_split(bundle.train.labels, (1 - share, share), seed)
    validation = bundle.train.subset(held)
    return DatasetBundle(bundle.name, bundle.task, bundle.class_names, bundle.train.subset(keep), validation,
                         validation)


def run_trial(cfg: BenchConfig, trial: Trial) -> dict[str, Any]:
    """Pretrains one trial (checkpoint thrown away) and scores each encoder on the validation part.

    Returns:
        The trial's record: identity, values, per-encoder validation macro-F1 (``scores``), status and time.
    """
    base = {"record_id": trial_id(cfg, trial), "dataset": trial.dataset, "method": trial.method,
            "encoders": "+".join(trial.archs), "point": trial.point, "values": trial.values, "seed": trial.seed,
            "batch_size": trial.batch_size, "pretrain_epochs": trial.pretrain_epochs, "eval": cfg.tune.eval,
            "label_fraction": cfg.tune.label_fraction, "val_share": cfg.tune.val_share}
    started = time.perf_counter()
    try:
        trial_cfg = trial_config(cfg, trial)
        full = load_dataset(trial.dataset, cfg.image_size, cfg.data_dir, cfg.split_seed)
        bundle = validation_bundle(full, cfg.tune.val_share, trial.seed)
        start = ensure_start(cfg, trial.seed) if cfg.init == "fractal" else None
        cell = Cell(trial.dataset, trial.method, trial.archs, trial.batch_size, trial.pretrain_epochs, trial.seed)
        with tempfile.TemporaryDirectory(prefix="cass-bench-tune-") as folder:
            pretrained = pretrain(cell, trial_cfg, bundle, Path(folder), None, start)
        assert pretrained is not None
        scores = {}
        for arch in trial.archs:
            evaluator = EncoderEvaluator(trial.seed, arch, trial_cfg, bundle, pretrained.states.get(arch),
                                         start_weights(start))
            result = evaluator.run(cfg.tune.label_fraction, cfg.tune.eval)
            score = score_macro_f1(result.y_true, result.y_score)
            scores[arch] = float(score) if math.isfinite(score) else None
        figures = pretrained.figures
        status, error = Status.OK.value, None
        extra = {"scores": scores, "n_train": len(bundle.train), "n_val": len(bundle.val),
                 "pretrain_time_s": figures.timing.pretrain_time_s if figures else None,
                 "centred_rank": {a: (figures.centred_rank_history.get(a) or [None])[-1] for a in trial.archs}
                 if figures else None}
    except Exception as exc:  # noqa: BLE001 - a failed trial is recorded and cannot be chosen
        status, error = failure_status(exc)
        status, extra = str(getattr(status, "value", status)), {"scores": {}}
    return {**base, **extra, "status": status, "error": error,
            "start_key": start_key(cfg, trial.seed) if cfg.init == "fractal" else None,
            "wall_time_s": time.perf_counter() - started, "git_commit": git_commit(),
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


LOCKS = "tuning.locks"
"""Folder of the per-trial locks in a results folder: the shard holding a trial's lock is running it."""


def run_trials(cfg: BenchConfig, todo: list[Trial], say: Callable[[str], None] = print) -> None:
    """Runs ``todo`` one after another, appending each record to ``<out>/tuning.jsonl`` as it finishes; a trial
    another shard has recorded or is running (its lock is held) is skipped."""
    store = RecordStore(cfg.out, TUNING)
    for k, trial in enumerate(todo):
        key = trial_id(cfg, trial)
        with file_lock(Path(cfg.out) / LOCKS / f"{key}.lock", wait=False) as waited:
            if waited is None or key in store.ids():
                continue
            say(f"[tune] trial {k + 1}/{len(todo)}: {trial.describe()}")
            record = run_trial(cfg, trial)
            store.append(record)
        scores = ", ".join(f"{a} {s:.3f}" if s is not None else f"{a} -" for a, s in record["scores"].items())
        say(f"[tune]   {record['status']}: validation macro-F1 {scores or '-'} ({record.get('wall_time_s') or 0:.0f} s)")
