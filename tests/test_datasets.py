"""Every dataset form through ``load_dataset``: csv, imagefolder, MedMNIST npz, embedded and embedded-multilabel."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from cass_bench.config.load import load_config
from cass_bench.data.bundle import MULTICLASS, MULTILABEL, ArrayImages, DatasetBundle, FileImages, SubsetImages
from cass_bench.data.embedded import digit_images
from cass_bench.data.medmnist import FLAGS, choose_file, flag_facts, known_flags
from cass_bench.data.medmnist_info import package_info
from cass_bench.data.sources import load_dataset
from cass_bench.errors import UserError
from tests.dataset_builders import (
    SHAPES, csv_dataset, imagefolder_dataset, medmnist_npz, multilabel_csv_dataset, write_yaml,
)

ROOT = Path(__file__).resolve().parent.parent
SIZE = 32


@pytest.fixture(autouse=True)
def without_medmnist_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hides an installed ``medmnist`` package, so the built-in table is tested wherever the suite runs."""
    monkeypatch.setitem(sys.modules, "medmnist", None)


def _info_entry(classes: tuple[str, ...], channels: int, samples: tuple[int, int, int],
                task: str = "multi-class") -> dict[str, object]:
    """One ``medmnist.INFO`` entry, shaped like the package's."""
    return {"python_class": "FakeMNIST", "task": task, "label": {str(i): c for i, c in enumerate(classes)},
            "n_channels": channels, "n_samples": dict(zip(("train", "val", "test"), samples)), "license": "CC BY 4.0"}


def _base(images: object) -> tuple[object, np.ndarray]:
    if isinstance(images, SubsetImages):
        return images.source, images.indices
    return images, np.arange(len(images))


def _identities(images: object) -> set[object]:
    """What makes each example distinct: its file, or its pixels."""
    source, indices = _base(images)
    if isinstance(source, FileImages):
        return {source.paths[i] for i in indices}
    assert isinstance(source, ArrayImages)
    return {source.array[i].tobytes() for i in indices}


def check_bundle(bundle: DatasetBundle, task: str, num_classes: int) -> None:
    """The invariants every bundle keeps."""
    assert bundle.task == task and bundle.num_classes == num_classes
    splits = (bundle.train, bundle.val, bundle.test)
    for split in splits:
        assert len(split) > 0
        assert split.labels.dtype == np.int64
        if task == MULTICLASS:
            assert split.labels.shape == (len(split),)
            assert 0 <= split.labels.min() and split.labels.max() < num_classes
        else:
            assert split.labels.shape == (len(split), num_classes)
            assert set(np.unique(split.labels)) <= {0, 1}
        for index in (0, len(split) - 1):
            image = split.images.load(index)
            assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (SIZE, SIZE)
    ids = [_identities(s.images) for s in splits]
    assert sum(len(i) for i in ids) == sum(len(s) for s in splits)
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])


def _streams(bundle: DatasetBundle) -> bool:
    return all(isinstance(_base(s.images)[0], FileImages) for s in (bundle.train, bundle.val, bundle.test))


def test_csv_multiclass_split_from_train_csv(tmp_path: Path) -> None:
    yaml_path = csv_dataset(tmp_path / "ds", per_class=10)
    bundle = load_dataset(str(yaml_path), SIZE, "unused", split_seed=0)
    check_bundle(bundle, MULTICLASS, 3)
    assert bundle.name == "shapes" and bundle.class_names == tuple(sorted(SHAPES))
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (21, 3, 6)
    assert _streams(bundle)
    for split in (bundle.train, bundle.val, bundle.test):
        assert np.bincount(split.labels, minlength=3).min() >= 1
    again = load_dataset(str(yaml_path), SIZE, "unused", split_seed=0)
    other = load_dataset(str(yaml_path), SIZE, "unused", split_seed=1)
    assert _identities(again.test.images) == _identities(bundle.test.images)
    assert _identities(other.test.images) != _identities(bundle.test.images)


def test_csv_labels_follow_the_class_names(tmp_path: Path) -> None:
    yaml_path = csv_dataset(tmp_path, per_class=4)
    truth = dict(pd.read_csv(tmp_path / "train.csv").itertuples(index=False, name=None))
    bundle = load_dataset(str(yaml_path), SIZE, "unused", 0)
    for split in (bundle.train, bundle.val, bundle.test):
        source, indices = _base(split.images)
        for label, index in zip(split.labels, indices):
            path = source.paths[index]
            assert path.suffix == ".jpg" and bundle.class_names[label] == truth[path.stem]


