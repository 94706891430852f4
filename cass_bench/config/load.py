"""Loading a config: YAML file + dotted-key overrides, coerced by the fields' type hints and validated.

Unknown keys are errors, not silently ignored. Each method's recipe section (a
:class:`~cass_bench.config.recipe.MethodRecipe`) is defined in the method's own module and found through the registry,
so the YAML key of a recipe is its method's name. :func:`settings_from_dict` builds only the shared sections and
never imports a method (readers of a results folder's ``config.yaml`` use it).
"""

from __future__ import annotations

import os
from dataclasses import fields, is_dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from enum import Enum
from typing import Any, Literal, get_args, get_origin, get_type_hints

from cass_bench.config.checks import validate
from cass_bench.config.schema import BenchConfig
from cass_bench.errors import UserError
from cass_bench.config import registry

PATH_KEYS = ("out", "init", "backbones.weights_dir")
"""Config keys holding a path: a leading ``~`` is expanded when the config is loaded, so the records, the logs and
every later reader agree on one folder."""


TEXT_LINE_KEYS = ("slurm.setup",)
"""List keys whose items are lines of free text (shell lines, which may hold commas): a single text value is one
item, never split at its commas; several are given as a YAML list (``--set 'slurm.setup=[a, "b,c"]'`` too)."""


def _expected(hint: Any) -> str:
    """What a value of type ``hint`` is, in words, for messages."""
    text = str(hint)
    if text.startswith("tuple"):
        args = hint.__args__
        inner = _expected(args[0])
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a comma-separated list of {inner}s"
        return f"{len(args)} comma-separated {inner}s"
    choices = _choices(hint)
    if choices is not None:
        return "one of " + ", ".join(choices)
    words = {bool: "true or false", int: "whole number", float: "number", str: "text"}
    for kind, word in words.items():
        if hint is kind or text.startswith(kind.__name__):
            return word
    return text


def _choices(hint: Any) -> tuple[str, ...] | None:
    """The allowed values of a ``Literal`` or ``Enum`` type (None for any other type)."""
    if get_origin(hint) is Literal:
        return tuple(str(a) for a in get_args(hint))
    if isinstance(hint, type) and issubclass(hint, Enum):
        return tuple(str(e.value) for e in hint)
    return None


def _choice(value: Any, hint: Any, choices: tuple[str, ...], key: str) -> Any:
    """``value`` as the member of a ``Literal`` or ``Enum`` type it names, or UserError listing the choices."""
    if isinstance(value, (dict, list)):
        raise ValueError(value)
    word = str(value).lower() if isinstance(value, bool) else str(value)
    if word not in choices:
        raise UserError(f"unknown {key} '{word}'; choose from {', '.join(choices)}")
    return hint(word) if isinstance(hint, type) and issubclass(hint, Enum) else word


def _coerce_tuple(value: Any, hint: Any, key: str) -> tuple[Any, ...]:
    items = value.split(",") if isinstance(value, str) and key not in TEXT_LINE_KEYS else value
    if not isinstance(items, (list, tuple)):
        items = [items]
    args = hint.__args__
    fixed = not (len(args) == 2 and args[1] is Ellipsis)
    if fixed and len(items) != len(args):
        raise UserError(f"config key '{key}' needs {_expected(hint)}, got {len(items)} value(s) {value!r}; give "
                        f"exactly {len(args)}")
    inner = args if fixed else [args[0]] * len(items)
    return tuple(_coerce(v.strip() if isinstance(v, str) else v, t, key) for v, t in zip(items, inner))


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Converts a YAML/CLI value to the annotated type, or raises UserError naming the key and what to give.

    A YAML ``yes``/``true`` is not a number and a list is not a word; a fixed-length tuple takes exactly its
    length; a leading ``~`` in a path (:data:`PATH_KEYS`) is expanded.
    """
    text = str(hint)
    try:
        if is_dataclass(hint):
            if not isinstance(value, dict):
                raise UserError(f"config key '{key}' must be a mapping, got {value!r}; write it as a section of "
                                "'key: value' lines")
            return _build(hint, value, key + ".")
        if text.startswith("tuple"):
            return _coerce_tuple(value, hint, key)
        choices = _choices(hint)
        if choices is not None and value is not None:
            return _choice(value, hint, choices, key)
        if value is None and "None" in text:
            return None
        if value is None:
            raise UserError(f"config key '{key}' is empty (null or ~ in YAML); give {_article(_expected(hint))}")
        if isinstance(value, (dict, list)) and not text.startswith("dict"):
            raise ValueError(value)
        if hint is bool or text == "bool":
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes"):
                    return True
                if value.lower() in ("0", "false", "no"):
                    return False
                raise ValueError(value)
            if isinstance(value, bool) or value in (0, 1):
                return bool(value)
            raise ValueError(value)
        if hint is int or text.startswith("int"):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if hint is float or text.startswith("float"):
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if hint is str or text.startswith("str"):
            word = str(value).lower() if isinstance(value, bool) else str(value)
            return os.path.expanduser(word) if key in PATH_KEYS and word.startswith("~") else word
    except (TypeError, ValueError, OverflowError):
        expected = _article(_expected(hint))
        raise UserError(f"config key '{key}' has an invalid value {value!r}; give {expected}") from None
    return value


def _article(words: str) -> str:
    return f"a {words}" if words in ("whole number", "number") else words


def _reject_unknown(data: dict[str, Any], known: set[str], prefix: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(
            f"unknown config key '{prefix}{unknown[0]}'; known keys here: {', '.join(sorted(known))}"
        )


def _build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = get_type_hints(cls)
    _reject_unknown(data, {f.name for f in fields(cls)}, prefix)
    kwargs = {name: _coerce(value, hints[name], prefix + name) for name, value in data.items()}
    return cls(**kwargs)


def _build_config(data: dict[str, Any]) -> BenchConfig:
    """A BenchConfig from YAML-shaped data: shared keys, plus one section per registered method's recipe."""
    kinds = registry.recipe_classes()
    shared = {f.name for f in fields(BenchConfig)} - {"recipes"}
    _reject_unknown(data, shared | set(kinds), "")
    recipes = {name: _coerce(data.get(name, {}), kind, name) for name, kind in kinds.items()}
    hints = get_type_hints(BenchConfig)
    return BenchConfig(**{k: _coerce(v, hints[k], k) for k, v in data.items() if k in shared}, recipes=recipes)


