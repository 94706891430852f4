"""Placeholder report: F1 table from records (to be replaced by the full report)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cass_bench.results import RecordStore


def write_report(out: Path, fmt: str = "markdown") -> str:
    records = RecordStore(out).load()
    df = pd.DataFrame(records)
    ok = df[df.status == "ok"]
    table = ok.pivot_table(index=["dataset", "method", "arch"], columns="label_fraction", values="f1_macro")
    text = "# cass-bench report\n\n" + table.to_markdown(floatfmt=".3f") + "\n"
    (out / "report.md").write_text(text)
    return text
