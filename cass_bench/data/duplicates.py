"""Copies of one image in a dataset: found by content hash before splitting, so no image is in two splits.

Rows naming the same image content (the same file listed twice, or two files with identical bytes) are kept once
with a warning when they agree on the labels, and refused when they do not. An image of the training data that is
also in a separate test set is dropped from training, with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cass_bench.errors import UserError, warn


@dataclass(frozen=True)
class LabelledFiles:
    """Image files with their labels and content hashes, row by row.

    Attributes:
        paths: the image files.
        labels: ``(N,)`` class indices or ``(N, L)`` 0/1 labels.
        digests: the SHA-256 of each file's bytes.
    """

    paths: list[Path]
    labels: np.ndarray
    digests: list[str]

    def rows(self, keep: np.ndarray) -> LabelledFiles:
        """The rows at ``keep``."""
        return LabelledFiles([self.paths[i] for i in keep], self.labels[keep], [self.digests[i] for i in keep])


def deduplicate(files: LabelledFiles, where: str) -> LabelledFiles:
    """The first row of each distinct image content.

    Args:
        files: the rows of one listing (a CSV, a folder).
        where: that listing, for the messages.

    Raises:
        UserError: two rows hold the same image with different labels.
    """
    first: dict[str, int] = {}
    keep = []
    for row, digest in enumerate(files.digests):
        if digest not in first:
            first[digest] = row
            keep.append(row)
            continue
        original = first[digest]
        if not np.array_equal(files.labels[row], files.labels[original]):
            raise UserError(
                f"{where} holds the same image twice with different labels ('{files.paths[original]}' and "
                f"'{files.paths[row]}'); fix the label or remove one of them"
            )
    dropped = len(files.digests) - len(keep)
    if dropped:
        warn(f"{where} holds {dropped} repeated image(s) (same file content, e.g. '{_repeat(files, keep)}'); "
              "each is used once")
    return files.rows(np.asarray(keep, dtype=np.int64))


def without(train: LabelledFiles, test: LabelledFiles, where: str) -> LabelledFiles:
    """The training rows whose image is not in the test set.

    Raises:
        UserError: an image is in both with different labels.
    """
    in_test = {digest: row for row, digest in enumerate(test.digests)}
    keep = []
    for row, digest in enumerate(train.digests):
        if digest not in in_test:
            keep.append(row)
        elif not np.array_equal(train.labels[row], test.labels[in_test[digest]]):
            raise UserError(
                f"image '{train.paths[row]}' is also in the test set as '{test.paths[in_test[digest]]}' with a "
                f"different label ({where}); fix the label or remove one of them"
            )
    dropped = len(train.digests) - len(keep)
    if dropped:
        warn(f"{dropped} training image(s) of {where} are also in the test set (same file content); "
              "they are left out of training")
    return train.rows(np.asarray(keep, dtype=np.int64))


def _repeat(files: LabelledFiles, keep: list[int]) -> Path:
    kept = set(keep)
    return next(files.paths[row] for row in range(len(files.paths)) if row not in kept)