def test_csv_numeric_class_names_sort_naturally(tmp_path: Path) -> None:
    yaml_path = csv_dataset(tmp_path, per_class=4, image_suffix="jpg")
    frame = pd.read_csv(tmp_path / "train.csv")
    frame["diagnosis"] = frame["diagnosis"].map({"circle": 2, "square": 10, "triangle": 1})
    frame.to_csv(tmp_path / "train.csv", index=False)
    bundle = load_dataset(str(yaml_path), SIZE, "unused", 0)
    assert bundle.class_names == ("1", "2", "10")


def test_csv_with_test_csv_and_full_names_from_another_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    yaml_path = csv_dataset(tmp_path / "ds", per_class=10, test_per_class=4, bare_names=False)
    monkeypatch.chdir(tmp_path)
    bundle = load_dataset(str(yaml_path), SIZE, "unused", 0)
    check_bundle(bundle, MULTICLASS, 3)
    assert len(bundle.test) == 12 and len(bundle.train) + len(bundle.val) == 30
    assert len(bundle.val) == 3
    assert all(p.name.startswith("test_") for p in _identities(bundle.test.images))
    assert all(p.parent == tmp_path / "ds" / "images" for p in _identities(bundle.train.images))


def test_csv_absolute_paths(tmp_path: Path) -> None:
    csv_dataset(tmp_path / "ds", per_class=10)
    yaml_path = write_yaml(tmp_path / "elsewhere" / "abs.yml", {
        "format": "csv", "train_csv": str(tmp_path / "ds" / "train.csv"), "image_dir": str(tmp_path / "ds" / "images"),
        "image_column": "image", "label_columns": "diagnosis", "image_suffix": ".jpg"})
    bundle = load_dataset(str(yaml_path), SIZE, "unused", 0)
    assert bundle.name == "abs"
    check_bundle(bundle, MULTICLASS, 3)


def test_csv_multilabel_from_binary_columns(tmp_path: Path) -> None:
    bundle = load_dataset(str(multilabel_csv_dataset(tmp_path)), SIZE, "unused", 0)
    check_bundle(bundle, MULTILABEL, 3)
    assert bundle.class_names == ("a", "b", "c")
    assert len(bundle.train) + len(bundle.val) + len(bundle.test) == 30


def test_csv_one_hot_columns_as_multiclass(tmp_path: Path) -> None:
    yaml_path = multilabel_csv_dataset(tmp_path)
    table = tmp_path / "labels.csv"
    frame = pd.read_csv(table)
    frame[["a", "b", "c"]] = np.eye(3, dtype=int)[np.arange(len(frame)) % 3]
    frame.to_csv(table, index=False)
    write_yaml(yaml_path, {**yaml.safe_load(yaml_path.read_text()), "task": "multiclass"})
    bundle = load_dataset(str(yaml_path), SIZE, "unused", 0)
    check_bundle(bundle, MULTICLASS, 3)
    assert bundle.class_names == ("a", "b", "c")


def test_imagefolder_grayscale_with_and_without_test_root(tmp_path: Path) -> None:
    bundle = load_dataset(str(imagefolder_dataset(tmp_path / "a", per_class=10)), SIZE, "unused", 0)
    check_bundle(bundle, MULTICLASS, 3)
    assert bundle.class_names == ("circle", "square", "triangle") and _streams(bundle)
    with Image.open(_base(bundle.train.images)[0].paths[0]) as raw:
        assert raw.mode == "L"
    split = load_dataset(str(imagefolder_dataset(tmp_path / "b", per_class=10, test_per_class=3)), SIZE, "x", 0)
    check_bundle(split, MULTICLASS, 3)
    assert len(split.test) == 9 and len(split.val) == 3


def test_medmnist_grayscale_multiclass(tmp_path: Path) -> None:
    medmnist_npz(tmp_path / "organamnist.npz", num_classes=11, counts=(33, 11, 22))
    bundle = load_dataset("medmnist:organamnist", SIZE, str(tmp_path), 0)
    check_bundle(bundle, MULTICLASS, 11)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (33, 11, 22)
    assert bundle.class_names[0] == "bladder"
    image = bundle.train.images.load(0)
    assert np.array_equal(np.asarray(image)[..., 0], np.asarray(image)[..., 2])


def test_medmnist_rgb_and_retina_ordinal(tmp_path: Path) -> None:
    medmnist_npz(tmp_path / "pathmnist.npz", rgb=True, num_classes=9)
    check_bundle(load_dataset("medmnist:pathmnist", SIZE, str(tmp_path), 0), MULTICLASS, 9)
    medmnist_npz(tmp_path / "retinamnist.npz", rgb=True, num_classes=5)
    retina = load_dataset("medmnist:retinamnist", SIZE, str(tmp_path), 0)
    check_bundle(retina, MULTICLASS, 5)
    assert retina.class_names == ("0", "1", "2", "3", "4")


def test_medmnist_chest_multilabel(tmp_path: Path) -> None:
    medmnist_npz(tmp_path / "chestmnist_64.npz", size=64, num_labels=14)
    bundle = load_dataset("medmnist:chestmnist", SIZE, str(tmp_path), 0)
    check_bundle(bundle, MULTILABEL, 14)
    assert bundle.class_names[-1] == "hernia"


