"""Planning and retrying a sweep: ``run --dry-run`` lists what is missing and writes nothing; ``--retry-failed``."""

from __future__ import annotations

import os
from pathlib import Path

from cass_bench.config.load import load_config
from cass_bench.records.identity import expected_ids
from cass_bench.records.store import RecordStore
from cass_bench.run.grid import expand

from .oom_method import OOM_ENV
from .conftest import ROOT, run_cli

TINY = ["--config", "configs/smoke.yaml", "--image-size", "8", "--evals", "finetune", "--methods", "cass,supervised"]


def _snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_dry_run_lists_exactly_the_missing_records_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_cli("run", *TINY, "--methods", "supervised", "--archs", "cnn", "--label-fractions", "1", "--out",
                    str(out))
    assert first.returncode == 0, first.stderr[-2000:]
    before = _snapshot(out)
    plan = run_cli("run", *TINY, "--label-fractions", "0.1,1", "--out", str(out), "--dry-run")
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert _snapshot(out) == before
    cfg = load_config(ROOT / "configs/smoke.yaml", {"methods": "cass,supervised", "image_size": 8,
                                                   "label_fractions": "0.1,1", "eval.evals": "finetune"})
    written = RecordStore(out).ids()
    missing = {i for cell in expand(cfg) for i in expected_ids(cell, cfg)} - written
    assert len(written) == 1 and len(missing) == 7
    rows = {line.split("|")[1].strip(): line for line in plan.stdout.splitlines() if line.startswith("| embedded")}
    assert len(rows) == 3 and "| partial " in rows["embedded supervised/cnn bs=- ep=0 seed=0"]
    assert sum("| partial " in row for row in rows.values()) == 1
    assert sum(int(row.split("|")[5]) for row in rows.values()) == len(missing)
    assert "8 records (7 pending, 0 failed)" in plan.stdout and "Nothing was written" in plan.stdout


def test_an_oom_cell_is_recorded_the_sweep_goes_on_and_retry_failed_reruns_it_in_place(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["run", *TINY, "--method-module", "tests.oom_method", "--methods", "flaky,supervised", "--archs", "cnn",
            "--label-fractions", "1", "--out", str(out)]
    injected = run_cli(*args, env={**os.environ, OOM_ENV: "1"})
    assert injected.returncode == 0, injected.stderr[-2000:]
    before = {r["record_id"]: r for r in RecordStore(out).load()}
    assert sorted(r["status"] for r in before.values()) == ["ok", "oom"]
    for record in before.values():
        if record["method"] == "flaky":
            assert record["status"] == "oom" and "out of memory" in record["error"].lower()
            assert record["f1_macro"] is None
        else:
            assert record["status"] == "ok" and 0 <= record["f1_macro"] <= 1
    assert "oom" in (out / "report.md").read_text()
    plain = run_cli(*args)
    assert plain.returncode == 0 and {r["record_id"] for r in RecordStore(out).load()} == set(before)
    retried = run_cli(*args, "--retry-failed")
    assert retried.returncode == 0, retried.stderr[-2000:]
    after = {r["record_id"]: r for r in RecordStore(out).load()}
    assert set(after) == set(before) and all(r["status"] == "ok" for r in after.values())
    for record_id, record in before.items():
        if record["status"] == "ok":
            assert after[record_id] == record  # the supervised records were not run again
    assert "retrying 1 failed record(s)" in retried.stdout
