"""The formula-driven start (``init: fractal``): trained once per recipe, cached and verified, identical across
processes, keyed into every record's identity, exported as a valid init, and kept as CASS's heads."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch
from safetensors.torch import load_file

from cass_bench.config.files import resolve_config
from cass_bench.config.schema import BackboneConfig, BenchConfig
from cass_bench.config.load import load_config
from cass_bench.errors import UserError
from cass_bench.methods.cass import CASS, CassConfig
from cass_bench.models.encoders import build_encoder
from cass_bench.records.identity import Cell, config_hash, pretrain_key, record_id, start_key
from cass_bench.starts.cache import CACHE_ENV, Start, ensure_start, start_weights
from tests.conftest import run_cli
from tests.test_encoders import CNN, write_imagenet_weights

TINY = {"source.classes": 4, "source.instances": 8, "source.epochs": 1, "source.vit_epochs": 1, "source.points": 2000,
        "source.batch_size": 8}
"""A start that trains in seconds: 4 classes x 8 images (7 to train on, 1 held out), one epoch."""
TINY_SETS = [item for key, value in TINY.items() for item in ("--set", f"{key}={value}")]
CASS_CELL = Cell("embedded", "cass", ("cnn", "vit"), 16, 1, 0)


def tiny_cfg(**overrides: Any) -> BenchConfig:
    """The smoke config with ``init: fractal`` and the tiny source recipe."""
    return load_config(resolve_config("smoke"), {**TINY, "init": "fractal", **overrides})


def _training_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if " epoch " in r.getMessage()]


@pytest.fixture(scope="module")
def tiny_start(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Start, Path]]:
    """The tiny start, trained once into a temporary cache that stays set for the module's tests."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(cache))
        yield ensure_start(tiny_cfg()), cache


def test_the_start_holds_both_encoders_with_their_source_classifiers(tiny_start: tuple[Start, Path]) -> None:
    start, cache = tiny_start
    cfg = tiny_cfg()
    assert start.path == cache / "starts" / start_key(cfg) / "start.pt"
    assert start.states["cnn"]["fc.weight"].shape[0] == 4 and start.states["vit"]["head.weight"].shape[0] == 4
    for arch in ("cnn", "vit"):
        assert 0.0 <= start.source_accuracy(arch) <= 1.0
        assert start.measures["train_time_s"][arch] > 0
    assert start.measures["train_images"] == 4 * 7 and start.measures["holdout_images"] == 4


