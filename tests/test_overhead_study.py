"""The overhead study's summary and report: medians over benchmark runs, the run-vs-plain ratio, verdicts shown."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from benchmarks.harness import METHOD_KEYS, smoke_config
from benchmarks.overhead_study import plain_vs_plain, summarise_null, summarise_overhead, write_report

KEYS = ("cass", "dino-cnn", "dino-vit", "byol-cnn", "byol-vit")


def _info(ratios: dict[str, float]) -> dict[str, Any]:
    return {"epochs": 3, "steps_per_epoch": 16, "batch_size": 8, "image_size": 32, "torch_threads": 2,
            "harness_plain_ratio": ratios, "harness_median_step_s": {k: 0.1 * r for k, r in ratios.items()},
            "plain_median_step_s": {k: 0.1 for k in ratios}, "median_relative_difference": 0.01}


def test_the_median_of_three_runs_is_taken_per_method() -> None:
    runs = [_info({k: 1.0 + d for k in KEYS}) for d in (0.02, 0.10, 0.01)]
    summary = summarise_overhead(runs)
    assert summary["repeats"] == 3
    for key in KEYS:
        assert summary["per_key"][key]["median"] == pytest.approx(1.02)
        assert (summary["per_key"][key]["min"], summary["per_key"][key]["max"]) == (pytest.approx(1.01),
                                                                                    pytest.approx(1.10))


def test_the_report_shows_each_ratio_and_its_verdict(tmp_path: Path) -> None:
    ratios = {k: 1.02 for k in KEYS} | {"dino-vit": 1.08}
    result = {
        "created_at": "2026-11-27T18:00:00+00:00",
        "environment": {"device": "CPU (x86_64, 2 cores)", "cpu_model": "Xeon", "torch_threads": 2,
                        "timer_resolution_s": 1e-9, "git_commit": "abc", "versions": {"torch": "2.14.1"}},
        "overhead": summarise_overhead([_info(ratios)] * 3),
        "null": summarise_null([{k: 1.0 for k in KEYS} | {"cass": 0.97}, {k: 1.01 for k in KEYS}]),
        "run_vs_plain": {"config": "default", "epochs": 3, "batch_size": 16, "num_workers": 1,
                         "run_epoch_time_s": {"cass": 20.0, "dino-cnn": 26.0, "dino-vit": 19.0},
                         "plain_epoch_time_s": {"cass": 19.0, "dino-cnn": 25.0, "dino-vit": 18.0},
                         "plain_passes_epoch_time_s": [{"cass": 18.0, "dino-cnn": 24.0, "dino-vit": 17.0},
                                                       {"cass": 20.0, "dino-cnn": 26.0, "dino-vit": 19.0}],
                         "run_ratio": 20 / 45, "plain_ratio": 19 / 43, "relative_difference": (20 / 45) / (19 / 43) - 1,
                         "agreement_threshold": 0.1},
    }
    write_report(result, tmp_path)
    text = (tmp_path / "README.md").read_text()
    assert json.loads((tmp_path / "overhead.json").read_text()) == result
    step_part, run_part = text.split("## Epoch time")

    def rows(part: str) -> dict[str, str]:
        return {line.split("|")[1].strip(): line for line in part.splitlines() if line.startswith("| ")}

    assert "1.080" in rows(step_part)["DINO-vit"] and "over" in rows(step_part)["DINO-vit"]
    assert "1.020" in rows(step_part)["CASS"] and "within" in rows(step_part)["CASS"]
    assert rows(step_part)["CASS"].rstrip(" |").endswith("0.970-1.010")
    assert rows(step_part)["DINO-cnn"].rstrip(" |").endswith("1.000-1.010")
    assert "strayed up to 3.0% from 1" in step_part
    ratio_row = rows(run_part)["CASS / (DINO-cnn + DINO-vit)"]
    assert "0.444" in ratio_row and "0.442" in ratio_row
    assert [cell.strip() for cell in ratio_row.split("|")[-3:-1]] == [f"{18 / 41:.3f}", f"{20 / 45:.3f}"]
    assert "plain before the run" in run_part and "plain after the run" in run_part
    assert "+0.6% (within the 10% band)" in text


def test_the_resolution_is_the_largest_distance_of_a_null_ratio_from_one() -> None:
    null = summarise_null([{"cass": 1.02, "dino-vit": 0.96}, {"cass": 0.99, "dino-vit": 1.01}])
    assert null["repeats"] == 2
    assert null["per_key"]["dino-vit"] == {"ratios": [0.96, 1.01], "min": 0.96, "max": 1.01}
    assert null["largest_deviation"] == pytest.approx(0.04)


def test_plain_vs_plain_times_two_loops_of_every_run() -> None:
    ratios = plain_vs_plain(smoke_config(), epochs=2, steps=2, batch_size=2)
    assert set(ratios) == set(METHOD_KEYS)
    # Two steps time noise, not overhead (CI once saw 0.04): the test asks for a measured ratio per key, no more.
    assert all(math.isfinite(r) and r > 0 for r in ratios.values()), ratios


def test_the_committed_study_regenerates_from_its_numbers(tmp_path: Path) -> None:
    committed = Path(__file__).resolve().parents[1] / "results" / "overhead"
    write_report(json.loads((committed / "overhead.json").read_text()), tmp_path)
    assert (tmp_path / "README.md").read_text() == (committed / "README.md").read_text()
