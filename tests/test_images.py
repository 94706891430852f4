"""Images decoded faithfully or refused, and copies of an image never in two splits."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cass_bench.data.bundle import DatasetBundle, FileImages, SubsetImages
from cass_bench.data.decode import BACKGROUND, decode_rgb
from cass_bench.data.sources import load_dataset
from cass_bench.errors import UserError
from tests.dataset_builders import csv_dataset, imagefolder_dataset

SIZE = 16


def _ramp(dtype: type, low: float, high: float) -> np.ndarray:
    return np.linspace(low, high, 16 * 16).reshape(16, 16).astype(dtype)


@pytest.mark.parametrize(("name", "values"), [
    ("16-bit.png", _ramp(np.uint16, 1000, 41000)),
    ("float.tif", _ramp(np.float32, 0.0, 1.0)),
    ("float-wide.tif", _ramp(np.float32, -3.5, 120.0)),
])
def test_high_bit_depth_and_float_images_keep_their_contrast(name: str, values: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / name
    Image.fromarray(values).save(path)
    with Image.open(path) as image:
        assert image.mode in ("I;16", "F")
        rgb = np.asarray(decode_rgb(image))
    expected = np.round((values - values.min()) * 255.0 / (values.max() - values.min())).astype(np.uint8)
    assert rgb.dtype == np.uint8 and rgb.shape == (16, 16, 3)
    assert rgb.min() == 0 and rgb.max() == 255
    np.testing.assert_array_equal(rgb[..., 0], expected)
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()


def test_a_constant_float_image_becomes_black(tmp_path: Path) -> None:
    with Image.fromarray(np.full((8, 8), 7.5, np.float32)) as image:
        assert np.asarray(decode_rgb(image)).max() == 0


def test_alpha_is_composited_on_the_stated_background() -> None:
    pixels = np.zeros((2, 2, 4), np.uint8)
    pixels[..., :3] = 200
    pixels[0, 0, 3] = 255
    pixels[0, 1, 3] = 0
    pixels[1, :, 3] = 128
    rgb = np.asarray(decode_rgb(Image.fromarray(pixels, mode="RGBA")))
    assert tuple(rgb[0, 0]) == (200, 200, 200)
    assert tuple(rgb[0, 1]) == BACKGROUND
    assert abs(int(rgb[1, 0, 0]) - round(200 * 128 / 255 + BACKGROUND[0] * (1 - 128 / 255))) <= 1


def _float_imagefolder(tmp: Path, poison: float | None) -> Path:
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        folder = tmp / "train" / c
        folder.mkdir(parents=True)
        for i in range(6):
            values = rng.random((SIZE, SIZE)).astype(np.float32) * (1 + i)
            Image.fromarray(values).save(folder / f"{i}.tif")
    if poison is not None:
        values = np.zeros((SIZE, SIZE), np.float32)
        values[3, 3] = poison
        Image.fromarray(values).save(tmp / "train" / "a" / "poisoned.tif")
    path = tmp / "float.yaml"
    path.write_text("format: imagefolder\nroot: train\n")
    return path


def test_float_tiff_dataset_loads_with_full_contrast(tmp_path: Path) -> None:
    bundle = load_dataset(str(_float_imagefolder(tmp_path, None)), SIZE, "unused", 0)
    for split in (bundle.train, bundle.val, bundle.test):
        image = np.asarray(split.images.load(0))
        assert image.min() == 0 and image.max() == 255


def test_float_image_with_nan_is_refused_before_work(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"poisoned.tif' \(mode F\) holds NaN or infinite values"):
        load_dataset(str(_float_imagefolder(tmp_path, float("nan"))), SIZE, "unused", 0)


def test_unsupported_mode_is_refused_with_its_name(tmp_path: Path) -> None:
    path = imagefolder_dataset(tmp_path, per_class=4)
    Image.new("LAB", (SIZE, SIZE)).save(tmp_path / "train" / "circle" / "lab.tif")
    with pytest.raises(UserError, match="has mode LAB, which cass-bench cannot decode faithfully"):
        load_dataset(str(path), SIZE, "unused", 0)


def _content_hashes(split_images: object) -> list[str]:
    assert isinstance(split_images, SubsetImages) and isinstance(split_images.source, FileImages)
    paths = [split_images.source.paths[i] for i in split_images.indices]
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def _assert_disjoint_by_content(bundle: DatasetBundle) -> list[list[str]]:
    hashes = [_content_hashes(s.images) for s in (bundle.train, bundle.val, bundle.test)]
    for split in hashes:
        assert len(split) == len(set(split))
    assert not set(hashes[0]) & set(hashes[1]) and not set(hashes[0]) & set(hashes[2])
    assert not set(hashes[1]) & set(hashes[2])
    return hashes


def test_repeated_csv_rows_and_copied_files_are_kept_once_before_splitting(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = csv_dataset(tmp_path, per_class=10)
    frame = pd.read_csv(tmp_path / "train.csv")
    images = tmp_path / "images"
    for name in frame["image"][:5]:
        (images / f"copy_of_{name}.jpg").write_bytes((images / f"{name}.jpg").read_bytes())
    copies = frame[:5].assign(image=[f"copy_of_{n}" for n in frame["image"][:5]])
    pd.concat([frame, frame, copies]).to_csv(tmp_path / "train.csv", index=False)

    bundle = load_dataset(str(path), SIZE, "unused", 0)
    hashes = _assert_disjoint_by_content(bundle)
    assert sum(map(len, hashes)) == len(frame)
    assert "holds 35 repeated image(s)" in capsys.readouterr().err


def test_copy_with_another_label_is_refused(tmp_path: Path) -> None:
    path = imagefolder_dataset(tmp_path, per_class=6)
    copy = (tmp_path / "train" / "circle" / "2.png").read_bytes()
    (tmp_path / "train" / "square" / "from_circle.png").write_bytes(copy)
    with pytest.raises(UserError, match=r"same image twice with different labels \(.*2.png' and .*from_circle.png'"):
        load_dataset(str(path), SIZE, "unused", 0)


def test_training_copies_of_test_images_are_left_out_of_training(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = imagefolder_dataset(tmp_path, per_class=8, test_per_class=3)
    for i in range(3):
        (tmp_path / "train" / "square" / f"leak{i}.png").write_bytes(
            (tmp_path / "test" / "square" / f"{i}.png").read_bytes())
    bundle = load_dataset(str(path), SIZE, "unused", 0)
    test = [hashlib.sha256(p.read_bytes()).hexdigest() for p in bundle.test.images.paths]
    train_val = _content_hashes(bundle.train.images) + _content_hashes(bundle.val.images)
    assert not set(train_val) & set(test) and len(train_val) == 3 * 8
    assert "3 training image(s)" in capsys.readouterr().err
