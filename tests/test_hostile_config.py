"""Hostile configs and options (issue 27): every one is refused before any work with one line that says what to do,
or read as the user meant it (``~`` expanded, ``--set slurm.mem_gb=64``); none is silently changed into another run.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from cass_bench.cli import main
from cass_bench.config.fields import ROLE_NAMES, roles
from cass_bench.config.load import load_config
from cass_bench.config.schema import BenchConfig, to_dict
from cass_bench.config.vocabulary import Eval
from cass_bench.data.bundle import MULTICLASS
from cass_bench.errors import UserError
from cass_bench.evaluation.probes import knn_scores

ROOT = Path(__file__).resolve().parent.parent
SMOKE = str(ROOT / "configs" / "smoke.yaml")


def _refused(argv: list[str], out: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Runs the CLI in-process; asserts exit 2, one ``error:`` line holding a fix, nothing written; returns it."""
    assert main(argv) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "; " in lines[0] and "<class" not in lines[0], lines[0]
    assert not out.exists()
    return lines[0]


def _run(tmp_path: Path, *extra: str, config: str = SMOKE) -> tuple[list[str], Path]:
    """``run`` arguments; ``--dry-run`` runs every check a run makes before its work, and no work."""
    out = tmp_path / "out"
    return ["run", "--config", config, "--methods", "cass", "--out", str(out), "--dry-run", *extra], out


def _yaml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(Path(SMOKE).read_text() + text)
    return str(path)


# --- class 2: values that used to become another run ------------------------------------------------------------

REPEATS = [(["--methods", "cass,cass"], "'methods' lists 'cass' more than once"),
           (["--seeds", "0,0"], "'seeds' lists 0 more than once"),
           (["--archs", "cnn,vit,vit"], "'archs' lists 'vit' more than once"),
           (["--label-fractions", "0.1,0.10"], "'label_fractions' lists 0.1 more than once")]


