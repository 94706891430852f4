"""One cell of the benchmark: pretrain once (cached), fine-tune each encoder at each label fraction, record.

A cell is (dataset, method, encoders, batch size, pretraining epochs, seed). Pretraining does not depend on the
label fraction, so its checkpoint is cached by cell key and every fraction fine-tunes a fresh copy of it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from cass_bench.config import BenchConfig, stable_hash, to_dict
from cass_bench.data.bundle import DatasetBundle
from cass_bench.data.loaders import make_loader
from cass_bench.data.sources import load_dataset
from cass_bench.encoders import backbone_name, build_encoder
from cass_bench.errors import DivergedError
from cass_bench.finetune import METRICS, finetune
from cass_bench.measure import EpochClock, PeakMemory, StepFlops
from cass_bench.method import PretrainMethod
from cass_bench.registry import PretrainSetup, get_method
from cass_bench.results import RecordStore, device_name, git_commit, versions

INJECT_OOM_ENV = "CASS_BENCH_INJECT_OOM"
"""Test hook: comma-separated ``method/arch/batch_size`` patterns (``*`` allowed) whose pretraining raises OOM."""


@dataclass(frozen=True)
class Cell:
    """One pretraining run and the fine-tunes that follow it.

    Attributes:
        dataset: dataset name as given on the CLI.
        method: registered method name.
        archs: encoders this run produces (both for CASS, one for DINO/BYOL/supervised).
        batch_size: per-device pretraining batch size (None for ``supervised``).
        pretrain_epochs: pretraining epochs (0 for ``supervised``).
        seed: seed of initialisation, augmentation and label subsets.
    """

    dataset: str
    method: str
    archs: tuple[str, ...]
    batch_size: int | None
    pretrain_epochs: int
    seed: int

    def describe(self) -> str:
        """A short human-readable label."""
        bs = "-" if self.batch_size is None else self.batch_size
        return f"{self.dataset} {self.method}/{'+'.join(self.archs)} bs={bs} ep={self.pretrain_epochs} seed={self.seed}"


def _shared_settings(cfg: BenchConfig) -> dict[str, Any]:
    return {
        "image_size": cfg.image_size, "split_seed": cfg.split_seed, "precision": cfg.precision,
        "channels_last": cfg.channels_last, "devices": cfg.devices, "num_nodes": cfg.num_nodes,
        "strategy": cfg.strategy, "backbones": to_dict(cfg.backbones),
    }


def _method_section(cfg: BenchConfig, method: str) -> dict[str, Any]:
    section = getattr(cfg, method, None)
    return to_dict(section) if dataclasses.is_dataclass(section) else {}


def config_hash(cfg: BenchConfig, method: str) -> str:
    """Hash of every setting a method's records depend on besides the cell identity."""
    return stable_hash({"shared": _shared_settings(cfg), "method": _method_section(cfg, method),
                        "finetune": to_dict(cfg.finetune)})


def pretrain_key(cell: Cell, cfg: BenchConfig) -> str:
    """Cache key of a cell's pretraining checkpoint (independent of fine-tuning settings)."""
    return stable_hash({"cell": dataclasses.asdict(cell), "shared": _shared_settings(cfg),
                        "method": _method_section(cfg, cell.method)})


def record_id(cell: Cell, arch: str, fraction: float, cfg: BenchConfig) -> str:
    """Id of the record of one (cell, encoder, label fraction)."""
    return stable_hash({"cell": dataclasses.asdict(cell), "arch": arch, "fraction": fraction,
                        "config": config_hash(cfg, cell.method)}, length=16)


def expected_ids(cell: Cell, cfg: BenchConfig) -> list[str]:
    """Ids of every record a cell writes."""
    return [record_id(cell, a, f, cfg) for a in cell.archs for f in cfg.label_fractions]


@dataclass
class Pretrained:
    """Encoder weights of a pretraining run and what it cost.

    Attributes:
        states: encoder state dicts keyed by arch.
        measures: efficiency and collapse figures (None where not measured).
    """

    states: dict[str, dict[str, torch.Tensor]]
    measures: dict[str, Any]


def _inject_oom(cell: Cell) -> None:
    for pattern in filter(None, os.environ.get(INJECT_OOM_ENV, "").split(",")):
        for arch in cell.archs:
            if fnmatch.fnmatch(f"{cell.method}/{arch}/{cell.batch_size}", pattern):
                raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (injected by {INJECT_OOM_ENV}={pattern})")


