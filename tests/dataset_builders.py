"""Tiny on-disk datasets for the dataset tests: images drawn with PIL, CSVs, MedMNIST-like npz, IDX files, YAML."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")


def draw_shape(shape: str, seed: int, size: int = 24, mode: str = "RGB") -> Image.Image:
    """A filled shape at a slightly random place on a plain background."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 60, 3)))
    draw = ImageDraw.Draw(image)
    x, y = (int(v) for v in rng.integers(2, 6, 2))
    box = (x, y, x + size // 2 + 4, y + size // 2 + 4)
    fill = tuple(int(v) for v in rng.integers(150, 256, 3))
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) // 2, box[1])], fill=fill)
    return image.convert(mode)


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    """Writes ``data`` as YAML and returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def write_images(folder: Path, names: list[str], shapes: list[str], suffix: str = ".jpg", seed: int = 0) -> None:
    """One drawn image per name, ``folder/<name><suffix>``."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, (name, shape) in enumerate(zip(names, shapes)):
        draw_shape(shape, seed + k).save(folder / f"{name}{suffix}")


def csv_dataset(root: Path, per_class: int = 10, test_per_class: int = 0, bare_names: bool = True,
                **extra: Any) -> Path:
    """A ``format: csv`` dataset of drawn shapes with string class names; returns its YAML (relative paths).

    Args:
        root: folder to build in (``root/data.yaml``, ``root/train.csv``, ``root/images``).
        per_class: training images per class.
        test_per_class: test images per class (0: no test CSV).
        bare_names: the image column holds names without ``.jpg`` (and the YAML sets ``image_suffix``).
        extra: keys added to (or, when None, removed from) the YAML.
    """
    spec: dict[str, Any] = {"name": "shapes", "format": "csv", "train_csv": "train.csv", "image_dir": "images",
                            "image_column": "image", "label_columns": ["diagnosis"]}
    for split, count in (("train", per_class), ("test", test_per_class)):
        if count == 0:
            continue
        shapes = [s for s in SHAPES for _ in range(count)]
        names = [f"{split}_{i:03d}" for i in range(len(shapes))]
        write_images(root / "images", names, shapes, seed=0 if split == "train" else 1000)
        column = names if bare_names else [n + ".jpg" for n in names]
        pd.DataFrame({"image": column, "diagnosis": shapes}).to_csv(root / f"{split}.csv", index=False)
    if test_per_class:
        spec["test_csv"] = "test.csv"
    if bare_names:
        spec["image_suffix"] = ".jpg"
    spec.update(extra)
    return write_yaml(root / "data.yaml", {k: v for k, v in spec.items() if v is not None})


def multilabel_csv_dataset(root: Path, n: int = 30, labels: tuple[str, ...] = ("a", "b", "c")) -> Path:
    """A ``format: csv`` multi-label dataset: several 0/1 columns, every label present in ~half the rows."""
    rng = np.random.default_rng(0)
    names = [f"img{i:03d}.png" for i in range(n)]
    write_images(root / "images", [n_[:-4] for n_ in names], [SHAPES[i % 3] for i in range(n)], suffix=".png")
    table = {"file": names, **{label: (rng.random(n) < 0.5).astype(int) for label in labels}}
    pd.DataFrame(table).to_csv(root / "labels.csv", index=False)
    return write_yaml(root / "ml.yaml", {"format": "csv", "train_csv": "labels.csv", "image_dir": "images",
                                         "image_column": "file", "label_columns": list(labels)})


def imagefolder_dataset(root: Path, per_class: int = 8, test_per_class: int = 0, mode: str = "L") -> Path:
    """A ``format: imagefolder`` dataset of PNG shapes (grayscale by default); returns its YAML."""
    for split, count, seed in (("train", per_class, 0), ("test", test_per_class, 1000)):
        for shape in SHAPES if count else ():
            folder = root / split / shape
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                draw_shape(shape, seed + i, mode=mode).save(folder / f"{i}.png")
    spec: dict[str, Any] = {"format": "imagefolder", "root": "train"}
    if test_per_class:
        spec["test_root"] = "test"
    return write_yaml(root / "folder.yaml", spec)


def medmnist_npz(path: Path, size: int = 28, rgb: bool = False, num_labels: int = 1, num_classes: int = 3,
                 counts: tuple[int, int, int] = (30, 10, 12), drop: tuple[str, ...] = ()) -> Path:
    """A MedMNIST-like ``.npz``: random uint8 images and labels ``(N, num_labels)``, keys in ``drop`` left out."""
    rng = np.random.default_rng(size + num_labels)
    arrays: dict[str, np.ndarray] = {}
    for split, n in zip(("train", "val", "test"), counts):
        shape = (n, size, size, 3) if rgb else (n, size, size)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        if num_labels == 1:
            arrays[f"{split}_labels"] = (np.arange(n) % num_classes).reshape(n, 1)
        else:
            arrays[f"{split}_labels"] = (rng.random((n, num_labels)) < 0.3).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **{k: v for k, v in arrays.items() if k not in drop})
    return path


IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B, np.dtype(np.int32): 0x0C,
             np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` in the IDX format: magic ``00 00 <type> <ndim>``, big-endian uint32 sizes, big-endian values."""
    header = bytes([0, 0, IDX_CODES[array.dtype], array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def idx_file(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    """Writes ``array`` as an IDX file, gzip-compressed or plain; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path


def fashion_files(folder: Path, train_per_class: int = 30, test_per_class: int = 10, compress: bool = True) -> Path:
    """The four Fashion-MNIST IDX files with random 28x28 images, balanced over 10 classes; returns the folder.

    Each image's first pixel holds its position in its file modulo 256 and the second its class, so a test can
    check which images a draw kept.
    """
    rng = np.random.default_rng(train_per_class)
    suffix = ".gz" if compress else ""
    for prefix, per_class in (("train", train_per_class), ("t10k", test_per_class)):
        labels = rng.permutation(np.repeat(np.arange(10, dtype=np.uint8), per_class))
        images = rng.integers(0, 256, (len(labels), 28, 28), dtype=np.uint8)
        images[:, 0, 0] = np.arange(len(labels)) % 256
        images[:, 0, 1] = labels
        idx_file(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, compress)
        idx_file(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress)
    return folder
