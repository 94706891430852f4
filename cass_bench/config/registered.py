"""A results folder's ``config.yaml``: its pre-registration, written once when its sweep is created.

The file fixes what the folder measures and how its claims are judged (methods, grid, recipes, the claim family,
the tuning budget) before any result exists. Later runs into the folder must agree with it: a run that differs in
anything that changes a record or a verdict is refused, never written over it. Three things may change the file
after its creation, each before the results it governs: the seeds may grow (the family is not a function of the
seeds), the tuning stage adds the values it chose (``tune.chosen``), and a seed plan sets the planned seeds
(``seeds`` and ``plan.planned``; a folder whose seeds were planned keeps them).
Settings that change no measured number (where the data and the output live, the launcher, worker counts) may
differ from run to run and are not written back.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from cass_bench.config.files import RESOLVED, write_resolved
from cass_bench.config.schema import BenchConfig, to_dict
from cass_bench.errors import UserError

RUNTIME_KEYS = ("out", "data_dir", "num_workers", "launcher", "slurm", "accelerator", "pretrain_alone",
                "cpu_peak_gflops")
"""Top-level keys a later run may set differently (they change where and how cells run, not what they measure; the
device a record ran on, its CPU peak and whether it was timed alone are in the record)."""


def _comparable(data: dict[str, Any]) -> dict[str, Any]:
    data = {k: v for k, v in data.items() if k not in RUNTIME_KEYS and k != "seeds"}
    tune = dict(data.get("tune") or {})
    tune.pop("chosen", None)
    plan = dict(data.get("plan") or {})
    plan.pop("planned", None)
    data["tune"], data["plan"] = tune, plan
    return data


def _first_difference(mine: Any, theirs: Any, key: str = "") -> str | None:
    """The dotted key of the first value that differs between two config dicts (None: equal)."""
    if isinstance(mine, dict) and isinstance(theirs, dict):
        for name in list(mine) + [k for k in theirs if k not in mine]:
            found = _first_difference(mine.get(name), theirs.get(name), f"{key}{name}.")
            if found is not None:
                return found
        return None
    return None if mine == theirs else key.rstrip(".")


def registered_config(cfg: BenchConfig, write: bool = True, strict: bool = True) -> BenchConfig:
    """The config a run into ``cfg.out`` goes on with, checked against the folder's ``config.yaml``.

    A new folder gets the run's config written (when ``write``). An existing one: the run must agree with it except
    for :data:`RUNTIME_KEYS` and the seeds; it takes the folder's chosen tuning values when it has none, and seeds
    beyond the folder's are added to the file. Not ``strict`` (a dry run, which writes nothing): a difference is
    printed on stderr instead of refused.

    Raises:
        UserError: the run differs from the folder's registration (naming the first key and the fix).
    """
    from cass_bench.config.load import load_config

    path = Path(cfg.out) / RESOLVED
    if not path.exists():
        if write:
            write_resolved(cfg, cfg.out)
        return cfg
    folder = load_config(path)
    differs = _first_difference(_comparable(to_dict(cfg)), _comparable(to_dict(folder)))
    if differs is not None:
        message = (f"{path} registered this folder with another '{differs}' than this run asks for; a results "
                   f"folder is measured under one registration: run with --config {path} (and no flag that changes "
                   "it), or give this configuration its own --out")
        if strict:
            raise UserError(message)
        print(f"note: a real run would stop here: {message}", file=sys.stderr)
        return cfg
    if cfg.tune.chosen and folder.tune.chosen and cfg.tune.chosen != folder.tune.chosen:
        raise UserError(f"{path} holds other tuned values (tune.chosen) than this run; remove tune.chosen from the "
                        "run's config so it uses the folder's")
    chosen = cfg.tune.chosen or folder.tune.chosen
    run = dataclasses.replace(cfg, tune=dataclasses.replace(cfg.tune, chosen=chosen))
    if folder.plan.planned is not None:  # the plan fixed the seeds
        return dataclasses.replace(run, seeds=folder.seeds, plan=folder.plan)
    grown = tuple(folder.seeds) + tuple(s for s in cfg.seeds if s not in folder.seeds)
    if write and (grown != tuple(folder.seeds) or chosen != folder.tune.chosen):
        write_resolved(dataclasses.replace(folder, seeds=grown, tune=run.tune), cfg.out)
    return run


def register_stage(out: str | Path, **changes: Any) -> BenchConfig:
    """Writes a pre-registration stage's result into ``<out>/config.yaml`` (e.g. ``tune=...`` with the chosen
    values, ``seeds=...`` from a seed plan), keeping everything else the folder registered.

    Returns:
        The folder's config as now registered.
    """
    from cass_bench.config.load import load_config

    folder = load_config(Path(out) / RESOLVED)
    updated = dataclasses.replace(folder, **changes)
    write_resolved(updated, out)
    return updated
