"""Datasets described by a YAML file: ``csv`` (image names + labels in CSVs) and ``imagefolder`` (folder per class).

Images stay on disk and are decoded one at a time (``FileImages``); every file is checked up front, and copies of
an image are found by content hash and kept once (:mod:`cass_bench.data.duplicates`) before any split. Without a
test CSV/root the training data is split 70/10/20 (train/val/test), stratified and seeded; with one, 10% of the
training data becomes the validation split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cass_bench.data.bundle import MULTICLASS, MULTILABEL, DatasetBundle, FileImages, ImageSet
from cass_bench.data.duplicates import LabelledFiles, deduplicate, without
from cass_bench.data.files import IMAGE_SUFFIXES, check_images, read_csv, require_dir
from cass_bench.data.spec import CsvSpec, FolderSpec
from cass_bench.data.splits import split_bundle
from cass_bench.errors import UserError


def _natural_key(name: str) -> tuple[int, float, str]:
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, 0.0, name)


def _column(frame: pd.DataFrame, column: str, key: str, csv: Path) -> pd.Series:
    if column not in frame.columns:
        raise UserError(
            f"column '{column}' ({key}) not found in '{csv}', whose columns are {', '.join(map(str, frame.columns))}; "
            f"fix {key} in the dataset file"
        )
    values = frame[column]
    empty = values.isna() | (values.str.strip() == "")
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0]) + 2
        raise UserError(f"'{csv}' line {row} has no value in column '{column}'; fill it in or remove the row")
    return values.str.strip()


def _binary(frame: pd.DataFrame, spec: CsvSpec, csv: Path) -> np.ndarray:
    columns = []
    for column in spec.label_columns:
        text = _column(frame, column, "label_columns", csv)
        numbers = pd.to_numeric(text, errors="coerce")
        bad = ~numbers.isin([0, 1])
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise UserError(
                f"'{csv}' line {row + 2} has {text.iloc[row]!r} in label column '{column}'; several label columns "
                "must hold 0/1 (multi-label), or list one column of class names"
            )
        columns.append(numbers.to_numpy(dtype=np.int64))
    return np.stack(columns, axis=1)


def _one_hot_classes(frame: pd.DataFrame, spec: CsvSpec, csv: Path) -> np.ndarray:
    matrix = _binary(frame, spec, csv)
    bad = matrix.sum(axis=1) != 1
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise UserError(
            f"'{csv}' line {row + 2} has {int(matrix[row].sum())} ones across {', '.join(spec.label_columns)}; "
            "with task: multiclass each row needs exactly one 1 (or drop 'task' to read them as multi-label)"
        )
    return matrix.argmax(axis=1).astype(np.int64)


def _image_paths(frame: pd.DataFrame, spec: CsvSpec, csv: Path) -> list[Path]:
    names = _column(frame, spec.image_column, "image_column", csv)
    suffix = spec.image_suffix
    return [
        spec.image_dir / (n if not suffix or n.lower().endswith(suffix.lower()) else n + suffix)
        for n in names
    ]


def _csv_task(spec: CsvSpec) -> str:
    if spec.task is not None:
        return spec.task
    return MULTICLASS if len(spec.label_columns) == 1 else MULTILABEL


def _class_indices(values: pd.Series, classes: tuple[str, ...], csv: Path, train_csv: Path) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(classes)}
    unseen = sorted(set(values) - set(lookup), key=_natural_key)
    if unseen:
        raise UserError(
            f"class '{unseen[0]}' appears in '{csv}' but not in the training CSV '{train_csv}'; "
            "add training images of that class or remove those rows"
        )
    return values.map(lookup).to_numpy(dtype=np.int64)


def _csv_labels(frame: pd.DataFrame, spec: CsvSpec, csv: Path, classes: tuple[str, ...] | None
                ) -> tuple[np.ndarray, tuple[str, ...]]:
    task = _csv_task(spec)
    if task == MULTILABEL:
        return _binary(frame, spec, csv), spec.label_columns
    if len(spec.label_columns) > 1:
        return _one_hot_classes(frame, spec, csv), spec.label_columns
    values = _column(frame, spec.label_columns[0], "label_columns", csv)
    if classes is None:
        classes = tuple(sorted(values.unique(), key=_natural_key))
        if len(classes) < 2:
            raise UserError(
                f"label column '{spec.label_columns[0]}' of '{csv}' holds one class only ({classes[0]!r}); "
                "a classification dataset needs at least two classes"
            )
    return _class_indices(values, classes, csv, spec.train_csv), classes


def load_csv(spec: CsvSpec, image_size: int, split_seed: int) -> DatasetBundle:
    """Builds a bundle from a ``csv`` dataset description.

    Args:
        spec: the parsed dataset YAML.
        image_size: side of the images handed to the models.
        split_seed: seed of the stratified splits.

    Returns:
        The bundle; class names are the sorted values of the label column, or the label column names.

    Raises:
        UserError: missing CSV or image folder, absent column, bad label values, missing or corrupt images,
            a test class unseen in training, no rows, one image with two different labels.
    """
    require_dir(spec.image_dir, "image_dir")
    train, classes = _csv_files(spec, spec.train_csv, "train_csv", None)
    test = None
    if spec.test_csv is not None:
        test_files, _ = _csv_files(spec, spec.test_csv, "test_csv", classes)
        train = without(train, test_files, f"'{spec.train_csv}'")
        test = _image_set(test_files, image_size)
    return split_bundle(spec.name, _csv_task(spec), classes, _image_set(train, image_size), test, split_seed)


def _csv_files(spec: CsvSpec, csv: Path, key: str, classes: tuple[str, ...] | None
               ) -> tuple[LabelledFiles, tuple[str, ...]]:
    frame = read_csv(csv, key)
    labels, classes = _csv_labels(frame, spec, csv, classes)
    paths = _image_paths(frame, spec, csv)
    digests = check_images(paths, f"'{csv}'")
    return deduplicate(LabelledFiles(paths, labels, digests), f"'{csv}'"), classes


def _image_set(files: LabelledFiles, image_size: int) -> ImageSet:
    return ImageSet(FileImages(files.paths, image_size), files.labels)


def _folder_images(root: Path, key: str) -> dict[str, list[Path]]:
    require_dir(root, key)
    classes = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
                     key=lambda d: _natural_key(d.name))
    if not classes:
        raise UserError(f"'{root}' ({key}) has no class sub-folders (empty dataset); put one folder per class in it")
    found: dict[str, list[Path]] = {}
    for folder in classes:
        files = sorted(p for p in folder.rglob("*")
                       if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith("."))
        if not files:
            raise UserError(
                f"class folder '{folder}' holds no images ({', '.join(IMAGE_SUFFIXES)}); add images or remove it"
            )
        found[folder.name] = files
    return found


def _folder_files(found: dict[str, list[Path]], classes: tuple[str, ...], root: Path) -> LabelledFiles:
    paths = [p for c in found for p in found[c]]
    labels = np.concatenate([np.full(len(found[c]), classes.index(c), dtype=np.int64) for c in found])
    return deduplicate(LabelledFiles(paths, labels, check_images(paths, f"'{root}'")), f"'{root}'")


def load_imagefolder(spec: FolderSpec, image_size: int, split_seed: int) -> DatasetBundle:
    """Builds a bundle from an ``imagefolder`` dataset description (class names = sub-folder names).

    Args:
        spec: the parsed dataset YAML.
        image_size: side of the images handed to the models.
        split_seed: seed of the stratified splits.

    Returns:
        The multi-class bundle.

    Raises:
        UserError: missing folders, empty class folders, a test class unseen in training, corrupt images, one
            image in two classes.
    """
    found = _folder_images(spec.root, "root")
    classes = tuple(found)
    if len(classes) < 2:
        raise UserError(f"'{spec.root}' has one class folder only; a classification dataset needs at least two")
    train = _folder_files(found, classes, spec.root)
    test = None
    if spec.test_root is not None:
        found_test = _folder_images(spec.test_root, "test_root")
        unseen = [c for c in found_test if c not in found]
        if unseen:
            raise UserError(
                f"class '{unseen[0]}' appears in test_root '{spec.test_root}' but not in root '{spec.root}'; "
                "add training images of that class or remove its test folder"
            )
        test_files = _folder_files(found_test, classes, spec.test_root)
        train = without(train, test_files, f"'{spec.root}'")
        test = _image_set(test_files, image_size)
    return split_bundle(spec.name, MULTICLASS, classes, _image_set(train, image_size), test, split_seed)