def test_medmnist_size_selection(tmp_path: Path) -> None:
    for size in (28, 64, 128):
        medmnist_npz(tmp_path / ("bloodmnist.npz" if size == 28 else f"bloodmnist_{size}.npz"), size=size, rgb=True,
                     num_classes=8, counts=(3, 2, 2))
    assert choose_file("bloodmnist", 28, tmp_path).name == "bloodmnist.npz"
    assert choose_file("bloodmnist", 32, tmp_path).name == "bloodmnist_64.npz"
    assert choose_file("bloodmnist", 64, tmp_path).name == "bloodmnist_64.npz"
    assert choose_file("bloodmnist", 100, tmp_path).name == "bloodmnist_128.npz"
    assert choose_file("bloodmnist", 224, tmp_path).name == "bloodmnist_128.npz"
    assert choose_file("pathmnist", 28, tmp_path) is None
    bundle = load_dataset("medmnist:bloodmnist", SIZE, str(tmp_path), 0)
    assert bundle.train.images.array.shape[1:] == (64, 64, 3)


def test_medmnist_data_dir_expands_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    medmnist_npz(tmp_path / ".medmnist" / "breastmnist.npz", num_classes=2)
    check_bundle(load_dataset("medmnist:breastmnist", SIZE, "~/.medmnist", 0), MULTICLASS, 2)


def test_medmnist_config_example_loads(tmp_path: Path) -> None:
    cfg = load_config(ROOT / "configs" / "medmnist.yaml")
    assert cfg.data_dir == "~/.medmnist" and cfg.datasets
    for name in cfg.datasets:
        flag = name.split(":", 1)[1]
        _, task, classes = FLAGS[flag]
        multilabel = task == MULTILABEL
        medmnist_npz(tmp_path / f"{flag}_64.npz", size=64, num_labels=len(classes) if multilabel else 1,
                     num_classes=len(classes), counts=(12, 4, 4))
        check_bundle(load_dataset(name, SIZE, str(tmp_path), cfg.split_seed), task, len(classes))


def test_without_the_package_the_built_in_table_is_used() -> None:
    assert package_info() is None
    assert flag_facts("breastmnist").source == "the built-in table"
    assert flag_facts("breastmnist").classes == FLAGS["breastmnist"][2]
    assert known_flags() == tuple(FLAGS)


def test_medmnist_info_replaces_the_table_when_the_package_is_installed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    info = {"breastmnist": _info_entry(("bad", "good"), 1, (30, 10, 12), task="binary-class"),
            "kneemnist": _info_entry(("a", "b", "c"), 3, (30, 10, 12)),
            "chestmnist": _info_entry(tuple(f"finding {i}" for i in range(14)), 1, (30, 10, 12),
                                      task="multi-label, binary-class"),
            "organmnist3d": _info_entry(("liver", "heart"), 1, (30, 10, 12))}
    monkeypatch.setitem(sys.modules, "medmnist", SimpleNamespace(INFO=info))
    medmnist_npz(tmp_path / "breastmnist.npz", num_classes=2)
    medmnist_npz(tmp_path / "kneemnist.npz", rgb=True, num_classes=3)
    medmnist_npz(tmp_path / "chestmnist.npz", num_labels=14)
    breast = load_dataset("medmnist:breastmnist", SIZE, str(tmp_path), 0)
    assert breast.class_names == ("bad", "good")
    check_bundle(load_dataset("medmnist:kneemnist", SIZE, str(tmp_path), 0), MULTICLASS, 3)
    chest = load_dataset("medmnist:chestmnist", SIZE, str(tmp_path), 0)
    check_bundle(chest, MULTILABEL, 14)
    assert chest.class_names[0] == "finding 0"
    assert known_flags()[:3] == ("breastmnist", "kneemnist", "chestmnist") and "pathmnist" in known_flags()
    assert "organmnist3d" not in known_flags()
    assert flag_facts("pathmnist").source == "the built-in table"
    assert capsys.readouterr().err == ""
    with pytest.raises(UserError, match="unknown MedMNIST flag 'hipmnist'.*breastmnist, kneemnist, chestmnist, "):
        load_dataset("medmnist:hipmnist", SIZE, str(tmp_path), 0)


