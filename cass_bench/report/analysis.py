"""Everything the report shows, computed once from the records: the main setting, the per-cell statistics of each
evaluation, the efficiency figures, the robustness sweeps and the claim checks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cass_bench.errors import UserError
from cass_bench.config.vocabulary import EVALS, MAIN_EVAL
from cass_bench.report.cells import CELL, CellStats, metric_stats
from cass_bench.report.claims.commit_check import commit_check
from cass_bench.report.claims.decide import check_claims
from cass_bench.report.costs import CostStats, cost_stats, pretrain_runs
from cass_bench.report.claims.family import Family, claim_family
from cass_bench.report.format import key_text
from cass_bench.report.load import PRETRAINED, finished, finished_pretraining

EVAL_ORDER = EVALS
PAPER_BATCH_SIZE = 16


@dataclass(frozen=True)
class Setting:
    """The pretraining setting of the main F1 table (None when no pretraining record finished)."""

    batch_size: float | None
    pretrain_epochs: float | None

    def describe(self) -> str:
        """The setting in words."""
        if self.batch_size is None:
            return "no pretraining run finished"
        epochs = key_text(self.pretrain_epochs)
        return f"batch size {key_text(self.batch_size)}, {epochs} pretraining epoch{'' if epochs == '1' else 's'}"


def main_setting(df: pd.DataFrame, batch_size: float | None = None, epochs: float | None = None) -> Setting:
    """The pretraining setting of the main tables and the F1 claims, chosen, not tie-broken.

    The given ``batch_size`` / ``epochs`` when set; otherwise the paper's batch size 16 when any run finished at
    it (else the most common batch size) and the largest epoch count finished at that batch size.
    """
    ok = finished_pretraining(df)
    if ok.empty:
        return Setting(None, None)
    sizes = ok["batch_size"]
    _check_given("--batch-size", batch_size, sizes)
    if batch_size is None:
        batch_size = PAPER_BATCH_SIZE if (sizes == PAPER_BATCH_SIZE).any() else float(sizes.mode().max())
    _check_given("--epochs", epochs, ok.loc[sizes == batch_size, "pretrain_epochs"], f" at batch size {batch_size:g}")
    if epochs is None:
        at = ok.loc[sizes == batch_size, "pretrain_epochs"]
        epochs = float(at.max()) if not at.empty else float(ok["pretrain_epochs"].max())
    return Setting(float(batch_size), float(epochs))


def _check_given(flag: str, value: float | None, finished_values: pd.Series, where: str = "") -> None:
    """Refuses a main setting no finished pretraining run has, listing those that have one."""
    if value is None or (finished_values == value).any():
        return
    held = ", ".join(f"{v:g}" for v in sorted(finished_values.dropna().unique()))
    raise UserError(f"report {flag} {value:g}: no finished pretraining run has it{where}; pass one the records hold "
                    f"({held}), or leave {flag} out")


def select_setting(df: pd.DataFrame, setting: Setting) -> pd.DataFrame:
    """Finished records of ``setting`` plus every finished record without pretraining."""
    ok = finished(df)
    at = (ok["batch_size"] == setting.batch_size) & (ok["pretrain_epochs"] == setting.pretrain_epochs)
    return ok[~ok[PRETRAINED] | at]


def finetuned(df: pd.DataFrame) -> pd.DataFrame:
    """The records of the main (fine-tuning) evaluation."""
    return df[df["eval"] == MAIN_EVAL]


def robustness_stats(df: pd.DataFrame, factor: str, other: str, value: float | None) -> CellStats:
    """Macro-F1 statistics per (dataset, method, arch, label fraction, ``factor``) at ``other == value``."""
    ok = finished_pretraining(df)
    return metric_stats(ok[ok[other] == value], "f1_macro", [*CELL, "label_fraction", factor])


@dataclass(frozen=True)
class Sweep:
    """Macro-F1 across the values of one pretraining factor, the other held at the main setting's value."""

    factor: str
    anchor: float | None
    stats: CellStats


@dataclass
class Analysis:
    """Everything the report shows, computed once from the records (``commits``: the answer rows flagged "commits",
    measured again without their mixed seeds, :func:`cass_bench.report.claims.commit_check.commit_check`)."""

    records: pd.DataFrame
    setting: Setting
    main_rows: pd.DataFrame
    eval_stats: dict[str, CellStats]
    costs: CostStats
    batch_sweep: Sweep
    epoch_sweep: Sweep
    claims: pd.DataFrame
    family: Family
    commits: pd.DataFrame

    @property
    def f1(self) -> CellStats:
        """Fine-tuned macro-F1 per cell at the main setting."""
        stats = self.eval_stats.get(MAIN_EVAL)
        return stats if stats is not None else metric_stats(self.main_rows.iloc[:0], "f1_macro")


def analyse(df: pd.DataFrame, out: Path | None = None, batch_size: float | None = None,
            epochs: float | None = None) -> Analysis:
    """Computes the statistics, efficiency figures and claim checks of a records frame.

    Args:
        df: :func:`cass_bench.report.load.load_records`.
        out: the results folder (its ``predictions/`` serve the one-seed bootstrap, its ``config.yaml`` names the
            claims' family), or None.
        batch_size, epochs: the main setting; None chooses it (:func:`main_setting`).
    """
    setting = main_setting(df, batch_size, epochs)
    main_rows = select_setting(df, setting)
    eval_stats = {name: metric_stats(main_rows[main_rows["eval"] == name], "f1_macro") for name in EVAL_ORDER
                  if (main_rows["eval"] == name).any()}
    tuned = finetuned(df)
    batch_sweep = Sweep("batch_size", setting.pretrain_epochs,
                        robustness_stats(tuned, "batch_size", "pretrain_epochs", setting.pretrain_epochs))
    epoch_sweep = Sweep("pretrain_epochs", setting.batch_size,
                        robustness_stats(tuned, "pretrain_epochs", "batch_size", setting.batch_size))
    predictions = out / "predictions" if out is not None else None
    family = claim_family(df, out, setting.batch_size, setting.pretrain_epochs)
    claims = check_claims(df, setting.batch_size, setting.pretrain_epochs, predictions, family)
    commits = commit_check(df, claims, setting.batch_size, setting.pretrain_epochs, predictions, family)
    return Analysis(df, setting, main_rows, eval_stats, cost_stats(pretrain_runs(df)), batch_sweep, epoch_sweep,
                    claims, family, commits)
