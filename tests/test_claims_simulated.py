"""Simulated sweeps with a known truth, fed to the claim checks the report uses: the intervals cover the truth, a
true 5-point gain at 10 seeds is called, opposite encoders get no pooled verdict, and collapse flags any method
alike and vetoes nothing."""

from __future__ import annotations

import gc

import pandas as pd
import pytest
from scipy import stats as sps

from cass_bench.report.claims.specs import OUTSIDE
from cass_bench.report.claims.family import Family, parse_row
from cass_bench.report.load import RANK_HISTORY, normalise
from cass_bench.report.present.claim_tables import answer_table

from .claim_frames import claims_of, sweep_frame

SWEEPS = 100
GAIN, SEEDS, PAIRED_SD = 5.0, 10, 4.0
"""A 5-point true gain of CASS over both comparators in every cell, 10 seeds, a paired spread like today's CNN."""


@pytest.fixture(scope="module")
def gain_sweeps() -> list[pd.DataFrame]:
    """The claim rows of 100 simulated default sweeps (1 dataset, 3 fractions, 2 encoders, 2 comparators)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gc, "collect", lambda *args: 0)  # statsmodels' Holm collects garbage on every call
        return [claims_of(sweep_frame(gain=GAIN, seeds=SEEDS, sd=PAIRED_SD, rng=i), each=True) for i in range(SWEEPS)]


def test_every_row_against_one_comparator_can_form_the_family(gain_sweeps: list[pd.DataFrame]) -> None:
    family = gain_sweeps[0][gain_sweeps[0]["in_family"]]
    assert len(family) == 12 and set(family["arch"]) == {"cnn", "vit"} and set(family["kind"]) == {"a"}


def test_intervals_cover_the_true_per_encoder_difference(gain_sweeps: list[pd.DataFrame]) -> None:
    for key in ("d1/a@10%:cnn:dino", "d1/a@1%:vit:byol", "d1/a@100%:cnn:byol"):
        covered = sum(bool(c.loc[key, "low"] <= GAIN <= c.loc[key, "high"]) for c in gain_sweeps)
        assert covered >= 90, (key, covered)


def test_a_true_five_point_gain_at_ten_seeds_is_called_supported(gain_sweeps: list[pd.DataFrame]) -> None:
    for key in ("d1/a@10%:cnn:dino", "d1/a@1%:vit:byol"):
        statuses = [c.loc[key, "status"] for c in gain_sweeps]
        assert statuses.count("supported") >= 60, (key, statuses.count("supported"))  # the exact test, 10 seeds
        assert "contradicted" not in statuses
    mde = pd.Series([c.loc["d1/a@10%:cnn:dino", "mde"] for c in gain_sweeps])
    assert 4.5 < mde.median() < 7.5  # the design's own power figure: about 6 points at this spread and family


def test_opposite_encoder_effects_give_no_pooled_verdict() -> None:
    rows = tuple(r for text in ("a@10%:cnn:dino", "a@10%:vit:dino", "a@10%:cnn+vit:dino")
                 for r in parse_row(text, ["d1"]))
    split = 0
    for i in range(20):
        frame = sweep_frame(gain={"cnn": 8.0, "vit": -8.0}, seeds=SEEDS, sd=PAIRED_SD, fractions=(0.1,), rng=i)
        out = claims_of(frame, family=Family(rows, "test"))
        pooled = out.loc["d1/a@10%:cnn+vit:dino"]
        assert pooled["status"] not in ("supported", "contradicted"), pooled["measured"]
        assert abs(pooled["estimate"]) < 6  # the average hides both effects
        cnn, vit = out.loc["d1/a@10%:cnn:dino"], out.loc["d1/a@10%:vit:dino"]
        if cnn["low"] > 0 and vit["high"] < 0:
            split += 1
            assert pooled["status"] == "no pooled verdict: cnn above 0 and vit below 0 beyond their intervals"
            assert pooled["p_holm"] == 1.0 and cnn["status"] == "supported" and vit["status"] == "contradicted"
    assert split >= 15  # the encoders' own rows show both effects


def test_a_pooled_row_of_agreeing_encoders_gets_its_verdict() -> None:
    rows = tuple(parse_row("a@10%:cnn+vit:dino", ["d1"]))
    out = claims_of(sweep_frame(gain=8.0, seeds=SEEDS, sd=2.0, fractions=(0.1,), rng=3), family=Family(rows, "t"))
    assert out.loc["d1/a@10%:cnn+vit:dino", "status"] == "supported"
    assert out.loc["d1/a@10%:cnn:dino", "status"] == OUTSIDE


@pytest.mark.parametrize("collapsed", ["cass", "dino"])
def test_collapse_of_any_method_is_flagged_alike_and_vetoes_nothing(collapsed: str) -> None:
    frame = sweep_frame(gain=8.0, seeds=SEEDS, sd=2.0, collapsed=[(collapsed, "vit")], rng=5)
    clean = claims_of(sweep_frame(gain=8.0, seeds=SEEDS, sd=2.0, rng=5), each=True)
    out = claims_of(frame, each=True)
    other = "dino" if collapsed == "cass" else "cass"
    row = out.loc["d1/a@10%:vit:dino"]
    assert row["collapse"] == "COLLAPSED: " + ", ".join(
        f"{m}-vit {SEEDS if m == collapsed else 0}/{SEEDS}" for m in ("cass", "dino"))
    assert other in row["collapse"]
    pd.testing.assert_series_equal(out["status"], clean["status"])  # the same verdicts as without collapse
    assert (out["status"] == "supported").sum() >= 10
    assert out.loc["d1/a@10%:cnn:dino", "collapse"] == f"cass-cnn 0/{SEEDS}, dino-cnn 0/{SEEDS}"


def test_collapse_is_not_measured_for_records_without_the_centred_rank() -> None:
    frame = sweep_frame(gain=8.0, seeds=4, collapsed=[("dino", "vit")], rng=6)
    frame = frame.rename(columns={RANK_HISTORY: "feature_rank_history"})  # a record of the old, uncentred measure
    out = claims_of(frame, each=True)
    assert out.loc["d1/a@10%:vit:dino", "collapse"] == "cass-vit not measured, dino-vit not measured"
    assert normalise(frame)["collapsed"].isna().all()  # the old flag is not read without its rank


def test_cass_beating_dino_but_not_byol_is_not_supported_against_the_best_other_method() -> None:
    out = claims_of(sweep_frame(gain=6.0, offsets={"byol": 6.0}, seeds=12, sd=2.0, fractions=(0.1,), rng=20))
    for arch in ("cnn", "vit"):
        best = out.loc[f"d1/a@10%:{arch}:best"]
        assert out.loc[f"d1/a@10%:{arch}:dino", "low"] > 0  # CASS is clearly above DINO ...
        assert best["status"] == "inconclusive" and best["comparator"] == "best (byol)"  # ... not above BYOL
        p = {c: out.loc[f"d1/a@10%:{arch}:{c}", "p"] for c in ("dino", "byol")}
        below = out.loc[f"d1/a@10%:{arch}:byol", "estimate"] < 0  # CASS and BYOL are equal: either side by chance
        assert best["p"] == pytest.approx(min(1.0, 2 * p["byol"]) if below else max(p.values()))
        assert best["family"] == "paper" and out.loc[f"d1/a@10%:{arch}:dino", "status"] == OUTSIDE


def test_a_comparator_significantly_above_cass_contradicts_the_best_other_row() -> None:
    out = claims_of(sweep_frame(gain=6.0, offsets={"byol": 12.0}, seeds=12, sd=2.0, fractions=(0.1,), rng=21))
    best = out.loc["d1/a@10%:cnn:best"]
    assert best["status"] == "contradicted" and best["estimate"] < 0
    assert best["p"] == pytest.approx(min(1.0, 2 * out.loc["d1/a@10%:cnn:byol", "p"]))  # Bonferroni over 2


def test_the_intersection_union_rows_type_i_error_is_at_most_alpha(monkeypatch: pytest.MonkeyPatch) -> None:
    """CASS far above DINO and equal to BYOL: "supported" against the best other method is a false claim."""
    monkeypatch.setattr(gc, "collect", lambda *args: 0)  # statsmodels' Holm collects garbage on every call
    sweeps = [claims_of(sweep_frame(gain=0.0, offsets={"dino": -10.0}, seeds=10, sd=PAIRED_SD, fractions=(0.1,),
                                    rng=100 + i)) for i in range(200)]
    false = [int(c.loc[key, "status"] == "supported") for c in sweeps for key in ("d1/a@10%:cnn:best",
                                                                               "d1/a@10%:vit:best")]
    assert sum(false) / len(false) <= 0.05 + 2 * (0.05 * 0.95 / len(false)) ** 0.5, sum(false)


def test_a_recipe_that_destroys_its_start_flags_the_rows_it_enters_and_vetoes_none() -> None:
    frame = sweep_frame(gain=6.0, offsets={"dino": -20.0}, start=0.0, seeds=10, sd=2.0, fractions=(0.1,), rng=22)
    out = claims_of(frame)
    start = out.loc["d1/s@10%:vit:dino"]
    assert start["family"] == "start" and start["status"] == "contradicted" and start["estimate"] < -15
    for key in ("d1/a@10%:vit:dino", "d1/a@10%:vit:best"):
        assert "start" in out.loc[key, "flags"].split(", ")
        assert f"DINO-vit fell {-start['estimate']:.1f} [{-start['high']:.1f}, {-start['low']:.1f}] below its start: " \
               "this row may measure the baseline's recipe" in out.loc[key, "notes"]
    assert "start" not in out.loc["d1/a@10%:vit:byol", "flags"]  # BYOL kept its start
    assert out.loc["d1/s@10%:vit:byol", "status"] == "inconclusive"
    without = claims_of(frame[frame["method"] != "supervised"])
    assert out.loc["d1/a@10%:vit:best", "status"] == without.loc["d1/a@10%:vit:best", "status"]  # a flag, no veto
    assert out[out["family"] == "start"]["p_holm"].notna().all() and len(out[out["family"] == "start"]) == 6


def test_the_across_datasets_row_is_the_equal_weight_mean_within_each_seed() -> None:
    frame = sweep_frame(gain=4.0, datasets=("d1", "d2"), dataset_gain={"d2": 4.0}, seeds=10, sd=2.0,
                        fractions=(0.1,), rng=23)
    out = claims_of(frame)
    r = frame[(frame.label_fraction == 0.1) & (frame.arch == "cnn")]
    f1 = 100 * r.pivot_table(index=["seed", "dataset"], columns="method", values="f1_macro")
    d = (f1["cass"] - f1["dino"]).groupby(level="seed").mean()  # within each seed, each dataset weighs 1/2
    half = sps.t.ppf(0.975, len(d) - 1) * d.std() / len(d) ** 0.5
    row = out.loc["across/a@10%:cnn:dino"]
    assert (row["estimate"], row["low"], row["high"], row["n"]) == pytest.approx((d.mean(), d.mean() - half,
                                                                                 d.mean() + half, 10))
    assert out.loc["across/a@10%:cnn:best", "family"] == "paper" and out.loc["d1/a@10%:cnn:best", "family"] == ""
    assert out.loc["across/a@10%:cnn:best", "status"] == "supported"
    opposite = claims_of(sweep_frame(gain=8.0, datasets=("d1", "d2"), dataset_gain={"d2": -16.0}, seeds=10, sd=2.0,
                                     fractions=(0.1,), rng=24))
    for key in ("across/a@10%:cnn:dino", "across/a@10%:cnn:best"):
        assert opposite.loc[key, "status"].startswith("no pooled verdict: d1 above 0 and d2 below 0"), key


def test_one_seed_gives_each_row_its_point_and_no_interval() -> None:
    out = claims_of(sweep_frame(gain=3.0, start=0.0, seeds=1, sd=PAIRED_SD, fractions=(0.1,), rng=5), each=True)
    for key in ("d1/s@10%:vit:dino", "d1/a@10%:cnn:dino"):
        assert "(1 seed: no interval)" in out.loc[key, "measured"] and "nan" not in out.loc[key, "measured"], key
        assert out.loc[key, "status"] not in ("supported", "contradicted")


def test_an_across_row_gives_no_verdict_until_every_dataset_is_measured() -> None:
    from cass_bench.report.claims.family import claim_family

    frame = sweep_frame(gain=6.0, datasets=("d1", "d2"), seeds=10, sd=2.0, fractions=(0.1,), rng=25)
    family = claim_family(normalise(frame), None, 16.0, 6.0)  # as a config of both datasets registers it
    assert "across/a@10%:cnn:best" in family.keys and family.datasets == ("d1", "d2")
    out = claims_of(frame[frame["dataset"] == "d1"], family=family)
    row = out.loc["across/a@10%:cnn:best"]
    assert row["status"] == "not measured" and row["in_family"]
    assert "vs DINO: the paper's average needs every dataset, and d2 is not measured (so far: average of 1 " \
           "dataset " in row["measured"]
    assert claims_of(frame, family=family).loc["across/a@10%:cnn:best", "status"] == "supported"
    claims = answer_table(out.reset_index()).cells["claim"]  # only d1 has cost rows: they still name it
    assert list(claims[claims.str.startswith("(b)")]) == ["(b) d1, time vs DINO (bs16, ep6)",
                                                          "(b) d1, time vs BYOL (bs16, ep6)"]