def test_a_file_unlike_medmnist_info_is_refused_or_warned_about(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    info = {"dermamnist": _info_entry(tuple("abcdefg"), 3, (7007, 1003, 2005)),
            "bloodmnist": _info_entry(tuple("abcdefgh"), 3, (11959, 1712, 3421))}
    monkeypatch.setitem(sys.modules, "medmnist", SimpleNamespace(INFO=info))
    medmnist_npz(tmp_path / "dermamnist.npz", num_classes=7)
    with pytest.raises(UserError, match="dermamnist.npz' holds 1-channel images but medmnist.INFO gives 3"):
        load_dataset("medmnist:dermamnist", SIZE, str(tmp_path), 0)
    medmnist_npz(tmp_path / "bloodmnist.npz", rgb=True, num_classes=8)
    load_dataset("medmnist:bloodmnist", SIZE, str(tmp_path), 0)
    warning = capsys.readouterr().err.splitlines()
    assert len(warning) == 1 and warning[0].startswith("warning: ") and "bloodmnist.npz' holds 30/10/12" in warning[0]
    assert "11959/1712/3421" in warning[0] and "not comparable" in warning[0]


def test_only_the_packages_info_module_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The package's ``__init__`` imports torch; reading INFO must not run it."""
    package = tmp_path / "site" / "medmnist"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('the package __init__ ran')\n")
    (package / "info.py").write_text(f"INFO = {{'breastmnist': {_info_entry(('x', 'y'), 1, (1, 1, 1))!r}}}\n")
    monkeypatch.delitem(sys.modules, "medmnist")
    monkeypatch.syspath_prepend(str(package.parent))
    assert flag_facts("breastmnist").classes == ("x", "y")
    assert flag_facts("breastmnist").source == "medmnist.INFO"
    assert "medmnist" not in sys.modules
    (package / "info.py").unlink()
    assert flag_facts("breastmnist").source == "the built-in table"


def test_embedded_multiclass() -> None:
    check_bundle(load_dataset("embedded", SIZE, "unused", 0), MULTICLASS, 10)


def test_embedded_multilabel_labels_match_the_digits_drawn() -> None:
    bundle = load_dataset("embedded-multilabel", SIZE, "unused", 3)
    check_bundle(bundle, MULTILABEL, 10)
    images, labels = digit_images()
    digit_of = {img.tobytes(): int(lab) for img, lab in zip(images, labels)}
    for split in (bundle.train, bundle.val, bundle.test):
        pairs = split.images.array
        assert pairs.shape[1:] == (16, 16)
        for pair, target in zip(pairs, split.labels):
            shown = {digit_of[pair[4:12, :8].tobytes()], digit_of[pair[4:12, 8:].tobytes()]}
            assert set(np.flatnonzero(target)) == shown
    assert (bundle.train.labels.sum(axis=0) > 0).all()
    assert (bundle.train.labels.sum(axis=1) == 1).any() and (bundle.train.labels.sum(axis=1) == 2).any()
    same = load_dataset("embedded-multilabel", SIZE, "unused", 3)
    other = load_dataset("embedded-multilabel", SIZE, "unused", 4)
    assert np.array_equal(same.test.labels, bundle.test.labels)
    assert not np.array_equal(other.test.labels, bundle.test.labels)


def test_list_shows_every_dataset_form() -> None:
    from cass_bench.data.sources import dataset_names

    text = "\n".join(dataset_names())
    for form in ("embedded", "embedded-multilabel", "fashion", "apt-get install dataset-fashion-mnist",
                 "medmnist:<flag>", "chestmnist", ".yaml", "csv", "imagefolder"):
        assert form in text


@pytest.mark.slow
def test_end_to_end_csv_dataset_through_the_cli(tmp_path: Path) -> None:
    """The slow one (~1 min): 40 JPEGs of 3 shapes pretrained with CASS and fine-tuned at two label fractions."""
    yaml_path = csv_dataset(tmp_path / "ds", per_class=14)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "cass_bench", "run", "--methods", "cass", "--dataset", str(yaml_path),
         "--config", "configs/smoke.yaml", "--out", str(out), "--label-fractions", "0.5,1", "--pretrain-epochs", "1",
         "--finetune-epochs", "1", "--batch-sizes", "8", "--image-size", "8"],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert {(r["arch"], r["label_fraction"]) for r in records} == {(a, f) for a in ("cnn", "vit") for f in (0.5, 1.0)}
    for record in records:
        assert record["status"] == "ok", record["error"]
        assert record["task"] == MULTICLASS and record["dataset"] == str(yaml_path)
        for metric in ("f1_macro", "f1_micro", "balanced_accuracy", "accuracy", "auroc"):
            assert 0.0 <= record[metric] <= 1.0, (metric, record[metric])


def test_loader_workers_default_leaves_a_core_for_the_step_and_respects_an_explicit_count() -> None:
    from cass_bench.data.loaders import loader_workers

    assert [loader_workers(None, cores) for cores in (1, 2, 3, 8, 64)] == [0, 1, 2, 4, 4]
    assert loader_workers(0, 64) == 0
    assert loader_workers(6, 2) == 6
    assert load_config(None).num_workers is None
    assert load_config(None, {"num_workers": 3}).num_workers == 3
