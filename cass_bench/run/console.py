"""What a run prints: one line per finished cell, a progress bar for the cell in progress, and a short ending.

The cell line names the cell, its status, its pretraining time per epoch and its headline metric per encoder
(fine-tuned macro-F1 at each label fraction, or the first evaluation the run has). The ending is the claim checks as
a table that fits :data:`WIDTH` columns, the count of finished and failed records and where the report and plots
are; the full report stays in ``report.md``.
"""

from __future__ import annotations

import math
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence, TypeVar

import pandas as pd
from tqdm import tqdm

from cass_bench.engine.quiet import interactive
from cass_bench.config.vocabulary import MAIN_EVAL
from cass_bench.records.schema import OK

WIDTH = 120
"""Columns the ending fits in."""
CELL_PREFIX = "[cell]"
HEADLINE_EVAL = MAIN_EVAL.value
ELLIPSIS = "…"
T = TypeVar("T")


def progress(items: Sequence[T], description: str) -> Iterator[T]:
    """``items`` with a tqdm bar redrawn in place on a terminal and erased at the end; nothing in a file or CI."""
    yield from tqdm(items, desc=description, total=len(items), leave=False, file=sys.stdout, dynamic_ncols=True,
                    disable=not interactive())


def _percent(fraction: Any) -> str:
    return f"{100 * float(fraction):g}%"


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _status(records: Sequence[dict[str, Any]], expected: int) -> str:
    """``ok``, or what went wrong: the failed statuses with their counts and the first error."""
    failed = [r for r in records if r.get("status") != OK]
    missing = expected - len(records)
    if not failed and not missing:
        return OK
    counts = Counter(str(r.get("status")) for r in failed)
    parts = [f"{n} {status}" for status, n in counts.most_common()]
    if missing > 0:
        parts.append(f"{missing} missing")
    label = "failed" if len(failed) + max(missing, 0) >= expected else "partly failed"
    error = next((str(r["error"]) for r in failed if r.get("error")), "")
    return f"{label} ({', '.join(parts)} of {expected} records)" + (f": {error}" if error else "")


def _epoch_time(records: Sequence[dict[str, Any]]) -> str:
    times = [_number(r.get("pretrain_epoch_time_s")) for r in records if r.get("status") == OK]
    times = [t for t in times if math.isfinite(t)]
    if times:
        return f"{times[0]:.2f} s/epoch"
    return "no pretraining" if records and all(r.get("batch_size") is None for r in records) else ""


def _headline(records: Sequence[dict[str, Any]], evals: Sequence[str]) -> str:
    """Macro-F1 per encoder at each label fraction, of fine-tuning or else the first evaluation the run has."""
    ok = [r for r in records if r.get("status") == OK]
    name = HEADLINE_EVAL if HEADLINE_EVAL in evals else (evals[0] if evals else HEADLINE_EVAL)
    shown = sorted((r for r in ok if r.get("eval") == name), key=lambda r: (str(r.get("arch")),
                                                                          _number(r.get("label_fraction"))))
    if not shown:
        return ""
    by_arch: dict[str, list[str]] = {}
    for r in shown:
        by_arch.setdefault(str(r.get("arch")), []).append(f"{_number(r.get('f1_macro')):.3f}@"
                                                          f"{_percent(r.get('label_fraction'))}")
    return f"{name} macro-F1 " + "; ".join(f"{arch} {' '.join(values)}" for arch, values in by_arch.items())


def cell_line(label: str, records: Sequence[dict[str, Any]], expected: int, evals: Sequence[str]) -> str:
    """The one line a finished cell prints.

    Args:
        label: the cell in words (``Cell.describe``).
        records: the cell's records in the store (finished and failed).
        expected: how many records the cell writes.
        evals: the run's evaluations, in order.

    Returns:
        e.g. ``[cell] embedded cass/cnn+vit bs=16 ep=1 seed=0 | ok | 2.31 s/epoch | finetune macro-F1 cnn
        0.412@10%; vit 0.221@10%``.
    """
    parts = [label, _status(records, expected), _epoch_time(records), _headline(records, evals)]
    return f"{CELL_PREFIX} " + " | ".join(p for p in parts if p)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(width - 1, 0)] + ELLIPSIS


def _interval(row: pd.Series) -> str:
    estimate, low, high = (_number(row.get(k)) for k in ("estimate", "low", "high"))
    if math.isfinite(low) and math.isfinite(high):
        return f"{estimate:.2f} [{low:.2f}, {high:.2f}]"
    return f"{estimate:.2f}"


CLAIM_HEADERS = ("claim", "vs", "estimate [95% interval]", "outcome")
GAP = "  "
FLEXIBLE = (0, 3)
"""The columns shortened (the longest first) until the table fits: the claim and the outcome."""


def claims_table(claims: pd.DataFrame, width: int = WIDTH) -> list[str]:
    """The measured claim rows as a plain table no wider than ``width``, with a line on the rows not measured.

    Reads the columns ``claim``, ``comparator``, ``estimate``, ``low``, ``high`` and ``status`` (others are ignored);
    a row without a finite estimate is counted, not shown.
    """
    if claims is None or claims.empty:
        return ["No claim rows (see report.md)."]
    estimates = pd.to_numeric(claims.get("estimate", pd.Series(math.nan, index=claims.index)), errors="coerce")
    measured = claims[estimates.map(math.isfinite)]
    lines: list[str] = []
    if not measured.empty:
        rows = [[str(r.get("claim", "")), str(r.get("comparator", "")), _interval(r), str(r.get("status", ""))]
                for _, r in measured.iterrows()]
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(CLAIM_HEADERS)]
        gaps = len(GAP) * (len(widths) - 1)
        while sum(widths) + gaps > width and any(widths[i] > len(CLAIM_HEADERS[i]) for i in FLEXIBLE):
            widest = max(FLEXIBLE, key=lambda i: widths[i])
            widths[widest] -= 1
        table = [list(CLAIM_HEADERS), ["-" * w for w in widths], *rows]
        lines = [GAP.join(_clip(cell, widths[i]).ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
                 for row in table]
    unmeasured = len(claims) - len(measured)
    if unmeasured:
        lines.append(f"{unmeasured} claim row(s) not measured by these records (report.md says why).")
    return lines


def ending(claims: pd.DataFrame, statuses: Iterable[Any], report: Path, plots: Sequence[Path],
           notes: Sequence[str] = (), width: int = WIDTH) -> str:
    """The short summary a run ends with; every line fits ``width`` columns.

    Args:
        claims: the claim checks (:func:`cass_bench.report.analyse`'s ``claims``).
        statuses: the status of every record in the folder.
        report: the report file.
        plots: the plot files written beside it.
        notes: warnings the user can act on, one line each (e.g. data wait above 5% of the epoch time).
        width: the terminal width to fit.
    """
    counts = Counter(str(s) for s in statuses)
    total = sum(counts.values())
    failed = total - counts.get(OK, 0)
    lines = ["Claim checks:", *claims_table(claims, width), ""]
    lines.append(f"{total} records: {counts.get(OK, 0)} finished, {failed} failed"
                 + (" (report.md lists them)." if failed else "."))
    lines.extend(notes)
    lines.append(f"Report: {report}")
    if plots:
        folder = plots[0].parent
        names = ", ".join(p.name if p.parent == folder else str(p) for p in plots)
        lines.append(f"Plots in {folder}/: {names}")
    wrapper = textwrap.TextWrapper(width=width, subsequent_indent="  ", break_on_hyphens=False)
    return "\n".join(part for line in lines for part in (wrapper.wrap(line) if len(line) > width else [line]))
