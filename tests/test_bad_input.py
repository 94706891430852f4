"""Bad input through the CLI: one ``error:`` line on stderr, exit status 2, and no results folder.

Each case builds its broken input in ``tmp_path`` and returns the extra ``run`` arguments. Most cases call
``cass_bench.cli.main`` in-process (fast); a few representative ones go through a real subprocess too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import yaml

from cass_bench.cli import main
from tests.dataset_builders import csv_dataset, imagefolder_dataset, medmnist_npz, multilabel_csv_dataset, write_yaml

ROOT = Path(__file__).resolve().parent.parent
SMOKE = str(ROOT / "configs" / "smoke.yaml")

Builder = Callable[[Path], list[str]]


def _dataset(path: Path) -> list[str]:
    return ["--dataset", str(path)]


def _edit_yaml(path: Path, **changes: object) -> Path:
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    return write_yaml(path, {k: v for k, v in data.items() if v is not None})


def missing_train_csv(tmp: Path) -> list[str]:
    return _dataset(_edit_yaml(csv_dataset(tmp), train_csv="nope.csv"))


def missing_image_dir(tmp: Path) -> list[str]:
    return _dataset(_edit_yaml(csv_dataset(tmp), image_dir="no_such_folder"))


def missing_image_file(tmp: Path) -> list[str]:
    path = csv_dataset(tmp)
    (tmp / "images" / "train_004.jpg").unlink()
    return _dataset(path)


def corrupt_image(tmp: Path) -> list[str]:
    path = csv_dataset(tmp)
    (tmp / "images" / "train_007.jpg").write_bytes(b"this is not a jpeg")
    return _dataset(path)


def truncated_png(tmp: Path) -> list[str]:
    path = imagefolder_dataset(tmp)
    victim = tmp / "train" / "square" / "3.png"
    victim.write_bytes(victim.read_bytes()[:60])
    return _dataset(path)


def absent_label_column(tmp: Path) -> list[str]:
    return _dataset(_edit_yaml(csv_dataset(tmp), label_columns=["dx"]))


def class_only_in_test(tmp: Path) -> list[str]:
    path = csv_dataset(tmp, test_per_class=2)
    frame = pd.read_csv(tmp / "test.csv")
    frame.loc[0, "diagnosis"] = "hexagon"
    frame.to_csv(tmp / "test.csv", index=False)
    return _dataset(path)


def class_folder_only_in_test(tmp: Path) -> list[str]:
    path = imagefolder_dataset(tmp, test_per_class=2)
    (tmp / "test" / "square").rename(tmp / "test" / "hexagon")
    return _dataset(path)


def empty_csv(tmp: Path) -> list[str]:
    path = csv_dataset(tmp)
    (tmp / "train.csv").write_text("image,diagnosis\n")
    return _dataset(path)


def empty_imagefolder(tmp: Path) -> list[str]:
    (tmp / "train").mkdir()
    return _dataset(write_yaml(tmp / "empty.yaml", {"format": "imagefolder", "root": "train"}))


def non_binary_multilabel(tmp: Path) -> list[str]:
    path = multilabel_csv_dataset(tmp)
    frame = pd.read_csv(tmp / "labels.csv")
    frame.loc[5, "b"] = 7
    frame.to_csv(tmp / "labels.csv", index=False)
    return _dataset(path)


def unknown_format(tmp: Path) -> list[str]:
    return _dataset(_edit_yaml(csv_dataset(tmp), format="parquet"))


def yaml_missing_key(tmp: Path) -> list[str]:
    return _dataset(_edit_yaml(csv_dataset(tmp), image_column=None))


def yaml_unknown_key(tmp: Path) -> list[str]:
    return _dataset(_edit_yaml(csv_dataset(tmp), label_column="diagnosis"))


def missing_dataset_yaml(tmp: Path) -> list[str]:
    return _dataset(tmp / "absent.yaml")


def unknown_dataset(tmp: Path) -> list[str]:
    return ["--dataset", "imagenet"]


def medmnist_missing_file(tmp: Path) -> list[str]:
    return ["--dataset", "medmnist:dermamnist", "--data-dir", str(tmp)]


def medmnist_missing_keys(tmp: Path) -> list[str]:
    medmnist_npz(tmp / "pneumoniamnist.npz", num_classes=2, drop=("val_labels",))
    return ["--dataset", "medmnist:pneumoniamnist", "--data-dir", str(tmp)]


def medmnist_3d_flag(tmp: Path) -> list[str]:
    return ["--dataset", "medmnist:organmnist3d", "--data-dir", str(tmp)]


def medmnist_unknown_flag(tmp: Path) -> list[str]:
    return ["--dataset", "medmnist:kneemnist", "--data-dir", str(tmp)]


def medmnist_label_out_of_range(tmp: Path) -> list[str]:
    path = medmnist_npz(tmp / "breastmnist.npz", num_classes=2)
    arrays = dict(np.load(path))
    arrays["test_labels"][0, 0] = 5
    np.savez(path, **arrays)
    return ["--dataset", "medmnist:breastmnist", "--data-dir", str(tmp)]


def label_fraction_zero(tmp: Path) -> list[str]:
    return ["--label-fractions", "0"]


def label_fraction_above_one(tmp: Path) -> list[str]:
    return ["--label-fractions", "0.1,1.5"]


def batch_size_zero(tmp: Path) -> list[str]:
    return ["--batch-sizes", "0"]


def batch_size_too_large(tmp: Path) -> list[str]:
    return _dataset(csv_dataset(tmp)) + ["--batch-sizes", "64"]


def unknown_method(tmp: Path) -> list[str]:
    return ["--methods", "simclr"]


def unknown_backbone(tmp: Path) -> list[str]:
    return ["--set", "backbones.cnn=resnet_nonexistent"]


def one_bad_dataset_in_a_list(tmp: Path) -> list[str]:
    return ["--dataset", f"embedded,{tmp / 'absent.yaml'}"]


def imagenet_weights_missing(tmp: Path) -> list[str]:
    return ["--init", "imagenet", "--set", f"backbones.weights_dir={tmp}"]


def init_path_missing(tmp: Path) -> list[str]:
    return ["--init", str(tmp / "no_such_checkpoint.pt")]


def unknown_evaluation(tmp: Path) -> list[str]:
    return ["--evals", "finetune,svm"]


def unknown_finetune_budget(tmp: Path) -> list[str]:
    return ["--set", "finetune.budget=forever"]


def zero_finetune_steps(tmp: Path) -> list[str]:
    return ["--finetune-steps", "0"]


def unknown_method_optimizer(tmp: Path) -> list[str]:
    return ["--methods", "dino", "--set", "dino.optimizer=lamb"]


def unknown_method_setting(tmp: Path) -> list[str]:
    return ["--set", "byol.learning_rate=0.1"]


def empty_config(tmp: Path) -> list[str]:
    (tmp / "empty.yaml").write_text("# nothing set\n")
    return ["--config", str(tmp / "empty.yaml")]


def conflicting_copies(tmp: Path) -> list[str]:
    path = imagefolder_dataset(tmp)
    (tmp / "train" / "circle" / "copy.png").write_bytes((tmp / "train" / "square" / "1.png").read_bytes())
    return _dataset(path)


CASES: list[tuple[str, Builder, str]] = [
    ("missing train CSV", missing_train_csv, "nope.csv' (dataset key 'train_csv') not found"),
    ("missing image folder", missing_image_dir, "image folder"),
    ("missing image file", missing_image_file, "train_004.jpg"),
    ("corrupt image", corrupt_image, "train_007.jpg' (from"),
    ("truncated PNG", truncated_png, "is corrupt or not an image"),
    ("absent label column", absent_label_column, "column 'dx' (label_columns) not found"),
    ("class only in test CSV", class_only_in_test, "class 'hexagon' appears in"),
    ("class folder only in test", class_folder_only_in_test, "class 'hexagon' appears in test_root"),
    ("empty CSV", empty_csv, "no rows (empty dataset)"),
    ("empty image folder", empty_imagefolder, "no class sub-folders (empty dataset)"),
    ("non-0/1 multi-label value", non_binary_multilabel, "must hold 0/1"),
    ("unknown YAML format", unknown_format, "format 'parquet'"),
    ("YAML missing required key", yaml_missing_key, "missing required key 'image_column'"),
    ("YAML unknown key", yaml_unknown_key, "unknown key 'label_column'"),
    ("missing dataset YAML", missing_dataset_yaml, "absent.yaml' not found"),
    ("unknown dataset name", unknown_dataset, "unknown dataset 'imagenet'"),
    ("MedMNIST file missing", medmnist_missing_file, "pip install medmnist"),
    ("MedMNIST npz missing keys", medmnist_missing_keys, "lacks key(s) val_labels"),
    ("MedMNIST 3D flag", medmnist_3d_flag, "3D volume dataset, which is not supported"),
    ("MedMNIST unknown flag", medmnist_unknown_flag, "unknown MedMNIST flag 'kneemnist'"),
    ("MedMNIST label out of range", medmnist_label_out_of_range, "test_labels must be one class index"),
    ("label fraction 0", label_fraction_zero, "label fraction 0.0 is impossible"),
    ("label fraction > 1", label_fraction_above_one, "label fraction 1.5 is impossible"),
    ("batch size 0", batch_size_zero, "batch size 0 is impossible"),
    ("batch size > training set", batch_size_too_large, "batch size 64 is larger than"),
    ("unknown method", unknown_method, "unknown method 'simclr'"),
    ("unknown backbone", unknown_backbone, "unknown timm backbone 'resnet_nonexistent'"),
    ("one bad dataset in a list", one_bad_dataset_in_a_list, "absent.yaml' not found"),
    ("ImageNet weights missing offline", imagenet_weights_missing, "resnet18.safetensors"),
    ("init checkpoint missing", init_path_missing, "no_such_checkpoint.pt"),
    ("unknown evaluation", unknown_evaluation, "unknown eval.evals 'svm'; choose from finetune, linear, knn"),
    ("unknown fine-tuning budget", unknown_finetune_budget, "unknown finetune.budget 'forever'"),
    ("zero fine-tuning steps", zero_finetune_steps, "finetune.steps must be >= 1"),
    ("method recipe: impossible value", unknown_method_optimizer, "unknown dino.optimizer 'lamb'"),
    ("method recipe: unknown key", unknown_method_setting, "unknown config key 'byol.learning_rate'"),
    ("negative fine-tuning lr", lambda tmp: ["--set", "finetune.lr=-1"], "learning rate finetune.lr=-1.0 is impossible"),
    ("NaN method lr", lambda tmp: ["--set", "cass.lr=nan"], "config key 'cass.lr' is nan; give a finite number"),
    ("infinite crop scale", lambda tmp: ["--set", "dino.global_crop_scale=0.4,inf"], "'dino.global_crop_scale' is inf"),
    ("negative seed", lambda tmp: ["--seeds", "-1"], "seed -1 is impossible"),
    ("seed beyond numpy", lambda tmp: ["--seeds", str(2**32)], f"seed {2**32} is impossible"),
    ("negative split seed", lambda tmp: ["--set", "split_seed=-1"], "split_seed -1 is impossible"),
    ("negative worker count", lambda tmp: ["--num-workers", "-3"], "num_workers -3 is impossible"),
    ("empty pretraining epoch", lambda tmp: ["--set", "pretrain_batches=0"], "pretrain_batches 0 is impossible"),
    ("unknown accelerator", lambda tmp: ["--accelerator", "foo"], "unknown accelerator 'foo'"),
    ("unknown strategy", lambda tmp: ["--strategy", "foo"], "unknown strategy 'foo'"),
    ("image size above the limit", lambda tmp: ["--image-size", "100000"], "image size 100000 is above the limit"),
    ("empty YAML config", empty_config, "empty.yaml' is empty"),
    ("one image in two classes", conflicting_copies, "same image twice with different labels"),
]

IN_SUBPROCESS = ("corrupt image", "YAML missing required key", "MedMNIST npz missing keys", "unknown method",
                 "batch size > training set", "method recipe: impossible value")
SUBPROCESS_CASES = [c for c in CASES if c[0] in IN_SUBPROCESS]


def _argv(tmp_path: Path, build: Builder) -> tuple[list[str], Path]:
    data = tmp_path / "data"
    data.mkdir()
    out = tmp_path / "out"
    return ["run", "--methods", "cass", "--config", SMOKE, "--out", str(out), *build(data)], out


def _check(code: int, stderr: str, expected: str, out: Path) -> None:
    assert code == 2, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and len(lines[0]) > len("error: "), stderr
    assert expected in lines[0], lines[0]
    assert not out.exists()


@pytest.mark.parametrize(("case", "build", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_in_process(case: str, build: Builder, expected: str, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    argv, out = _argv(tmp_path, build)
    code = main(argv)
    _check(code, capsys.readouterr().err, expected, out)


@pytest.mark.parametrize(("case", "build", "expected"), SUBPROCESS_CASES, ids=[c[0] for c in SUBPROCESS_CASES])
def test_bad_input_through_a_real_process(case: str, build: Builder, expected: str, tmp_path: Path) -> None:
    argv, out = _argv(tmp_path, build)
    proc = subprocess.run([sys.executable, "-m", "cass_bench", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    _check(proc.returncode, proc.stderr, expected, out)
    assert proc.stdout == ""
