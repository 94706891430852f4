"""``bench-compare`` and ``bench-ratios`` read pytest-benchmark JSON; bad files are one-line errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cass_bench.bench.ratios import pretrain_steps, ratio_report, ratio_rows
from cass_bench.bench.compare import load_benchmarks
from cass_bench.cli import main


def _entry(key: str, median: float, flops: int | None) -> dict[str, Any]:
    return {
        "group": "pretrain-step", "name": f"test_pretrain_step[{key}]",
        "stats": {"median": median, "mean": median * 1.1, "min": median, "max": median},
        "extra_info": {"kind": "pretrain_step", "key": key, "flops_per_step": flops, "device": "cpu",
                       "torch_threads": 2},
    }


def _write(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"machine_info": {}, "benchmarks": entries}))
    return path


def test_bench_compare_shows_new_over_old_ratios(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = _write(tmp_path / "old.json", [_entry("cass", 0.2, 100), _entry("dino-cnn", 0.5, 400)])
    new = _write(tmp_path / "new.json", [_entry("cass", 0.3, 100), _entry("byol-cnn", 0.4, 300)])
    assert main(["bench-compare", str(old), str(new)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "test_pretrain_step[cass]" in line)
    assert "1.500" in row and "1.000" in row
    assert "only in NEW" in out and "only in OLD" in out


@pytest.mark.parametrize("content", [None, "{not json", json.dumps({"benchmarks": [{"name": "x"}]}), "[]"])
def test_bench_compare_rejects_missing_or_malformed_files(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          content: str | None) -> None:
    good = _write(tmp_path / "good.json", [_entry("cass", 0.2, 100)])
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    assert main(["bench-compare", str(bad), str(good)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err and "benchmark" in err


def test_ratio_table_compares_cass_with_both_encoders_of_each_baseline(tmp_path: Path) -> None:
    path = _write(tmp_path / "b.json", [_entry("cass", 0.3, 300), _entry("dino-cnn", 0.4, 400),
                                        _entry("dino-vit", 0.6, 600), _entry("byol-cnn", 0.5, None)])
    rows = {row[0]: row for row in ratio_rows(pretrain_steps(load_benchmarks(path)))}
    assert rows["CASS / (DINO-cnn + DINO-vit)"][3:] == ["0.300", "0.300"]
    assert rows["CASS / DINO-vit"][3:] == ["0.500", "0.500"]
    assert rows["CASS / BYOL-cnn"][3:] == ["0.600", "-"]
    assert "CASS / (BYOL-cnn + BYOL-vit)" not in rows
    assert "CASS / (DINO-cnn + DINO-vit)" in ratio_report(path)


def test_bench_ratios_prints_the_table_and_rejects_files_without_cass(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    good = _write(tmp_path / "good.json", [_entry("cass", 0.3, 300), _entry("dino-cnn", 0.6, 600)])
    assert main(["bench-ratios", str(good)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "CASS / DINO-cnn" in line)
    assert "0.500" in row
    only_baselines = _write(tmp_path / "baselines.json", [_entry("dino-cnn", 0.6, 600)])
    assert main(["bench-ratios", str(only_baselines)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(only_baselines) in err and "--benchmark-json" in err
