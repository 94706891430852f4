"""Generated documentation: ``results/README.md``, the committed results folders at a glance (what each is, its
headline numbers, links to its report and plots), and the sections of ``docs/*.md`` that the code defines (the
record-field table, the claim rules).

Measured figures live only in generated files; the README and the docs link to them. Regenerate everything with
``python -m cass_bench.report.index`` from the checkout's root (``--results DIR``, ``--docs DIR`` to choose the
folders); a test fails when a committed file differs from what this module writes.
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from cass_bench.errors import UserError
from cass_bench.config.registry import method_order
from cass_bench.records.schema import field_table
from cass_bench.records.breakdown import TOTAL, seed_minutes
from cass_bench.config.files import RESOLVED
from cass_bench.records.files import RECORDS_DIR
from cass_bench.records.store import RECORDS, TUNING, RecordStore
from cass_bench.report.analysis import Analysis, analyse
from cass_bench.report.claims.decide import headline
from cass_bench.report.claims.specs import rule_lines
from cass_bench.report.costs import TIME, pretrain_runs
from cass_bench.report.format import number_text, stat_text, with_keys
from cass_bench.report.load import PRETRAINED, THREADS, load_records
from cass_bench.report.present.claim_tables import commit_check_lines
from cass_bench.report.present.render import STYLES, Table
from cass_bench.report.present.tables import metric_table, ratio_header, scale_lines
from cass_bench.report.present.validity import collapse_runs
from cass_bench.report.present.provenance import recipe_table_text
from cass_bench.report.variants import variant_lines
from cass_bench.report.versions import version_lines

INDEX = "README.md"
REPORT = "report.md"
ABOUT = "ABOUT.md"
"""A folder's own description (its links relative to ``results/``); a ``config.yaml``'s leading comment comes first.
``results/ABOUT.md`` names the order of the folders (``order: a, b, ...``)."""
_ORDER = re.compile(r"^order:(.*)$", re.MULTILINE)
_COMPARE = re.compile(r"^compare:(.*)$", re.MULTILINE)
"""``compare: a, b`` in ``results/ABOUT.md``: two folders whose answers to the paper's claims the index tables side by
side."""
_THREAD_SUFFIX = re.compile(r":t\d+$")
TUNING_SHARE = 0.25
"""The most of a measured sweep's cost its tuning may take (issue 33: a quarter)."""
WIDTH = 118
"""Text width of the generated prose in the docs."""
UNDESCRIBED = "A results folder (no description yet: write one into its ABOUT.md)."
_MARKDOWN = STYLES["markdown"]
_GENERATED = re.compile(r"(<!-- generated: (\w+) -->).*?<!-- end generated -->", re.DOTALL)


def _claim_rules() -> str:
    return "\n".join(textwrap.fill(rule, WIDTH, initial_indent="- ", subsequent_indent="  ", break_long_words=False,
                                   break_on_hyphens=False) for rule in rule_lines())


SECTIONS: dict[str, Callable[[], str]] = {"field_table": field_table, "claim_rules": _claim_rules,
                                          "recipe_sources": recipe_table_text}
"""The generated sections of the docs, by the name in their ``<!-- generated: NAME -->`` marker."""


