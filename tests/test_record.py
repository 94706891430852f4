"""The record schema: one definition, which the field table of docs/records.md and the committed records follow."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cass_bench.records.schema import (PARTS, RECORD_FIELDS, RETIRED_FIELDS, Chance, Environment, Evaluation, Identity,
                                       Metrics, Pretraining, failed_record, field_table, ok_record)

ROOT = Path(__file__).resolve().parents[1]
RECORDS_DOC = ROOT / "docs" / "records.md"
IDENTITY = Identity(record_id="r", dataset="embedded", task="multiclass", method="cass", arch="cnn", eval="finetune",
                    encoders="cnn+vit", backbone="resnet18", init="random", small_input_stem=True, label_fraction=0.1,
                    batch_size=16, pretrain_epochs=10, finetune_budget="steps", finetune_steps=300,
                    finetune_epochs=None, finetune_select="last", image_size=16, seed=0, precision="32",
                    config_hash="h")
ENVIRONMENT = Environment(device="CPU", torch_threads=1, versions={"torch": "2"}, git_commit=None, created_at="now")


def _documented_fields() -> list[str]:
    """Names in the first column of docs/records.md table rows whose second column names a record part."""
    parts = "|".join(part.__name__.lower() for part in PARTS)
    return re.findall(rf"^\| `(\w+)` +\| (?:{parts}) +\|", RECORDS_DOC.read_text(), flags=re.MULTILINE)


def test_docs_document_every_record_field_and_no_other() -> None:
    documented = _documented_fields()
    fix = "; run python -m cass_bench.report.index"
    assert set(RECORD_FIELDS) - set(documented) == set(), "fields missing from the docs/records.md table" + fix
    assert set(documented) - set(RECORD_FIELDS) == set(), "stale fields in the docs/records.md table" + fix
    assert documented == list(RECORD_FIELDS)
    assert field_table() in RECORDS_DOC.read_text()


def test_ok_and_failed_records_carry_every_field_in_order() -> None:
    ok = ok_record(IDENTITY, Metrics(f1_macro=0.5), Chance(), Pretraining(), Evaluation(n_labelled=10), ENVIRONMENT)
    failed = failed_record(IDENTITY, "oom", "CUDA out of memory", ENVIRONMENT)
    assert list(ok.to_json()) == list(failed.to_json()) == list(RECORD_FIELDS)
    assert ok.to_json()["status"] == "ok" and ok.to_json()["error"] is None and ok.to_json()["f1_macro"] == 0.5
    assert failed.to_json()["f1_macro"] is None and failed.to_json()["error"] == "CUDA out of memory"
    json.dumps(ok.to_json())


def test_committed_records_hold_no_field_outside_the_schema() -> None:
    for path in (ROOT / "results").rglob("records.jsonl"):
        for line in path.read_text().splitlines():
            assert set(json.loads(line)) <= set(RECORD_FIELDS) | set(RETIRED_FIELDS), path


def test_retired_fields_are_not_current_fields() -> None:
    assert not set(RETIRED_FIELDS) & set(RECORD_FIELDS)
