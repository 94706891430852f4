"""Record identity, defined once: what a record and a pretraining checkpoint are of, and the hashes naming them.

Every field of :class:`~cass_bench.config.schema.BenchConfig` declares one role in its metadata (:data:`ROLES`):

- ``cell``: an axis of the sweep; its value for a cell is in the :class:`Cell` (and the label fraction and
  evaluation in the record id), so it is not hashed as a setting;
- ``pretrain``: a setting pretraining depends on: it enters the checkpoint key and every record id (a method's own
  recipe section is one: ``recipes``);
- ``record``: a setting only the downstream evaluation depends on: it enters the record ids, not the checkpoint key;
- ``none``: changes no measured number (paths, launchers, the report's claim family, the pretraining lock, the
  CPU peak an MFU divides by, which each record carries as ``peak_flops``), or enters through a derived setting
  (:func:`derived_settings`: ``accelerator`` as the device's name, ``source`` as the start's key, an ``init`` path's
  weights as their content hash) or a method's section (:func:`method_section`: ``tune`` as the method's tuning
  budget and the values it chose).

A field without a role is an error (:func:`check_roles`, run by the tests and before any hash), so a new setting
cannot silently pool records of different configurations. Record ids also hash :data:`RECORD_SCHEMA`, raised when
what a record means changes, so records of an older schema are never taken for current ones. Grouping keys the
report uses are in :data:`SETTING_KEYS` and :data:`RUN_KEYS`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from cass_bench.config.fields import PRETRAIN, RECORD, roles
from cass_bench.config.schema import INITS, BenchConfig, stable_hash, to_dict
from cass_bench.records.environment import device_name

RECORD_SCHEMA = 2
"""Version of what a record means (2: centred-rank collapse, start identity, tagged settings)."""
START_FORMAT = 1
"""Version of the formula-driven start's recipe-to-weights contract; raising it gives every start a new key."""

SETTING_KEYS = ("dataset", "method", "arch", "eval", "label_fraction", "batch_size", "pretrain_epochs")
"""Record fields naming one setting of the sweep; a setting's finished records differ only by seed."""
RUN_KEYS = ("dataset", "method", "encoders", "batch_size", "pretrain_epochs", "seed", "device")
"""Record fields naming one pretraining run (its encoders' records share them)."""
ENCODER_RUN_KEYS = (*RUN_KEYS, "arch")
"""Record fields naming one encoder of one pretraining run."""



def setting_of(record: dict[str, Any]) -> tuple[Any, ...]:
    """A record's values of :data:`SETTING_KEYS`, the label fraction as a float."""
    return tuple(float(record.get(key) or 0) if key == "label_fraction" else record.get(key) for key in SETTING_KEYS)


ROLES: dict[str, str] = roles(BenchConfig)
"""The identity role of every BenchConfig field, declared beside the field (:func:`cass_bench.config.fields.setting`)."""


def check_roles() -> None:
    """Raises RuntimeError naming every BenchConfig field without a role, or a role for a field that is gone."""
    names = {f.name for f in fields(BenchConfig)}
    missing, stale = sorted(names - set(ROLES)), sorted(set(ROLES) - names)
    if missing or stale:
        raise RuntimeError(f"record identity: config fields without a role {missing}, roles of no field {stale}; "
                           "declare each field's role beside it (cass_bench/config/fields.py: setting, flagged)")


@dataclass(frozen=True)
class Cell:
    """One pretraining run and the evaluations that follow it.

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


def cell_key(cell: Cell) -> str:
    """A file-name-safe key of a cell (its job ticket's and its running lock's name)."""
    return stable_hash(dataclasses.asdict(cell))


def start_payload(cfg: BenchConfig, seed: int | None = None) -> dict[str, Any]:
    """What the formula-driven start's key hashes: its recipe (at the source seed of measured seed ``seed``; None:
    ``source.seed``) and everything that shapes the encoders it trains."""
    backbones = to_dict(cfg.backbones)
    backbones.pop("weights_dir", None)
    backbones["small_input_stem"] = cfg.backbones.uses_small_stem(cfg.image_size)
    source = to_dict(cfg.source)
    source.pop("starts", None)
    if seed is not None:
        source["seed"] = cfg.source.seed_for(seed)
    return {"format": START_FORMAT, "source": source, "backbones": backbones, "image_size": cfg.image_size}


def start_key(cfg: BenchConfig, seed: int | None = None) -> str:
    """The hash that names the formula-driven start behind measured seed ``seed`` (None: the start of
    ``source.seed``); it enters that seed's records as ``start_key``."""
    return stable_hash(start_payload(cfg, seed))


def start_policy(cfg: BenchConfig) -> str | None:
    """What every record of a config shares about its starts: the one start's key (``source.starts: 1``), else the
    hash of the recipe and the number of starts (each seed's own key is in its records)."""
    if cfg.init != "fractal":
        return None
    if cfg.source.starts == 1:
        return start_key(cfg)
    return stable_hash({"recipe": start_payload(cfg), "starts": cfg.source.starts})


