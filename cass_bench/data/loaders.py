"""Torch datasets and loaders over image sets, and the fine-tuning transforms shared by every method."""

from __future__ import annotations

from typing import Any, Callable

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
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


def make_loader(
    images: ImageSet,
    transform: Callable[[Image.Image], Any],
    batch_size: int,
    shuffle: bool,
    num_workers: int,
    drop_last: bool = False,
) -> DataLoader:
    """A DataLoader with persistent workers when workers are used."""
    return DataLoader(
        TransformDataset(images, transform),
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        drop_last=drop_last,
        pin_memory=torch.cuda.is_available(),
    )

