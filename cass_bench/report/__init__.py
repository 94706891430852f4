"""The report of a results folder, regenerated from ``<out>/records.jsonl`` alone.

``report.md`` (plus ``report.tex`` or ``report_<table>.csv`` on request) holds: the scale of the run (device,
initialisation, fine-tuning budget, evaluations), the claim checks (:mod:`cass_bench.report.claims`: paired
intervals and supported / contradicted / inconclusive / not testable), (1) downstream macro-F1 at the main
pretraining setting for each evaluation (fine-tuned, linear probe, kNN) with chance levels and companion metrics,
cells at chance (†) and from collapsed runs (‡) marked, (2) pretraining efficiency with ratios to DINO, (3)
batch-size and (4) pretraining-epoch robustness, (5) failures, (6) collapse and (7) PNG plots beside it. Cells are
the mean ± sample std over seeds, with n shown when n > 1.

The pipeline: :mod:`~cass_bench.report.load` (records -> frame) -> :mod:`~cass_bench.report.analysis` (typed
statistics) -> :mod:`~cass_bench.report.claims` (claim kinds as specs -> rows -> verdicts, on the pure functions of
:mod:`~cass_bench.report.stats`) -> :mod:`~cass_bench.report.present` (sections, tables, plots; Markdown, LaTeX,
CSV). The report opens with its answer: the paper's claims in one compact table.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cass_bench.errors import UserError
from cass_bench.records.schema import OK
from cass_bench.report.analysis import Analysis, analyse
from cass_bench.report.present.claim_plots import cost_f1_plot, gain_plot, stacked_time_plot, sweep_plot
from cass_bench.report.costs import GPU_MEMORY, TIME
from cass_bench.report.load import load_records
from cass_bench.report.present.plots import Plot, collapse_plot, cost_plot, f1_plot
from cass_bench.report.present.render import STYLES, render_latex, render_markdown, write_csv, write_whole
from cass_bench.report.present.sections import TERMINAL_SECTIONS, build_sections
from cass_bench.report.present.validity import collapse_per_seed, collapse_runs
from cass_bench.report.present.planning import plan_section
from cass_bench.report.present.tuning import tuning_section

__all__ = ["Analysis", "Report", "analyse", "load_records", "write_plots", "write_report"]


@dataclass(frozen=True)
class Report:
    """What :func:`write_report` made.

    Attributes:
        analysis: the analysis the report was written from (callers reuse it instead of analysing again).
        terminal: the main tables (scale, claims, macro-F1, efficiency) as Markdown for the terminal, with a footer
            naming the failed records and the files written.
        files: the files written.
    """

    analysis: Analysis
    terminal: str
    files: tuple[Path, ...]


def write_plots(analysis: Analysis, out: Path) -> list[Plot]:
    """Writes the PNG plots beside the report, the claims' first (a skipped plot's old file is removed)."""
    costs, epochs = analysis.costs, analysis.batch_sweep.anchor
    memory_label = "peak GPU memory (MB)" if costs.memory.field == GPU_MEMORY else "peak RSS (MB, CPU)"
    return [
        gain_plot(analysis, out),
        stacked_time_plot(analysis, out),
        sweep_plot(analysis.batch_sweep, out),
        sweep_plot(analysis.epoch_sweep, out),
        cost_f1_plot(analysis, out),
        f1_plot(analysis.f1, out),
        cost_plot(costs, TIME, "time per epoch (s)", "time_per_epoch_vs_batch_size.png", epochs, out),
        cost_plot(costs, costs.memory, memory_label, "memory_vs_batch_size.png", epochs, out),
        collapse_plot(collapse_runs(analysis.records), out),
    ]


COLLAPSE_CSV = "collapse_per_seed.csv"


def write_collapse_csv(analysis: Analysis, out: Path) -> list[Path]:
    """Writes every pretrained encoder's collapse figures beside the report (an old file is removed when no run
    measured them)."""
    runs = collapse_per_seed(analysis.records)
    path = out / COLLAPSE_CSV
    if runs.empty:
        path.unlink(missing_ok=True)
        return []
    return [write_whole(path, lambda tmp: runs.to_csv(tmp, index=False))]


def check_writable(out: Path) -> None:
    """Raises UserError, before any work, when the report cannot be written into ``out``."""
    try:
        handle, probe = tempfile.mkstemp(prefix=".report-check-", dir=out)
    except OSError as exc:
        raise UserError(f"cannot write the report into '{out}' ({exc.strerror or type(exc).__name__}); make the "
                        "folder writable, or copy it elsewhere and report the copy") from None
    os.close(handle)
    os.unlink(probe)


def write_report(out: Path, fmt: str = "markdown", batch_size: float | None = None,
                 epochs: float | None = None) -> Report:
    """Regenerates ``<out>/report.md``, its plots, ``collapse_per_seed.csv`` and (by ``fmt``) ``report.tex`` or
    ``report_<table>.csv``.

    Args:
        out: results folder holding ``records.jsonl``.
        fmt: ``markdown`` or ``github`` (the Markdown table style), ``latex`` or ``csv`` (written besides).
        batch_size, epochs: the main setting of the F1 tables and claims (None: chosen by
            :func:`cass_bench.report.analysis.main_setting`).

    Returns:
        The analysis, the terminal's summary and the files written.

    Raises:
        UserError: no records, an unknown format, or a folder the report cannot be written into (checked before
            any work; a write that fails midway leaves no partial file and says how to resume).
    """
    if fmt not in (*STYLES, "csv"):
        raise UserError(f"unknown report format '{fmt}'; use markdown, github, latex or csv")
    out = Path(out)
    records = load_records(out)
    check_writable(out)
    analysis = analyse(records, out, batch_size, epochs)
    plots = write_plots(analysis, out)
    sections = build_sections(analysis, plots)
    at = next((k + 1 for k, s in enumerate(sections) if s.key == "claims"), 1)
    sections[at:at] = [s for s in (tuning_section(out), plan_section(out)) if s is not None]
    style = STYLES["github" if fmt == "github" else "markdown"]
    written = [out / "report.md"]
    markdown = render_markdown(sections, style)
    write_whole(written[0], lambda tmp: tmp.write_text(markdown))
    if fmt == "latex":
        written.append(out / "report.tex")
        latex = render_latex(sections)
        write_whole(written[-1], lambda tmp: tmp.write_text(latex))
    elif fmt == "csv":
        written.extend(write_csv(sections, out))
    written.extend(out / p.name for p in plots if not p.note)
    written.extend(write_collapse_csv(analysis, out))
    n_failed = int((analysis.records["status"] != OK).sum())
    footer = [f"{n_failed} failed record(s): see section 5 of the report." if n_failed else "No failed records.",
              "Written: " + ", ".join(str(p) for p in written)]
    terminal = render_markdown(sections, style, terminal=TERMINAL_SECTIONS) + "\n" + "\n".join(footer) + "\n"
    return Report(analysis=analysis, terminal=terminal, files=tuple(written))
