"""Golden files of the rendered report: a small simulated folder (two datasets, the start, a baseline that loses its
start) rendered whole and compared with ``tests/golden/``, so a wording change is reviewed in one diff instead of
breaking tests that pin sentences; and no table row of a report grows wider than a screen.

Regenerate the golden files after an intended change with ``CASS_BENCH_UPDATE_GOLDEN=1 python -m pytest
tests/test_report_golden.py`` and review the diff.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from cass_bench.report import write_report
from cass_bench.report.load import RANK_HISTORY
from cass_bench.report.present.claim_tables import TABLE_WIDTH

from .conftest import ROOT
from .test_report import make_records, write_records

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("CASS_BENCH_UPDATE_GOLDEN") == "1"
OFFSETS = {"cass": 0.06, "dino": -0.10, "byol": 0.05, "supervised": 0.0}
"""CASS 6 points above its start, BYOL 5 (CASS's nearest rival), DINO 10 points below its start."""


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulated folder, reported once."""
    records = make_records(datasets=("d1", "d2"), batch_sizes=(16,), epochs=(10,), seeds=tuple(range(12)),
                           offsets=OFFSETS, gpu=False)
    for record in records:
        if record["batch_size"] is not None:  # DINO's ViT collapses in d2; CASS's outputs collapse in 3 seeds
            fell = (record["method"], record["arch"], record["dataset"]) == ("dino", "vit", "d2")
            record.update(feature_std_history=[0.05, 0.002 if fell else 0.03], collapsed=fell,
                          **{RANK_HISTORY: [12.0, 1.5 if fell else 6.0 + 0.1 * record["seed"]]})
            if record["method"] == "cass":
                record["embedding_collapsed"] = record["seed"] < 3
            if record["method"] == "cass" and record["arch"] == "cnn":  # CASS's time varies: the ratio has a spread
                record["pretrain_epoch_time_s"] *= 1 + 0.02 * (record["seed"] % 3)
    out = write_records(tmp_path_factory.mktemp("golden"), records)
    write_report(out)
    return out


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^(## .*)$", text, flags=re.MULTILINE)
    return {title: body for title, body in zip(parts[1::2], parts[2::2])}


@pytest.mark.parametrize("title, name", [("## Answer", "answer.md"), ("## Claim checks", "claims.md"),
                                         ("## 6. Collapse", "collapse.md")])
def test_the_rendered_sections_match_their_golden_files(simulated: Path, title: str, name: str) -> None:
    section = title + _sections((simulated / "report.md").read_text())[title]
    golden = GOLDEN / name
    if UPDATE:
        golden.write_text(section)
    assert section == golden.read_text(), f"{name} changed: review, then CASS_BENCH_UPDATE_GOLDEN=1 to accept"


def _wide_rows(text: str) -> list[str]:
    return [line[:80] for line in text.splitlines() if line.startswith("|") and len(line) > TABLE_WIDTH]


def test_the_report_opens_with_its_answer_and_no_table_row_is_wider_than_a_screen(simulated: Path) -> None:
    text = (simulated / "report.md").read_text()
    assert list(_sections(text))[:3] == ["## Answer", "## Scale", "## Claim checks"]
    assert not _wide_rows(text)


def test_the_twelve_seed_records_render_no_row_wider_than_a_screen(tmp_path: Path) -> None:
    for name in ("records.jsonl", "config.yaml"):
        shutil.copy(ROOT / "results" / "untuned" / name, tmp_path / name)
    write_report(tmp_path)
    assert not _wide_rows((tmp_path / "report.md").read_text())
