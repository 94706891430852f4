"""Fashion-MNIST: the IDX reader, the stratified draws, the folder it reads, its names and their record identity.

Every file here is generated; nothing needs the OS package (its folder is pointed elsewhere).
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from torchvision.datasets.mnist import read_image_file, read_label_file, read_sn3_pascalvincent_tensor

from cass_bench.cli import main
from cass_bench.config.load import load_config
from cass_bench.data import fashion
from cass_bench.data.bundle import MULTICLASS
from cass_bench.data.idx import read_idx
from cass_bench.data.sources import load_dataset
from cass_bench.errors import UserError
from cass_bench.records.identity import Cell, pretrain_key, record_id
from tests.dataset_builders import fashion_files, idx_bytes, idx_file
from tests.test_datasets import SIZE, check_bundle
from tests.test_layers import BLOCK_TORCH

ROOT = Path(__file__).resolve().parent.parent
SMOKE = str(ROOT / "configs" / "smoke.yaml")


@pytest.fixture(autouse=True)
def no_system_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The OS package's folder, pointed at an empty place so no test reads the installed set."""
    folder = tmp_path / "system"
    monkeypatch.setattr(fashion, "SYSTEM_DIR", folder)
    return folder


def _positions(images: object, count: int) -> list[int]:
    """The first pixel of each image: its position in the generated file (modulo 256)."""
    return [int(np.asarray(images.load(i))[0, 0, 0]) for i in range(count)]


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip_of_every_type(tmp_path: Path, dtype: type, compress: bool) -> None:
    array = (np.random.default_rng(0).standard_normal((4, 3, 5)) * 100).astype(dtype)
    read = read_idx(idx_file(tmp_path / "x.idx", array, compress))
    assert read.dtype == np.dtype(dtype) and read.dtype.isnative
    assert read.shape == (4, 3, 5)
    np.testing.assert_array_equal(read, array)


def test_idx_reader_agrees_with_torchvisions(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 7).astype(np.uint8)
    floats = rng.standard_normal((3, 4)).astype(np.float32)
    for name, array, theirs in (("images", images, read_image_file), ("labels", labels, read_label_file),
                                ("floats", floats, read_sn3_pascalvincent_tensor)):
        path = idx_file(tmp_path / name, array, compress=False)
        np.testing.assert_array_equal(read_idx(path), theirs(str(path)).numpy())


@pytest.mark.parametrize(("header", "expected"), [
    (bytes([1, 0, 8, 1]), "not an IDX file (magic number 01000801"),
    (bytes([0, 0, 7, 1]), "not an IDX file (magic number 00000701"),
    (bytes([0, 0, 8, 0]), "not an IDX file (magic number 00000800"),
    (b"", "magic number missing"),
])
def test_a_wrong_magic_number_is_refused_naming_the_file(tmp_path: Path, header: bytes, expected: str) -> None:
    path = tmp_path / "bad-idx"
    path.write_bytes(header + bytes(8) if header else b"")
    with pytest.raises(UserError, match="bad-idx") as caught:
        read_idx(path)
    assert expected in str(caught.value)


@pytest.mark.parametrize("compress", [True, False])
def test_a_truncated_file_is_refused_naming_the_file(tmp_path: Path, compress: bool) -> None:
    data = idx_bytes(np.zeros((10, 28, 28), dtype=np.uint8))
    path = tmp_path / "cut-idx3-ubyte"
    path.write_bytes(gzip.compress(data)[:-40] if compress else data[:-5])
    with pytest.raises(UserError, match=r"cut-idx3-ubyte' is truncated") as caught:
        read_idx(path)
    assert ("gzip" in str(caught.value)) == compress


def test_a_short_header_and_extra_bytes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "short"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(UserError, match="header of 3 sizes needs 16 bytes"):
        read_idx(path)
    path.write_bytes(idx_bytes(np.zeros(4, dtype=np.uint8)) + b"\0\0")
    with pytest.raises(UserError, match=r"longer than its header says \(2 extra bytes\)"):
        read_idx(path)


