"""A method is one module plus one registration: a toy method registered here runs through preflight, a smoke
sweep (each cell in its own process), the records' identity and the report, with no other file naming it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator

import pytest

from cass_bench.cli import main
from cass_bench.config.schema import BenchConfig
from cass_bench.config.load import load_config
from cass_bench.errors import UserError
from cass_bench.records.identity import config_hash, expected_ids
from cass_bench.config.registry import MethodSpec, method_names, register, run_keys, unregister
from cass_bench.report import write_report
from cass_bench.records.store import RecordStore
from cass_bench.run.grid import expand
from cass_bench.run.sweep import preflight, run_sweep

from .conftest import ROOT

MODULE = "tests.toy_method"


@pytest.fixture
def toy() -> Iterator[MethodSpec]:
    spec = register(MODULE)
    yield spec
    unregister(MODULE)


def _cfg(out: Path, **overrides: object) -> BenchConfig:
    return load_config(ROOT / "configs" / "smoke.yaml", {"methods": "toy", "archs": "cnn", "label_fractions": "0.1,1",
                                                         "image_size": 8, "eval.evals": "finetune", "out": str(out),
                                                         **overrides})


def test_registration_adds_the_method_its_config_section_and_its_runs(toy: MethodSpec, tmp_path: Path) -> None:
    assert method_names()[-1] == "toy" and "toy-cnn" in run_keys(("cnn", "vit"))
    cfg = _cfg(tmp_path, **{"toy.lr": 0.01})
    assert cfg.recipe(toy.recipe).lr == 0.01
    changed = cfg.with_recipe(dataclasses.replace(cfg.recipe(toy.recipe), lr=0.02))
    assert config_hash(changed, "toy") != config_hash(cfg, "toy")
    with pytest.raises(UserError, match="toy.lr must be > 0"):
        _cfg(tmp_path, **{"toy.lr": -1})
    with pytest.raises(UserError, match="unknown config key 'toy.momentum'"):
        _cfg(tmp_path, **{"toy.momentum": 0.9})


def test_registered_method_runs_through_a_smoke_sweep_and_the_report(toy: MethodSpec, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cfg = _cfg(out)
    preflight(cfg)
    assert run_sweep(cfg) == 1
    records = RecordStore(out).load()
    assert sorted(r["record_id"] for r in records) == sorted(i for cell in expand(cfg) for i in expected_ids(cell, cfg))
    for record in records:
        assert record["method"] == "toy" and record["status"] == "ok", record["error"]
        assert record["config_hash"] == config_hash(cfg, "toy")
        assert record["pretrain_time_s"] > 0 and 0 <= record["f1_macro"] <= 1
    write_report(out)
    assert "| toy " in (out / "report.md").read_text()


def test_run_registers_a_method_module_from_the_command_line(capsys: pytest.CaptureFixture[str],
                                                               tmp_path: Path) -> None:
    try:
        assert main(["run", "--method-module", MODULE, "--config", "smoke", "--methods", "toy", "--out",
                     str(tmp_path / "out"), "--dry-run"]) == 0
        assert "| embedded toy/cnn bs=16" in capsys.readouterr().out
    finally:
        unregister(MODULE)
    assert main(["run", "--method-module", "no_such_lab.method", "--dry-run"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "cannot import method module 'no_such_lab.method'" in lines[0]
    assert "toy" not in method_names()
