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
from cass_bench.records.store import RECORDS
from cass_bench.report.analysis import Analysis, analyse
from cass_bench.report.claims.specs import rule_lines
from cass_bench.report.costs import TIME, pretrain_runs
from cass_bench.report.format import number_text, stat_text, with_keys
from cass_bench.report.load import load_records
from cass_bench.report.present.render import STYLES, Table
from cass_bench.report.present.tables import metric_table, ratio_header, scale_lines
from cass_bench.report.present.validity import collapse_runs
from cass_bench.report.variants import variant_lines

INDEX = "README.md"
REPORT = "report.md"
CONFIG = "config.yaml"
DESCRIPTIONS = {
    "default": (
        "The default config (`configs/default.yaml`: the formula-driven start, CASS comparing the start's own "
        "classifiers) with all four methods, grown seed by seed across working sessions towards the seeds its power "
        "line asks for: seeds 0-11. Seed 0 is the README's command as is (`python -m cass_bench run --methods "
        "cass,dino,byol,supervised`: one process, two torch threads); the other seeds ran as two single-threaded "
        "shards side by side (`OMP_NUM_THREADS=1 python -m cass_bench run --config results/default/config.yaml "
        "--seeds 0,...,N --shard i/2`), so the efficiency section warns that thread counts differ (cost ratios "
        "are taken within a seed, where both methods ran alike). Seeds 0-8 were timed before runs recorded their "
        "training thread's CPU share; some of their cells ran beside other work on the machine (DINO-cnn of seeds "
        "4 and 6 at about twice its usual time per epoch, CASS of seed 6 at 1.6x, seeds 1-2 slower throughout), "
        "and the (b), (c) intervals include them; seeds 9-11 carry the share (0.92-0.97: no run held up)."),
    "start-quality": (
        "The formula-driven start itself, by frozen-feature probes (kNN and linear, `--methods supervised --evals "
        "linear,knn`, seeds 0-2): what every method of `default/` starts from. Its scale line gives the start's "
        "held-out source accuracy."),
    "cass-heads": (
        "Which classifiers CASS should compare when it starts from a supervised start: the start's own (`start/`, "
        "the reference's choice with ImageNet weights and the default, `configs/cass_heads.yaml`) or fresh random "
        "heads of `cass.output_dim` (`fresh/`, `configs/cass_heads_fresh.yaml`), from the same formula-driven "
        "start, seeds 0-2, DINO, BYOL and the start itself (`supervised`) beside them. `start/` holds the default's "
        "records of those seeds; `fresh/` copied the other methods' records from it and ran CASS only. Each "
        "report's section 1h gives every method's change from the start."),
    "robustness": (
        "Claims (d) and (e) (`configs/robustness.yaml`: the default's scale at 10% labels): CASS, DINO and BYOL at "
        "several batch sizes and pretraining epoch counts. The cells at batch 16 and the most epochs are the default "
        "run's records as committed at commit c32a4bd (copied in first, same record ids; `results/default/` was "
        "rerun since, single-threaded); the others ran as two single-threaded shards side by side, so the cost rows "
        "mix one- and two-thread runs, and the report says so."),
    "cass-start": (
        "How CASS starts from random weights: its gradients zeroed every step (`zeroed/`) against the reference's "
        "never-zeroed gradients (`accumulate/`), DINO and BYOL beside them, with collapse curves; its README holds "
        "the reading and the commands."),
    "cass-start/zeroed": (
        "CASS as the harness runs it (gradients zeroed every step), DINO and BYOL beside it: the seed-0 and seed-1 "
        "records of an earlier `results/default/`."),
    "cass-start/accumulate": (
        "The same CASS with `cass.accumulate_gradients: true` (the reference loop, which never calls `zero_grad`), "
        "evaluated by the frozen-feature probes (`--evals linear,knn`); DINO and BYOL as in `zeroed/`."),
    "overhead": (
        "Does the harness distort the costs it measures? `python -m benchmarks.overhead_study` (not part of CI): "
        "each method's harness/plain-loop step-time ratio over three benchmark runs, the resolution of such a ratio "
        "(two identical plain loops timed the same way), and CASS/(DINO-cnn + DINO-vit) time per epoch from a `run` "
        "against plain loops on the same loader, before and after it. `before-allocator/`: the same study before "
        "cells kept freed memory. How it is run: [docs/benchmarks.md](../docs/benchmarks.md)."),
    "ci": "`benchmark.json`: the smoke-benchmark baseline that CI (`.ci/run`) compares against "
          "([docs/benchmarks.md](../docs/benchmarks.md)).",
}
"""What each committed folder is, by its path under ``results/`` (a folder's ``config.yaml`` comment comes first)."""
WIDTH = 118
"""Text width of the generated prose in the docs."""
UNDESCRIBED = "A results folder (no description yet: add one to `DESCRIPTIONS` in `cass_bench/report/index.py`)."
_MARKDOWN = STYLES["markdown"]
_GENERATED = re.compile(r"(<!-- generated: (\w+) -->).*?<!-- end generated -->", re.DOTALL)