def fill_generated(text: str) -> str:
    """``text`` with every ``<!-- generated: NAME -->`` ... ``<!-- end generated -->`` block refilled.

    Raises:
        UserError: a marker names no known section.
    """
    def fill(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in SECTIONS:
            raise UserError(f"unknown generated section '{name}'; use one of: {', '.join(SECTIONS)}")
        return f"{match.group(1)}\n\n{SECTIONS[name]()}\n\n<!-- end generated -->"
    return _GENERATED.sub(fill, text)


def regenerate_docs(docs: Path) -> list[Path]:
    """Refills the generated sections of every ``*.md`` under ``docs``; returns the files that changed.

    Raises:
        UserError: ``docs`` is not a folder, or a marker names no known section.
    """
    if not Path(docs).is_dir():
        raise UserError(f"docs folder '{docs}' does not exist; run from the checkout's root or pass --docs DIR")
    changed = []
    for path in sorted(Path(docs).glob("*.md")):
        text = path.read_text()
        filled = fill_generated(text)
        if filled != text:
            path.write_text(filled)
            changed.append(path)
    return changed


def describe(folder: Path, results: Path) -> str:
    """What a folder is: the leading comment of its ``config.yaml``, else its :data:`ABOUT` file."""
    config = folder / RESOLVED
    if config.is_file():
        comment = []
        for line in config.read_text().splitlines():
            if not line.startswith("#"):
                break
            comment.append(line.lstrip("#").strip())
        if any(comment):
            return " ".join(part for part in comment if part)
    about = folder / ABOUT
    return " ".join(about.read_text().split()) if about.is_file() else UNDESCRIBED


def _link(path: Path, results: Path) -> str:
    relative = path.relative_to(results).as_posix()
    return f"[{relative}]({relative})"


def _time_table(analysis: Analysis) -> Table:
    """Time per pretraining epoch per method and encoders at the main setting, with its ratio to the reference."""
    costs, setting = analysis.costs, analysis.setting
    if costs.empty:
        return Table(pd.DataFrame({"": ["no pretraining run finished"]}))
    cells = pd.DataFrame(index=costs.index)
    cells[TIME.header] = [stat_text(m, s, n, TIME.fmt)
                          for m, s, n in zip(costs.mean(TIME), costs.std(TIME), costs.n(TIME))]
    cells[ratio_header(TIME.short)] = costs.ratio(TIME).map(lambda v: number_text(v, ".2f"))
    at = ((costs.index.get_level_values("batch_size") == setting.batch_size)
          & (costs.index.get_level_values("pretrain_epochs") == setting.pretrain_epochs))
    table = with_keys(cells)[list(at)].drop(columns=["batch size", "epochs"]).reset_index(drop=True)
    return Table(table)


def _collapse_line(df: pd.DataFrame) -> str:
    runs = collapse_runs(df)
    if runs.empty:
        return "Collapse: no pretraining run recorded its feature histories."
    hits = runs["collapsed"].eq(True).groupby(runs["method"])
    parts = [f"{m} {int(hits.sum()[m])}/{int(hits.count()[m])}" for m in method_order(set(runs["method"]))]
    return f"Pretrained encoders collapsed (final effective rank below the limit): {', '.join(parts)}."


def _clock_line(df: pd.DataFrame) -> str:
    runs, tuned = pretrain_runs(df), df[df["finetune_time_s"].notna()]
    return (f"Time on the clock in the records: pretraining {runs['pretrain_time_s'].sum() / 60:.1f} min over "
            f"{len(runs)} runs, fine-tuning {tuned['finetune_time_s'].sum() / 60:.1f} min over {len(tuned)} records "
            "(a run's wall time adds the probes, data preparation and the report).")


def _missing_line(analysis: Analysis) -> list[str]:
    shown = set(analysis.f1.index.get_level_values("method")) if not analysis.f1.empty else set()
    missing = method_order(set(analysis.main_rows["method"]) - shown)
    if not missing:
        return []
    return [f"No fine-tuned records at this setting for {', '.join(missing)} (evaluations: "
            f"{', '.join(sorted(set(analysis.main_rows['eval'])))}): the report's frozen-feature tables hold them."]


def records_section(folder: Path, results: Path) -> list[str]:
    """The Markdown blocks of one folder of records (``records.jsonl`` or ``records.d/``): what it is, its scale,
    headline numbers (fine-tuned macro-F1, time per epoch, collapse, claim verdicts) and links to its report and
    plots."""
    if not RecordStore(folder).holds_records():
        return [describe(folder, results), "No measured record yet: its sweep is under way (the seeds it registered "
                "show in its config.yaml).", *tuning_cost_lines(folder, None)]
    df = load_records(folder)
    analysis = analyse(df, folder)
    scale, counts = scale_lines(df)[:2]
    links = [f"Report: {_link(folder / REPORT, results)}"]
    if (folder / RESOLVED).is_file():
        links.append(f"config: {_link(folder / RESOLVED, results)}")
    plots = sorted(folder.glob("*.png"))
    if plots:
        links.append("plots: " + ", ".join(f"[{p.stem}]({p.relative_to(results).as_posix()})" for p in plots))
    claims = headline(analysis.claims)[["key", "status", "flags"]].rename(columns={"key": "claim"}).astype(str)
    claims["flags"] = claims["flags"].replace("", "—")
    return [
        describe(folder, results),
        f"{scale} {counts}",
        "; ".join(links) + ".",
        f"Fine-tuned macro-F1 at {analysis.setting.describe()} (mean ± sample std over seeds, n seeds; † at chance, "
        "‡ a pretraining run behind the cell collapsed; bold: best per encoder and label fraction):",
        metric_table(analysis.f1).render(_MARKDOWN),
        *_missing_line(analysis),
        "Time per pretraining epoch at the same setting (median epoch after the first; mean ± std over seeds):",
        _time_table(analysis).render(_MARKDOWN),
        _collapse_line(df) + " " + _clock_line(df),
        "The paper's claims ((a) against the best other method, the paper's family, and the cost rows; the measured "
        "differences, their intervals and every detail row are in the report):",
        Table(claims.reset_index(drop=True)).render(_MARKDOWN),
        *version_lines(df)[1:],
        *commit_check_lines(analysis.commits),
        *tuning_cost_lines(folder, df),
    ]


def tuning_cost_lines(folder: Path, records: pd.DataFrame | None) -> list[str]:
    """What a folder's tuning stage cost beside its measured sweep, in thread-minutes (each trial ran on one
    thread; the measured side is :func:`cass_bench.records.breakdown.seed_minutes`); the budget's bound is a quarter."""
    trials = RecordStore(folder, TUNING).load()
    if not trials:
        return []
    tuned = sum(float(t.get("wall_time_s") or 0) for t in trials) / 60
    line = f"Tuning: {len(trials)} trials, {tuned:.0f} thread-minutes"
    spent = seed_minutes(records) if records is not None else pd.DataFrame()
    if spent.empty:
        return [line + "; no measured seed to set it against yet."]
    measured = float(spent[TOTAL].sum())
    return [line + f", {tuned / measured:.0%} of the {measured:.0f} thread-minutes its {len(spent)} measured seed(s) "
            f"took so far (the protocol's bound: {TUNING_SHARE:.0%}, set against the whole sweep)."]


def _thread_named_keys(claims: pd.DataFrame, records: pd.DataFrame) -> list[str]:
    """The claims' keys with every cost row naming its torch thread count, as a folder timed at several counts
    already does, so two folders' cost rows line up when only one of them needed the suffix."""
    counts = sorted({int(n) for n in records.loc[records[PRETRAINED], THREADS].dropna()})
    suffix = f":t{counts[0]}" if len(counts) == 1 else ""
    return [key + suffix if kind in ("b", "c") and not _THREAD_SUFFIX.search(key) else key
            for key, kind in zip(claims["key"], claims["kind"])]


def verdict_lines(first: Path, second: Path, results: Path) -> list[str]:
    """Two folders' answers to the paper's claims side by side (the rows either holds)."""
    frames = []
    for folder in (first, second):
        if not RecordStore(folder).holds_records():
            frames.append(pd.Series(dtype=str, name=folder.name))
            continue
        df = load_records(folder)
        claims = headline(analyse(df, folder).claims)
        keys = _thread_named_keys(claims, df)
        frames.append(pd.Series(claims["status"].astype(str).to_numpy(), index=keys, name=folder.name))
    table = pd.concat(frames, axis=1).fillna("not measured").reset_index().rename(columns={"index": "claim"})
    named = [_link(f / REPORT, results) if (f / REPORT).is_file() else f"`{f.name}/`" for f in (first, second)]
    return [f"## {first.name}/ against {second.name}/",
            f"The answers to the paper's claims in {named[0]} and {named[1]} side by side (each folder's report says "
            "why):", Table(table).render(_MARKDOWN)]


def _top_folders(results: Path) -> list[Path]:
    about = results / ABOUT
    named = _ORDER.search(about.read_text()) if about.is_file() else None
    order = {name.strip(): i for i, name in enumerate(named.group(1).split(",") if named else [])}
    folders = [p for p in results.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(folders, key=lambda p: (order.get(p.name, len(order)), p.name))


def folder_section(folder: Path, results: Path) -> list[str]:
    """The Markdown blocks of one top-level folder of ``results/``: what it is, its other files, and each folder
    under it that holds records."""
    record_folders = sorted({p.parent for p in folder.rglob(RECORDS)} | {p.parent for p in folder.rglob(RECORDS_DIR)})
    blocks = [f"## {folder.name}/"]
    if folder in record_folders:
        return [*blocks, *records_section(folder, results)]
    blocks.append(describe(folder, results))
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".md", ".json") and p.name != ABOUT
                   and not any(p.is_relative_to(r) for r in record_folders))
    if files:
        blocks.append("Files: " + ", ".join(_link(p, results) for p in files) + ".")
    if len(record_folders) == 2:
        blocks.extend(variant_lines(*record_folders))
    for records in record_folders:
        blocks.extend([f"### {records.relative_to(results).as_posix()}/", *records_section(records, results)])
    return blocks


