"""The claim checks on synthetic records frames: coverage, verdicts, gates, cost ratios and the one-seed bootstrap."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from cass_bench.report.claims import PAPER_GAINS, RULES, TIME_BOUND, check_claims
from cass_bench.report.load import normalise

TIMES = {("cass", "cnn+vit"): 10.0, ("dino", "cnn"): 20.0, ("dino", "vit"): 30.0, ("byol", "cnn"): 18.0,
         ("byol", "vit"): 27.0}
FLOPS = {("cass", "cnn+vit"): 1e9, ("dino", "cnn"): 2e9, ("dino", "vit"): 3e9, ("byol", "cnn"): 2e9,
         ("byol", "vit"): 3e9}


def make_frame(*, offsets: dict[str, float] | None = None, seeds: Iterable[int] = range(5),
               datasets: Iterable[str] = ("d1", "d2"), fractions: Iterable[float] = (0.01, 0.1, 1.0),
               batch_sizes: Iterable[int] = (32,), epochs: Iterable[int] = (10,),
               per_doubling: dict[str, float] | None = None, at_chance: Iterable[str] = (),
               collapsed: bool = False, times: dict[tuple[str, str], float] | None = None,
               shared_sd: float = 3.0, noise_sd: float = 1.0, rng_seed: int = 0) -> pd.DataFrame:
    """A records frame of a full grid. F1 points = 50 + offsets[method] + per_doubling[method] * log2(b / max b)
    + shared noise (one draw per dataset, arch, fraction, seed and setting, common to every method) + independent
    noise per record. Methods in ``at_chance`` have above_chance False everywhere."""
    rng = np.random.default_rng(rng_seed)
    offsets = offsets if offsets is not None else {"cass": 4.0, "dino": 0.0, "byol": -1.0}
    per_doubling, times = per_doubling or {}, times or TIMES
    largest = max(batch_sizes)
    rows: list[dict[str, Any]] = []
    grid = pd.MultiIndex.from_product([list(datasets), list(seeds), list(batch_sizes), list(epochs)])
    for dataset, seed, batch, n_epochs in grid:
        shared = {(a, f): rng.normal(0, shared_sd) for a in ("cnn", "vit") for f in fractions}
        for method in ("cass", "dino", "byol"):
            for encoders in (("cnn+vit",) if method == "cass" else ("cnn", "vit")):
                time = times[(method, encoders)] * (1 + rng.normal(0, 0.02))
                for arch in (("cnn", "vit") if method == "cass" else (encoders,)):
                    for fraction in fractions:
                        f1 = (50 + offsets[method] + per_doubling.get(method, 0.0) * np.log2(batch / largest)
                              + shared[(arch, fraction)] + rng.normal(0, noise_sd))
                        rows.append(dict(
                            record_id=f"{dataset}-{method}-{arch}-{fraction}-{batch}-{n_epochs}-{seed}",
                            dataset=dataset, method=method, arch=arch, encoders=encoders, eval="finetune",
                            label_fraction=fraction, batch_size=float(batch), pretrain_epochs=float(n_epochs),
                            seed=seed, status="ok", f1_macro=f1 / 100, above_chance=method not in at_chance,
                            collapsed=collapsed and method == "cass", init="random", config_hash=f"h-{method}",
                            device="CPU (test)",
                            pretrain_epoch_time_s=time, flops_per_image=FLOPS[(method, encoders)]))
    return pd.DataFrame(rows)


def claims(frame: pd.DataFrame, batch: int = 32, epochs: int = 10, predictions: Path | None = None) -> pd.DataFrame:
    return check_claims(normalise(frame), batch, epochs, predictions).set_index("key")


def test_output_has_one_row_per_claim_and_comparator() -> None:
    out = check_claims(normalise(make_frame(batch_sizes=(16, 32))), 32, 10, None)
    assert list(out.columns) == ["key", "claim", "comparator", "eval", "paper", "measured", "estimate", "low", "high",
                                 "n", "p_holm", "status"]
    assert list(out["key"]) == ["a@1% vs dino", "a@1% vs byol", "a@10% vs dino", "a@10% vs byol", "a@100% vs dino",
                                "a@100% vs byol", "b vs dino", "b vs byol", "c vs dino", "d vs dino", "d vs byol",
                                "e vs dino", "e vs byol"]
    assert set(out.loc[out["key"].str.startswith("a"), "eval"]) == {"finetune"}
    assert len(RULES) >= 5 and any(f"{TIME_BOUND:g}" in rule for rule in RULES)


def test_f1_intervals_cover_the_true_difference() -> None:
    truth, covered = 2.5, 0
    for sweep in range(100):
        frame = make_frame(offsets={"cass": truth, "dino": 0.0, "byol": 0.0}, seeds=range(4), fractions=(0.1,),
                           rng_seed=sweep)
        row = claims(frame).loc["a@10% vs dino"]
        assert row["n"] == 4
        covered += row["low"] <= truth <= row["high"]
    assert covered >= 90


def test_two_seeds_are_too_few_but_still_show_the_interval() -> None:
    row = claims(make_frame(seeds=(0, 1))).loc["a@10% vs dino"]
    assert row["status"] == "inconclusive — too few seeds (2)"
    assert row["n"] == 2 and row["low"] < row["estimate"] < row["high"] and "[" in row["measured"]


def test_clear_gains_are_supported_and_clear_losses_contradicted() -> None:
    won = claims(make_frame(offsets={"cass": 8.0, "dino": 0.0, "byol": 0.0}))
    lost = claims(make_frame(offsets={"cass": -8.0, "dino": 0.0, "byol": 0.0}))
    for fraction in ("1%", "10%", "100%"):
        for comp in ("dino", "byol"):
            assert won.loc[f"a@{fraction} vs {comp}", "status"] == "supported"
            assert lost.loc[f"a@{fraction} vs {comp}", "status"] == "contradicted"
            assert won.loc[f"a@{fraction} vs {comp}", "p_holm"] < 0.05
    assert "d1/cnn" in won.loc["a@10% vs dino", "measured"] and "d2/vit" in won.loc["a@10% vs dino", "measured"]


def test_comparators_are_checked_separately_not_best_of() -> None:
    out = claims(make_frame(offsets={"cass": 4.0, "dino": 8.0, "byol": 0.0}))
    assert out.loc["a@10% vs dino", "status"] == "contradicted"
    assert out.loc["a@10% vs byol", "status"] == "supported"


def test_paper_gain_compatibility_is_stated() -> None:
    out = claims(make_frame(offsets={"cass": PAPER_GAINS[0.1], "dino": 0.0, "byol": -20.0}, noise_sd=0.5))
    assert "paper's +5.9 inside the interval (compatible)" in out.loc["a@10% vs dino", "measured"]
    assert "paper's +5.9 outside the interval (not compatible)" in out.loc["a@10% vs byol", "measured"]


def test_holm_makes_a_marginal_result_inconclusive() -> None:
    frame = make_frame(offsets={"cass": 0.0, "dino": 0.0, "byol": 0.0}, fractions=(0.1,), shared_sd=0, noise_sd=0)
    gains = np.array([0.2, 1.6, 0.5, 2.2, 1.0])  # per-seed CASS gain in points: paired t p = 0.039 against each
    cass = frame["method"] == "cass"
    frame.loc[cass, "f1_macro"] += gains[frame.loc[cass, "seed"]] / 100
    out = claims(frame)
    p = sps.ttest_1samp(gains, 0).pvalue
    for comp in ("dino", "byol"):  # a family of two tests with equal p: Holm doubles both
        row = out.loc[f"a@10% vs {comp}"]
        assert row["low"] > 0 and row["p_holm"] == pytest.approx(2 * p)
        assert row["status"] == "inconclusive" and "not significant after Holm" in row["measured"]
    assert out["p_holm"].notna().sum() == 2


def test_a_method_at_chance_is_never_called_robust() -> None:
    frame = make_frame(batch_sizes=(8, 16, 32), per_doubling={"cass": 3.0, "dino": 0.0, "byol": 0.0},
                       at_chance=("dino",))
    out = claims(frame)
    assert out.loc["d vs dino", "status"] == "not testable: every cell at chance"
    assert "12 cell(s) left out at chance" in out.loc["d vs dino", "measured"]
    assert out.loc["a@10% vs dino", "status"] == "not testable: every cell at chance"
    # CASS genuinely loses F1 at small batches while BYOL does not: contradicted, not supported
    assert out.loc["d vs byol", "status"] == "contradicted"
    assert out.loc["d vs byol", "estimate"] == pytest.approx(-6.0, abs=1.0)


def test_a_cell_at_chance_in_most_seeds_is_left_out_and_counted() -> None:
    frame = make_frame()
    chance = (frame["dataset"] == "d2") & (frame["arch"] == "vit") & (frame["method"] == "dino")
    frame.loc[chance & (frame["seed"] < 3), "above_chance"] = False  # 3 of 5 seeds: fewer than half above chance
    out = claims(frame)
    assert "1 cell(s) left out at chance (d2/vit dino)" in out.loc["a@10% vs dino", "measured"]
    assert "d2/vit" not in out.loc["a@10% vs dino", "measured"].split("per cell:")[1].split(";")[0]
    assert "left out" not in out.loc["a@10% vs byol", "measured"]
    frame.loc[chance & (frame["seed"] == 2), "above_chance"] = True  # 3 of 5 above chance: kept
    assert "left out" not in claims(frame).loc["a@10% vs dino", "measured"]


def test_robustness_supported_when_cass_loses_less() -> None:
    frame = make_frame(batch_sizes=(8, 16, 32), epochs=(10, 40), per_doubling={"cass": 0.0, "dino": 3.0, "byol": 2.0})
    out = claims(frame, batch=32, epochs=40)
    assert out.loc["d vs dino", "status"] == "supported" and out.loc["d vs byol", "status"] == "supported"
    assert out.loc["d vs dino", "estimate"] == pytest.approx(6.0, abs=1.0)
    assert "slope per doubling" in out.loc["d vs dino", "measured"] and "8, 16, 32" in out.loc["d vs dino", "measured"]
    assert out.loc["e vs dino", "status"] == "inconclusive"  # epochs have no effect here
    assert not claims(make_frame(), 32, 10).loc["d vs dino", "status"].startswith(("supported", "contra"))
    assert claims(make_frame(), 32, 10).loc["d vs dino", "status"] == "not measured"
    assert "found: 32" in claims(make_frame(), 32, 10).loc["d vs dino", "measured"]


def test_collapsed_cass_makes_claims_not_testable() -> None:
    out = claims(make_frame(collapsed=True, batch_sizes=(16, 32)))
    expected = "not testable: CASS collapsed in 10/10 runs; init random; the reference starts from ImageNet weights"
    assert out.loc["a@1% vs dino", "status"] == expected
    assert out.loc["d vs byol", "status"].startswith("not testable: CASS collapsed in 20/20 runs")
    assert out.loc["b vs dino", "status"] == "supported"  # time does not depend on collapse
    frame = make_frame()
    frame.loc[(frame["method"] == "cass") & (frame["seed"] == 0) & (frame["dataset"] == "d1"), "collapsed"] = True
    assert "collapsed in 1/10 runs" in claims(frame).loc["a@10% vs byol", "status"]


def test_cost_claims_from_time_and_flops_ratios() -> None:
    out = claims(make_frame())
    assert out.loc["b vs dino", "status"] == "supported" and out.loc["b vs dino", "n"] == 10
    assert out.loc["b vs dino", "estimate"] == pytest.approx(10 / 50, rel=0.03)
    assert out.loc["b vs byol", "status"] == "supported" and "not a paper claim" in out.loc["b vs byol", "paper"]
    assert out.loc["c vs dino", "status"] == "supported" and "FLOPs ratio 0.20" in out.loc["c vs dino", "measured"]
    slow = claims(make_frame(times={**TIMES, ("cass", "cnn+vit"): 30.0}))
    assert slow.loc["b vs dino", "status"] == "contradicted" and slow.loc["c vs dino", "status"] == "contradicted"
    edge = claims(make_frame(times={**TIMES, ("cass", "cnn+vit"): TIME_BOUND * 50}))
    assert edge.loc["b vs dino", "status"] == "inconclusive"
    one = claims(make_frame(seeds=(0,), datasets=("d1",)))
    assert one.loc["b vs dino", "status"] == "supported" and "1 run: no interval" in one.loc["b vs dino", "measured"]


def test_missing_comparators_are_not_measured() -> None:
    frame = make_frame(fractions=(0.1, 1.0))
    out = claims(frame[frame["method"] != "dino"])
    assert out.loc["a@1% vs byol", "status"] == "not measured"
    assert out.loc["a@10% vs byol", "status"] == "supported"
    for key in ("a@10% vs dino", "b vs dino", "c vs dino", "d vs dino", "e vs dino"):
        assert out.loc[key, "status"] == "not measured", key
    failed = make_frame().assign(status="oom")
    assert set(claims(failed)["status"]) == {"not measured"}


def _write_predictions(frame: pd.DataFrame, folder: Path, rng_seed: int = 0) -> Path:
    """Predictions where CASS is right on 90 % of 400 test items and the others on 60 %."""
    rng = np.random.default_rng(rng_seed)
    folder.mkdir(parents=True, exist_ok=True)
    y_true = rng.integers(0, 4, 400)
    for row in frame.itertuples():
        right = rng.random(400) < (0.9 if row.method == "cass" else 0.6)
        labels = np.where(right, y_true, (y_true + 1) % 4)
        np.savez(folder / f"{row.record_id}.npz", y_true=y_true, y_score=np.eye(4)[labels] * 0.8 + 0.1)
    return folder


def test_one_seed_uses_the_paired_bootstrap(tmp_path: Path) -> None:
    frame = make_frame(seeds=(0,), fractions=(0.1,))
    without = claims(frame).loc["a@10% vs dino"]
    assert without["status"] == "inconclusive — too few seeds (1)" and "no predictions folder" in without["measured"]
    row = claims(frame, predictions=_write_predictions(frame, tmp_path / "p")).loc["a@10% vs dino"]
    assert row["status"] == "inconclusive — too few seeds (1)"
    assert "paired bootstrap over test images" in row["measured"] and 0 < row["low"] < row["estimate"] < row["high"]


def test_readme_recipe_recomputes_the_f1_interval() -> None:
    records = make_frame(rng_seed=3)
    # README recipe: claim (a) at 10% labels, CASS vs DINO, batch 32, 10 epochs
    r = records[(records.status == "ok") & (records["eval"] == "finetune") & (records.label_fraction == 0.1)
                & (records.batch_size == 32) & (records.pretrain_epochs == 10)]
    f1 = r.pivot_table(index=["dataset", "arch", "seed"], columns="method", values="f1_macro")
    per_seed = (100 * (f1["cass"] - f1["dino"])).groupby("seed").mean()
    n, mean, se = len(per_seed), per_seed.mean(), per_seed.std() / len(per_seed) ** 0.5
    low, high = mean + np.array([-1, 1]) * sps.t.ppf(0.975, n - 1) * se
    row = claims(records).loc["a@10% vs dino"]
    assert (row["estimate"], row["low"], row["high"]) == pytest.approx((mean, low, high))
