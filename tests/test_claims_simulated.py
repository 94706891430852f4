"""Simulated sweeps with a known truth, fed to the claim checks the report uses: the intervals cover the truth, a
true 5-point gain at 10 seeds is called, opposite encoders get no pooled verdict, and collapse flags any method
alike and vetoes nothing."""

from __future__ import annotations

import pandas as pd
import pytest

from cass_bench.report.claims.specs import OUTSIDE
from cass_bench.report.claims.family import Family, parse_row
from cass_bench.report.load import RANK_HISTORY, normalise

from .claim_frames import claims_of, sweep_frame

SWEEPS = 100
GAIN, SEEDS, PAIRED_SD = 5.0, 10, 4.0
"""A 5-point true gain of CASS over both comparators in every cell, 10 seeds, a paired spread like today's CNN."""


@pytest.fixture(scope="module")
def gain_sweeps() -> list[pd.DataFrame]:
    """The claim rows of 100 simulated default sweeps (1 dataset, 3 fractions, 2 encoders, 2 comparators)."""
    return [claims_of(sweep_frame(gain=GAIN, seeds=SEEDS, sd=PAIRED_SD, rng=i), each=True) for i in range(SWEEPS)]


def test_the_default_family_is_every_encoder_row(gain_sweeps: list[pd.DataFrame]) -> None:
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
