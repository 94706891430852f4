"""One cell of the benchmark: pretrain once (cached), fine-tune each encoder at each label fraction, record.

A cell is (dataset, method, encoders, batch size, pretraining epochs, seed). Pretraining does not depend on the
label fraction, so its checkpoint is cached by cell key and every fraction fine-tunes a fresh copy of it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from cass_bench.engine.checkpoints import CheckpointCache, is_global_rank_zero
from cass_bench.config.schema import BenchConfig
from cass_bench.config.vocabulary import Status
from cass_bench.data.bundle import DatasetBundle
from cass_bench.data.loaders import eval_transform, loader_workers, make_loader
from cass_bench.data.sources import load_dataset
from cass_bench.models.encoders import backbone_name, small_stem_applied
from cass_bench.errors import DivergedError
from cass_bench.evaluation.evaluate import EncoderEvaluator, chance_figures, param_count
from cass_bench.evaluation.finetune import compute_metrics
from cass_bench.engine import neighbours
from cass_bench.engine.feature_collapse import FeatureCollapse
from cass_bench.engine.figures import RunFigures, module_figures
from cass_bench.engine.flops import StepFlops
from cass_bench.engine.logs import FINETUNE, PRETRAIN, log_dir, run_loggers
from cass_bench.engine.memory import PeakMemory
from cass_bench.engine.timing import EpochClock
from cass_bench.records.schema import Environment, Files, Identity, Pretraining, Spent, failed_record, ok_record
from cass_bench.config.registry import PretrainSetup, get_method
from cass_bench.records.environment import device_name, git_commit, versions
from cass_bench.records.identity import (Cell, config_hash, pretrain_key, pretrain_payload, record_id, record_keys,
                                         start_key)
from cass_bench.records.store import RecordStore
from cass_bench.engine.trainer import pretrain_trainer
from cass_bench.starts.cache import Start, ensure_start, start_weights
from cass_bench.run.console import progress

@dataclass
class Pretrained:
    """Encoder weights of a pretraining run and what it cost.

    Attributes:
        states: encoder state dicts keyed by arch.
        figures: what the run measured (None for the no-pretraining reference).
        wall_s: the whole pretraining stage's wall time in this process, waiting left out (None: loaded or none).
        wait_s: seconds spent waiting for the pretraining lock (``pretrain_alone``).
    """

    states: dict[str, dict[str, torch.Tensor]]
    figures: RunFigures | None
    wall_s: float | None = None
    wait_s: float | None = None


PROBE_IMAGES = 256


def probe_batch(bundle: DatasetBundle, size: int = PROBE_IMAGES) -> torch.Tensor:
    """The fixed batch on which feature collapse is measured: the first ``size`` training images, eval transform."""
    transform = eval_transform()
    return torch.stack([transform(bundle.train.images.load(i)) for i in range(min(size, len(bundle.train)))])


def pretrain(cell: Cell, cfg: BenchConfig, bundle: DatasetBundle, cache_dir: Path,
             out: Path | None = None, start: Start | None = None) -> Pretrained | None:
    """Runs (or loads from the verified cache, :class:`cass_bench.engine.checkpoints.CheckpointCache`) a cell's pretraining.

    Args:
        cell: the cell.
        cfg: benchmark config.
        bundle: the dataset (its training split is used without labels).
        cache_dir: folder of cached checkpoints.
        out: results folder whose ``logs/pretrain/<checkpoint key>/`` receives the curves (None: not logged).
        start: the ``init: fractal`` start of the cell's seed, resolved once by the caller (None for other inits).

    Returns:
        The encoders and measures, or None on non-zero ranks of a distributed run.
    """
    spec = get_method(cell.method)
    if spec.is_reference:
        return Pretrained(states={}, figures=None)
    cache, key, payload = CheckpointCache(cache_dir), pretrain_key(cell, cfg), pretrain_payload(cell, cfg)
    saved = cache.load(key, payload, RunFigures.from_dict) if is_global_rank_zero() else None
    if saved is not None:
        return Pretrained(states=saved[0], figures=saved[1])
    assert cell.batch_size is not None
    began = time.perf_counter()
    pl.seed_everything(cell.seed, workers=True, verbose=False)
    if cfg.init == "fractal" and start is None:
        raise ValueError("a fractal-init cell pretrains from the start its caller resolved; pass start=")
    module = spec.make(PretrainSetup(cfg=cfg, archs=cell.archs, batch_size=cell.batch_size, seed=cell.seed,
                                      weights=start_weights(start)))
    if cfg.channels_last:
        module = module.to(memory_format=torch.channels_last)
    loader = make_loader(bundle.train, module.transform, cell.batch_size, True, loader_workers(cfg.num_workers),
                         drop_last=True)
    clock, memory, flops = EpochClock(), PeakMemory(), StepFlops(cfg.cpu_peak_gflops)
    collapse = FeatureCollapse(probe_batch(bundle))
    loggers = run_loggers(out, PRETRAIN, key) if out is not None else None
    trainer = pretrain_trainer(module, cfg, cell.pretrain_epochs, [clock, collapse, memory, flops], loggers)
    lock_folder = out if cfg.pretrains_alone(cell.seed) and is_global_rank_zero() else None
    with neighbours.stage_lock(lock_folder, True) as waited, neighbours.training_marker(neighbours.PRETRAIN):
        trainer.fit(module, loader)
    if not trainer.is_global_zero:
        return None
    world = trainer.world_size
    timing = clock.figures(world_size=world)
    figures = RunFigures(timing, memory.figures(), flops.figures(timing.images_per_s, world),
                         module_figures(module, param_count(module), cell.batch_size, world),
                         collapse.std_history, collapse.rank_history)
    states = {arch: {k: v.detach().cpu() for k, v in enc.state_dict().items()}
              for arch, enc in module.encoders().items()}
    cache.save(key, payload, states, figures.to_dict())
    return Pretrained(states=states, figures=figures, wall_s=time.perf_counter() - began - waited, wait_s=waited)


def failure_status(exc: BaseException) -> tuple[Status, str]:
    """Maps an exception to a record status (``oom``, ``diverged``, ``error``) and a one-line message."""
    message = (str(exc).strip().splitlines() or [""])[0]
    text = f"{type(exc).__name__}: {message}"
    lowered = message.lower()
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) or any(
            phrase in lowered for phrase in ("out of memory", "can't allocate memory", "cannot allocate memory")):
        return Status.OOM, text
    if isinstance(exc, DivergedError):
        return Status.DIVERGED, text
    return Status.ERROR, text


def _identity(cell: Cell, arch: str, fraction: float, evaluation: str, cfg: BenchConfig,
              bundle_task: str | None) -> Identity:
    return Identity(
        record_id=record_id(cell, arch, fraction, evaluation, cfg),
        dataset=cell.dataset,
        task=bundle_task,
        method=cell.method,
        arch=arch,
        eval=evaluation,
        encoders="+".join(cell.archs),
        backbone=backbone_name(arch, cfg.backbones),
        init=cfg.init,
        small_input_stem=small_stem_applied(arch, cfg.backbones, cfg.image_size),
        label_fraction=fraction,
        batch_size=cell.batch_size,
        pretrain_epochs=cell.pretrain_epochs,
        finetune_budget=cfg.finetune.budget,
        finetune_steps=cfg.finetune.steps if cfg.finetune.budget == "steps" else None,
        finetune_epochs=cfg.finetune.epochs if cfg.finetune.budget == "epochs" else None,
        finetune_select=cfg.finetune.select,
        image_size=cfg.image_size,
        seed=cell.seed,
        precision=cfg.precision,
        config_hash=config_hash(cfg, cell.method),
        start_key=start_key(cfg, cell.seed) if cfg.init == "fractal" else None,
    )


def _environment(cfg: BenchConfig) -> Environment:
    return Environment(
        device=device_name(cfg.accelerator),
        torch_threads=torch.get_num_threads(),
        versions=versions(),
        git_commit=git_commit(),
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )


def _files(cell: Cell, cfg: BenchConfig, out: Path | None = None, finetune_version: str | None = None) -> Files:
    """The record's checkpoint key and the log folders that exist in ``out``."""
    if get_method(cell.method).is_reference:
        key = pretrain_dir = None
    else:
        key = pretrain_key(cell, cfg)
        pretrain_dir = log_dir(PRETRAIN, key)
    finetune_dir = log_dir(FINETUNE, finetune_version) if finetune_version else None
    present = [d if d is not None and out is not None and (out / d).is_dir() else None
               for d in (pretrain_dir, finetune_dir)]
    return Files(key, *present)


