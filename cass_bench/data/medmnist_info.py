"""What the ``medmnist`` package says about its datasets (``medmnist.INFO``), read when the package is installed.

The package's ``__init__`` imports torch, which the torch-free commands (dry run, plan, status) must not, so when
the package is installed but not imported yet only its ``info`` module is run. Nothing here downloads.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from cass_bench.data.bundle import MULTICLASS, MULTILABEL

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class FlagFacts:
    """One 2D MedMNIST flag.

    Attributes:
        python_class: the package's dataset class (``PathMNIST``), used in the fetch command.
        task: ``multiclass`` or ``multilabel`` (binary and ordinal flags are multi-class here).
        classes: one name per class (or per label).
        channels: 1 or 3, or None when unknown (the built-in table).
        samples: official images per split, or None when unknown (the built-in table).
        source: where the facts come from, for messages.
    """

    python_class: str
    task: str
    classes: tuple[str, ...]
    channels: int | None = None
    samples: Mapping[str, int] | None = None
    source: str = "the built-in table"


def _info_module_file() -> Path | None:
    try:
        spec = importlib.util.find_spec("medmnist")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        if (Path(folder) / "info.py").is_file():
            return Path(folder) / "info.py"
    return None


def package_info() -> Mapping[str, Any] | None:
    """``medmnist.INFO`` (flag -> facts) when the package is installed (or already imported), else None."""
    loaded = sys.modules.get("medmnist")
    if loaded is not None:
        return getattr(loaded, "INFO", None)
    file = _info_module_file()
    return None if file is None else _run_info_module(file)


@lru_cache(maxsize=4)
def _run_info_module(file: Path) -> Mapping[str, Any] | None:
    spec = importlib.util.spec_from_file_location("_cass_bench_medmnist_info", file)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception:  # an installed package whose info module cannot run: keep the built-in table
        return None
    return getattr(module, "INFO", None)


def facts_from_info(entry: Mapping[str, Any]) -> FlagFacts | None:
    """A ``medmnist.INFO`` entry as :class:`FlagFacts`; None when it lacks a field this reader needs."""
    try:
        labels = entry["label"]
        classes = tuple(str(labels[key]) for key in sorted(labels, key=int))
        samples = {split: int(entry["n_samples"][split]) for split in SPLITS}
        return FlagFacts(python_class=str(entry["python_class"]),
                         task=MULTILABEL if "multi-label" in str(entry["task"]) else MULTICLASS,
                         classes=classes, channels=int(entry["n_channels"]), samples=samples,
                         source="medmnist.INFO")
    except (KeyError, TypeError, ValueError):
        return None
