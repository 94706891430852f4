"""What every dataset source produces: labelled image sets for train, val and test."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
from PIL import Image

from cass_bench.data.decode import decode_rgb
from cass_bench.errors import UserError

MULTICLASS = "multiclass"
MULTILABEL = "multilabel"


class ImageSource(Protocol):
    """Random access to RGB images already resized to the configured size."""

    def __len__(self) -> int: ...

    def load(self, index: int) -> Image.Image: ...


def to_rgb(image: Image.Image, size: int) -> Image.Image:
    """Applies the channel policy (grayscale replicated to 3 channels) and resizes to ``size`` x ``size``.

    High-bit-depth, float and transparent images are decoded by :func:`cass_bench.data.decode.decode_rgb`.
    """
    rgb = decode_rgb(image)
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
    return rgb


class ArrayImages:
    """Images held in memory as a uint8 array ``(N, H, W)`` or ``(N, H, W, 3)``."""

    def __init__(self, array: np.ndarray, size: int) -> None:
        if array.dtype != np.uint8 or array.ndim not in (3, 4):
            raise UserError(
                f"image array has dtype {array.dtype} and shape {array.shape}; expected uint8 (N, H, W) or (N, H, W, 3)"
            )
        self.array = array
        self.size = size

    def __len__(self) -> int:
        return len(self.array)

    def load(self, index: int) -> Image.Image:
        return to_rgb(Image.fromarray(self.array[index]), self.size)


class FileImages:
    """Images streamed from disk, decoded one at a time."""

    def __init__(self, paths: Sequence[Path], size: int) -> None:
        self.paths = list(paths)
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> Image.Image:
        with Image.open(self.paths[index]) as image:
            return to_rgb(image, self.size)


class SubsetImages:
    """A view of another source restricted to some indices."""

    def __init__(self, source: ImageSource, indices: Sequence[int]) -> None:
        self.source = source
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def load(self, index: int) -> Image.Image:
        return self.source.load(int(self.indices[index]))


@dataclass(frozen=True)
class ImageSet:
    """Images with labels: ``(N,)`` class indices (multi-class) or ``(N, L)`` 0/1 (multi-label)."""

    images: ImageSource
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: Sequence[int]) -> "ImageSet":
        """The examples at ``indices``."""
        idx = np.asarray(indices, dtype=np.int64)
        return ImageSet(SubsetImages(self.images, idx), self.labels[idx])


@dataclass(frozen=True)
class DatasetBundle:
    """A dataset ready for the protocol.

    Attributes:
        name: short name used in records and reports.
        task: ``multiclass`` or ``multilabel``.
        class_names: one name per class (or per label).
        train, val, test: the fixed splits.
    """

    name: str
    task: str
    class_names: tuple[str, ...]
    train: ImageSet
    val: ImageSet
    test: ImageSet

    @property
    def num_classes(self) -> int:
        return len(self.class_names)