def failure_record(cell: Cell, arch: str, fraction: float, evaluation: str, cfg: BenchConfig, status: str,
                   error: str, task: str | None = None) -> dict[str, Any]:
    """A complete record (as written) for a (cell, encoder, fraction, evaluation) that did not finish."""
    return failed_record(_identity(cell, arch, fraction, evaluation, cfg, task), status, error,
                         _environment(cfg), _files(cell, cfg)).to_json()


def run_cell(cell: Cell, cfg: BenchConfig, store: RecordStore, startup_s: float | None = None) -> None:
    """Pretrains a cell (or loads its checkpoint) and writes one record per missing (encoder, fraction, evaluation).

    Failures become records (``oom``, ``diverged``, ``error``) rather than exceptions. The cell's lock
    (``checkpoints/<key>.lock``) is held throughout and the missing records are listed again once it is taken, so
    identical runs started together pretrain once and write each record once.

    Args:
        cell: the cell to run.
        cfg: benchmark config (read as the cell's dataset reads it: :meth:`BenchConfig.for_dataset`).
        store: where records and predictions go.
        startup_s: the cell's own process's start-up before this call (None: the cell has no process of its own).
    """
    cfg = cfg.for_dataset(cell.dataset)
    if not _missing(cell, cfg, store):
        return
    began = time.perf_counter()
    with CheckpointCache(store.out / "checkpoints").lock(pretrain_key(cell, cfg)):
        spent = Spent(cell_process=uuid.uuid4().hex[:12], cell_startup_s=startup_s,
                      cell_wait_s=time.perf_counter() - began)
        todo = _missing(cell, cfg, store)
        if todo:
            _run_missing(cell, cfg, store, todo, spent)