def param_count(module: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in module.parameters())


def pretrain_trainer(module: PretrainMethod, cfg: BenchConfig, epochs: int, callbacks: list[pl.Callback]) -> pl.Trainer:
    """The Lightning Trainer every pretraining run uses (placement, precision, the method's clipping and sync BN)."""
    return pl.Trainer(
        max_epochs=epochs, accelerator=cfg.accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes,
        strategy=cfg.strategy, precision=cfg.precision, logger=False, enable_checkpointing=False,
        callbacks=callbacks, gradient_clip_val=module.gradient_clip_val, enable_model_summary=False,
        sync_batchnorm=module.sync_batchnorm and cfg.devices * cfg.num_nodes > 1,
    )


def pretrain(cell: Cell, cfg: BenchConfig, bundle: DatasetBundle, cache_dir: Path) -> Pretrained | None:
    """Runs (or loads from cache) the pretraining of a cell.

    Args:
        cell: the cell.
        cfg: benchmark config.
        bundle: the dataset (its training split is used without labels).
        cache_dir: folder of cached checkpoints.

    Returns:
        The encoders and measures, or None on non-zero ranks of a distributed run.
    """
    spec = get_method(cell.method)
    if spec.build is None:
        return Pretrained(states={}, measures={})
    cache = cache_dir / f"{pretrain_key(cell, cfg)}.pt"
    if cache.exists():
        saved = torch.load(cache, map_location="cpu", weights_only=True)
        return Pretrained(states=saved["states"], measures=saved["measures"])
    _inject_oom(cell)
    assert cell.batch_size is not None
    pl.seed_everything(cell.seed, workers=True, verbose=False)
    module = spec.build(PretrainSetup(cfg=cfg, archs=cell.archs, batch_size=cell.batch_size, seed=cell.seed))
    if cfg.channels_last:
        module = module.to(memory_format=torch.channels_last)
    loader = make_loader(bundle.train, module.transform, cell.batch_size, True, cfg.num_workers, drop_last=True)
    clock, memory, flops = EpochClock(), PeakMemory(), StepFlops()
    trainer = pretrain_trainer(module, cfg, cell.pretrain_epochs, [clock, memory, flops])
    trainer.fit(module, loader)
    if not trainer.is_global_zero:
        return None
    timing = clock.summary(world_size=trainer.world_size)
    encoders = module.encoders()
    measures = {
        "pretrain_epoch_time_s": timing["epoch_time_s"],
        "pretrain_first_epoch_time_s": timing["first_epoch_time_s"],
        "pretrain_time_s": timing["total_time_s"],
        "images_per_s": timing["images_per_s"],
        "data_wait_share": timing["data_wait_share"],
        "peak_gpu_mem_mb": max(memory.allocated_mb) if memory.allocated_mb else None,
        "peak_gpu_reserved_mb": max(memory.reserved_mb) if memory.reserved_mb else None,
        "peak_gpu_mem_mb_per_device": memory.allocated_mb or None,
        "peak_rss_mb": PeakMemory.peak_rss_mb(),
        "flops_per_image": flops.flops_per_image,
        "pretrain_params": param_count(module),
        "embedding_std": module.embedding_std_history[-1] if module.embedding_std_history else None,
        "embedding_std_history": module.embedding_std_history,
        "embedding_dim": module.embedding_dim,
        "world_size": trainer.world_size,
        "effective_batch_size": cell.batch_size * trainer.world_size,
    }
    states = {arch: {k: v.detach().cpu() for k, v in enc.state_dict().items()} for arch, enc in encoders.items()}
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    torch.save({"states": states, "measures": measures}, tmp)
    os.replace(tmp, cache)
    return Pretrained(states=states, measures=measures)


def failure_status(exc: BaseException) -> tuple[str, str]:
    """Maps an exception to a record status (``oom``, ``diverged``, ``error``) and a one-line message."""
    message = (str(exc).strip().splitlines() or [""])[0]
    text = f"{type(exc).__name__}: {message}"
    if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in message.lower():
        return "oom", text
    if isinstance(exc, DivergedError):
        return "diverged", text
    return "error", text


