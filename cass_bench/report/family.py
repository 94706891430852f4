"""The pre-registered family of claim rows that Holm's correction runs over, and the rows' names.

A row is one comparison: claim (a) at a label fraction, or (d) / (e) at one sweep level against the main level, for
one dataset, encoder (``cnn``, ``vit``, or ``cnn+vit`` for their average) and comparator. Its key is
``DATASET/CLAIM@FRACTION:ARCH:COMPARATOR[:LEVEL]`` (:data:`cass_bench.config.schema.CLAIM_ROW`). The family comes
from the results folder's ``config.yaml`` (``claims.family``, or the default family over that config's grid) when
there is one, else from the default family over the settings the records hold; never from the results.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from cass_bench.config.files import RESOLVED
from cass_bench.config.schema import ARCHS, CLAIM_ROW, BenchConfig, ClaimsConfig
from cass_bench.config.load import settings_from_dict
from cass_bench.config.vocabulary import MAIN_EVAL
from cass_bench.errors import UserError
from cass_bench.records.schema import OK
from cass_bench.config.registry import comparators
from cass_bench.report.load import PRETRAINED
from cass_bench.report.render import fraction_text

POOLED = "+".join(ARCHS)
"""The arch of a row that averages the encoders within each seed (a labelled average, outside the default family)."""
GRID_KEYS = ("methods", "datasets", "archs", "label_fractions", "batch_sizes", "pretrain_epochs", "claims")
"""The keys of ``config.yaml`` the family is read from (the rest of the run's settings play no part)."""
RECORD_SOURCE = "the default family (every (a), (d) and (e) row per encoder) over the settings the records hold"
ROBUSTNESS = ("d", "e")
"""The robustness claims: (d) sweeps the batch size at the main epochs, (e) the epochs at the main batch size."""


@dataclass(frozen=True)
class RowSpec:
    """One claim row.

    Attributes:
        claim: ``a``, ``d`` or ``e``.
        dataset: the records' dataset name.
        fraction: label fraction.
        arch: ``cnn``, ``vit`` or ``cnn+vit`` (the average of the two).
        comparator: the method CASS is compared with.
        level: (d) the batch size, (e) the epoch count compared with the main level; None for (a).
    """

    claim: str
    dataset: str
    fraction: float
    arch: str
    comparator: str
    level: float | None = None

    @property
    def key(self) -> str:
        """The row's name in the report and in ``claims.family``."""
        level = "" if self.level is None else f":{self.level:g}"
        return f"{self.dataset}/{self.claim}@{fraction_text(self.fraction)}:{self.arch}:{self.comparator}{level}"


def parse_row(text: str, datasets: list[str]) -> list[RowSpec]:
    """The rows a ``claims.family`` entry names: one, or one per dataset when it names none.

    Raises:
        UserError: the entry does not follow :data:`cass_bench.config.schema.CLAIM_ROW`.
    """
    match = CLAIM_ROW.match(text)
    if match is None:
        raise UserError(f"claims.family row '{text}' is malformed; write e.g. a@10%:cnn:dino or d@10%:cnn:dino:8")
    fraction = round(float(match["fraction"]) / (100 if match["percent"] else 1), 10)
    level = None if match["level"] is None else float(match["level"])
    return [RowSpec(match["claim"], dataset, fraction, match["arch"], match["comparator"], level)
            for dataset in ([match["dataset"]] if match["dataset"] else datasets)]


@dataclass(frozen=True)
class Family:
    """The rows Holm's correction runs over, where they came from, and the levels of the verdicts.

    Attributes:
        rows: the family, in report order.
        source: where the family came from, in words.
        alpha: family-wise error rate.
        power: the power of the stated minimum detectable effects.
    """

    rows: tuple[RowSpec, ...]
    source: str
    alpha: float = ClaimsConfig.alpha
    power: float = ClaimsConfig.power

    @property
    def keys(self) -> tuple[str, ...]:
        """The rows' keys."""
        return tuple(row.key for row in self.rows)

    @property
    def size(self) -> int:
        """Rows in the family (m of Holm's correction)."""
        return len(self.rows)


def sweep_axes(claim: str, batch_size: float | None, epochs: float | None) -> tuple[str, str, float | None,
                                                                                float | None]:
    """(swept factor, held factor, its held value, the swept factor's main level) of robustness claim ``claim``."""
    if claim == "d":
        return "batch_size", "pretrain_epochs", epochs, batch_size
    return "pretrain_epochs", "batch_size", batch_size, epochs


def _grid_rows(datasets: list[str], fractions: list[float], archs: list[str], comps: list[str],
               levels: dict[str, list[float]]) -> list[RowSpec]:
    rows = [RowSpec("a", d, f, a, c) for d in datasets for f in fractions for a in archs for c in comps]
    for claim, values in levels.items():
        rows += [RowSpec(claim, d, f, a, c, v) for d in datasets for f in fractions for a in archs for c in comps
                 for v in values]
    return rows


def ordered(rows: list[RowSpec]) -> tuple[RowSpec, ...]:
    """The rows without duplicates, in report order: claim, dataset, label fraction, level, encoder, comparator."""
    order = {arch: i for i, arch in enumerate([*ARCHS, POOLED])}
    comps = comparators()
    unique = {row.key: row for row in rows}.values()
    return tuple(sorted(unique, key=lambda r: (r.claim, r.dataset, r.fraction, -1 if r.level is None else r.level,
                                               order.get(r.arch, 9), comps.index(r.comparator)
                                               if r.comparator in comps else 9)))


def record_rows(records: pd.DataFrame, batch_size: float | None, epochs: float | None) -> tuple[RowSpec, ...]:
    """The default family over what the records hold: every (a) row at the main setting and every (d), (e) row at
    a sweep level the records hold, per dataset, label fraction, encoder and comparator present (never the
    encoders' average).

    Args:
        records: the records frame (:func:`cass_bench.report.load.normalise`).
        batch_size, epochs: the main setting.
    """
    ok = records.loc[(records["status"] == OK) & (records["eval"] == MAIN_EVAL) & records[PRETRAINED],
                     ["dataset", "label_fraction", "method", "arch", "batch_size", "pretrain_epochs"]]
    ok = ok.assign(label_fraction=ok["label_fraction"].round(10)).drop_duplicates()
    comps = [c for c in comparators() if c in set(ok["method"])]
    archs = [a for a in ARCHS if a in set(ok["arch"])]
    main = ok[(ok["batch_size"] == batch_size) & (ok["pretrain_epochs"] == epochs)]
    rows = []
    for dataset, fraction in main[["dataset", "label_fraction"]].drop_duplicates().itertuples(index=False):
        rows += _grid_rows([dataset], [fraction], archs, comps, {})
    for claim in ROBUSTNESS:
        factor, fixed, held, main_level = sweep_axes(claim, batch_size, epochs)
        swept = ok[(ok[fixed] == held) & (ok[factor] != main_level)]
        for dataset, fraction, level in swept[["dataset", "label_fraction", factor]].drop_duplicates().itertuples(
                index=False):
            rows += [RowSpec(claim, dataset, fraction, a, c, float(level)) for a in archs for c in comps]
    return ordered(rows)


def config_rows(cfg: BenchConfig, datasets: list[str], batch_size: float | None,
                epochs: float | None) -> tuple[RowSpec, ...]:
    """The rows of a config's ``claims.family``, or the default family over its grid when that is empty.

    Args:
        cfg: the run's config.
        datasets: the datasets a dataset-less family entry stands for.
        batch_size, epochs: the main setting (the default family compares every other level with it).
    """
    if cfg.claims.family:
        rows = [(text, row) for text in cfg.claims.family for row in parse_row(text, datasets)]
        seen: dict[RowSpec, str] = {}
        for text, row in rows:
            if row.dataset not in datasets:
                raise UserError(f"claims.family row '{text}' names dataset '{row.dataset}', which the run's datasets "
                                f"({', '.join(datasets)}) do not hold; name one of them or leave DATASET/ out")
            if row in seen:
                raise UserError(f"claims.family rows '{seen[row]}' and '{text}' name one row twice, which would count "
                                "it twice in Holm's correction; list each row once")
            seen[row] = text
        return ordered([row for _, row in rows])
    comps = [c for c in comparators() if c in cfg.methods]
    levels = {"d": [float(b) for b in cfg.batch_sizes if b != batch_size],
              "e": [float(e) for e in cfg.pretrain_epochs if e != epochs]}
    return ordered(_grid_rows(list(cfg.datasets), [float(f) for f in cfg.label_fractions], list(cfg.archs), comps,
                               levels))


def read_grid(out: Path) -> BenchConfig | None:
    """The grid and ``claims`` section of ``<out>/config.yaml`` (:data:`GRID_KEYS`), or None without the file.

    Raises:
        UserError: the file is not a YAML mapping or its grid or claims section is invalid.
    """
    path = Path(out) / RESOLVED
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = f"byte {exc.start} is not UTF-8" if isinstance(exc, UnicodeDecodeError) else exc.strerror
        raise UserError(f"{path} cannot be read as text ({reason}); save it as UTF-8, or remove it (the family is "
                        "then made from the records)") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML ({str(exc).splitlines()[0]}); fix or remove it") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a mapping of config keys; fix or remove it")
    try:
        return settings_from_dict(data, GRID_KEYS)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None


def claim_family(records: pd.DataFrame, out: Path | None, batch_size: float | None,
                 epochs: float | None) -> Family:
    """The family of the claim checks of a results folder (see the module docstring).

    Args:
        records: the records frame (the settings they hold make the family only without a ``config.yaml``).
        out: the results folder (its ``config.yaml`` is read when present), or None.
        batch_size, epochs: the main setting.
    """
    cfg = read_grid(out) if out is not None else None
    if cfg is None:
        return Family(record_rows(records, batch_size, epochs),
                      f"{RECORD_SOURCE}: the results folder has no config.yaml")
    rows = config_rows(cfg, list(cfg.datasets), batch_size, epochs)
    source = ("claims.family of the config.yaml beside the records" if cfg.claims.family else
              "the default family (every (a), (d) and (e) row per encoder) over the grid of the config.yaml beside "
              "the records")
    return Family(rows, source, cfg.claims.alpha, cfg.claims.power)

