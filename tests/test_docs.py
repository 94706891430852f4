"""The README is a front door and the docs stay true: links and paths resolve, generated sections match the code,
``results/README.md`` regenerates from the committed records, and the claims recipe reproduces the report."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from cass_bench.errors import UserError
from cass_bench.report.analysis import analyse
from cass_bench.report.claims.decide import headline
from cass_bench.report.index import SECTIONS, fill_generated, regenerate_docs, results_index, write_index
from cass_bench.report.load import load_records

from .conftest import ROOT

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS, ROOT / "results" / "README.md"]
MAX_README_LINES = 150
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_PATH = re.compile(r"`((?:cass_bench|tests|baselines|configs|benchmarks|results|docs)/[\w./-]*\w/?)(?:::(\w+))?`")


def _code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def test_readme_is_short_and_links_every_committed_report() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_README_LINES
    linked = set(_LINK.findall(text))
    reports = {p.relative_to(ROOT).as_posix() for p in (ROOT / "results").rglob("report.md")}
    assert reports and reports <= linked, reports - linked
    assert "results/README.md" in linked
    assert {p.relative_to(ROOT).as_posix() for p in DOCS} <= linked, "a docs page the README does not link"


def test_readme_quotes_no_measured_figure() -> None:
    prose = re.sub(r"^```.*?^```|\[[^]]*\]\([^)]*\)", "", README.read_text(), flags=re.MULTILINE | re.DOTALL)
    assert not re.findall(r"(?<![\d.])\d+\.\d{2,}(?![\d.])", prose), "a measured ratio or F1 in the README"
    assert not re.findall(r"\b\d+(?:[.,]\d+)? ?(?:min|minutes|s|h|hours)\b", prose), "a measured time in the README"
    assert not re.findall(r"\d+ tests\b", prose)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_link_and_path_of_a_page_exists(page: Path) -> None:
    text = page.read_text()
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+://", target) or target.startswith("#"):
            continue
        assert (page.parent / target.split("#")[0]).exists(), f"{page.name}: broken link {target}"
    for path, test in _PATH.findall(text):
        assert (ROOT / path).exists(), f"{page.name}: {path} does not exist"
        if test:
            assert re.search(rf"^def {test}\(", (ROOT / path).read_text(), flags=re.MULTILINE), f"{path}::{test}"


def test_generated_doc_sections_match_the_code() -> None:
    found = set()
    for page in DOCS:
        text = page.read_text()
        found |= set(re.findall(r"<!-- generated: (\w+) -->", text))
        assert fill_generated(text) == text, f"{page.name} is out of step: run python -m cass_bench.report.index"
    assert found == set(SECTIONS)


def test_regenerating_fills_a_stale_section_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    page = tmp_path / "claims.md"
    page.write_text("Rules:\n<!-- generated: claim_rules -->\n- an old rule\n<!-- end generated -->\nAfter.\n")
    assert regenerate_docs(tmp_path) == [page]
    text = page.read_text()
    assert "an old rule" not in text and "(a) F1 gain" in text and text.endswith("<!-- end generated -->\nAfter.\n")
    assert regenerate_docs(tmp_path) == []
    page.write_text("<!-- generated: nonsense -->\n<!-- end generated -->\n")
    with pytest.raises(UserError, match="unknown generated section 'nonsense'"):
        regenerate_docs(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        regenerate_docs(tmp_path / "missing")


def test_committed_results_index_regenerates_identically() -> None:
    committed = (ROOT / "results" / "README.md").read_text()
    assert results_index(ROOT / "results") == committed, "run python -m cass_bench.report.index"


def test_a_folder_of_record_files_is_indexed_like_one_of_records_jsonl(tmp_path: Path) -> None:
    lines = (ROOT / "results" / "cass-start" / "zeroed" / "records.jsonl").read_text().splitlines(keepends=True)
    for form in ("lines", "files"):
        folder = tmp_path / form / "study"
        folder.mkdir(parents=True)
        (folder / "config.yaml").write_text("# A study of the zeroed start.\nseeds: [0, 1]\n")
        if form == "lines":
            (folder / "records.jsonl").write_text("".join(lines))
            continue
        (folder / "records.d").mkdir()
        for line in reversed(lines):
            (folder / "records.d" / f"{json.loads(line)['record_id']}.json").write_text(line)
    text = write_index(tmp_path / "files").read_text()
    assert "## study/" in text and "| embedded" in text
    assert text == write_index(tmp_path / "lines").read_text()


def test_index_of_a_folder_shows_its_description_numbers_and_links(tmp_path: Path) -> None:
    source = ROOT / "results" / "cass-start" / "zeroed"
    folder = tmp_path / "study"
    folder.mkdir()
    shutil.copy(source / "records.jsonl", folder / "records.jsonl")
    (folder / "config.yaml").write_text("# A study of the zeroed start,\n# two seeds.\nseeds: [0, 1]\n")
    (folder / "f1_vs_label_fraction.png").write_bytes(b"")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "numbers.json").write_text("{}")
    text = write_index(tmp_path).read_text()
    assert text.index("## notes/") < text.index("## study/"), "folders without a description: by name"
    assert "A study of the zeroed start, two seeds." in text and "[notes/numbers.json](notes/numbers.json)" in text
    assert "[study/report.md](study/report.md)" in text and "(study/f1_vs_label_fraction.png)" in text
    records = pd.read_json(folder / "records.jsonl", lines=True)
    cell = records[(records["eval"] == "finetune") & (records.method == "dino") & (records.arch == "cnn")
                   & (records.label_fraction == 0.1)]["f1_macro"]
    assert len(cell) == 2 and 0 < cell.mean() < 1
    row = next(line for line in text.splitlines() if line.startswith("| embedded") and "| dino " in line
               and "| cnn " in line)
    assert f"{cell.mean():.3f} ± {cell.std():.3f} (n=2)" in row
    assert "| cass     | cnn+vit" in text and "time ×DINO" in text
    statuses = set(headline(analyse(load_records(folder), folder).claims)["status"])
    cells = set(re.findall(r"\| ([^|]+?) +(?=\|)", text))
    assert statuses and statuses <= cells, "every verdict of the paper's claims is in the index"
    with pytest.raises(UserError, match="does not exist"):
        results_index(tmp_path / "missing")


def test_claims_recipe_in_the_docs_reproduces_the_report(monkeypatch: pytest.MonkeyPatch) -> None:
    (recipe,) = _code_blocks((ROOT / "docs" / "claims.md").read_text(), "python")
    monkeypatch.chdir(ROOT)
    scope: dict[str, object] = {}
    exec(recipe, scope)
    folder = ROOT / "results" / "random-start"
    claims = analyse(load_records(folder), folder).claims
    (row,) = [row for row in claims.itertuples() if row.kind == "a" and row.comparator == "dino" and row.arch == "cnn"
              and row.dataset == "embedded" and row.fraction == pytest.approx(0.1)]
    assert scope["n"] == 3
    assert (scope["mean"], scope["low"], scope["high"], scope["p"]) == pytest.approx((row.estimate, row.low, row.high,
                                                                                      row.p))