def init_file_hash(init: str) -> str:
    """SHA-256 of the weights behind an ``init`` path: the file's bytes, or a folder's ``<arch>.safetensors`` files
    (name and bytes, in name order); computed once per file state (path, size, modification time, inode)."""
    path = Path(init).expanduser()
    files = [path] if path.is_file() else [f for f in sorted(path.glob("*.safetensors")) if f.is_file()]
    digest = hashlib.sha256()
    for file in files:
        info = file.stat()
        digest.update(f"{file.name}:{_file_hash(str(file), info.st_size, info.st_mtime_ns, info.st_ino)}".encode())
    return digest.hexdigest()


@functools.lru_cache(maxsize=64)
def _file_hash(path: str, size: int, mtime_ns: int, inode: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def derived_settings(cfg: BenchConfig) -> dict[str, Any]:
    """Pretraining settings computed from fields whose own role is ``none``: the device, the stem, the start, and
    for an ``init`` path the hash of the weights behind it (so swapping the file gives other keys and ids)."""
    settings = {"device": device_name(cfg.accelerator),
                "small_input_stem": cfg.backbones.uses_small_stem(cfg.image_size),
                "start": start_policy(cfg)}
    if cfg.init not in INITS:
        settings["init_file"] = init_file_hash(cfg.init)
    return settings


def _settings(cfg: BenchConfig, role: str) -> dict[str, Any]:
    check_roles()
    return {name: (to_dict(value) if dataclasses.is_dataclass(value) else value)
            for name, value in ((f.name, getattr(cfg, f.name)) for f in fields(BenchConfig))
            if ROLES[name] == role and name != "recipes"}


def method_section(cfg: BenchConfig, method: str) -> dict[str, Any]:
    """A method's own recipe section as hashed, with the values tuning chose, and, for a tuned method, its tuning
    budget and search grid (empty for a method without a recipe)."""
    recipe = cfg.recipes.get(method)
    if recipe is None:
        return {}
    section = to_dict(cfg.tune.apply(method, recipe))
    if cfg.tune.tunes(recipe):
        section["tuning"] = tuning_identity(cfg, method)
    return section


def tuning_identity(cfg: BenchConfig, method: str) -> dict[str, Any]:
    """A tuned method's tuning as it enters identity: the budget, the selection and the grid tried."""
    tune = cfg.tune
    return {"trials": tune.trials, "seeds": list(tune.seeds), "eval": tune.eval, "fraction": tune.label_fraction,
            "val_share": tune.val_share, "grid": tune.trial_points(cfg.recipes[method]),
            **({"per_dataset": True} if tune.per_dataset else {})}


def shared_settings(cfg: BenchConfig) -> dict[str, Any]:
    """Every ``pretrain`` setting shared by the methods, derived ones included."""
    return {**_settings(cfg, PRETRAIN), **derived_settings(cfg)}


def pretrain_payload(cell: Cell, cfg: BenchConfig) -> dict[str, Any]:
    """What a cell's checkpoint key hashes: the cell and every setting its pretraining depends on."""
    cfg = cfg.for_dataset(cell.dataset)
    return {"cell": dataclasses.asdict(cell), "shared": shared_settings(cfg),
            "method": method_section(cfg, cell.method)}


def pretrain_key(cell: Cell, cfg: BenchConfig) -> str:
    """Cache key of a cell's pretraining checkpoint (independent of the evaluation settings)."""
    return stable_hash(pretrain_payload(cell, cfg))


def config_hash(cfg: BenchConfig, method: str) -> str:
    """Hash of every setting a method's records depend on besides the cell identity."""
    return stable_hash({"shared": shared_settings(cfg), "method": method_section(cfg, method),
                        **_settings(cfg, RECORD)})


def record_id(cell: Cell, arch: str, fraction: float, evaluation: str, cfg: BenchConfig) -> str:
    """Id of the record of one (cell, encoder, label fraction, evaluation), under :data:`RECORD_SCHEMA`."""
    config = config_hash(cfg.for_dataset(cell.dataset), cell.method)
    return stable_hash({"schema": RECORD_SCHEMA, "cell": dataclasses.asdict(cell), "arch": arch,
                        "fraction": fraction, "eval": evaluation, "config": config},
                       length=16)


def record_keys(cell: Cell, cfg: BenchConfig) -> list[tuple[str, float, str]]:
    """Every (arch, label fraction, evaluation) a cell writes a record for."""
    return [(a, f, e) for a in cell.archs for f in cfg.label_fractions for e in cfg.eval.evals]


def expected_ids(cell: Cell, cfg: BenchConfig) -> list[str]:
    """Ids of every record a cell writes."""
    return [record_id(cell, a, f, e, cfg) for a, f, e in record_keys(cell, cfg)]