def _claim_rules() -> str:
    return "\n".join(textwrap.fill(rule, WIDTH, initial_indent="- ", subsequent_indent="  ", break_long_words=False,
                                   break_on_hyphens=False) for rule in rule_lines())


SECTIONS: dict[str, Callable[[], str]] = {"field_table": field_table, "claim_rules": _claim_rules}
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
    """What a folder is: the leading comment of its ``config.yaml``, else :data:`DESCRIPTIONS`."""
    config = folder / CONFIG
    if config.is_file():
        comment = []
        for line in config.read_text().splitlines():
            if not line.startswith("#"):
                break
            comment.append(line.lstrip("#").strip())
        if any(comment):
            return " ".join(part for part in comment if part)
    return DESCRIPTIONS.get(folder.relative_to(results).as_posix(), UNDESCRIBED)


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
    """The Markdown blocks of one folder holding ``records.jsonl``: what it is, its scale, headline numbers
    (fine-tuned macro-F1, time per epoch, collapse, claim verdicts) and links to its report and plots."""
    df = load_records(folder)
    analysis = analyse(df, folder)
    scale, counts = scale_lines(df)[:2]
    links = [f"Report: {_link(folder / REPORT, results)}"]
    if (folder / CONFIG).is_file():
        links.append(f"config: {_link(folder / CONFIG, results)}")
    plots = sorted(folder.glob("*.png"))
    if plots:
        links.append("plots: " + ", ".join(f"[{p.stem}]({p.relative_to(results).as_posix()})" for p in plots))
    claims = analysis.claims[["key", "status"]].rename(columns={"key": "claim"}).astype(str)
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
        "Claim checks (the measured differences and their intervals are in the report):",
        Table(claims.reset_index(drop=True)).render(_MARKDOWN),
    ]


def _top_folders(results: Path) -> list[Path]:
    order = {name: i for i, name in enumerate(DESCRIPTIONS)}
    folders = [p for p in results.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(folders, key=lambda p: (order.get(p.name, len(order)), p.name))


def folder_section(folder: Path, results: Path) -> list[str]:
    """The Markdown blocks of one top-level folder of ``results/``: what it is, its other files, and each folder
    under it that holds records."""
    record_folders = sorted({p.parent for p in folder.rglob(RECORDS)})
    blocks = [f"## {folder.name}/"]
    if folder in record_folders:
        return [*blocks, *records_section(folder, results)]
    blocks.append(describe(folder, results))
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".md", ".json")
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
        "Generated by `python -m cass_bench.report.index` from the committed records (`*/records.jsonl`); do not "
        "edit by hand. Every folder is a normal results folder: `python -m cass_bench report results/<folder>` "
        "regenerates its report. They are real runs on a 2-core CPU, far from the paper's scale (384 px, ImageNet "
        "init, 100 epochs, GPU): each claim's verdict holds at the scale its report states.",
    ]
    for folder in _top_folders(results):
        blocks.extend(folder_section(folder, results))
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
