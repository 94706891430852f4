"""The seed-cost study: its patch still puts the removed waste back, its comparison matches records by id, and its
report shows what was saved."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from benchmarks.seed_cost_study import PATCH, compare_numbers, write_report
from cass_bench.records.breakdown import CATEGORIES, TOTAL

from .conftest import ROOT


def test_the_before_patch_applies_to_the_code_and_puts_both_wastes_back() -> None:
    check = subprocess.run(["git", "apply", "--check", str(PATCH)], cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0, f"regenerate {PATCH.name}: {check.stderr}"
    added = [line for line in PATCH.read_text().splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert any("evaluators.setdefault(arch, EncoderEvaluator(" in line for line in added)
    assert any("StepFlops(cfg.cpu_peak_gflops)" in line for line in added), "fine-tunes count FLOPs without the memo"


def test_numbers_are_compared_record_by_record() -> None:
    before = [{"record_id": "a", "f1_macro": 0.5, "flops_per_image": 10.0},
              {"record_id": "b", "f1_macro": 0.7, "flops_per_image": 10.0},
              {"record_id": "c", "f1_macro": 0.9, "flops_per_image": 10.0}]
    after = [{"record_id": "a", "f1_macro": 0.5, "flops_per_image": 10.0},
             {"record_id": "b", "f1_macro": 0.72, "flops_per_image": 10.0}]
    numbers = compare_numbers(before, after)
    assert numbers["records"] == [3, 2] and numbers["matched"] == 2
    assert numbers["largest_difference"]["f1_macro"] == pytest.approx(0.02)
    assert numbers["largest_difference"]["flops_per_image"] == 0.0
    assert "finetune_flops_per_image" not in numbers["largest_difference"], "a column neither side records"


def test_the_report_shows_each_category_and_the_saving(tmp_path: Path) -> None:
    def side(total: float, cpu_s: float) -> dict:
        minutes = {c: 0.0 for c in CATEGORIES} | {"fine-tunes": total - 10.0, "pretraining": 10.0, TOTAL: total}
        return {"wall_s": 600.0, "cpu_s": cpu_s, "thread_min": minutes}

    result = {"created_at": "2026-12-05T16:00:00+00:00", "config": "default", "seed": 0, "shards": 2,
              "environment": {"device": "CPU (x86_64, 2 cores)", "git_commit": "abc",
                              "load_average_at_start": [0.1, 0.2, 0.3]},
              "sides": {"before": side(40.0, 2400.0), "after": side(38.0, 2280.0)},
              "numbers": {"records": [72, 72], "matched": 72, "largest_difference": {"f1_macro": 0.0}}}
    write_report(result, tmp_path)
    text = (tmp_path / "README.md").read_text()
    assert "Saved: 2.00 thread-minutes of 40.00 (5.0%)" in text
    assert "| fine-tunes " in text and "-2.00" in text
    assert "72 of 72 / 72 records match by id" in text and "f1_macro 0" in text
    assert json.loads((tmp_path / "study.json").read_text())["sides"]["after"]["cpu_s"] == 2280.0
