"""Config files: the configs that ship inside the package (``cass_bench/configs``, the top-level ``configs/`` folder
in a source checkout), found by name with :mod:`importlib.resources` so ``--config smoke`` works from any folder;
the resolved config a run writes beside its records; and the one strict YAML reader of configs and dataset files
(a key set twice is refused, and so is a document whose aliases expand beyond :data:`MAX_YAML_NODES`)."""

from __future__ import annotations

import os
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

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


MAX_YAML_NODES = 100_000
"""The most values (scalars, lists and mappings, aliases counted as what they expand to) a YAML file may hold; a
config has a few hundred, and a few nested aliases can otherwise stand for billions."""
MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that sets one key twice (PyYAML keeps the last value silently)."""

    where = "YAML file"

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise UserError(f"{self.where} sets '{key}' twice in one section (lines {seen[key]} and {line}), "
                                "and only one value can count; delete one of them")
            seen[key] = line
        return super().construct_mapping(node, deep)


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int], where: str) -> int:
    """The values ``node`` stands for with every alias expanded; UserError beyond the bound or on a cycle."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_nodes:
        raise UserError(f"{where} holds an alias inside its own anchor (a cycle); write the values out instead")
    open_nodes.add(id(node))
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, sizes, open_nodes, where) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, sizes, open_nodes, where) + _expanded_size(v, sizes, open_nodes, where)
                    for k, v in node.value)
    if size > MAX_YAML_NODES:
        raise UserError(f"{where} expands to more than {MAX_YAML_NODES} values (nested aliases?); a config needs "
                        "a few hundred: write the values out without repeated aliases")
    open_nodes.discard(id(node))
    sizes[id(node)] = size
    return size


def read_yaml(text: str, where: str) -> Any:
    """Parses one YAML document strictly: safe tags only, no key twice in a mapping, bounded expansion.

    Args:
        text: the document.
        where: what it is, for messages (e.g. ``config file 'x.yaml'``).

    Returns:
        The parsed data (None for an empty document).

    Raises:
        UserError: invalid YAML, a key set twice, a cycle of aliases, or more than :data:`MAX_YAML_NODES` values.
    """
    loader = _StrictLoader(text)
    loader.where = where
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, {}, set(), where)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{where} is not valid YAML ({first}); fix its syntax") from None
    except RecursionError:
        raise UserError(f"{where} is nested too deeply to read; flatten it") from None
    finally:
        loader.dispose()


def read_yaml_mapping(path: Path | Traversable, what: str, missing_fix: str, mapping_fix: str,
                      empty_fix: str | None = None) -> dict[str, Any]:
    """The mapping a YAML file holds (:func:`read_yaml`), or one UserError line naming the file and the fix.

    Args:
        path: the file.
        what: what it is, for messages (e.g. ``config file``).
        missing_fix: what to do when the file does not exist.
        mapping_fix: what to do when it holds something other than a mapping.
        empty_fix: what to do when it is empty (None: as for a non-mapping).
    """
    if not path.is_file():
        raise UserError(f"{what} '{path}' not found; {missing_fix}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} '{path}' is not UTF-8 text (byte {exc.start} cannot be decoded); save it as "
                        "UTF-8") from None
    except OSError as exc:
        raise UserError(f"cannot read {what} '{path}' ({exc.strerror or type(exc).__name__}); make it "
                        "readable") from None
    data = read_yaml(text, f"{what} '{path}'")
    if data is None and empty_fix is not None:
        raise UserError(f"{what} '{path}' is empty; {empty_fix}")
    if not isinstance(data, dict):
        raise UserError(f"{what} '{path}' {mapping_fix}")
    return data
