"""Config files: the configs that ship inside the package (``cass_bench/configs``, the top-level ``configs/`` folder
in a source checkout), found by name with :mod:`importlib.resources` so ``--config smoke`` works from any folder;
and the resolved config a run writes beside its records."""

from __future__ import annotations

import os
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

import yaml

from cass_bench.config.schema import BenchConfig, to_dict
from cass_bench.errors import UserError

SUFFIX = ".yaml"
DEFAULT = "default"


def packaged_configs() -> dict[str, Traversable]:
    """Every packaged config, keyed by name (its file name without ``.yaml``), sorted by name."""
    folder = files("cass_bench.configs")
    found = {entry.name[: -len(SUFFIX)]: entry for entry in folder.iterdir() if entry.name.endswith(SUFFIX)}
    return dict(sorted(found.items()))


def resolve_config(name_or_path: str | Path | None) -> Path | Traversable:
    """The config file meant by ``--config``: an existing file, else a packaged config's name (None: ``default``).

    Args:
        name_or_path: a YAML path, or the name of a packaged config such as ``smoke`` or ``smoke.yaml``.

    Raises:
        UserError: neither a file nor a packaged config's name.
    """
    text = str(name_or_path if name_or_path is not None else DEFAULT)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    packaged = packaged_configs()
    name = path.name[: -len(SUFFIX)] if path.name.endswith(SUFFIX) and path.parent == Path(".") else text
    if name in packaged:
        return packaged[name]
    raise UserError(f"config '{text}' is neither a file nor a packaged config; pass a YAML path or one of: "
                    f"{', '.join(packaged)}")


RESOLVED = "config.yaml"


def write_resolved(cfg: BenchConfig, out: str | Path) -> Path:
    """Writes the config a run resolved (file, overrides and defaults together) to ``<out>/config.yaml``.

    It loads back with ``--config <out>/config.yaml``. The file is replaced whole, so shards writing it together
    leave one complete copy.
    """
    path = Path(out) / RESOLVED
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{RESOLVED}.{os.getpid()}.tmp")
    tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    os.replace(tmp, path)
    return path
