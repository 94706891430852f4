"""The claims measured again without the seeds in which a row's records ran on different commits: which rows are
flagged and which seeds leave them, that the kept rows are the kept seeds' own paired differences, and the answer's line
when a verdict moves, stands or cannot be measured."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cass_bench.report.claims.commit_check import changed, commit_check
from cass_bench.report.claims.decide import check_claims
from cass_bench.report.claims.family import claim_family
from cass_bench.report.load import normalise
from cass_bench.report.present.claim_tables import commit_check_lines, commit_check_table

from .claim_frames import MAIN_BATCH, MAIN_EPOCHS, sweep_frame


def _on_commits(frame: pd.DataFrame, mixed: tuple[int, ...], batch_size: int = MAIN_BATCH) -> pd.DataFrame:
    """Every record on commit a...; in each ``mixed`` seed, DINO's ViT at ``batch_size`` on commit b..."""
    frame = frame.assign(git_commit="a" * 40)
    frame.loc[frame.seed.isin(mixed) & (frame.method == "dino") & (frame.arch == "vit")
              & (frame.batch_size == batch_size), "git_commit"] = "b" * 40
    return normalise(frame)


def _checked(records: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    family = claim_family(records, None, float(MAIN_BATCH), float(MAIN_EPOCHS))
    claims = check_claims(records, float(MAIN_BATCH), float(MAIN_EPOCHS), None, family)
    return claims, commit_check(records, claims, float(MAIN_BATCH), float(MAIN_EPOCHS), None, family)


def test_the_mixed_seeds_leave_and_each_kept_row_is_the_kept_seeds_paired_mean() -> None:
    records = _on_commits(sweep_frame(seeds=10, sd=2.0, fractions=(0.1,), rng=4), mixed=(2, 7))
    claims, check = _checked(records)
    rows = check.set_index("key")
    assert list(rows.index) == ["d1/a@10%:vit:best"]  # the CNN rows ran on one commit in every seed
    assert rows.loc["d1/a@10%:vit:best", "mixed_seeds"] == "2, 7"
    kept = records[~records.seed.isin([2, 7]) & (records.arch == "vit")]
    f1 = 100 * kept.pivot_table(index="seed", columns="method", values="f1_macro")
    best = f1[["dino", "byol"]].mean().idxmax()
    row = rows.loc["d1/a@10%:vit:best"]
    assert row["kept_n"] == 8 and row["n"] == 10
    assert row["kept_estimate"] == pytest.approx((f1["cass"] - f1[best]).mean())
    assert row["kept_low"] < row["kept_estimate"] < row["kept_high"]


def test_a_verdict_carried_by_the_mixed_seeds_is_named_as_changed() -> None:
    frame = sweep_frame(gain=0.0, seeds=12, sd=1.0, fractions=(0.1,), rng=8)
    mixed = (0, 1, 2, 3, 4, 5, 6, 7)
    lift = frame.seed.isin(mixed) & (frame.method == "cass") & (frame.arch == "vit")
    frame.loc[lift, ["f1_macro", "f1_seed_code"]] += 0.10  # ten points, only where the code changed
    claims, check = _checked(_on_commits(frame, mixed))
    rows = check.set_index("key")
    assert rows.loc["d1/a@10%:vit:best", "status"] == "supported"
    assert rows.loc["d1/a@10%:vit:best", "kept_status"] != "supported"
    assert list(changed(rows).index) == ["d1/a@10%:vit:best"]
    line = commit_check_lines(check)[0]
    assert line.startswith("Commits: without seeds 0, 1, 2, 3, 4, 5, 6, 7, in which the records behind the flagged row "
                           "ran on different commits: 1 of 1 measured flagged verdicts change: (a) 10% vit vs best "
                           "other")
    assert "supported at +" in line
    table = commit_check_table(check)
    assert table is not None and list(table.cells["verdict"]) == ["supported"]
    assert table.cells.loc[0, "all seeds"].endswith("(n 12)") and table.cells.loc[0, "without them"].endswith("(n 4)")


def test_a_verdict_that_holds_on_the_single_commit_seeds_stands() -> None:
    records = _on_commits(sweep_frame(gain=12.0, seeds=12, sd=1.0, fractions=(0.1,), rng=2), mixed=(5,))
    claims, check = _checked(records)
    assert len(check) == 1 and changed(check).empty
    assert commit_check_lines(check) == [
        "Commits: without seed 5, in which the records behind the flagged row ran on different commits: every flagged "
        "verdict stands (1 row) (measurements under Scale)."]


def test_no_mixed_seed_no_check_and_a_row_left_without_seeds_asks_for_a_rerun() -> None:
    frame = sweep_frame(seeds=4, fractions=(0.1,), rng=1)
    _, check = _checked(_on_commits(frame, mixed=()))
    assert check.empty and commit_check_lines(check) == [] and commit_check_table(check) is None
    _, check = _checked(_on_commits(frame, mixed=(0, 1, 2, 3)))
    assert list(check["mixed_seeds"]) == ["0, 1, 2, 3"] and np.isnan(check["kept_estimate"].astype(float)).all()
    assert commit_check_lines(check) == [
        "Commits: without seeds 0, 1, 2, 3, in which the records behind the flagged row ran on different commits: 1 of 1 "
        "flagged rows keep fewer than two seeds and cannot be measured; rerunning their seeds on one commit settles "
        "them (measurements under Scale)."]


def test_a_robustness_level_on_another_commit_flags_its_rows_not_the_main_settings() -> None:
    frame = sweep_frame(seeds=6, fractions=(0.1,), batch_sizes=(8, MAIN_BATCH), rng=5)
    claims, check = _checked(_on_commits(frame, mixed=(1, 3), batch_size=8))
    flags = claims.set_index("key")["mixed_seeds"]
    assert flags["d1/a@10%:vit:best"] == "" and flags["d1/a@10%:vit:dino"] == ""  # batch 16 ran on one commit
    assert flags["d1/d@10%:vit:dino:8"] == "1, 3" and flags["d1/d@10%:cnn:dino:8"] == ""
    assert set(check["mixed_seeds"]) <= {"1, 3"}


def test_a_row_left_unmeasured_carries_no_commits_flag() -> None:
    frame = sweep_frame(seeds=6, fractions=(0.1,), at_chance=("cass", "dino"), rng=6)
    records = _on_commits(frame, mixed=(2,))
    family = claim_family(records, None, float(MAIN_BATCH), float(MAIN_EPOCHS))
    claims = check_claims(records, float(MAIN_BATCH), float(MAIN_EPOCHS), None, family).set_index("key")
    assert claims.loc["d1/a@10%:vit:dino", "status"].startswith("not testable")
    assert claims.loc["d1/a@10%:vit:dino", "mixed_seeds"] == "" and "commits" not in claims.loc["d1/a@10%:vit:dino",
                                                                                                "flags"]