def _identity(cell: Cell, arch: str, fraction: float, cfg: BenchConfig, bundle_task: str | None) -> dict[str, Any]:
    return {
        "record_id": record_id(cell, arch, fraction, cfg),
        "dataset": cell.dataset,
        "task": bundle_task,
        "method": cell.method,
        "arch": arch,
        "encoders": "+".join(cell.archs),
        "backbone": backbone_name(arch, cfg.backbones),
        "label_fraction": fraction,
        "batch_size": cell.batch_size,
        "pretrain_epochs": cell.pretrain_epochs,
        "finetune_epochs": cfg.finetune.epochs,
        "image_size": cfg.image_size,
        "seed": cell.seed,
        "precision": cfg.precision,
        "config_hash": config_hash(cfg, cell.method),
    }


def _environment(cfg: BenchConfig) -> dict[str, Any]:
    return {
        "device": device_name(cfg.accelerator),
        "versions": versions(),
        "git_commit": git_commit(),
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _empty_results() -> dict[str, Any]:
    keys = list(METRICS) + ["pretrain_epoch_time_s", "pretrain_time_s", "images_per_s", "peak_gpu_mem_mb",
                            "peak_rss_mb", "flops_per_image"]
    return dict.fromkeys(keys)


def failure_record(cell: Cell, arch: str, fraction: float, cfg: BenchConfig, status: str, error: str,
                   task: str | None = None) -> dict[str, Any]:
    """A complete record for a (cell, encoder, fraction) that did not finish."""
    return {**_identity(cell, arch, fraction, cfg, task), "status": status, "error": error, **_empty_results(),
            **_environment(cfg)}


def run_cell(cell: Cell, cfg: BenchConfig, store: RecordStore) -> None:
    """Pretrains a cell (or loads its checkpoint) and writes one record per missing (encoder, fraction).

    Failures become records (``oom``, ``diverged``, ``error``) rather than exceptions.

    Args:
        cell: the cell to run.
        cfg: benchmark config.
        store: where records and predictions go.
    """
    done = store.ids()
    todo = [(a, f) for a in cell.archs for f in cfg.label_fractions if record_id(cell, a, f, cfg) not in done]
    if not todo:
        return
    bundle = load_dataset(cell.dataset, cfg.image_size, cfg.data_dir, cfg.split_seed)
    try:
        pretrained = pretrain(cell, cfg, bundle, store.out / "checkpoints")
    except Exception as exc:  # noqa: BLE001 - every failure becomes a record
        status, error = failure_status(exc)
        for arch, fraction in todo:
            store.append(failure_record(cell, arch, fraction, cfg, status, error, bundle.task))
        return
    if pretrained is None:
        return
    plain = dataclasses.replace(cfg.backbones, pretrained=False) if pretrained.states else cfg.backbones
    for arch, fraction in todo:
        try:
            encoder = build_encoder(arch, plain, cfg.image_size, cell.seed)
            if pretrained.states:
                encoder.load_state_dict(pretrained.states[arch])
            result = finetune(encoder, bundle, fraction, cell.seed, cfg)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a record
            status, error = failure_status(exc)
            store.append(failure_record(cell, arch, fraction, cfg, status, error, bundle.task))
            continue
        ident = _identity(cell, arch, fraction, cfg, bundle.task)
        store.save_predictions(ident["record_id"], result.y_true, result.y_score)
        measures = {k: v for k, v in pretrained.measures.items() if k != "embedding_std_history"}
        record = {
            **ident, "status": "ok", "error": None, **_empty_results(), **result.metrics, **measures,
            "encoder_params": param_count(encoder),
            "best_epoch": result.best_epoch,
            "n_labelled": result.n_labelled,
            "finetune_epoch_time_s": result.epoch_time_s,
            "finetune_flops_per_image": result.flops_per_image,
            "embedding_collapsed": _collapsed(pretrained.measures),
            **_environment(cfg),
        }
        store.append(record)


def _collapsed(measures: dict[str, Any]) -> bool | None:
    """True when the last epoch's embedding spread is under 5% of the healthy ``1/sqrt(dim)``."""
    std, dim = measures.get("embedding_std"), measures.get("embedding_dim")
    if std is None or not dim:
        return None
    return bool(std * math.sqrt(dim) < 0.05)
