"""Hostile datasets (issue 27): MedMNIST files whose labels or images would give records that only look finished, a
decompression-bomb PNG and a truncated JPEG. Each is refused before any work, in one line naming the file (the
runs are dry runs: they make every check a run makes before its work)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from cass_bench.cli import main
from tests.dataset_builders import csv_dataset, imagefolder_dataset, medmnist_npz

ROOT = Path(__file__).resolve().parent.parent
SMOKE = str(ROOT / "configs" / "smoke.yaml")


def _edit_npz(path: Path, **arrays: np.ndarray) -> None:
    data = dict(np.load(path))
    data.update(arrays)
    np.savez(path, **data)


def fractional_labels(path: Path) -> None:
    labels = np.load(path)["train_labels"].astype(np.float64)
    labels[:2, 0] = (0.05, 0.95)
    _edit_npz(path, train_labels=labels)


def one_training_class(path: Path) -> None:
    _edit_npz(path, train_labels=np.zeros((30, 1), dtype=np.int64))


def empty_images(path: Path) -> None:
    _edit_npz(path, val_images=np.zeros((10, 0, 0), dtype=np.uint8))


def string_labels(path: Path) -> None:
    _edit_npz(path, test_labels=np.array([["benign"], ["malignant"]] * 6))


MEDMNIST = [("fractional labels", fractional_labels, "train_labels holds 2 value(s) that are not whole numbers"),
            ("one training class", one_training_class, "train_labels hold one class only ('malignant')"),
            ("empty images", empty_images, "val_images are 0x0 pixels (empty images)"),
            ("string labels", string_labels, "test_labels holds <U9 values, not class numbers")]


@pytest.mark.parametrize(("case", "damage", "message"), MEDMNIST, ids=[c[0] for c in MEDMNIST])
def test_a_medmnist_file_that_would_give_wrong_records_is_refused(
        case: str, damage: Callable[[Path], None], message: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    damage(medmnist_npz(tmp_path / "breastmnist.npz", num_classes=2))
    out = tmp_path / "out"
    argv = ["run", "--config", SMOKE, "--methods", "cass", "--dataset", "medmnist:breastmnist", "--data-dir",
            str(tmp_path), "--out", str(out), "--dry-run"]
    assert main(argv) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and message in lines[0] and "breastmnist.npz" in lines[0], lines
    assert "replace it with the official file" in lines[0]
    assert not out.exists()


def _png_bomb(side: int) -> bytes:
    """A 1-bit PNG of ``side`` x ``side`` pixels in a few bytes (its header alone claims the size)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def test_a_decompression_bomb_png_is_one_line_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = imagefolder_dataset(tmp_path)
    bomb = tmp_path / "train" / "circle" / "bomb.png"
    bomb.write_bytes(_png_bomb(30_000))
    out = tmp_path / "out"
    assert main(["run", "--config", SMOKE, "--methods", "cass", "--dataset", str(dataset), "--out", str(out),
                 "--dry-run"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and str(bomb) in lines[0] and "too large to decode safely" in lines[0], lines
    assert not out.exists()


def test_a_truncated_jpeg_is_caught_by_the_upfront_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = csv_dataset(tmp_path)
    victim = tmp_path / "images" / "train_011.jpg"
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) - 40])
    out = tmp_path / "out"
    assert main(["run", "--config", SMOKE, "--methods", "cass", "--dataset", str(dataset), "--out", str(out),
                 "--dry-run"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and str(victim) in lines[0], lines
    assert "image file is truncated" in lines[0] and "replace or remove it" in lines[0]
    assert not out.exists()
