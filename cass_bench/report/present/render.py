"""Writing a report's sections as Markdown, LaTeX or CSV.

A report is a list of :class:`Section` s, each with text and at most one :class:`Table` of plain-text cells;
:mod:`cass_bench.report` decides what they hold, this module only how they are written. tabulate renders the
tables in the format's :class:`Style`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Collection

import pandas as pd
from tabulate import tabulate

from cass_bench.errors import UserError


def write_whole(path: Path, write: Callable[[Path], None]) -> Path:
    """Writes one report file whole: ``write`` fills a temporary file beside ``path``, which then replaces it.

    Raises:
        UserError: the file cannot be written (a full disk, a read-only folder); neither a partial file nor the
            temporary one is left, an older ``path`` is kept, and the message says how to resume.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {path.name} into '{path.parent}' ({exc.strerror or type(exc).__name__}); "
                        f"free disk space or make the folder writable, then run `report {path.parent}` again"
                        ) from None
    return path


@dataclass(frozen=True)
class Style:
    """How a table and its text are written in one output format.

    Attributes:
        tablefmt: tabulate's table format.
        escape: makes plain text safe in the format.
        bold: marks (already escaped) text as bold.
    """

    tablefmt: str
    escape: Callable[[str], str]
    bold: Callable[[str], str]


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "—": "--",
          "×": r"$\times$", "≤": r"$\le$", "≥": r"$\ge$", "−": "-", "<": r"$<$", ">": r"$>$", "|": r"$|$"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX.get(char, char) for char in text)


def _markdown_escape(text: str) -> str:
    return text.replace("|", "\\|")


STYLES = {
    "markdown": Style("pipe", _markdown_escape, lambda s: f"**{s}**"),
    "github": Style("github", _markdown_escape, lambda s: f"**{s}**"),
    "latex": Style("latex_raw", _latex_escape, lambda s: f"\\textbf{{{s}}}"),
}


@dataclass
class Table:
    """A table as plain-text cells, which cells are bold, and the numbers behind it.

    Attributes:
        cells: one string per cell, one column per header.
        bold: same shape as ``cells``, True where the cell is marked best.
        data: the numbers (written to CSV); ``cells`` when None.
        terminal: columns printed in the terminal summary (all when None).
        terminal_rows: True for the rows printed in the terminal summary (all when None).
    """

    cells: pd.DataFrame
    bold: pd.DataFrame | None = None
    data: pd.DataFrame | None = None
    terminal: list[str] | None = None
    terminal_rows: list[bool] | None = None

    def render(self, style: Style, terminal: bool = False) -> str:
        """The table in ``style``'s format (``terminal``: the compact selection)."""
        columns = self.terminal if terminal and self.terminal else list(self.cells.columns)
        rows = self.terminal_rows if terminal and self.terminal_rows else [True] * len(self.cells)
        bold = self.bold if self.bold is not None else pd.DataFrame(False, self.cells.index, self.cells.columns)
        rows = [[style.bold(style.escape(text)) if strong else style.escape(text)
                 for text, strong in zip(cells, marks)]
                for cells, marks in zip(self.cells.loc[rows, columns].itertuples(index=False),
                                        bold.loc[rows, columns].itertuples(index=False))]
        return tabulate(rows, headers=[style.escape(str(c)) for c in columns], tablefmt=style.tablefmt,
                        disable_numparse=True)


@dataclass
class Section:
    """A titled part of the report.

    Attributes:
        key: short name (CSV file stem, terminal selection).
        title: heading.
        lines: paragraphs of plain text; consecutive lines starting with "- " form a list.
        table: the table, if any.
        images: (file name, caption) of plots beside the report.
        level: heading level (2 or 3).
        notes: paragraphs after the table, like ``lines``.
    """

    key: str
    title: str
    lines: list[str] = field(default_factory=list)
    table: Table | None = None
    images: list[tuple[str, str]] = field(default_factory=list)
    level: int = 2
    notes: list[str] = field(default_factory=list)


def _paragraphs(lines: list[str], escape: Callable[[str], str], bullets: tuple[str, str, str]) -> list[str]:
    start, item, end = bullets
    out: list[str] = []
    for is_item, group in itertools.groupby(lines, key=lambda line: line.startswith("- ")):
        if is_item:
            out.append(start + "\n".join(item + escape(line[2:]) for line in group) + end)
        else:
            out.extend(escape(line) for line in group)
    return out


def render_markdown(sections: list[Section], style: Style, terminal: Collection[str] = ()) -> str:
    """Sections as Markdown.

    Args:
        sections: the report's sections, in order.
        style: the Markdown table style.
        terminal: keys of the sections of a compact terminal summary (their tables' terminal selection, no
            document heading); empty for the whole document.
    """
    parts = [] if terminal else ["# cass-bench report"]
    for section in sections:
        if terminal and section.key not in terminal:
            continue
        parts.append(f"{'#' * section.level} {section.title}")
        parts.extend(_paragraphs(section.lines, style.escape, ("", "- ", "")))
        if section.table is not None:
            parts.append(section.table.render(style, bool(terminal)))
        parts.extend(_paragraphs(section.notes, style.escape, ("", "- ", "")))
        parts.extend(f"![{caption}]({name})" for name, caption in section.images)
    return "\n\n".join(parts) + "\n"


def render_latex(sections: list[Section]) -> str:
    """Sections as a standalone LaTeX document (plots included with graphicx)."""
    style = STYLES["latex"]
    parts = [r"\documentclass{article}", r"\usepackage[margin=1.5cm,landscape]{geometry}",
             r"\usepackage{graphicx}", r"\begin{document}", r"\section*{cass-bench report}"]
    for section in sections:
        command = r"\subsection*" if section.level == 2 else r"\subsubsection*"
        parts.append(f"{command}{{{_latex_escape(section.title)}}}")
        parts.extend(_paragraphs(section.lines, style.escape, ("\\begin{itemize}\n", "\\item ", "\n\\end{itemize}")))
        if section.table is not None:
            tabular = section.table.render(style)
            if len(section.table.cells.columns) > 8:
                tabular = f"\\resizebox{{\\linewidth}}{{!}}{{%\n{tabular}}}"
            parts.append(f"{{\\small\n{tabular}\n}}")
        parts.extend(_paragraphs(section.notes, style.escape, ("\\begin{itemize}\n", "\\item ", "\n\\end{itemize}")))
        parts.extend(f"\\begin{{center}}\\includegraphics[width=0.9\\linewidth]{{{name}}}\\\\{_latex_escape(caption)}"
                     f"\\end{{center}}" for name, caption in section.images)
    parts.append(r"\end{document}")
    return "\n\n".join(parts) + "\n"


def write_csv(sections: list[Section], out: Path) -> list[Path]:
    """Each table's numbers as ``report_<key>.csv``."""
    paths = []
    for section in sections:
        if section.table is None:
            continue
        path = out / f"report_{section.key}.csv"
        frame = section.table.data if section.table.data is not None else section.table.cells
        paths.append(write_whole(path, lambda tmp, frame=frame: frame.to_csv(tmp, index=False)))
    return paths
