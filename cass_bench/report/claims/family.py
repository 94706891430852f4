"""The pre-registered families of claim rows that Holm's correction runs over, and the detail rows beside them.

Two families, each with its own correction: the paper's (by default (a) against the best other method per encoder
and label fraction, per dataset for one dataset and across datasets for several, and every (d), (e) row per
comparator) and the start's (every pretrained method minus its start). They come from the results folder's
``config.yaml`` (``claims.family``, or the defaults over that config's grid) when there is one, else from the defaults
over the settings the records hold; never from the results. Row grammar: :mod:`cass_bench.config.claim_row`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cass_bench.config.claim_row import ACROSS, BEST, LEVELLED, ClaimRow, parse_claim_row
from cass_bench.config.load import folder_settings
from cass_bench.config.registry import comparators, pretraining_methods, reference_methods
from cass_bench.config.schema import ARCHS, BenchConfig, ClaimsConfig
from cass_bench.config.vocabulary import MAIN_EVAL
from cass_bench.errors import UserError
from cass_bench.records.schema import OK
from cass_bench.report.claims.robustness import sweep_axes
from cass_bench.report.claims.specs import DETAIL, KINDS, PAPER, START, ClaimKind
from cass_bench.report.load import PRETRAINED

POOLED = "+".join(ARCHS)
"""The arch of a row that averages the encoders within each seed (a labelled average, outside the default family)."""
GRID_KEYS = ("methods", "datasets", "archs", "label_fractions", "batch_sizes", "pretrain_epochs", "claims")
"""The keys of ``config.yaml`` the families are read from (the rest of the run's settings play no part)."""
DEFAULT_WORDS = ("the default families ((a) against the best other method per encoder and label fraction, across "
                 "datasets when there are several, every (d) and (e) row; every method minus its start)")
RECORD_SOURCE = f"{DEFAULT_WORDS} over the settings the records hold"


@dataclass(frozen=True)
class Family:
    """The rows Holm's corrections run over, where they came from, and the levels of the verdicts.

    Attributes:
        rows: the paper's family, in report order.
        source: where the families came from, in words.
        alpha: family-wise error rate (of each family).
        power: the power of the stated minimum detectable effects.
        start_rows: the start's family (every method minus its start), corrected apart from the paper's.
        datasets: the datasets an across row averages: the config's (a dataset without records leaves such a row
            unmeasured), or those the records hold.
    """

    rows: tuple[ClaimRow, ...]
    source: str
    alpha: float = ClaimsConfig.alpha
    power: float = ClaimsConfig.power
    start_rows: tuple[ClaimRow, ...] = field(default=())
    datasets: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        """The paper's family's keys."""
        return tuple(row.key for row in self.rows)

    @property
    def start_keys(self) -> tuple[str, ...]:
        """The start family's keys."""
        return tuple(row.key for row in self.start_rows)

    @property
    def size(self) -> int:
        """Rows in the paper's family (m of Holm's correction)."""
        return len(self.rows)


def parse_row(text: str, datasets: list[str]) -> list[ClaimRow]:
    """The rows a ``claims.family`` entry names: one, or one per dataset when it names none.

    Raises:
        UserError: the entry does not follow :mod:`cass_bench.config.claim_row`'s grammar.
    """
    return parse_claim_row(text).for_datasets(datasets)


def ordered(rows: list[ClaimRow]) -> tuple[ClaimRow, ...]:
    """The rows without duplicates, in report order: kind, dataset (across last), label fraction, level, encoder,
    comparator (the best other method first)."""
    order = {arch: i for i, arch in enumerate([*ARCHS, POOLED])}
    methods = [BEST, *pretraining_methods()]
    unique = {row.key: row for row in rows}.values()
    return tuple(sorted(unique, key=lambda r: (r.claim, r.dataset == ACROSS, str(r.dataset), r.fraction,
                                               -1 if r.level is None else r.level, order.get(r.arch, 9),
                                               methods.index(r.comparator) if r.comparator in methods else 99)))


@dataclass(frozen=True)
class Grid:
    """What the rows range over.

    Attributes:
        datasets, fractions, archs: the main setting's cells.
        comparators: the comparators present.
        methods: the pretrained methods present (the start family's).
        start: whether the no-pretraining reference (the start) is present.
        levels: per robustness claim, the (dataset, fraction, level) triples of its sweep.
    """

    datasets: tuple[str, ...]
    fractions: tuple[float, ...]
    archs: tuple[str, ...]
    comparators: tuple[str, ...]
    methods: tuple[str, ...]
    start: bool
    levels: dict[str, list[tuple[str, float, float]]]


def _kind_rows(kind: ClaimKind, grid: Grid) -> dict[str, list[ClaimRow]]:
    """A kind's rows over a grid, by where they belong (its family, or detail beside it)."""
    cells = [(d, f, a) for d in grid.datasets for f in grid.fractions for a in grid.archs]
    several = len(grid.datasets) > 1
    if kind.letter == "s":
        return {kind.family: [ClaimRow("s", d, f, a, m) for d, f, a in cells for m in grid.methods] if grid.start
                else []}
    comps = [c for c in kind.comparators() if c in grid.comparators or c == BEST] if grid.comparators else []
    if kind.letter in LEVELLED:
        return {kind.family: [ClaimRow(kind.letter, d, f, a, c, level) for d, f, level in grid.levels[kind.letter]
                              for a in grid.archs for c in comps]}
    across = [ClaimRow(kind.letter, ACROSS, f, a, c) for f in grid.fractions for a in grid.archs for c in comps]
    each = [ClaimRow(kind.letter, d, f, a, c) for d, f, a in cells for c in comps]
    if not several:
        return {kind.family: each}
    if kind.family == PAPER:
        return {PAPER: across, DETAIL: each}
    return {kind.family: [*each, *across]}


def _rows(grid: Grid) -> tuple[list[ClaimRow], list[ClaimRow], list[ClaimRow]]:
    """The default paper family, the start family and every detail row of a grid, from the kinds' specs (the cost
    kinds are measured apart)."""
    out: dict[str, list[ClaimRow]] = {PAPER: [], START: [], DETAIL: []}
    for kind in KINDS:
        if kind.measure is not None:
            for where, rows in _kind_rows(kind, grid).items():
                out[where].extend(rows)
    return out[PAPER], out[START], out[DETAIL]


def record_grid(records: pd.DataFrame, batch_size: float | None, epochs: float | None) -> Grid:
    """The grid of the settings the records hold (the main setting's cells, the sweeps' levels)."""
    ok = records.loc[(records["status"] == OK) & (records["eval"] == MAIN_EVAL),
                     ["dataset", "label_fraction", "method", "arch", "batch_size", "pretrain_epochs", PRETRAINED]]
    ok = ok.assign(label_fraction=ok["label_fraction"].round(10)).drop_duplicates()
    pre = ok[ok[PRETRAINED]]
    present = set(pre["method"])
    main = pre[(pre["batch_size"] == batch_size) & (pre["pretrain_epochs"] == epochs)]
    levels: dict[str, list[tuple[str, float, float]]] = {}
    for claim in LEVELLED:
        factor, fixed, held, main_level = sweep_axes(claim, batch_size, epochs)
        swept = pre[(pre[fixed] == held) & (pre[factor] != main_level)]
        levels[claim] = [(d, f, float(v)) for d, f, v in swept[["dataset", "label_fraction", factor]]
                         .drop_duplicates().itertuples(index=False)]
    pairs = main[["dataset", "label_fraction"]].drop_duplicates()
    return Grid(tuple(dict.fromkeys(pairs["dataset"])), tuple(sorted(set(pairs["label_fraction"]))),
                tuple(a for a in ARCHS if a in set(pre["arch"])), tuple(c for c in comparators() if c in present),
                tuple(m for m in pretraining_methods() if m in present),
                bool(ok["method"].isin(reference_methods()).any()), levels)


def record_rows(records: pd.DataFrame, batch_size: float | None, epochs: float | None) -> tuple[ClaimRow, ...]:
    """Every row the records allow: both default families and the detail rows (per comparator, per dataset)."""
    family, starts, each = _rows(record_grid(records, batch_size, epochs))
    return ordered([*family, *starts, *each])


def _named_rows(cfg: BenchConfig) -> list[ClaimRow]:
    """The rows ``claims.family`` names, each once and each of a dataset the config holds.

    Raises:
        UserError: a row names a dataset the config does not hold, or two entries name one row.
    """
    datasets = list(cfg.datasets)
    seen: dict[ClaimRow, str] = {}
    for text in cfg.claims.family:
        for row in parse_row(text, datasets):
            if row.dataset not in (*datasets, ACROSS):
                raise UserError(f"claims.family row '{text}' names dataset '{row.dataset}', which the run's datasets "
                                f"({', '.join(datasets)}) do not hold; name one of them or leave DATASET/ out")
            if row in seen:
                raise UserError(f"claims.family rows '{seen[row]}' and '{text}' name one row twice, which would "
                                "count it twice in Holm's correction; list each row once")
            seen[row] = text
    return list(seen)


def config_family(cfg: BenchConfig, batch_size: float | None, epochs: float | None) -> Family:
    """The families of a config: its ``claims.family`` (or the default over its grid) and the start's family."""
    levels = {"d": [(d, float(f), float(b)) for d in cfg.datasets for f in cfg.label_fractions
                    for b in cfg.batch_sizes if b != batch_size],
              "e": [(d, float(f), float(e)) for d in cfg.datasets for f in cfg.label_fractions
                    for e in cfg.pretrain_epochs if e != epochs]}
    grid = Grid(tuple(cfg.datasets), tuple(float(f) for f in cfg.label_fractions), tuple(cfg.archs),
                tuple(c for c in comparators() if c in cfg.methods),
                tuple(m for m in pretraining_methods() if m in cfg.methods),
                any(m in reference_methods() for m in cfg.methods), levels)
    family, starts, _ = _rows(grid)
    named = _named_rows(cfg)
    paper = [row for row in named if row.claim != "s"] if named else family
    start = [row for row in named if row.claim == "s"] or starts
    source = ("claims.family of the config.yaml beside the records" if named else
              f"{DEFAULT_WORDS} over the grid of the config.yaml beside the records")
    return Family(ordered(paper), source, cfg.claims.alpha, cfg.claims.power, ordered(start), tuple(cfg.datasets))


def read_grid(out: Path) -> BenchConfig | None:
    """The grid and ``claims`` section of ``<out>/config.yaml`` (:data:`GRID_KEYS`), or None without the file.

    Raises:
        UserError: the file is not a YAML mapping or its grid or claims section is invalid.
    """
    return folder_settings(out, GRID_KEYS)


def claim_family(records: pd.DataFrame, out: Path | None, batch_size: float | None,
                 epochs: float | None) -> Family:
    """The families of the claim checks of a results folder (see the module docstring).

    Args:
        records: the records frame (the settings they hold make the families only without a ``config.yaml``).
        out: the results folder (its ``config.yaml`` is read when present), or None.
        batch_size, epochs: the main setting.
    """
    cfg = read_grid(out) if out is not None else None
    if cfg is not None:
        return config_family(cfg, batch_size, epochs)
    grid = record_grid(records, batch_size, epochs)
    family, starts, _ = _rows(grid)
    return Family(ordered(family), f"{RECORD_SOURCE}: the results folder has no config.yaml",
                  start_rows=ordered(starts), datasets=grid.datasets)