def _nest(overrides: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for dotted, value in overrides.items():
        node = nested
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {dotted} goes inside '{part}', which is set to a value too; set either "
                                f"'{part}' or its keys")
        node[leaf] = value
    return nested


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(path: str | Path | Traversable | None, overrides: dict[str, Any] | None = None) -> BenchConfig:
    """Reads a YAML config, applies dotted-key overrides and validates the result.

    Args:
        path: YAML file (a path, or a packaged config from :func:`cass_bench.config.files.resolve_config`); None
            uses only the defaults.
        overrides: values keyed by dotted field names, e.g. ``{"finetune.epochs": 2}``; None values are skipped.

    Returns:
        The validated configuration.

    Raises:
        UserError: on a missing or malformed file, an unknown key or an impossible value.
    """
    data = read_config_data(path) if path is not None else {}
    clean = {k: v for k, v in (overrides or {}).items() if v is not None}
    return config_from_dict(_merge(data, _nest(clean)))


def read_config_data(path: str | Path | Traversable) -> dict[str, Any]:
    """The mapping a YAML config file holds, read strictly (:func:`cass_bench.config.files.read_yaml`), unvalidated.

    Raises:
        UserError: the file is missing, not UTF-8 text, unreadable, empty, invalid YAML or not a mapping.
    """
    from cass_bench.config.files import read_yaml_mapping

    return read_yaml_mapping(Path(path).expanduser() if isinstance(path, str) else path, "config file",
                             "pass an existing YAML file with --config",
                             "must hold a mapping of keys to values; write one 'key: value' per line",
                             "write the settings in it, or leave out --config to use configs/default.yaml")


def folder_settings(out: str | Path, keys: tuple[str, ...]) -> BenchConfig | None:
    """The settings ``keys`` registered in a results folder's ``config.yaml`` (:func:`settings_from_dict`: no
    method is imported), or None when the folder has no ``config.yaml``; what the report reads of a folder's
    registration (its claim family, tuning budget and seed plan).

    Raises:
        UserError: the file cannot be read as a YAML mapping, or one of those settings is invalid (naming the file).
    """
    from cass_bench.config.files import RESOLVED

    path = Path(out) / RESOLVED
    if not path.is_file():
        return None
    data = read_config_data(path)
    try:
        return settings_from_dict(data, keys)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None


def config_from_dict(data: dict[str, Any]) -> BenchConfig:
    """Rebuilds a validated config from ``to_dict`` output."""
    cfg = _build_config(data)
    validate(cfg)
    return cfg


def settings_from_dict(data: dict[str, Any], keys: tuple[str, ...]) -> BenchConfig:
    """A config holding ``keys`` of ``data`` (shared settings only, each coerced and section-checked), the rest at
    their defaults and no method recipes: what a reader of a results folder's ``config.yaml`` needs, without
    importing a method.

    Raises:
        UserError: a key is not a shared setting, or a value is invalid.
    """
    shared = {f.name for f in fields(BenchConfig)} - {"recipes"}
    _reject_unknown({k: v for k, v in data.items() if k in keys}, shared, "")
    hints = get_type_hints(BenchConfig)
    values = {k: _coerce(data[k], hints[k], k) for k in keys if k in data}
    return BenchConfig(**values, recipes={})
