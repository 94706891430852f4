"""Checks of the CASS paper's claims against the measured records.

Each check ends as "holds", "does not hold" or "not measured" (the records lack what it needs) at the scale of the
run; the paper's number is shown beside the measured one and is not itself the bar, except for (b):

- (a) F1 gain at 1 / 10 / 100 % labels: holds iff CASS's macro-F1 minus the best of DINO and BYOL (same dataset,
  encoder and label fraction; means over seeds; in points, 100 x F1), averaged over datasets and encoders, is > 0.
- (b) 69 % less pretraining time than DINO: holds iff 1 - t(CASS) / (t(DINO-cnn) + t(DINO-vit)) >= 64 % (the
  claim less a 5-point tolerance); t is the time per pretraining epoch, averaged over every dataset x batch size x
  epochs setting that has all three runs.
- (c) "twice as computationally efficient": holds iff CASS's FLOPs per image and time per epoch are each at most
  0.5 x those of DINO-cnn + DINO-vit (whichever of the two are measured), averaged as in (b).
- (d) more robust to batch size: holds iff CASS's F1 spread (max - min over the batch sizes every compared method
  finished; mean over datasets, encoders and label fractions) is smaller than DINO's and BYOL's; needs >= 2 sizes.
- (e) more robust to pretraining epochs: as (d), over pretraining epoch counts.

With two or more seeds, (a), (d) and (e) also state the seed noise: the standard error of the averaged F1 gain
for (a), and the mean standard error of one cell's mean F1 for (d) and (e). A margin smaller than twice that
noise is marked "within seed noise": the status still follows the rule, but the measurement cannot tell the
methods apart. With one seed the text says that there is no noise estimate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from cass_bench.render import fraction_text

HOLDS, FAILS, UNMEASURED = "holds", "does not hold", "not measured"
OTHER_SSL = ("dino", "byol")
PAPER_GAINS = {0.01: 3.8, 0.1: 5.9, 1.0: 10.13}
CLAIMED_REDUCTION = 0.69
REDUCTION_TOLERANCE = 0.05
EFFICIENCY_BAR = 0.5

RULES = (
    "(a) holds iff CASS's macro-F1 minus the best of DINO/BYOL (same dataset, encoder, label fraction; means over "
    "seeds; 100 x F1), averaged over datasets and encoders, is > 0; the paper's gain is shown, not required.",
    f"(b) holds iff 1 - t(CASS) / (t(DINO-cnn) + t(DINO-vit)) >= {CLAIMED_REDUCTION - REDUCTION_TOLERANCE:.0%} "
    f"(the claimed {CLAIMED_REDUCTION:.0%} less a {REDUCTION_TOLERANCE * 100:.0f}-point tolerance), t = time per "
    "pretraining epoch, averaged over the settings (dataset, batch size, epochs) that have all three runs.",
    f"(c) holds iff CASS's FLOPs per image and time per epoch are each <= {EFFICIENCY_BAR} x DINO-cnn + DINO-vit "
    "(whichever are measured), averaged as in (b).",
    "(d) holds iff CASS's F1 spread (max - min over the batch sizes every compared method finished; mean over "
    "datasets, encoders, label fractions) is smaller than DINO's and BYOL's; needs >= 2 batch sizes.",
    "(e) as (d), over pretraining epoch counts.",
    "Seed noise (two or more seeds): (a) shows the standard error of the averaged gain, (d) and (e) the mean "
    "standard error of a cell's mean F1; a margin under twice that noise is marked \"within seed noise\".",
)
NOISE_FACTOR = 2.0


@dataclass(frozen=True)
class Claim:
    """One checked claim.

    Attributes:
        key: short id, e.g. ``a@1%``.
        claim: the claim in words.
        paper: the paper's figure.
        measured: the figure measured here, in words.
        status: ``holds``, ``does not hold`` or ``not measured``.
    """

    key: str
    claim: str
    paper: str
    measured: str
    status: str


def standard_errors(stats: pd.DataFrame) -> pd.Series:
    """Standard error of each cell's mean over seeds (std / sqrt(n)); NaN where there is one seed.

    Args:
        stats: statistics with ``std`` and ``n`` columns, as ``report.metric_stats`` gives them.
    """
    return stats["std"] / np.sqrt(stats["n"])


def _noise_text(margin: float, noise: float) -> str:
    if not np.isfinite(noise):
        return "1 seed: no noise estimate"
    verdict = "; within seed noise" if abs(margin) < NOISE_FACTOR * noise else ""
    return f"seed noise ± {noise:.2f}{verdict}"


def f1_gain_claims(f1: pd.DataFrame) -> list[Claim]:
    """Claim (a) at each of the paper's label fractions.

    Args:
        f1: macro-F1 statistics indexed by (dataset, method, arch, label_fraction) with a ``mean`` column.
    """
    means = f1["mean"].unstack("method") if not f1.empty else pd.DataFrame()
    errors = standard_errors(f1).unstack("method") if not f1.empty else pd.DataFrame()
    others = [m for m in OTHER_SSL if m in means]
    claims = []
    for fraction, paper_gain in PAPER_GAINS.items():
        label = fraction_text(fraction)
        key, claim, paper = f"a@{label}", f"F1 gain over the best other SSL method at {label} labels", \
            f"+{paper_gain} F1 points"
        at = means[np.isclose(means.index.get_level_values("label_fraction"), fraction)] if not means.empty \
            else means
        if "cass" not in at or not others:
            claims.append(Claim(key, claim, paper, "no CASS and DINO/BYOL results at this fraction", UNMEASURED))
            continue
        compared = at[["cass", *others]].dropna(subset=["cass"]).dropna(subset=others, how="all")
        if compared.empty:
            claims.append(Claim(key, claim, paper, "no CASS and DINO/BYOL results at this fraction", UNMEASURED))
            continue
        best = compared[others].idxmax(axis=1)
        gains = 100 * (compared["cass"] - compared[others].max(axis=1))
        cell_errors = errors.loc[compared.index]
        best_errors = pd.Series([cell_errors.at[i, m] for i, m in best.items()], index=compared.index)
        noise = 100 * np.sqrt((cell_errors["cass"] ** 2 + best_errors ** 2).sum(skipna=False)) / len(gains)
        per_arch = gains.groupby(level="arch").mean()
        detail = ", ".join(f"{arch} {gain:+.2f}" for arch, gain in per_arch.items())
        n_sets = gains.index.get_level_values("dataset").nunique()
        measured = (f"{gains.mean():+.2f} F1 points ({detail}; {n_sets} dataset{'s' * (n_sets > 1)}; "
                    f"{_noise_text(gains.mean(), noise)})")
        claims.append(Claim(key, claim, paper, measured, HOLDS if gains.mean() > 0 else FAILS))
    return claims


def _cass_ratios(costs: pd.DataFrame, column: str) -> pd.Series:
    if costs.empty or column not in costs:
        return pd.Series(dtype=float)
    cass = costs[(costs.index.get_level_values("method") == "cass")]
    return cass[column].dropna()


def time_claim(costs: pd.DataFrame) -> Claim:
    """Claim (b): pretraining time of CASS against DINO-cnn + DINO-vit.

    Args:
        costs: efficiency statistics indexed by (dataset, batch_size, pretrain_epochs, method, encoders) with a
            ``pretrain_epoch_time_s_ratio`` column (ratio to DINO with the same encoders).
    """
    claim, paper = "less pretraining time than DINO", "69% less (DINO 26 h 21 m, CASS 7 h 11 m)"
    ratios = _cass_ratios(costs, "pretrain_epoch_time_s_ratio")
    if ratios.empty:
        return Claim("b", claim, paper, "no CASS run with both DINO-cnn and DINO-vit runs beside it", UNMEASURED)
    reduction = 1 - ratios.mean()
    spread = f", range {1 - ratios.max():.0%} to {1 - ratios.min():.0%}" if np.ptp(ratios) > 0.005 else ""
    measured = f"{reduction:.0%} less time per epoch ({len(ratios)} setting{'s' * (len(ratios) > 1)}{spread})"
    holds = reduction >= CLAIMED_REDUCTION - REDUCTION_TOLERANCE
    return Claim("b", claim, paper, measured, HOLDS if holds else FAILS)


def compute_claim(costs: pd.DataFrame) -> Claim:
    """Claim (c): FLOPs per image and time per epoch of CASS at most half those of DINO-cnn + DINO-vit.

    Args:
        costs: as for :func:`time_claim`, with ``flops_per_image_ratio`` too.
    """
    claim, paper = "twice as computationally efficient as DINO", f"<= {EFFICIENCY_BAR} x DINO's cost"
    ratios = {name: _cass_ratios(costs, column) for name, column in
              (("FLOPs", "flops_per_image_ratio"), ("time", "pretrain_epoch_time_s_ratio"))}
    measured = {name: r.mean() for name, r in ratios.items() if not r.empty}
    if not measured:
        return Claim("c", claim, paper, "no CASS run with both DINO-cnn and DINO-vit runs beside it", UNMEASURED)
    text = ", ".join(f"{name} {value:.2f} x DINO-cnn+vit" for name, value in measured.items())
    holds = all(value <= EFFICIENCY_BAR for value in measured.values())
    return Claim("c", claim, paper, text, HOLDS if holds else FAILS)


def robustness_claim(stats: pd.DataFrame, factor: str, key: str, claim: str, levels: str) -> Claim:
    """Claims (d) and (e): CASS's F1 spread across a factor against DINO's and BYOL's.

    Args:
        stats: macro-F1 statistics indexed by (dataset, method, arch, label_fraction, factor) with a ``mean`` column.
        factor: ``batch_size`` or ``pretrain_epochs``.
        key: the claim's id.
        claim: the claim in words.
        levels: the factor's values in words, plural, e.g. "batch sizes".
    """
    paper = f"smaller F1 change across {levels}"
    means = stats["mean"].unstack("method") if not stats.empty else pd.DataFrame()
    methods = [m for m in ("cass", *OTHER_SSL) if m in means]
    if "cass" not in methods or len(methods) < 2:
        return Claim(key, claim, paper, "needs CASS and DINO or BYOL results", UNMEASURED)
    common = means[methods].dropna()
    groups = common.groupby(level=["dataset", "arch", "label_fraction"])
    spreads = (groups.max() - groups.min())[groups.size() >= 2]
    if spreads.empty:
        have = ", ".join(f"{v:g}" for v in sorted(set(stats.index.get_level_values(factor)))) or "none"
        return Claim(key, claim, paper, f"needs >= 2 {levels} finished by every method (have: {have})", UNMEASURED)
    mean_spread = 100 * spreads.mean()
    values = ", ".join(f"{v:g}" for v in sorted(set(common.index.get_level_values(factor))))
    text = ", ".join(f"{m} {mean_spread[m]:.2f}" for m in methods)
    noise = 100 * standard_errors(stats).unstack("method")[methods].loc[common.index].stack(future_stack=True).mean(
        skipna=False)
    margin = min(mean_spread[m] for m in methods if m != "cass") - mean_spread["cass"]
    measured = f"F1 spread in points: {text} ({levels} {values}; {_noise_text(margin, noise)})"
    holds = margin > 0
    return Claim(key, claim, paper, measured, HOLDS if holds else FAILS)


def check_claims(f1: pd.DataFrame, costs: pd.DataFrame, batch_stats: pd.DataFrame,
                 epoch_stats: pd.DataFrame) -> pd.DataFrame:
    """Every claim of the paper, measured.

    Args:
        f1: macro-F1 statistics of the main setting (see :func:`f1_gain_claims`).
        costs: efficiency statistics with ratios to DINO (see :func:`time_claim`).
        batch_stats: macro-F1 statistics across batch sizes (see :func:`robustness_claim`).
        epoch_stats: macro-F1 statistics across pretraining epochs.

    Returns:
        One row per claim: key, claim, paper, measured, status.
    """
    claims = [
        *f1_gain_claims(f1),
        time_claim(costs),
        compute_claim(costs),
        robustness_claim(batch_stats, "batch_size", "d", "more robust to batch size", "batch sizes"),
        robustness_claim(epoch_stats, "pretrain_epochs", "e", "more robust to pretraining epochs", "epoch counts"),
    ]
    return pd.DataFrame([asdict(c) for c in claims])