def _missing(cell: Cell, cfg: BenchConfig, store: RecordStore) -> list[tuple[str, float, str]]:
    """The (arch, fraction, evaluation) keys of a cell whose records are not written yet."""
    done = store.ids()
    return [k for k in record_keys(cell, cfg) if record_id(cell, *k, cfg) not in done]


def _start_seconds(start: Start | None) -> float | None:
    """The start's rendering and training time, from its measures."""
    if start is None:
        return None
    trained = start.measures.get("train_time_s") or {}
    return float(sum(trained.values()) + (start.measures.get("render_time_s") or 0.0))


def _run_missing(cell: Cell, cfg: BenchConfig, store: RecordStore, todo: list[tuple[str, float, str]],
                 spent: Spent) -> None:
    """Pretrains (or loads) a cell and writes the records of ``todo``; failures become records."""
    began = time.perf_counter()
    bundle = load_dataset(cell.dataset, cfg.image_size, cfg.data_dir, cfg.split_seed)
    spent = dataclasses.replace(spent, data_time_s=time.perf_counter() - began)
    try:
        start = ensure_start(cfg, cell.seed) if cfg.init == "fractal" else None
        pretrained = pretrain(cell, cfg, bundle, store.out / "checkpoints", store.out, start)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a record
        status, error = failure_status(exc)
        for key in todo:
            store.append(failure_record(cell, *key, cfg, status, error, bundle.task))
        return
    if pretrained is None:
        return
    spent = dataclasses.replace(spent, pretrain_wall_s=pretrained.wall_s, pretrain_wait_s=pretrained.wait_s,
                                start_train_s=_start_seconds(start))
    lock_folder = store.out if cfg.pretrains_alone(cell.seed) else None
    evaluators: dict[str, EncoderEvaluator] = {}
    for arch, fraction, evaluation in progress(todo, "evaluations"):
        if arch not in evaluators:
            evaluators[arch] = EncoderEvaluator(cell.seed, arch, cfg, bundle, pretrained.states.get(arch),
                                                start_weights(start))
        evaluator = evaluators[arch]
        rid = record_id(cell, arch, fraction, evaluation, cfg)
        loggers = run_loggers(store.out, FINETUNE, rid) if evaluation == "finetune" else None
        try:
            with neighbours.stage_lock(lock_folder, False) as waited, \
                    neighbours.training_marker(neighbours.EVALUATE):
                began = time.perf_counter()
                result = evaluator.run(fraction, evaluation, loggers)
                require_finite(result.y_score, evaluation)
                metrics = compute_metrics(torch.as_tensor(result.y_score), torch.as_tensor(result.y_true),
                                          bundle.task)
                chance = chance_figures(bundle, fraction, cell.seed, result.y_true, result.y_score, cfg)
                ident = _identity(cell, arch, fraction, evaluation, cfg, bundle.task)
                store.save_predictions(ident.record_id, result.y_true, result.y_score)
                evaluated_s = time.perf_counter() - began
        except Exception as exc:  # noqa: BLE001 - every failure becomes a record
            status, error = failure_status(exc)
            store.append(failure_record(cell, arch, fraction, evaluation, cfg, status, error, bundle.task))
            continue
        evaluated = result.evaluation if start is None else dataclasses.replace(
            result.evaluation, start_source_accuracy=start.source_accuracy(arch))
        pretraining = pretrained.figures.for_encoder(arch) if pretrained.figures else Pretraining()
        record = ok_record(ident, metrics, chance, pretraining, evaluated, _environment(cfg),
                           _files(cell, cfg, store.out, rid if loggers else None),
                           dataclasses.replace(spent, eval_wait_s=waited, eval_time_s=evaluated_s))
        store.append(record.to_json())


def require_finite(y_score: Any, evaluation: str) -> None:
    """Raises ValueError (a failure record, never an ok one) when any test score is NaN or infinite."""
    bad = ~np.isfinite(np.asarray(y_score, dtype=np.float64))
    if bad.any():
        rows = int(bad.reshape(len(bad), -1).any(axis=1).sum())
        raise ValueError(f"{rows} of {len(bad)} test images got NaN or infinite {evaluation} scores, so no metric "
                         "of them is recorded; check the evaluation's settings (e.g. eval.knn_temperature) and run "
                         "again with --retry-failed")