def results_index(results: Path) -> str:
    """``results/README.md``: every committed folder, what it is, its headline numbers and links."""
    results = Path(results)
    if not results.is_dir():
        raise UserError(f"results folder '{results}' does not exist; run from the checkout's root or pass "
                        "--results DIR")
    blocks = [
        "# Example results",
        "Generated by `python -m cass_bench.report.index` from the committed records (`*/records.jsonl`, or "
        "`*/records.d/` where a folder's records are one file each); do not "
        "edit by hand. Every folder is a normal results folder: `python -m cass_bench report results/<folder>` "
        "regenerates its report. They are real runs on a 2-core CPU, far from the paper's scale (384 px, ImageNet "
        "init, 100 epochs, GPU): each claim's verdict holds at the scale its report states.",
    ]
    for folder in _top_folders(results):
        blocks.extend(folder_section(folder, results))
    about = results / ABOUT
    pair = _COMPARE.search(about.read_text()) if about.is_file() else None
    if pair:
        first, second = (results / name.strip() for name in pair.group(1).split(","))
        blocks.extend(verdict_lines(first, second, results))
    return "\n\n".join(blocks) + "\n"


def write_index(results: Path) -> Path:
    """Writes :func:`results_index` to ``<results>/README.md``."""
    path = Path(results) / INDEX
    path.write_text(results_index(results))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cass_bench.report.index``: rewrites ``results/README.md`` and the docs' generated sections."""
    parser = argparse.ArgumentParser(prog="python -m cass_bench.report.index", description=main.__doc__)
    parser.add_argument("--results", type=Path, default=Path("results"), help="committed results (default results)")
    parser.add_argument("--docs", type=Path, default=Path("docs"), help="docs folder (default docs)")
    args = parser.parse_args(argv)
    try:
        written = [write_index(args.results), *regenerate_docs(args.docs)]
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("Written: " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