def test_fashion_draws_stratified_train_and_test_sets(tmp_path: Path) -> None:
    folder = fashion_files(tmp_path / "data", train_per_class=30, test_per_class=10)
    bundle = load_dataset("fashion:200/50", SIZE, str(folder), 0)
    check_bundle(bundle, MULTICLASS, 10)
    assert bundle.class_names[0] == "T-shirt/top" and bundle.class_names[9] == "Ankle boot"
    train_and_val = np.concatenate([bundle.train.labels, bundle.val.labels])
    assert (np.bincount(train_and_val, minlength=10) == 20).all()
    assert (np.bincount(bundle.val.labels, minlength=10) == 2).all()
    assert (np.bincount(bundle.test.labels, minlength=10) == 5).all()
    image = np.asarray(bundle.test.images.load(3))
    assert image.shape == (SIZE, SIZE, 3) and (image[..., 0] == image[..., 1]).all()


def test_the_draw_is_the_same_on_every_load_and_nested(tmp_path: Path) -> None:
    folder = str(fashion_files(tmp_path / "data"))
    first, again = (load_dataset("fashion:200/50", SIZE, folder, 3) for _ in range(2))
    for split in ("train", "val", "test"):
        a, b = getattr(first, split), getattr(again, split)
        np.testing.assert_array_equal(a.labels, b.labels)
        assert _positions(a.images, len(a)) == _positions(b.images, len(b))
    other = load_dataset("fashion:200/50", SIZE, folder, 4)
    assert _positions(other.test.images, 50) != _positions(first.test.images, 50)
    small, large = (load_dataset(f"fashion:100/{n}", SIZE, folder, 3).test for n in (20, 60))
    assert set(_positions(small.images, 20)) <= set(_positions(large.images, 60))


def test_all_keeps_the_whole_official_sets_and_the_alias_reads_the_same(tmp_path: Path) -> None:
    folder = str(fashion_files(tmp_path / "data", compress=False))
    bundle = load_dataset("fashion:all/all", SIZE, folder, 0)
    assert len(bundle.train) + len(bundle.val) == 300 and len(bundle.test) == 100
    alias = load_dataset("Fashion-MNIST:all/all", SIZE, folder, 0)
    np.testing.assert_array_equal(alias.train.labels, bundle.train.labels)


def test_the_default_draw_sizes(tmp_path: Path) -> None:
    assert fashion.parse_sizes("fashion") == (fashion.DEFAULT_TRAIN, fashion.DEFAULT_TEST)
    assert fashion.parse_sizes("fashion:3000") == (3000, fashion.DEFAULT_TEST)
    folder = fashion_files(tmp_path / "data", train_per_class=150, test_per_class=200)
    bundle = load_dataset("fashion", SIZE, str(folder), 0)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (1260, 140, 2000)


@pytest.mark.parametrize(("name", "expected"), [
    ("fashion:abc", "train size 'abc' is not a whole number >= 100"),
    ("fashion:99", "train size '99' is not a whole number >= 100"),
    ("fashion:200/0", "test size '0' is not a whole number >= 10"),
    ("fashion:200/50/10", "gives 3 sizes"),
    ("fashion:400", "asks for 400 train images but"),
    ("fashion:200/all/", "gives 3 sizes"),
])
def test_a_bad_name_is_refused_with_the_grammar(tmp_path: Path, name: str, expected: str) -> None:
    folder = str(fashion_files(tmp_path / "data"))
    with pytest.raises(UserError, match="fashion:<train>/<test>") as caught:
        load_dataset(name, SIZE, folder, 0)
    assert expected in str(caught.value)


def test_missing_files_name_the_install_step_and_data_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    code = main(["run", "--config", SMOKE, "--methods", "cass", "--dataset", "fashion", "--data-dir", str(empty),
                 "--out", str(out)])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 1 and not out.exists()
    assert "apt-get install dataset-fashion-mnist" in err[0] and "--data-dir" in err[0] and str(empty) in err[0]