def test_a_cached_start_is_reused_and_a_corrupted_one_retrained(tiny_start: tuple[Start, Path],
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    start, _ = tiny_start
    caplog.set_level(logging.INFO, logger="cass_bench.starts")
    again = ensure_start(tiny_cfg())
    assert _training_lines(caplog) == [] and any("using the cached" in r.getMessage() for r in caplog.records)
    assert all(torch.equal(again.states["vit"][k], v) for k, v in start.states["vit"].items())
    data = bytearray(start.path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)
    start.path.write_bytes(bytes(data))
    caplog.clear()
    healed = ensure_start(tiny_cfg())
    assert len(_training_lines(caplog)) == 2  # one epoch of each encoder
    assert len(list(start.path.parent.glob("*.bad"))) == 1
    assert all(torch.equal(healed.states["cnn"][k], v) for k, v in start.states["cnn"].items())


def test_the_recipe_keys_the_start_and_enters_record_identity_only_with_fractal() -> None:
    base, longer = tiny_cfg(), tiny_cfg(**{"source.epochs": 2})
    assert start_key(base) != start_key(longer)
    assert start_key(base) != start_key(tiny_cfg(**{"backbones.vit_patch_size": 8}))
    assert start_key(base) != start_key(tiny_cfg(image_size=32))
    assert start_key(base) == start_key(tiny_cfg(seeds=[3], **{"cass.lr": 0.01}))  # not the cell seed, not a method
    assert record_id(CASS_CELL, "cnn", 1.0, "knn", base) != record_id(CASS_CELL, "cnn", 1.0, "knn", longer)
    assert pretrain_key(CASS_CELL, base) != pretrain_key(CASS_CELL, longer)
    random, random_longer = tiny_cfg(init="random"), tiny_cfg(init="random", **{"source.epochs": 2})
    assert config_hash(random, "cass") == config_hash(random_longer, "cass")


def test_the_cass_heads_switch_changes_the_record_id() -> None:
    start, fresh = tiny_cfg(), tiny_cfg(**{"cass.heads": "fresh"})
    assert record_id(CASS_CELL, "vit", 0.1, "knn", start) != record_id(CASS_CELL, "vit", 0.1, "knn", fresh)
    assert pretrain_key(CASS_CELL, start) != pretrain_key(CASS_CELL, fresh)
    dino = Cell("embedded", "dino", ("vit",), 16, 1, 0)
    assert record_id(dino, "vit", 0.1, "knn", start) == record_id(dino, "vit", 0.1, "knn", fresh)


def test_cass_compares_the_start_classifiers_or_fresh_heads(tiny_start: tuple[Start, Path]) -> None:
    start, _ = tiny_start
    cfg, weights = tiny_cfg(), start_weights(start)
    kept = CASS(CassConfig(), cfg.backbones, cfg.image_size, seed=0, init=weights)
    assert torch.equal(kept.cnn_head.weight, start.states["cnn"]["fc.weight"])
    assert torch.equal(kept.vit_head.weight, start.states["vit"]["head.weight"])
    assert torch.equal(kept.vit.state_dict()["blocks.0.attn.qkv.weight"], start.states["vit"]["blocks.0.attn.qkv.weight"])
    fresh = CASS(CassConfig(heads="fresh", output_dim=32), cfg.backbones, cfg.image_size, seed=0, init=weights)
    assert fresh.cnn_head.out_features == fresh.vit_head.out_features == 32
    assert torch.equal(fresh.cnn.state_dict()["layer1.0.conv1.weight"], start.states["cnn"]["layer1.0.conv1.weight"])
    random = CASS(CassConfig(output_dim=16), cfg.backbones, cfg.image_size, seed=0, init="random")
    assert random.cnn_head.out_features == 16  # a random start has no heads of its own


def test_bad_source_and_heads_settings_are_refused_with_the_fix() -> None:
    for key, value, words in (("source.optimizer", "lion", "adamw"), ("source.classes", 1, ">= 2"),
                              ("source.holdout", 1.5, "[0, 1)"), ("cass.heads", "mine", "fresh")):
        with pytest.raises(UserError, match=key.replace(".", r"\.")) as err:
            tiny_cfg(**{key: value})
        assert words in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
def test_the_start_is_identical_in_two_processes_and_exports_as_an_init(tmp_path: Path) -> None:
    exported = []
    for name in ("a", "b"):
        env = {**os.environ, CACHE_ENV: str(tmp_path / f"cache-{name}")}
        proc = run_cli("export", "--start", str(tmp_path / name), "--config", "smoke", *TINY_SETS, env=env,
                       timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "[start] cnn epoch 1/1" in proc.stderr
        exported.append(tmp_path / name)
    for arch in ("cnn", "vit"):
        a, b = (load_file(str(folder / f"{arch}.safetensors")) for folder in exported)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), arch
    spec = json.loads((exported[0] / "start.json").read_text())
    assert spec == json.loads((exported[1] / "start.json").read_text()) | {"measures": spec["measures"]}
    assert spec["classes"] == 4 and spec["start_key"] == start_key(tiny_cfg())
    cfg = tiny_cfg()
    kept = build_encoder("vit", cfg.backbones, cfg.image_size, seed=0, init=str(exported[0]), start_head=True)
    assert torch.equal(kept.head.weight, load_file(str(exported[0] / "vit.safetensors"))["head.weight"])
    pooled = build_encoder("cnn", cfg.backbones, cfg.image_size, seed=0, init=str(exported[0]))
    assert pooled(torch.zeros(2, 3, 16, 16)).shape == (2, 512)


@pytest.mark.slow
def test_run_with_the_fractal_start_works_and_a_second_run_reuses_it(tmp_path: Path) -> None:
    env = {**os.environ, CACHE_ENV: str(tmp_path / "cache")}
    common = ["run", "--config", "smoke", "--init", "fractal", "--evals", "knn", "--label-fractions", "1",
              "--image-size", "8", *TINY_SETS]
    first = run_cli(*common, "--methods", "cass,supervised", "--archs", "cnn", "--out", str(tmp_path / "one"), env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "[start] vit epoch 1/1" in first.stderr
    key = start_key(tiny_cfg(image_size=8))
    records = [json.loads(line) for line in (tmp_path / "one" / "records.jsonl").read_text().splitlines()]
    assert {r["method"] for r in records} == {"cass", "supervised"} and all(r["status"] == "ok" for r in records)
    for record in records:
        assert record["init"] == "fractal" and record["start_key"] == key
        assert 0.0 <= record["start_source_accuracy"] <= 1.0
        assert (record["collapsed"] is None) == (record["method"] == "supervised")
    second = run_cli(*common, "--methods", "supervised", "--archs", "cnn", "--out", str(tmp_path / "two"), env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert " epoch " not in second.stderr and "using the cached formula-driven start" in second.stderr


def test_fresh_heads_replace_the_imagenet_classifiers_at_any_width(tmp_path: Path) -> None:
    saved = write_imagenet_weights(tmp_path)
    backbones = BackboneConfig(weights_dir=str(tmp_path), vit_patch_size=8, small_input_stem="false")
    fresh = CASS(CassConfig(heads="fresh"), backbones, image_size=32, seed=0, init="imagenet")
    assert fresh.cnn_head.out_features == 1000 and not torch.equal(fresh.cnn_head.weight, saved[CNN]["fc.weight"])
    assert torch.equal(fresh.cnn.state_dict()["layer4.1.conv2.weight"], saved[CNN]["layer4.1.conv2.weight"])
    narrow = CASS(CassConfig(heads="fresh", output_dim=64), backbones, image_size=32, seed=0, init="imagenet")
    assert narrow.cnn_head.out_features == narrow.vit_head.out_features == 64
