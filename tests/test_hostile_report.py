"""Reports of hostile records (issue 36): impossible numbers and unknown words are refused naming the record, a copy
under another id is not a second seed, a records.d file that disagrees with records.jsonl is named, and differences
equal in every seed claim no interval, no p-value and no verdict."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from cass_bench.cli import main
from cass_bench.records.store import RecordStore
from cass_bench.report import analyse, load_records
from cass_bench.report.stats.intervals import ZERO_VARIANCE, paired_interval
from cass_bench.report.stats.verdicts import INCONCLUSIVE, outcome
from tests.test_report import make_records, write_records


def _records() -> list[dict[str, Any]]:
    return make_records(datasets=("d1",), batch_sizes=(16,), seeds=(0, 1, 2))


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


BAD_VALUES = [
    ("f1_macro NaN", "f1_macro", math.nan, "has f1_macro nan, which is not a finite number"),
    ("f1_macro +inf", "f1_macro", math.inf, "has f1_macro inf, which is not a finite number"),
    ("f1_macro negative", "f1_macro", -0.2, "has f1_macro -0.2, outside [0, 1]"),
    ("cpu share negative", "pretrain_cpu_share", -0.1, "has pretrain_cpu_share -0.1, outside [0, 1]"),
    ("cpu share above 1", "pretrain_cpu_share", 1.5, "has pretrain_cpu_share 1.5, outside [0, 1]"),
    ("cpu share NaN", "pretrain_cpu_share", math.nan, "has pretrain_cpu_share nan, which is not a finite number"),
    ("cpu share text", "pretrain_cpu_share", "0.9", "has pretrain_cpu_share '0.9', which is not a number"),
    ("negative time", "pretrain_epoch_time_s", -3.0, "has pretrain_epoch_time_s -3.0, below 0"),
    ("unknown method", "method", "mystery", "is of method 'mystery', which is not registered"),
    ("unknown status", "status", "done", "has status 'done', which is none of ok, oom, diverged, error"),
    ("unknown evaluation", "eval", "svm", "has evaluation 'svm', which is none of finetune, linear, knn"),
    ("unknown encoder", "arch", "mlp", "is of encoder 'mlp', which is none of cnn, vit"),
    ("finished without its score", "f1_macro", None, "is finished (status ok) but holds no f1_macro"),
]


@pytest.mark.parametrize(("case", "field", "value", "message"), BAD_VALUES, ids=[c[0] for c in BAD_VALUES])
def test_a_record_the_report_cannot_trust_is_refused_naming_it(case: str, field: str, value: Any, message: str,
                                                               tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    records = _records()
    victim = next(r for r in records if r["method"] == "cass")
    victim[field] = value
    out = write_records(tmp_path / "out", records)
    assert main(["report", str(out)]) == 2
    line = _one_line(capsys)
    assert f"record '{victim['record_id']}' {message}" in line and "move it aside" in line, line
    assert not (out / "report.md").exists()


def test_a_copy_of_a_record_under_another_id_is_not_a_second_seed(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    records = _records()
    copy = {**records[0], "record_id": "copied-under-a-new-id"}
    out = write_records(tmp_path / "out", [*records, copy])
    assert main(["report", str(out)]) == 2
    line = _one_line(capsys)
    assert f"records '{records[0]['record_id']}' and 'copied-under-a-new-id' are one setting" in line
    assert "so they would count as two seeds" in line
    assert not (out / "report.md").exists()


def test_a_record_file_that_disagrees_with_records_jsonl_is_named(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    records = _records()
    out = write_records(tmp_path / "out", records)
    store = RecordStore(out)
    store.use_record_files()
    (store.records_dir / f"{records[0]['record_id']}.json").write_text(json.dumps({**records[0], "f1_macro": 0.99}))
    for argv in (["report", str(out)], ["run", "--config", "configs/smoke.yaml", "--out", str(out), "--dry-run"]):
        assert main(argv) == 2
        line = _one_line(capsys)
        assert f"and {out / 'records.jsonl'} hold two different records of one id '{records[0]['record_id']}'" in line
    (store.records_dir / f"{records[0]['record_id']}.json").write_text(json.dumps(records[0]))
    assert len(store.load()) == len(records)


def test_differences_equal_in_every_seed_give_no_interval_no_p_and_no_verdict(tmp_path: Path) -> None:
    interval = paired_interval([0.002, 0.002, 0.002 + 1e-15])
    assert interval.test == ZERO_VARIANCE and interval.n == 3 and not interval.bounded and math.isnan(interval.p)
    assert outcome(interval).startswith(INCONCLUSIVE) and "zero variance" in outcome(interval)
    assert paired_interval([0.002, 0.003, 0.004]).bounded

    records = _records()
    dino = {(r["arch"], r["label_fraction"], r["seed"]): r["f1_macro"] for r in records if r["method"] == "dino"}
    for record in records:
        if record["method"] == "cass":
            record["f1_macro"] = dino[record["arch"], record["label_fraction"], record["seed"]] + 0.002
    out = write_records(tmp_path / "out", records)
    claims = analyse(load_records(out), out).claims
    rows = claims[claims["comparator"].eq("dino") & claims["kind"].eq("a")]
    assert len(rows) >= 6
    assert rows["test"].eq(ZERO_VARIANCE).all()  # detail rows (outside the family): no p, no interval either
    assert rows["p"].isna().all() and rows["low"].isna().all()
    best = claims[claims["key"].str.endswith(":best")]
    assert len(best) >= 6 and best["status"].str.contains("zero variance").all()


@pytest.mark.parametrize(("family", "message"), [
    ('["a@1%:cnn:dino", "d1/a@1%:cnn:dino"]', "claims.family rows 'a@1%:cnn:dino' and 'd1/a@1%:cnn:dino' name one row "
                                              "twice, which would count it twice in Holm's correction"),
    ('["d9/a@1%:cnn:dino"]', "claims.family row 'd9/a@1%:cnn:dino' names dataset 'd9', which the run's datasets (d1) "
                             "do not hold")], ids=["a row twice", "an unknown dataset"])
def test_a_family_that_would_miscount_holm_is_refused(family: str, message: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = write_records(tmp_path / "out", _records())
    (out / "config.yaml").write_text(f"datasets: [d1]\nclaims:\n  family: {family}\n")
    assert main(["report", str(out)]) == 2
    assert message in _one_line(capsys)
    assert not (out / "report.md").exists()
