"""The report's start: what it was, its source accuracy, and each method's change from it with an interval."""

from __future__ import annotations

import pandas as pd
import pytest

from cass_bench.report import load_records
from cass_bench.report.present.start import start_change_lines, start_change_table, start_changes, start_lines

from .test_report import make_records, write_records


def _frame(tmp_path, **kwargs) -> pd.DataFrame:  # noqa: ANN001 - pytest fixture
    records = make_records(datasets=("d1",), methods=("cass", "dino", "supervised"), batch_sizes=(16,), **kwargs)
    return load_records(write_records(tmp_path, records))


@pytest.mark.parametrize(("offset", "word"), [(0.1, "improved"), (-0.1, "worsened"), (0.0, "no clear change")])
def test_a_methods_change_from_its_start_is_paired_by_seed_with_an_interval(tmp_path, offset: float,
                                                                           word: str) -> None:
    df = _frame(tmp_path, seeds=tuple(range(10)), offsets={"cass": offset, "dino": 0.0, "supervised": 0.0})
    changes = start_changes(df)
    cass = changes[(changes["method"] == "cass") & (changes["arch"] == "cnn")].iloc[0]
    reference = df[(df["method"] == "supervised") & (df["arch"] == "cnn") & (df["label_fraction"] == 0.1)]
    assert cass["start"] == pytest.approx(reference["f1_macro"].mean())
    assert cass["interval"].n == 10
    assert cass["interval"].mean == pytest.approx(offset, abs=0.03)
    table = start_change_table(changes).cells
    row = table[(table["method"] == "cass") & (table["arch"] == "cnn") & (table["eval"] == "finetune")].iloc[0]
    assert row["call"].startswith(f"{word} (Holm p ")
    assert "n=10" in row["change (95% interval)"]
    assert f" {word}" in start_change_lines(changes)[-1]


def test_a_change_is_called_only_when_it_survives_holm_over_the_section(tmp_path) -> None:  # noqa: ANN001
    df = _frame(tmp_path, seeds=(0, 1, 2, 3), offsets={"cass": 0.1, "dino": 0.0, "supervised": 0.0})
    changes = start_changes(df)
    assert (changes["p_holm"] >= changes["interval"].map(lambda iv: iv.p)).all()
    cass = changes[(changes["method"] == "cass") & (changes["arch"] == "cnn")].iloc[0]
    assert cass["interval"].low > 0 and cass["p_holm"] > 0.05  # 4 seeds: the exact p is at least 1/8
    assert start_change_table(changes).cells["call"].str.startswith("no clear change (Holm p").all()


def test_one_seed_gives_a_change_without_an_interval_and_no_call(tmp_path) -> None:  # noqa: ANN001
    changes = start_changes(_frame(tmp_path, seeds=(0,), offsets={"cass": 0.05}))
    assert set(changes["method"]) == {"cass", "dino"}
    table = start_change_table(changes).cells
    assert table["change (95% interval)"].str.endswith("(n=1, no interval)").all() and set(table["call"]) == {
        "not called"}


def test_without_the_no_pretraining_reference_there_is_nothing_to_compare(tmp_path) -> None:  # noqa: ANN001
    records = make_records(datasets=("d1",), methods=("cass", "dino"), batch_sizes=(16,))
    changes = start_changes(load_records(write_records(tmp_path, records)))
    assert changes.empty
    assert "share a seed" in start_change_table(changes).cells.iloc[0, 0]


def test_the_start_is_named_with_its_key_and_source_accuracy_per_encoder(tmp_path) -> None:  # noqa: ANN001
    records = make_records(datasets=("d1",), methods=("supervised",), batch_sizes=(16,))
    for record in records:
        record.update(init="fractal", start_key="abc123",
                      start_source_accuracy={"cnn": 0.99, "vit": 0.875}[record["arch"]])
    (line,) = start_lines(load_records(write_records(tmp_path, records)))
    assert "formula-driven supervised start" in line and "abc123" in line
    assert line.endswith("held-out source accuracy cnn 0.990, vit 0.875.")


def test_two_folders_differing_in_one_method_compare_it_paired_by_seed(tmp_path) -> None:  # noqa: ANN001
    from cass_bench.report.variants import variant_lines

    kwargs = {"datasets": ("d1",), "methods": ("cass", "dino"), "batch_sizes": (16,), "seeds": (0, 1, 2)}
    first = make_records(offsets={"cass": 0.0, "dino": 0.0}, **kwargs)
    second = make_records(offsets={"cass": -0.2, "dino": 0.0}, **kwargs)
    for record in second:
        if record["method"] == "cass":
            record["config_hash"] = "h-cass-fresh"
    (tmp_path / "fresh").mkdir()
    (tmp_path / "start").mkdir()
    blocks = variant_lines(write_records(tmp_path / "fresh", first), write_records(tmp_path / "start", second))
    assert len(blocks) == 2 and blocks[0].startswith("cass in `start/` against `fresh/`")
    rows = [line for line in blocks[1].splitlines() if line.startswith("| d1")]
    assert len(rows) == 2 * 3  # two encoders x three label fractions of the one evaluation; dino is not compared
    for row in rows:
        change = float(row.split("|")[7].split()[0])
        assert change == pytest.approx(-0.2, abs=0.04)
        assert row.rstrip(" |").endswith("3")


def test_a_start_trained_twice_names_each_training_and_warns_on_a_mixed_seed(tmp_path) -> None:  # noqa: ANN001
    records = make_records(datasets=("d1", "d2"), methods=("cass", "supervised"), batch_sizes=(16,), seeds=(0,))
    for record in records:
        again = record["dataset"] == "d2"
        record.update(init="fractal", start_key="abc123", start_train_s=600.0 + 100 * again,
                      created_at=f"2026-12-0{5 + again}T00:00:00+00:00",
                      start_source_accuracy={"cnn": 1.0, "vit": 0.9 + 0.01 * again}[record["arch"]])
    lines = start_lines(load_records(write_records(tmp_path / "kept", records)))
    assert lines[1] == ("Start abc123 (seed 0) was trained 2 times, its cache not carried over (its weights repeat "
                        "only on the same CPU type and thread count): training 1 (cnn 1.000, vit 0.900): d1; "
                        "training 2 (cnn 1.000, vit 0.910): d2.")
    assert len(lines) == 2, "each dataset's methods share one training: no warning"
    records[0]["start_train_s"] = 700.0
    lines = start_lines(load_records(write_records(tmp_path / "mixed", records)))
    assert lines[-1].startswith("Warning: d1 seed 0 mixes trainings of start abc123")
    once = [r for r in records if r["dataset"] == "d2"]
    assert start_lines(load_records(write_records(tmp_path / "once", once)))[1:] == []