def test_a_truncated_file_stops_the_run_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = fashion_files(tmp_path / "data")
    victim = folder / "t10k-labels-idx1-ubyte.gz"
    victim.write_bytes(victim.read_bytes()[:-12])
    out = tmp_path / "out"
    code = main(["run", "--config", SMOKE, "--methods", "cass", "--dataset", "fashion:200/50", "--data-dir",
                 str(folder), "--out", str(out)])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 1 and not out.exists()
    assert str(victim) in err[0] and "truncated or corrupt" in err[0]


def test_a_folder_missing_one_file_names_it(tmp_path: Path) -> None:
    folder = fashion_files(tmp_path / "data")
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(UserError, match="train-labels-idx1-ubyte.gz' .* not found"):
        load_dataset("fashion:200/50", SIZE, str(folder), 0)


def test_files_that_are_not_images_and_labels_are_refused(tmp_path: Path) -> None:
    folder = fashion_files(tmp_path / "data")
    idx_file(folder / "t10k-labels-idx1-ubyte.gz", np.full(100, 10, dtype=np.uint8))
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte.gz' does not hold one class index 0..9"):
        load_dataset("fashion:200/50", SIZE, str(folder), 0)
    idx_file(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(99, dtype=np.uint8))
    with pytest.raises(UserError, match="holds 100 images but .* 99 labels"):
        load_dataset("fashion:200/50", SIZE, str(folder), 0)


def test_the_os_package_folder_is_read_when_data_dir_holds_no_file(tmp_path: Path,
                                                                    no_system_copy: Path) -> None:
    fashion_files(no_system_copy)
    unrelated = tmp_path / "medmnist"
    unrelated.mkdir()
    assert fashion.locate(unrelated) == no_system_copy
    assert len(load_dataset("fashion:200/50", SIZE, str(unrelated), 0).test) == 50
    own = fashion_files(tmp_path / "own")
    assert fashion.locate(own) == own


def test_draw_sizes_enter_the_record_identity() -> None:
    cfg = load_config(SMOKE)
    cells = [Cell(name, "cass", ("cnn", "vit"), 16, 1, 0) for name in ("fashion", "fashion:5000", "fashion:5000/all")]
    assert len({pretrain_key(c, cfg) for c in cells}) == 3
    assert len({record_id(c, "cnn", 1.0, "finetune", cfg) for c in cells}) == 3


def test_the_datasets_config_is_the_default_on_three_datasets_and_plans_its_grid(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = ROOT / "configs" / "datasets.yaml"
    cfg, default = load_config(path), load_config(ROOT / "configs" / "default.yaml")
    assert cfg.datasets == ("embedded", "embedded-multilabel", "fashion") and cfg.out == "runs/datasets"
    # the datasets folder tunes for itself, per dataset (the default's values are its own), and plans its seeds
    untuned = replace(default.tune, chosen={}, per_dataset=True)
    assert replace(cfg, datasets=default.datasets, out=default.out, plan=default.plan) == replace(default, tune=untuned)
    assert cfg.tune.trials == default.tune.trials and not cfg.tune.chosen and cfg.plan.pilot == 3
    folder = fashion_files(tmp_path / "data", train_per_class=140, test_per_class=200)
    out = tmp_path / "out"
    assert main(["run", "--config", str(path), "--data-dir", str(folder), "--out", str(out), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "63 cells (63 pending)" in printed and "fashion cass/cnn+vit bs=16 ep=6 seed=2" in printed
    assert "Seeds: planned from a pilot of 3 (0, 1, 2" in printed
    assert not out.exists()


def test_fashion_loads_with_torch_unimportable(tmp_path: Path) -> None:
    folder = fashion_files(tmp_path / "data")
    code = BLOCK_TORCH + (
        "from cass_bench.data.sources import load_dataset\n"
        "bundle = load_dataset('fashion:200/50', 16, sys.argv[1], 0)\n"
        "assert len(bundle.test) == 50\n"
        "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
