"""Dataset YAML files: read, validate and resolve paths into a typed description.

A dataset YAML names a ``csv`` or an ``imagefolder`` dataset::

    name: isic2019
    format: csv                     # csv | imagefolder
    train_csv: train.csv
    test_csv: test.csv              # optional: without it, train is split 70/10/20 stratified
    image_dir: images
    image_column: image_name
    label_columns: [diagnosis]      # one column of class names, or several 0/1 columns (multi-label)
    image_suffix: .jpg              # optional

    format: imagefolder
    root: train                     # one sub-folder per class
    test_root: test                 # optional

Relative paths resolve against the YAML file's folder; ``name`` defaults to the file's stem. A csv dataset may set
``task: multiclass`` to read several one-hot columns as one multi-class label (e.g. the ISIC-2019 ground-truth CSV).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cass_bench.config.files import read_yaml_mapping
from cass_bench.data.bundle import MULTICLASS, MULTILABEL
from cass_bench.data.files import resolve
from cass_bench.errors import UserError

FORMATS = ("csv", "imagefolder")
COMMON_KEYS = ("name", "format")
CSV_REQUIRED = ("train_csv", "image_dir", "image_column", "label_columns")
CSV_OPTIONAL = ("test_csv", "image_suffix", "task")
FOLDER_REQUIRED = ("root",)
FOLDER_OPTIONAL = ("test_root",)


@dataclass(frozen=True)
class CsvSpec:
    """A CSV dataset: image names and labels in a train (and optional test) CSV, images in one folder.

    Attributes:
        name: dataset name used in messages.
        train_csv, test_csv: the CSV files (``test_csv`` None: split the train CSV).
        image_dir: folder the image column is relative to.
        image_column: column holding image file names.
        label_columns: one column of class names, or several 0/1 columns.
        image_suffix: appended to names that do not already end with it.
        task: ``multiclass``, ``multilabel`` or None (one column: multi-class, several: multi-label).
    """

    name: str
    train_csv: Path
    test_csv: Path | None
    image_dir: Path
    image_column: str
    label_columns: tuple[str, ...]
    image_suffix: str
    task: str | None


@dataclass(frozen=True)
class FolderSpec:
    """An image-folder dataset: ``root/<class>/<image>`` (and optional ``test_root`` laid out the same way)."""

    name: str
    root: Path
    test_root: Path | None


def _text(data: dict[str, Any], key: str, path: Path) -> str:
    value = data[key]
    if not isinstance(value, (str, int, float)) or isinstance(value, bool) or str(value).strip() == "":
        raise UserError(f"dataset file '{path}': key '{key}' is {value!r}; give it a non-empty text value")
    return str(value)


def _check_keys(data: dict[str, Any], path: Path, fmt: str, required: tuple[str, ...],
                optional: tuple[str, ...]) -> None:
    known = COMMON_KEYS + required + optional
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise UserError(
            f"dataset file '{path}': unknown key '{unknown[0]}' for format {fmt}; known keys: {', '.join(known)}"
        )
    missing = [k for k in required if data.get(k) in (None, "", [])]
    if missing:
        raise UserError(
            f"dataset file '{path}' is missing required key '{missing[0]}' for format {fmt}; "
            f"a {fmt} dataset needs {', '.join(required)}"
        )


def _label_columns(value: Any, path: Path) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(c, (str, int)) for c in items):
        raise UserError(
            f"dataset file '{path}': label_columns is {value!r}; give a column name or a list of names"
        )
    columns = tuple(str(c) for c in items)
    if len(set(columns)) != len(columns):
        raise UserError(f"dataset file '{path}': label_columns lists a column twice; list each column once")
    return columns


def _suffix(value: Any) -> str:
    text = str(value or "").strip()
    return text if not text or text.startswith(".") else "." + text


def read_spec(path: str | Path) -> CsvSpec | FolderSpec:
    """Reads a dataset YAML file.

    Args:
        path: the YAML file; relative paths inside it resolve against its folder.

    Returns:
        The dataset description.

    Raises:
        UserError: missing file, invalid YAML, unknown format, unknown or missing keys.
    """
    path = Path(path).expanduser()
    data = read_yaml_mapping(path, "dataset file", "pass an existing dataset .yaml (or a built-in name)",
                             "does not hold a mapping; write its keys (name, format, ...) as 'key: value' lines")
    base = path.resolve().parent
    fmt = data.get("format")
    if fmt not in FORMATS:
        raise UserError(
            f"dataset file '{path}' has format {fmt!r}; set 'format:' to one of {', '.join(FORMATS)}"
        )
    name = _text(data, "name", path) if data.get("name") is not None else path.stem
    if fmt == "imagefolder":
        _check_keys(data, path, fmt, FOLDER_REQUIRED, FOLDER_OPTIONAL)
        test_root = data.get("test_root")
        return FolderSpec(
            name=name,
            root=resolve(_text(data, "root", path), base),
            test_root=None if test_root is None else resolve(_text(data, "test_root", path), base),
        )
    _check_keys(data, path, fmt, CSV_REQUIRED, CSV_OPTIONAL)
    task = data.get("task")
    if task is not None and task not in (MULTICLASS, MULTILABEL):
        raise UserError(f"dataset file '{path}': task {task!r} is unknown; use {MULTICLASS} or {MULTILABEL}")
    test_csv = data.get("test_csv")
    return CsvSpec(
        name=name,
        train_csv=resolve(_text(data, "train_csv", path), base),
        test_csv=None if test_csv is None else resolve(_text(data, "test_csv", path), base),
        image_dir=resolve(_text(data, "image_dir", path), base),
        image_column=_text(data, "image_column", path),
        label_columns=_label_columns(data["label_columns"], path),
        image_suffix=_suffix(data.get("image_suffix")),
        task=task,
    )
