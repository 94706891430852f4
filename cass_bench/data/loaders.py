"""Torch datasets and loaders over image sets, and the fine-tuning transforms shared by every method."""

from __future__ import annotations

import os
from typing import Any, Callable

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision import transforms as T

from cass_bench.data.bundle import ImageSet

IMAGENET_NORMALIZE = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


class TransformDataset(Dataset):
    """``(transform(image), label)`` pairs over an image set."""

    def __init__(self, images: ImageSet, transform: Callable[[Image.Image], Any]) -> None:
        self.images = images
        self.transform = transform
        self.labels = torch.as_tensor(images.labels, dtype=torch.float32 if images.labels.ndim == 2 else torch.long)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, torch.Tensor]:
        return self.transform(self.images.images.load(index)), self.labels[index]


def eval_transform() -> T.Compose:
    """Images (already resized) to normalised tensors."""
    return T.Compose([T.ToTensor(), T.Normalize(**IMAGENET_NORMALIZE)])


def finetune_train_transform(image_size: int) -> T.Compose:
    """Light augmentation for fine-tuning: a mild random resized crop (no flips: orientation can carry labels)."""
    return T.Compose([
        T.RandomResizedCrop(image_size, scale=(0.7, 1.0), ratio=(0.9, 1.1)),
        T.ToTensor(),
        T.Normalize(**IMAGENET_NORMALIZE),
    ])


AUTO_WORKERS_MAX = 4


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a SLURM allocation), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def loader_workers(configured: int | None, cores: int | None = None) -> int:
    """DataLoader workers: ``configured`` when set, else ``min(4, cores - 1)`` (0 on a single core).

    Args:
        configured: the config's ``num_workers`` (None: choose from the machine).
        cores: usable CPU cores (default: :func:`usable_cores`).
    """
    if configured is not None:
        return configured
    return max(0, min(AUTO_WORKERS_MAX, (usable_cores() if cores is None else cores) - 1))


def make_loader(
    images: ImageSet,
    transform: Callable[[Image.Image], Any],
    batch_size: int,
    shuffle: bool,
    num_workers: int,
    drop_last: bool = False,
    sampler: Sampler[int] | None = None,
) -> DataLoader:
    """A DataLoader with persistent workers when workers are used (``sampler``, when given, orders the images)."""
    return DataLoader(
        TransformDataset(images, transform),
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        drop_last=drop_last,
        pin_memory=torch.cuda.is_available(),
    )

