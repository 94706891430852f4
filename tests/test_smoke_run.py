"""The main path end to end: the smoke config through the CLI, its records, predictions and report, and the export
of its pretrained encoders (the .safetensors and timm arguments rebuild the same encoder).

Every test of the one smoke run lives here, so a run of the suite with ``--dist loadfile`` makes that run once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import timm
import torch
import yaml
from sklearn.metrics import balanced_accuracy_score, f1_score

from cass_bench.cli import main
from cass_bench.config.load import load_config
from cass_bench.config.registry import get_method
from cass_bench.evaluation.chance import is_above_chance
from cass_bench.models.encoders import build_encoder
from cass_bench.records.store import RECORD_FIELDS, RecordStore
from cass_bench.run.export import load_exported

from .conftest import run_cli

CHANCE_INPUTS = ("f1_macro", "above_chance_p", "chance_f1_majority", "chance_f1_random")

METRICS = ("f1_macro", "f1_micro", "f1_seed_code", "balanced_accuracy", "auroc", "accuracy")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Results folder of ``run --methods cass,supervised --config configs/smoke.yaml --image-size 8`` (8 px, as every
    end-to-end test runs: the encoders' compute, not the path, is what the size changes)."""
    out = tmp_path_factory.mktemp("smoke") / "out"
    proc = run_cli("run", "--methods", "cass,supervised", "--config", "configs/smoke.yaml", "--image-size", "8",
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def test_smoke_run_writes_every_record_complete(smoke_run: Path) -> None:
    records = _records(smoke_run)
    keys = {(r["method"], r["arch"], r["label_fraction"], r["eval"]) for r in records}
    expected = {(m, a, f, e) for m in ("cass", "supervised") for a in ("cnn", "vit") for f in (0.01, 0.1, 1.0)
                for e in ("finetune", "linear", "knn")}
    assert keys == expected and len(records) == len(expected)
    for record in records:
        assert set(RECORD_FIELDS) <= set(record), set(RECORD_FIELDS) - set(record)
        assert record["status"] == "ok" and record["error"] is None
        for metric in METRICS:
            assert 0.0 <= record[metric] <= 1.0, (metric, record[metric])
        pretrained_on_gpu = torch.cuda.is_available() and not get_method(record["method"]).is_reference
        if pretrained_on_gpu:
            assert record["peak_gpu_mem_mb"] > 0
        else:
            assert record["peak_gpu_mem_mb"] is None
        assert record["versions"]["torch"] and record["device"] and record["init"] == "random"
        assert 0 < record["above_chance_p"] <= 1
        assert record["above_chance"] == is_above_chance(*(record[k] for k in CHANCE_INPUTS))
        assert 0 <= record["chance_f1_majority"] < 0.2 and 0 < record["chance_f1_random"] < 0.2
        assert sum(record["labelled_per_class"]) == record["n_labelled"]
        assert record["small_input_stem"] == (record["arch"] == "cnn")
    for record in (r for r in records if r["eval"] == "finetune"):
        assert record["finetune_time_s"] > 0 and record["finetune_steps_taken"] == record["finetune_steps"] == 5
    for record in (r for r in records if r["method"] == "cass"):
        assert record["pretrain_epoch_time_s"] > 0 and record["pretrain_time_s"] > 0
        assert record["images_per_s"] > 0 and record["flops_per_image"] > 0
        assert 0 < record["pretrain_cpu_share"] <= 1.05, "a CPU run measures its training thread's share"
        assert record["embedding_std"] > 0
        assert len(record["centred_rank_history"]) == len(record["feature_std_history"]) == 2
        assert all(0 <= rank <= 256 for rank in record["centred_rank_history"])
        assert record["centred_rank"] == record["centred_rank_history"][-1]
        assert record["collapsed"] == (record["centred_rank_history"][-1] < 2)
        assert "feature_rank_history" not in record and record["start_key"] is None


def test_smoke_run_leaves_only_results_in_its_folder(smoke_run: Path) -> None:
    names = {path.name for path in smoke_run.iterdir() if path.suffix != ".png"}
    assert names == {"records.jsonl", "report.md", "predictions", "checkpoints", "logs", "config.yaml",
                     "collapse_per_seed.csv", "cells.locks"}
    assert {p.suffix for p in (smoke_run / "cells.locks").iterdir()} == {".lock"}  # one per cell, held while it ran


def test_smoke_run_logs_curves_and_each_record_names_its_files(smoke_run: Path) -> None:
    config = yaml.safe_load((smoke_run / "config.yaml").read_text())
    assert config["methods"] == ["cass", "supervised"] and config["out"] == str(smoke_run)
    for record in _records(smoke_run):
        if record["method"] == "cass":
            assert (smoke_run / "checkpoints" / f"{record['checkpoint_key']}.pt").is_file()
            assert record["pretrain_log_dir"] == f"logs/pretrain/{record['checkpoint_key']}"
            curves = pd.read_csv(smoke_run / record["pretrain_log_dir"] / "metrics.csv")
            assert curves["pretrain_loss_step"].notna().any() and curves["pretrain_loss_epoch"].notna().sum() == 1
            assert any(column.startswith("lr-") for column in curves.columns)
            ranks = curves[f"collapse/{record['arch']}_rank"].dropna().tolist()
            assert ranks == pytest.approx(record["centred_rank_history"])
        else:
            assert record["checkpoint_key"] is record["pretrain_log_dir"] is None
        if record["eval"] == "finetune":
            assert record["finetune_log_dir"] == f"logs/finetune/{record['record_id']}"
            curves = pd.read_csv(smoke_run / record["finetune_log_dir"] / "metrics.csv")
            assert curves["finetune_loss"].notna().any() and any(c.startswith("lr-") for c in curves.columns)
        else:
            assert record["finetune_log_dir"] is None


def test_predictions_recompute_recorded_metrics(smoke_run: Path) -> None:
    for record in _records(smoke_run):
        saved = np.load(smoke_run / "predictions" / f"{record['record_id']}.npz")
        y_true, y_score = saved["y_true"], saved["y_score"]
        assert y_score.shape == (len(y_true), 10)
        pred = y_score.argmax(axis=1)
        assert record["f1_macro"] == pytest.approx(f1_score(y_true, pred, average="macro"), abs=1e-5)
        assert record["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, pred), abs=1e-5)


def test_report_has_the_f1_table(smoke_run: Path) -> None:
    report = (smoke_run / "report.md").read_text()
    table = report.split("## 1. Downstream macro-F1", 1)[1].split("\n## ", 1)[0]
    for method in ("cass", "supervised"):
        assert f"| {method} " in table


def _full_label_finetunes(out: Path, method: str) -> list[dict]:
    return [r for r in RecordStore(out).load() if r["method"] == method and r["eval"] == "finetune"
            and r["label_fraction"] == 1.0]


def test_exported_encoders_give_the_checkpoints_outputs(smoke_run: Path, tmp_path: Path) -> None:
    cfg = load_config(smoke_run / "config.yaml")
    batch = torch.randn(4, 3, cfg.image_size, cfg.image_size, generator=torch.Generator().manual_seed(0))
    records = _full_label_finetunes(smoke_run, "cass")
    assert sorted(r["arch"] for r in records) == ["cnn", "vit"]
    for record in records:
        arch, dest = record["arch"], tmp_path / record["record_id"]
        assert main(["export", str(smoke_run), "--record", record["record_id"], str(dest)]) == 0
        assert sorted(p.name for p in dest.iterdir()) == [f"{arch}.json", f"{arch}.safetensors"]
        state = torch.load(smoke_run / "checkpoints" / f"{record['checkpoint_key']}.pt",
                           weights_only=True)["states"][arch]
        original = build_encoder(arch, cfg.backbones, cfg.image_size, seed=1)
        original.load_state_dict(state)
        expected = original.eval()(batch)
        torch.testing.assert_close(load_exported(dest / f"{arch}.json")(batch), expected)
        spec = json.loads((dest / f"{arch}.json").read_text())
        assert spec["source"]["record_id"] == record["record_id"] and spec["small_input_stem"] == (arch == "cnn")
        if arch == "vit":  # timm alone, as docs/records.md shows
            model = timm.create_model(**spec["timm"], pretrained=True, pretrained_cfg_overlay=dict(
                file=str(dest / spec["weights"]), custom_load=False))
            torch.testing.assert_close(model.eval()(batch), expected)


@pytest.mark.parametrize("record_id", ["no-such-record", None])
def test_export_of_an_unknown_or_unpretrained_record_exits_2(smoke_run: Path, tmp_path: Path, record_id: str | None,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    record_id = record_id or _full_label_finetunes(smoke_run, "supervised")[0]["record_id"]
    assert main(["export", str(smoke_run), "--record", record_id, str(tmp_path / "dest")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and record_id in err
    assert not (tmp_path / "dest").exists()
