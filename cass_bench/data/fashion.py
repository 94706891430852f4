"""Fashion-MNIST (Zalando Research, MIT licence): 70,000 28x28 grayscale images of clothing, 10 balanced classes.

Files: ``{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (``.gz`` or plain) in ``--data-dir`` when it holds any of
them, else in the OS package's folder :data:`SYSTEM_DIR` (``apt-get install dataset-fashion-mnist``).

Names: ``fashion`` (or ``fashion-mnist``), optionally with sizes: ``fashion:<train>`` or ``fashion:<train>/<test>``,
each a whole number or ``all``. ``<train>`` images are drawn from the official 60,000 training images and ``<test>``
from the official 10,000 test images, stratified and seeded by ``split_seed``; 10% of the training draw becomes the
validation split, as for every source with its own test set. The draw is part of the dataset: the same for every
method, seed and cell, and its sizes are in the name, so in every record's identity. The default
(:data:`DEFAULT_TRAIN`, :data:`DEFAULT_TEST`) gives as many training images as ``embedded`` has (1,260 against
1,258), so that pretraining a seed costs about as much.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cass_bench.data.bundle import MULTICLASS, ArrayImages, DatasetBundle, ImageSet
from cass_bench.data.idx import read_idx
from cass_bench.data.splits import split_bundle, stratified_subset
from cass_bench.errors import UserError

NAMES = ("fashion", "fashion-mnist")
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
INSTALL = "apt-get install dataset-fashion-mnist"
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
DEFAULT_TRAIN = 1400
"""Training images drawn by default: 1,260 train and 140 validation."""
DEFAULT_TEST = 2000
MIN_SIZES = {"train": 10 * len(CLASSES), "test": len(CLASSES)}
ALL = "all"
GRAMMAR = "fashion, fashion:<train> or fashion:<train>/<test> (whole numbers or 'all'), e.g. fashion:5000/all"


def is_fashion(name: str) -> bool:
    """Whether ``name`` names Fashion-MNIST (with or without sizes)."""
    return name.strip().lower().split(":", 1)[0] in NAMES


def _size(text: str, split: str, name: str) -> int | None:
    text = text.strip().lower()
    if text == ALL:
        return None
    if not text.isdigit() or int(text) < MIN_SIZES[split]:
        raise UserError(f"dataset '{name}': {split} size '{text}' is not a whole number >= {MIN_SIZES[split]} or "
                        f"'{ALL}'; write {GRAMMAR}")
    return int(text)


def parse_sizes(name: str) -> tuple[int | None, int | None]:
    """The (train, test) draw sizes a Fashion-MNIST name asks for; None means the whole official set.

    Raises:
        UserError: a size that is not a whole number (at least 10 per class for train, 1 for test) or ``all``.
    """
    _, _, sizes = name.partition(":")
    if not sizes.strip():
        return DEFAULT_TRAIN, DEFAULT_TEST
    parts = sizes.split("/")
    if len(parts) > 2:
        raise UserError(f"dataset '{name}' gives {len(parts)} sizes; write {GRAMMAR}")
    train = _size(parts[0], "train", name)
    test = _size(parts[1], "test", name) if len(parts) == 2 else DEFAULT_TEST
    return train, test


def _file(folder: Path, stem: str) -> Path | None:
    return next((p for p in (folder / f"{stem}.gz", folder / stem) if p.is_file()), None)


def locate(data_dir: str | Path) -> Path:
    """The folder to read: ``data_dir`` when it holds any Fashion-MNIST file, else :data:`SYSTEM_DIR` when it does.

    Raises:
        UserError: neither holds one; the message names the install command and ``--data-dir``.
    """
    own = Path(data_dir).expanduser()
    stems = [stem for pair in FILES.values() for stem in pair]
    for folder in (own, SYSTEM_DIR):
        if any(_file(folder, stem) for stem in stems):
            return folder
    raise UserError(f"Fashion-MNIST files ({{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte[.gz]) not found in "
                    f"--data-dir '{own}' or '{SYSTEM_DIR}'; install them with: {INSTALL} (or pass --data-dir a "
                    "folder holding the four files)")


def _fix(folder: Path) -> str:
    if folder == SYSTEM_DIR:
        return "reinstall it: apt-get install --reinstall dataset-fashion-mnist"
    return f"replace it with an intact copy ({INSTALL} puts one in {SYSTEM_DIR})"


def read_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The official ``train`` or ``test`` images (uint8 ``(N, 28, 28)``) and labels (int64 ``(N,)``, 0..9).

    Raises:
        UserError: a missing, truncated or corrupt file, or files that do not hold MNIST-style images and labels;
            the message names the file.
    """
    paths = []
    for stem in FILES[split]:
        path = _file(folder, stem)
        if path is None:
            raise UserError(f"Fashion-MNIST file '{folder / stem}.gz' (or '{stem}') not found in '{folder}', which "
                            f"holds some of the others; add it, or install the set with: {INSTALL}")
        paths.append(path)
    images, labels = (read_idx(path, _fix(folder)) for path in paths)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise UserError(f"'{paths[0]}' holds {images.dtype} values of shape {images.shape}, not uint8 images "
                        f"(N, H, W); {_fix(folder)}")
    if labels.dtype != np.uint8 or labels.ndim != 1 or (len(labels) and labels.max() >= len(CLASSES)):
        raise UserError(f"'{paths[1]}' does not hold one class index 0..{len(CLASSES) - 1} per image (dtype "
                        f"{labels.dtype}, shape {labels.shape}); {_fix(folder)}")
    if len(labels) != len(images):
        raise UserError(f"'{paths[0]}' holds {len(images)} images but '{paths[1]}' {len(labels)} labels; "
                        f"{_fix(folder)}")
    return images, labels.astype(np.int64)


def _draw(images: np.ndarray, labels: np.ndarray, size: int | None, split: str, name: str, folder: Path,
          image_size: int, split_seed: int) -> ImageSet:
    if size is None:
        return ImageSet(ArrayImages(images, image_size), labels)
    if size > len(labels):
        raise UserError(f"dataset '{name}' asks for {size} {split} images but '{folder}' holds {len(labels)}; give "
                        f"at most {len(labels)} or '{ALL}' ({GRAMMAR})")
    keep = stratified_subset(labels, size, split_seed)
    return ImageSet(ArrayImages(images[keep], image_size), labels[keep])


def load_fashion(name: str, image_size: int, data_dir: str | Path, split_seed: int) -> DatasetBundle:
    """Loads Fashion-MNIST: a stratified draw of the official training and test sets (see the module docstring).

    Args:
        name: ``fashion`` or ``fashion-mnist``, optionally ``:<train>[/<test>]``.
        image_size: side of the images handed to the models.
        data_dir: a folder that may hold the IDX files (``~`` expanded); else :data:`SYSTEM_DIR` is read.
        split_seed: seed of the draws and of the train/val split.

    Returns:
        The bundle: train and val from the training draw (90/10, stratified), test from the test draw.

    Raises:
        UserError: a malformed name, missing files (naming the install command), bad files, or a draw larger than
            the set.
    """
    sizes = parse_sizes(name)
    folder = locate(data_dir)
    train, test = (_draw(*read_split(folder, split), size, split, name, folder, image_size, split_seed)
                   for split, size in zip(FILES, sizes))
    return split_bundle(name, MULTICLASS, CLASSES, train, test, split_seed)