@pytest.mark.parametrize(("extra", "message"), REPEATS, ids=["methods", "seeds", "archs", "fractions"])
def test_a_value_listed_twice_is_refused(extra: list[str], message: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    argv, out = _run(tmp_path)
    argv = [a for a in argv if a not in ("--methods", "cass")] + extra
    assert message in _refused(argv, out, capsys)


def test_yaml_yes_is_not_a_step_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "yes.yaml"
    config.write_text(Path(SMOKE).read_text().replace("  steps: 5", "  steps: yes"))
    argv, out = _run(tmp_path, config=str(config))
    assert "config key 'finetune.steps' has an invalid value True; give a whole number" in _refused(argv, out, capsys)


def test_a_key_set_twice_in_yaml_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv, out = _run(tmp_path, config=_yaml(tmp_path, "seeds: [1]\n"))
    line = _refused(argv, out, capsys)
    assert "sets 'seeds' twice in one section (lines 7 and 23)" in line and "delete one of them" in line


def test_a_negative_count_in_a_method_recipe_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv, out = _run(tmp_path, "--set", "dino.n_local_views=-1")
    assert "config key 'dino.n_local_views' is -1" in _refused(argv, out, capsys)


def test_a_fixed_length_setting_takes_exactly_its_length(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv, out = _run(tmp_path, "--set", "dino.global_crop_scale=0.3,0.6,1.0")
    assert "'dino.global_crop_scale' needs 2 comma-separated numbers" in _refused(argv, out, capsys)


def test_home_is_expanded_in_paths_from_yaml_and_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "paths.yaml").write_text("out: ~/from-yaml\ninit: ~/ckpt\n")
    from_yaml = load_config(str(tmp_path / "paths.yaml"))
    assert from_yaml.out == str(tmp_path / "from-yaml") and from_yaml.init == str(tmp_path / "ckpt")
    from_option = load_config(SMOKE, {"out": "~/from-option", "backbones.weights_dir": "~/weights"})
    assert from_option.out == str(tmp_path / "from-option")
    assert from_option.backbones.weights_dir == str(tmp_path / "weights")


def test_knn_temperature_below_the_finite_limit_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv, out = _run(tmp_path, "--set", "eval.knn_temperature=1e-4")
    line = _refused(argv, out, capsys)
    assert "eval.knn_temperature 0.0001 is below 0.0118" in line and "give at least 0.0118" in line


def test_the_knn_vote_is_finite_down_to_its_limit_and_refused_below() -> None:
    from cass_bench.config.checks import knn_min_temperature

    rng = np.random.default_rng(0)
    train = rng.normal(size=(60, 8)).astype(np.float32)
    test = np.concatenate([train[:10], -train[:10], rng.normal(size=(10, 8))]).astype(np.float32)
    labels = rng.integers(0, 3, 60)
    for k in (1, 20, 60):
        low = knn_min_temperature(k)
        scores = knn_scores(train, labels, test, 3, MULTICLASS, k=k, temperature=low)
        assert np.isfinite(scores).all() and np.allclose(scores.sum(axis=1), 1.0, atol=1e-5)
        with pytest.raises(ValueError, match="overflows float32"):
            knn_scores(train, labels, test, 3, MULTICLASS, k=k, temperature=low / 2)
    assert 0.0117 < knn_min_temperature(20) < 0.0119


# --- class 3: checks before work --------------------------------------------------------------------------------

@pytest.mark.parametrize(("patch", "message"), [("0", "backbones.vit_patch_size 0 is impossible at image size 16"),
                                                ("5", "backbones.vit_patch_size 5 does not divide the image size 16")])
def test_a_vit_patch_that_cannot_tile_the_image_is_refused(patch: str, message: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    argv, out = _run(tmp_path, "--set", f"backbones.vit_patch_size={patch}")
    assert message in _refused(argv, out, capsys)


def test_init_weights_of_other_shapes_are_refused_before_work(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "weights"
    weights.mkdir()
    for arch in ("cnn", "vit"):
        save_file({"stem.weight": torch.zeros(3, 3)}, str(weights / f"{arch}.safetensors"))
    argv, out = _run(tmp_path, "--init", str(weights))
    line = _refused(argv, out, capsys)
    assert "cnn.safetensors' do not fit the cnn encoder" in line and "use the backbones" in line


# --- class 4: a config that expands without bound ---------------------------------------------------------------

BOMB = "\n".join(["slurm:", "  additional_parameters:", "    a: &a [x, x, x, x, x, x, x, x, x, x]",
                  *(f"    {c}: &{c} [{', '.join([f'*{p}'] * 10)}]" for p, c in zip("abcde", "bcdef")), ""])


def test_nested_yaml_aliases_are_refused_before_they_expand(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    argv, out = _run(tmp_path, config=_yaml(tmp_path, BOMB))
    line = _refused(argv, out, capsys)
    assert "expands to more than 100000 values" in line
    assert len(BOMB.encode()) < 700


def test_a_free_form_sbatch_option_takes_one_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _yaml(tmp_path, "slurm:\n  additional_parameters:\n    qos: {nested: [1, 2]}\n")
    argv, out = _run(tmp_path, config=config)
    assert "slurm.additional_parameters sets 'qos' to dict" in _refused(argv, out, capsys)


# --- class 5 and 7: one line, and what to do ----------------------------------------------------------------------

def test_a_config_that_is_not_utf8_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "latin1.yaml"
    config.write_bytes(Path(SMOKE).read_bytes() + "out: résultats\n".encode("latin-1"))
    argv, out = _run(tmp_path, config=str(config))
    assert "is not UTF-8 text" in _refused(argv, out, capsys)


def test_an_out_name_longer_than_the_file_system_allows_is_one_line(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    argv, out = _run(tmp_path)
    long = tmp_path / ("r" * 300)
    argv[argv.index(str(out))] = str(long)
    assert main(argv) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("error: --out has a name of 300 bytes") and "pass a shorter folder name" in line
    assert "\n" not in line


def test_slurm_memory_set_on_the_command_line_is_a_number() -> None:
    cfg = load_config(SMOKE, {"slurm.mem_gb": "64", "slurm.cpus_per_task": "8"})
    assert cfg.slurm.mem_gb == 64.0 and cfg.slurm.cpus_per_task == 8


MESSAGES = [["--devices", "0"], ["--set", "seeds=x"], ["--set", "eval.knn_k=0"], ["--set", "eval.linear_folds=1"],
            ["--set", "eval.chance_alpha=2"], ["--set", "finetune.min_class_weight=2"],
            ["--set", "backbones.small_input_stem=maybe"], ["--set", "slurm.timeout_min=0"],
            ["--set", "finetune.patience=-1"], ["--set", "channels_last=maybe"], ["--set", "backbones=3"],
            ["--set", "eval.chance_permutations=10"]]


@pytest.mark.parametrize("extra", MESSAGES, ids=[m[-1] for m in MESSAGES])
def test_every_refusal_says_what_to_do(extra: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv, out = _run(tmp_path, *extra)
    line = _refused(argv, out, capsys)
    fix = line.split("; ", 1)[1]
    assert any(word in fix for word in ("give", "choose", "use", "write", "set", "leave")), line


def test_argparse_errors_are_one_line_not_the_usage() -> None:
    proc = subprocess.run([sys.executable, "-m", "cass_bench", "run", "--seeds", "0,x"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "error: argument --seeds: '0,x' is not a comma-separated list of whole numbers; "
        "see python -m cass_bench run --help"]


def test_load_config_names_a_bad_value_without_a_type_repr() -> None:
    with pytest.raises(UserError, match=r"config key 'seeds' has an invalid value 'x'; give a whole number$"):
        load_config(SMOKE, {"seeds": "x"})


def test_the_internal_cell_command_with_a_missing_spec_is_one_line(tmp_path: Path) -> None:
    spec = tmp_path / "gone.json"
    proc = subprocess.run([sys.executable, "-m", "cass_bench", "_cell", str(spec)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"error: cell spec {spec} cannot be read (No such file or directory); cell "
                                        "specs are written by `run`: run the sweep again rather than a cell alone"]


# --- issue 36: values taken without a check, bad input found only after work started --------------------------------

UNCHECKED = [
    (["--init", "fractal", "--set", "source.points=1"],
     "source.points 1 cannot fill source.min_fill 0.05 of a 16 px render (each point fills at most one pixel); give at "
     "least 13"),
    (["--set", "source.classes=100000"], "source.classes 100000 is above the limit of 10000"),
    (["--set", f"source.batch_size={10**22}"], f"source.batch_size {10**22} is above the limit of 65536"),
    (["--set", "source.points=100000000"], "source.points 100000000 is above the limit of 10000000"),
    (["--set", "source.render_size=100000"], "source.render_size 100000 is above the limit of 1024"),
    (["--set", "source.classes=5000", "--set", "source.instances=5000"],
     "source.classes x source.instances is 25000000 images, above the limit of 2000000"),
    (["--batch-sizes", "100000"], "batch size 100000 is above the limit of 65536"),
    (["--out", ""], "--out is empty, which would write the results into the current folder"),
]


@pytest.mark.parametrize(("extra", "message"), UNCHECKED, ids=[" ".join(c[0]) for c in UNCHECKED])
def test_values_that_failed_only_after_work_started_are_refused_first(extra: list[str], message: str,
                                                                       tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    argv, out = _run(tmp_path, *extra)
    assert message in _refused(argv, out, capsys)


def test_out_set_to_null_in_yaml_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "null-out.yaml"
    config.write_text("\n".join(line for line in Path(SMOKE).read_text().splitlines() if not line.startswith("out:"))
                      + "\nout: ~\n")
    argv, out = _run(tmp_path, config=str(config))
    argv.remove("--out")
    argv.remove(str(out))
    assert "config key 'out' is empty (null or ~ in YAML); give text" in _refused(argv, out, capsys)
    assert not (Path.cwd() / "None").exists()


def test_a_set_value_with_a_comma_is_one_setup_line(tmp_path: Path) -> None:
    cfg = load_config(SMOKE, {"slurm.setup": "export CUDA_VISIBLE_DEVICES=0,1", "out": str(tmp_path)})
    assert cfg.slurm.setup == ("export CUDA_VISIBLE_DEVICES=0,1",)
    from cass_bench.cli import _set_pairs

    pairs = _set_pairs(["slurm.setup=[module load cuda, 'export A=1,2']", "methods=cass,dino"])
    assert load_config(SMOKE, {**pairs, "out": str(tmp_path)}).slurm.setup == ("module load cuda", "export A=1,2")
    assert pairs["methods"] == "cass,dino"


def test_a_start_cache_that_cannot_be_written_is_refused_before_work(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    monkeypatch.setenv("CASS_BENCH_CACHE", str(afile / "cache"))
    argv, out = _run(tmp_path, "--init", "fractal")
    line = _refused(argv, out, capsys)
    assert f"the start cache '{afile / 'cache'}' is under '{afile}', which is not a folder" in line
    assert "set CASS_BENCH_CACHE to a writable folder" in line


def test_an_init_whose_classifiers_differ_in_width_is_refused_before_work(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from cass_bench.models.encoders import build_encoder

    cfg = load_config(SMOKE, {"out": str(tmp_path)})
    weights = tmp_path / "weights"
    weights.mkdir()
    for arch, width in (("cnn", 10), ("vit", 7)):
        state = build_encoder(arch, cfg.backbones, cfg.image_size, seed=0, num_classes=width).state_dict()
        save_file({k: v.contiguous() for k, v in state.items()}, str(weights / f"{arch}.safetensors"))
    argv, out = _run(tmp_path, "--init", str(weights))
    line = _refused(argv, out, capsys)
    assert "holds classifiers of different widths (cnn 10, vit 7), which CASS with cass.heads: start" in line


@pytest.mark.parametrize("offline", [True, False], ids=["HF_HUB_OFFLINE", "hub unreachable"])
def test_imagenet_init_without_weights_is_refused_before_work_not_after_retries(
        offline: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    import huggingface_hub

    from cass_bench.config.schema import BackboneConfig
    from cass_bench.models.encoders import check_backbones

    def unreachable(*args: object, **kwargs: object) -> None:
        raise OSError(-2, "Name or service not known")

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *args, **kwargs: None)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(socket, "create_connection", unreachable)
    with pytest.raises(UserError) as err:
        check_backbones(BackboneConfig(), ("cnn",), "imagenet")
    reason = "HF_HUB_OFFLINE is set" if offline else "cannot be reached: Name or service not known"
    assert "no ImageNet weights for 'resnet18': they are not in the Hugging Face cache and" in str(err.value)
    assert reason in str(err.value) and "backbones.weights_dir" in str(err.value)


@pytest.mark.parametrize("key, value, choices", [
    ("finetune.select", "best", "last, best_val"), ("precision", "64", "32, 32-true, bf16-mixed, 16-mixed"),
    ("archs", "cnn,mlp", "cnn, vit"), ("tune.eval", "finetune", "knn, linear"), ("dino.optimizer", "lamb", "adam, "),
    ("cass.schedule", "step", "reference, cosine"), ("backbones.small_input_stem", "maybe", "auto, true, false")])
def test_a_choice_is_checked_by_its_type_when_the_config_loads(key: str, value: str, choices: str) -> None:
    with pytest.raises(UserError) as err:
        load_config(None, {key: value})
    assert str(err.value).startswith(f"unknown {key} '{value.split(',')[-1]}'; choose from {choices}")


def test_a_choice_takes_yaml_words_and_every_config_field_declares_its_identity_role() -> None:
    cfg = load_config(None, {"backbones.small_input_stem": True, "precision": 32, "eval.evals": "knn,finetune"})
    assert cfg.backbones.small_input_stem == "true" and cfg.precision == "32"
    assert cfg.eval.evals == (Eval.KNN, Eval.FINETUNE) and to_dict(cfg)["eval"]["evals"] == ["knn", "finetune"]
    assert roles(BenchConfig).keys() == {f.name for f in dataclasses.fields(BenchConfig)}
    assert set(roles(BenchConfig).values()) <= set(ROLE_NAMES)
