"""The report from synthetic records: F1 statistics, efficiency ratios, claim checks, failures, plots and the CLI."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cass_bench.cli import main
from cass_bench.report import analyse, load_records, write_plots, write_report
from cass_bench.records.schema import RECORD_FIELDS
from cass_bench.report.load import RANK_HISTORY
from cass_bench.report.present.tables import config_lines
from cass_bench.report.present.validity import collapse_table
from cass_bench.report.costs import (
    DATA_WAIT, FLOPS, MFU, PARAMS, RATE, TIME, data_wait_warnings, memory_quantity,
)

FRACTIONS = (0.01, 0.1, 1.0)
GPU, CPU = "NVIDIA H100", "CPU (x86_64, 2 cores)"
BASE_F1 = {0.01: 0.40, 0.1: 0.60, 1.0: 0.80}
WIN_OFFSETS = {"cass": 0.06, "dino": 0.0, "byol": -0.02, "supervised": -0.05}
LOSE_OFFSETS = {"cass": -0.06, "dino": 0.0, "byol": -0.02, "supervised": -0.05}
WIN_COSTS = {
    ("cass", "cnn+vit"): dict(pretrain_epoch_time_s=10.0, images_per_s=100.0, mem=500.0, flops_per_image=1e9,
                              pretrain_params=17e6),
    ("dino", "cnn"): dict(pretrain_epoch_time_s=20.0, images_per_s=50.0, mem=300.0, flops_per_image=2e9,
                          pretrain_params=25e6),
    ("dino", "vit"): dict(pretrain_epoch_time_s=30.0, images_per_s=40.0, mem=400.0, flops_per_image=3e9,
                          pretrain_params=12e6),
    ("byol", "cnn"): dict(pretrain_epoch_time_s=18.0, images_per_s=55.0, mem=350.0, flops_per_image=1.8e9,
                          pretrain_params=30e6),
    ("byol", "vit"): dict(pretrain_epoch_time_s=27.0, images_per_s=45.0, mem=450.0, flops_per_image=2.7e9,
                          pretrain_params=14e6),
}
LOSE_COSTS = {**WIN_COSTS, ("cass", "cnn+vit"): dict(pretrain_epoch_time_s=45.0, images_per_s=20.0, mem=700.0,
                                                      flops_per_image=4e9, pretrain_params=37e6)}


def make_records(*, datasets: Iterable[str] = ("d1", "d2"), methods: Iterable[str] = ("cass", "dino", "byol",
                 "supervised"), batch_sizes: Iterable[int] = (16, 32), epochs: Iterable[int] = (10,),
                 seeds: Iterable[int] = (0, 1), fractions: Iterable[float] = FRACTIONS,
                 offsets: dict[str, float] | None = None, slopes: dict[str, float] | None = None,
                 costs: dict[tuple[str, str], dict[str, float]] | None = None, gpu: bool = True,
                 rng_seed: int = 0) -> list[dict[str, Any]]:
    """Complete records of a full grid with seeded random F1 values.

    F1 = base(fraction) + offsets[method] - slopes[method] * log2(batch / 16) + N(0, 0.01); efficiency figures
    come from ``costs`` scaled by (1 + 0.1 * seed), so ratios between methods are exact.
    """
    rng = np.random.default_rng(rng_seed)
    offsets, slopes, costs = offsets or WIN_OFFSETS, slopes or {}, costs or WIN_COSTS
    records = []
    for dataset in datasets:
        for method in methods:
            pretrained = method != "supervised"
            settings = [(b, e) for b in batch_sizes for e in epochs] if pretrained else [(None, 0)]
            for (batch, n_epochs), seed, arch, fraction in _product(settings, seeds, ("cnn", "vit"), fractions):
                f1 = BASE_F1.get(fraction, 0.5) + offsets.get(method, 0.0) + rng.normal(0, 0.01)
                if batch is not None:
                    f1 -= slopes.get(method, 0.0) * np.log2(batch / 16)
                encoders = "cnn+vit" if method == "cass" else arch
                cost = costs.get((method, encoders)) if pretrained else None
                records.append(_record(dataset, method, arch, fraction, batch, n_epochs, seed, f1, cost, gpu))
    return records


def _product(*parts: Iterable[Any]) -> list[tuple[Any, ...]]:
    return [tuple(p) for p in pd.MultiIndex.from_product([list(x) for x in parts])]


def _record(dataset: str, method: str, arch: str, fraction: float, batch: int | None, epochs: int, seed: int,
            f1: float, cost: dict[str, float] | None, gpu: bool) -> dict[str, Any]:
    record: dict[str, Any] = dict.fromkeys(RECORD_FIELDS)
    scale = 1 + 0.1 * seed
    record.update(
        record_id=f"{dataset}-{method}-{arch}-{fraction}-{batch}-{epochs}-{seed}", dataset=dataset, task="multiclass",
        method=method, arch=arch, encoders="cnn+vit" if method == "cass" else arch, backbone={"cnn": "resnet18", "vit": "vit_tiny_patch16_224"}[arch],
        label_fraction=fraction, batch_size=batch, pretrain_epochs=epochs, finetune_epochs=5, image_size=32,
        seed=seed, precision="32", status="ok", f1_macro=f1, f1_micro=f1 + 0.05, f1_seed_code=f1 + 0.02,
        balanced_accuracy=f1 + 0.03, auroc=0.9, accuracy=f1 + 0.05, config_hash=f"h-{method}",
        device=GPU if gpu else CPU, torch_threads=1, versions={"torch": "2"}, git_commit="abc",
        embedding_collapsed=None if cost is None else False, encoder_params=1e6, eval="finetune", init="random",
        above_chance=True, collapsed=None if cost is None else False, finetune_steps=300,
    )
    if cost is not None:
        record.update(
            pretrain_epoch_time_s=cost["pretrain_epoch_time_s"] * scale, pretrain_time_s=cost["pretrain_epoch_time_s"]
            * scale * epochs, images_per_s=cost["images_per_s"] * scale, flops_per_image=cost["flops_per_image"],
            pretrain_params=cost["pretrain_params"], peak_gpu_mem_mb=cost["mem"] * scale if gpu else None,
            peak_rss_mb=2000.0 + cost["mem"] * scale, embedding_std=0.03,
        )
    return record


def failure(dataset: str, method: str, arch: str, batch: int, status: str, error: str) -> dict[str, Any]:
    """A record of a cell that failed (null metrics and figures)."""
    record = _record(dataset, method, arch, 0.1, batch, 10, 7, float("nan"), None, True)
    record.update(status=status, error=error, record_id=f"failed-{dataset}-{method}-{arch}-{batch}",
                  **dict.fromkeys(("f1_macro", "f1_micro", "f1_seed_code", "balanced_accuracy", "auroc",
                                   "accuracy")))
    return record


def write_records(out: Path, records: list[dict[str, Any]]) -> Path:
    """Writes ``out/records.jsonl`` and returns ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return out


FAILED = [("d1", "dino", "vit", 64, "oom", "OutOfMemoryError: CUDA out of memory (injected)"),
          ("d2", "byol", "cnn", 64, "error", "ValueError: bad | pipe in message")]


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]], str]:
    """The full synthetic grid plus two failures, reported once: (folder, records, returned text)."""
    records = make_records() + [failure(*f) for f in FAILED]
    out = write_records(tmp_path_factory.mktemp("full"), records)
    return out, records, write_report(out).terminal


def _claims(out: Path, column: str = "status") -> dict[str, str]:
    claims = analyse(load_records(out)).claims
    return dict(zip(claims["key"], claims[column]))


def test_the_report_returns_the_analysis_it_was_written_from(tmp_path: Path) -> None:
    out = write_records(tmp_path, make_records())
    report = write_report(out)
    again = analyse(load_records(out), out)
    pd.testing.assert_frame_equal(report.analysis.claims, again.claims)
    assert report.files[0] == out / "report.md" and all(p.is_file() for p in report.files)
    assert report.terminal.endswith("\n") and "report.md" in report.terminal


def test_the_report_does_not_depend_on_how_the_records_are_stored(tmp_path: Path) -> None:
    """Shards interleave their appends and ``records.d/`` is read in file-time order: the same records in another
    order, split between the two forms, give the same report."""
    records = make_records() + [failure(*f) for f in FAILED]
    records[0]["created_at"] = "2026-01-01T00:00:00+00:00"
    ordered = write_records(tmp_path / "ordered", records)
    shuffled = [records[i] for i in np.random.default_rng(1).permutation(len(records))]
    split = write_records(tmp_path / "split", shuffled[: len(shuffled) // 2])
    for record in shuffled[len(shuffled) // 2:]:
        path = split / "records.d" / f"{record['record_id']}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(record))
    assert load_records(split)["record_id"].tolist() == load_records(ordered)["record_id"].tolist()
    assert write_report(split).files[0].read_text() == write_report(ordered).files[0].read_text()


def test_f1_table_matches_an_independent_recomputation(full: tuple[Path, list[dict[str, Any]], str]) -> None:
    out, records, text = full
    analysis = analyse(load_records(out))
    raw = pd.DataFrame(records)
    raw = raw[raw.status == "ok"]
    report = (out / "report.md").read_text()
    assert "batch size 16, 10 pretraining epochs" in report
    for dataset, method, arch, fraction in [("d1", "cass", "cnn", 0.1), ("d2", "byol", "vit", 0.01),
                                            ("d1", "supervised", "vit", 1.0), ("d2", "dino", "cnn", 1.0)]:
        rows = raw[(raw.dataset == dataset) & (raw.method == method) & (raw.arch == arch)
                   & (raw.label_fraction == fraction) & (raw.batch_size.isna() | (raw.batch_size == 16))]
        expected = rows.f1_macro.agg(["mean", "std", "count"])
        cell = (dataset, method, arch, fraction)
        assert analysis.f1.n[cell] == expected["count"] == 2
        assert analysis.f1.mean[cell] == pytest.approx(expected["mean"])
        assert analysis.f1.std[cell] == pytest.approx(expected["std"])
        assert f"{expected['mean']:.3f} ± {expected['std']:.3f} (n=2)" in report
    best = ("d1", "cass", "cnn", 0.1)
    assert f"**{analysis.f1.mean[best]:.3f} ± {analysis.f1.std[best]:.3f} (n=2)**" in report
    assert "## 1. Downstream macro-F1" in text and "Claim checks" in text


def test_main_setting_is_the_papers_batch_size_or_the_one_asked_for(tmp_path: Path) -> None:
    out = write_records(tmp_path / "r", make_records(batch_sizes=(16, 32), epochs=(5, 10)))
    assert analyse(load_records(out)).setting.describe() == "batch size 16, 10 pretraining epochs"
    chosen = analyse(load_records(out), batch_size=32, epochs=5).setting
    assert (chosen.batch_size, chosen.pretrain_epochs) == (32, 5)
    assert main(["report", str(out), "--batch-size", "32", "--epochs", "5"]) == 0
    assert "batch size 32, 5 pretraining epochs" in (out / "report.md").read_text()


def test_cells_at_chance_and_collapsed_runs_are_marked_in_the_f1_table(tmp_path: Path) -> None:
    records = make_records(datasets=("d1",), seeds=(0, 1, 2))
    for record in records:
        if record["method"] == "byol" and record["label_fraction"] == 0.01:
            record["above_chance"] = False
        if record["method"] == "cass":
            record.update(collapsed=True, feature_std_history=[0.05, 1e-4], **{RANK_HISTORY: [8.0, 1.0]})
    out = write_records(tmp_path / "r", records)
    write_report(out)
    table = (out / "report.md").read_text().split("## 1. Downstream")[1].split("###")[0]
    byol = [line for line in table.splitlines() if line.startswith("| d1 ") and "| byol " in line]
    cass = [line for line in table.splitlines() if line.startswith("| d1 ") and "| cass " in line]
    assert len(byol) == 2 and all(line.count("†") == 1 for line in byol)
    assert len(cass) == 2 and all(line.count("‡") == 3 for line in cass)


def test_epoch_robustness_is_measured_with_several_epoch_counts(tmp_path: Path) -> None:
    out = write_records(tmp_path / "r", make_records(batch_sizes=(16,), epochs=(5, 20)))
    assert _claims(out)["d1/e@10%:cnn:dino:5"].startswith("inconclusive — too few seeds (2)")
    write_report(out)
    report = (out / "report.md").read_text()
    assert "## 4. Robustness to pretraining epochs" in report and "epochs 5" in report and "epochs 20" in report
    assert "batch size 16, 20 pretraining epochs" in report


def test_efficiency_ratios_to_dino(tmp_path: Path) -> None:
    out = write_records(tmp_path / "r", make_records())
    costs = analyse(load_records(out)).costs
    cass = ("d1", GPU, 1, 16, 10, "cass", "cnn+vit")
    assert costs.ratio(TIME)[cass] == pytest.approx(10 / (20 + 30))
    assert costs.ratio(FLOPS)[cass] == pytest.approx(1 / (2 + 3))
    assert costs.memory.field == "peak_gpu_mem_mb" and costs.ratio(costs.memory)[cass] == pytest.approx(500 / 400)
    assert costs.ratio(RATE)[cass] == pytest.approx(100 / (1 / (1 / 50 + 1 / 40)))
    assert costs.ratio(PARAMS)[cass] == pytest.approx(17 / (25 + 12))
    assert costs.n(TIME)[cass] == 2 and costs.mean(TIME)[cass] == pytest.approx(10.5)
    assert costs.ratio(TIME)[("d2", GPU, 1, 32, 10, "dino", "vit")] == pytest.approx(1.0)
    assert costs.ratio(TIME)[("d2", GPU, 1, 32, 10, "byol", "vit")] == pytest.approx(27 / 30)
    assert len(costs.index) == 2 * 2 * 5


def test_a_figure_that_was_not_computed_raises_instead_of_reading_as_missing(tmp_path: Path) -> None:
    out = write_records(tmp_path / "r", make_records(datasets=("d1",), seeds=(0,)))
    costs = analyse(load_records(out)).costs
    with pytest.raises(KeyError, match="peak_rss_mb"):
        costs.ratio(memory_quantity("peak_rss_mb"))


def test_cpu_records_report_rss_instead_of_gpu_memory(tmp_path: Path) -> None:
    out = write_records(tmp_path / "r", make_records(gpu=False, datasets=("d1",)))
    analysis = analyse(load_records(out))
    assert analysis.costs.memory.field == "peak_rss_mb"
    rss_ratio = analysis.costs.ratio(analysis.costs.memory)[("d1", CPU, 1, 16, 10, "cass", "cnn+vit")]
    assert rss_ratio == pytest.approx((2000 + 500 * 1.05) / (2000 + 400 * 1.05))
    write_report(out)
    assert "| peak RSS (MB) " in (out / "report.md").read_text()


def test_failures_are_listed_with_their_messages(full: tuple[Path, list[dict[str, Any]], str]) -> None:
    out, _, text = full
    report = (out / "report.md").read_text()
    section = report.split("## 5. Failures")[1].split("## 6.")[0]
    rows = [line for line in section.splitlines() if line.startswith(("| d1 ", "| d2 "))]
    assert len(rows) == 2 and sum("| oom " in r for r in rows) == 1 and sum("| error " in r for r in rows) == 1
    assert "OutOfMemoryError: CUDA out of memory (injected)" in section
    assert "ValueError: bad \\| pipe in message" in section
    assert "2 failed record(s)" in text


def test_collapsed_runs_are_flagged(tmp_path: Path) -> None:
    records = make_records(datasets=("d1",))
    for record in records:
        if record["batch_size"] is not None:
            record.update(feature_std_history=[0.05, 0.04, 0.03], **{RANK_HISTORY: [12.0, 8.0, 6.0]})
        if record["method"] == "dino" and record["batch_size"] == 16 and record["arch"] == "vit":
            record.update(collapsed=True, feature_std_history=[0.05, 0.01, 1e-4], **{RANK_HISTORY: [12.0, 3.0, 1.2]})
    out = write_records(tmp_path / "r", records)
    write_report(out)
    per_seed = pd.read_csv(out / "collapse_per_seed.csv")  # every run's figures beside the report
    collapsed = per_seed[per_seed["collapsed"]]
    assert len(collapsed) == 2 and set(collapsed["method"]) == {"dino"} and set(collapsed["arch"]) == {"vit"}
    assert list(collapsed["rank_before"]) == [12.0] * 2 and list(collapsed["rank_after"]) == pytest.approx([1.2] * 2)
    summary = collapse_table(load_records(out)).cells.set_index(["method", "arch"])
    assert summary.loc[("dino", "vit"), "below 2"] == "2/4" and summary.loc[("dino", "cnn"), "below 2"] == "0/4"
    assert summary.loc[("dino", "vit"), "rank after (lowest)"] == "3.6 (1.2)"  # median of 6.0, 6.0, 1.2, 1.2
    assert summary.loc[("dino", "vit"), "rank kept"] == "30%" and summary.loc[("cass", "cnn"), "rank kept"] == "50%"
    assert "2 of " in (out / "report.md").read_text().split("## 6. Collapse")[1]


def test_every_png_is_linked_and_every_plot_shows_its_series(full: tuple[Path, list[dict[str, Any]], str]) -> None:
    out = full[0]
    report = (out / "report.md").read_text()
    linked = re.findall(r"\]\(([^)]+\.png)\)", report)
    assert sorted(linked) == sorted(path.name for path in out.glob("*.png"))
    for name in linked:
        with Image.open(out / name) as image:
            image.verify()
    plots = write_plots(analyse(load_records(out)), out)
    drawn = {plot.name: set(plot.labels) for plot in plots if plot.note is None}
    assert list(drawn) == linked
    # one epoch count and no feature histories in these records
    assert {plot.name for plot in plots if plot.note} == {"f1_vs_pretrain_epochs.png", "collapse_curves.png"}
    runs = {"cass (cnn+vit)", "dino (cnn)", "dino (vit)", "byol (cnn)", "byol (vit)"}
    encoders = {f"{m} ({a})" for m in ("cass", "dino", "byol") for a in ("cnn", "vit")}
    assert drawn["f1_gain_vs_label_fraction.png"] == {"cass − dino", "cass − byol", "paper's gain"}
    assert drawn["pretraining_time_stacked.png"] == runs
    assert drawn["f1_vs_batch_size.png"] == encoders
    assert drawn["cost_vs_f1.png"] == encoders | {"supervised (cnn)", "supervised (vit)"}
    assert drawn["f1_vs_label_fraction.png"] == {"cass", "dino", "byol", "supervised"}
    assert drawn["time_per_epoch_vs_batch_size.png"] == drawn["memory_vs_batch_size.png"] == runs


def test_cost_ratios_are_taken_within_a_device_never_across(tmp_path: Path) -> None:
    slower = {run: {**figures, "pretrain_epoch_time_s": 3 * figures["pretrain_epoch_time_s"]}
              for run, figures in WIN_COSTS.items()}
    gpu = make_records(datasets=("d1",), batch_sizes=(16,))
    cpu = [{**r, "record_id": f"{r['record_id']}-cpu"}
           for r in make_records(datasets=("d1",), batch_sizes=(16,), costs=slower, gpu=False)]
    both = analyse(load_records(write_records(tmp_path / "both", gpu + cpu)))
    for device in (GPU, CPU):
        assert both.costs.ratio(TIME)[("d1", device, 1, 16, 10, "cass", "cnn+vit")] == pytest.approx(10 / 50)
    per_device = dict(zip(both.claims["key"], both.claims["n"]))  # one row per device, never pooled
    assert per_device[f"d1/b:bs16:ep10:dino@{GPU}"] == per_device[f"d1/b:bs16:ep10:dino@{CPU}"] == 2
    apart = [r for r in gpu if r["method"] in ("cass", "supervised")] + [r for r in cpu if r["method"] in ("dino", "byol")]
    split = analyse(load_records(write_records(tmp_path / "apart", apart)))
    assert np.isnan(split.costs.ratio(TIME)[("d1", GPU, 1, 16, 10, "cass", "cnn+vit")])
    claims = dict(zip(split.claims["key"], split.claims["measured"]))
    assert claims["b:dino"].endswith("on the same device") and claims["c:dino"].endswith("on the same device")


def test_mfu_is_a_column_only_where_a_run_measured_it(tmp_path: Path) -> None:
    cpu = make_records(datasets=("d1",), batch_sizes=(16,), gpu=False)
    assert MFU not in analyse(load_records(write_records(tmp_path / "cpu", cpu))).costs.quantities
    gpu = [{**r, "mfu": 0.25} if r["method"] != "supervised" else r
           for r in make_records(datasets=("d1",), batch_sizes=(16,))]
    out = write_records(tmp_path / "gpu", gpu)
    costs = analyse(load_records(out)).costs
    assert MFU in costs.quantities
    assert costs.mean(MFU)[("d1", GPU, 1, 16, 10, "cass", "cnn+vit")] == pytest.approx(0.25)
    write_report(out)
    report = (out / "report.md").read_text()
    assert "MFU (%)" in report and "25.0" in report


def test_a_thread_count_is_a_cost_setting_of_its_own(tmp_path: Path) -> None:
    records = make_records(datasets=("d1",), batch_sizes=(16,), gpu=False)
    write_report(write_records(tmp_path / "same", records))
    assert "different torch thread counts" not in (tmp_path / "same" / "report.md").read_text()
    mixed = [{**r, "pretrain_threads": 1 if r["seed"] == 0 else 2} for r in records]
    out = write_records(tmp_path / "mixed", mixed)
    costs = analyse(load_records(out)).costs
    one, two = ("d1", CPU, 1, 16, 10, "cass", "cnn+vit"), ("d1", CPU, 2, 16, 10, "cass", "cnn+vit")
    assert costs.n(TIME)[one] == costs.n(TIME)[two] == 1, "runs of different thread counts are never pooled"
    assert costs.mean(TIME)[one] == pytest.approx(10.0) and costs.mean(TIME)[two] == pytest.approx(11.0)
    assert costs.ratio(TIME)[two] == pytest.approx(11 / (22 + 33)), "a ratio compares runs of one thread count"
    write_report(out)
    assert "different torch thread counts (1, 2;" in (out / "report.md").read_text()


def test_supervised_only_records_skip_the_efficiency_plots(tmp_path: Path) -> None:
    out = write_records(tmp_path / "r", make_records(methods=("supervised",), seeds=(0,)))
    write_report(out)
    report = (out / "report.md").read_text()
    assert "no pretraining run measured it" in report and "f1_vs_label_fraction.png" in report
    assert not (out / "memory_vs_batch_size.png").exists()


def test_cli_writes_latex_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = write_records(tmp_path / "r", make_records(datasets=("d1",)) + [failure("d1", "dino", "vit", 64, "oom",
                                                                                  "CUDA out of memory")])
    assert main(["report", str(out), "--format", "latex"]) == 0
    tex = (out / "report.tex").read_text()
    assert tex.startswith("\\documentclass") and "\\begin{tabular}" in tex and "$\\pm$" in tex
    assert "\\includegraphics" in tex and "\\textbf{" in tex and "10\\%" in tex
    assert main(["report", str(out), "--format", "csv"]) == 0
    f1 = pd.read_csv(out / "report_f1_macro.csv")
    assert {"dataset", "method", "arch", "label_fraction", "mean", "std", "n"} <= set(f1.columns)
    assert set(pd.read_csv(out / "report_claims.csv")["key"]) >= {
        "d1/a@1%:cnn:dino", "d1/a@1%:vit:byol", "d1/b:bs16:ep10:dino", "d1/c:bs16:ep10:dino", "d1/d@10%:cnn:dino:32"}
    assert len(pd.read_csv(out / "report_failures.csv")) == 1
    assert "Claim checks" in capsys.readouterr().out


@pytest.mark.parametrize("content", [None, ""])
def test_cli_without_records_exits_2_with_one_line(tmp_path: Path, content: str | None,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    if content is not None:
        (tmp_path / "records.jsonl").write_text(content)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "records.jsonl" in err and "cass_bench run" in err


@pytest.mark.parametrize("folder", ["default", "datasets", "untuned", "robustness"])
def test_committed_report_regenerates_identically(tmp_path: Path, folder: str) -> None:
    committed = Path(__file__).resolve().parents[1] / "results" / folder
    out = tmp_path / folder
    out.mkdir()
    for name in ("records.jsonl", "config.yaml", "tuning.jsonl"):  # the family; the tuning section
        if (committed / name).exists():
            shutil.copy(committed / name, out / name)
    if (committed / "records.d").is_dir():
        shutil.copytree(committed / "records.d", out / "records.d")
    write_report(out)
    assert (out / "report.md").read_text() == (committed / "report.md").read_text()


def test_every_committed_png_is_linked_from_its_report() -> None:
    reports = list((Path(__file__).resolve().parents[1] / "results").rglob("report.md"))
    assert reports
    for report in reports:
        linked = set(re.findall(r"\]\(([^)]+\.png)\)", report.read_text()))
        assert linked == {path.name for path in report.parent.glob("*.png")}, report


def test_data_wait_share_is_shown_per_run_and_warned_about_above_five_percent(tmp_path: Path) -> None:
    records = make_records(datasets=("d1",), seeds=(0,), batch_sizes=(16,))
    for record in records:
        if record.get("pretrain_epoch_time_s") is not None:
            record["data_wait_share"] = 0.12 if (record["method"], record["arch"]) == ("dino", "cnn") else 0.01
    out = write_records(tmp_path / "r", records)
    costs = analyse(load_records(out)).costs
    assert costs.mean(DATA_WAIT)[("d1", GPU, 1, 16, 10, "dino", "cnn")] == pytest.approx(0.12)
    assert data_wait_warnings(costs) == [f"dino cnn on d1 ({GPU}, batch 16, 10 epochs): 12.0%"]
    write_report(out)
    text = (out / "report.md").read_text()
    assert "data wait (%)" in text and "wait ×DINO" not in text
    assert f"WARNING: data wait above 5%, so these times compare loaders: dino cnn on d1 ({GPU}" in text


def test_runs_timed_under_contention_are_named_and_left_out_of_the_time_figures(tmp_path: Path) -> None:
    records = make_records(datasets=("d1",), seeds=(0, 1, 2), batch_sizes=(16,), gpu=False)
    for record in records:
        if record.get("pretrain_epoch_time_s") is not None:
            held_up = (record["method"], record["arch"], record["seed"]) == ("dino", "cnn", 1)
            record["pretrain_cpu_share"] = 0.42 if held_up else 0.98
            ours = record["method"] == "cass"  # CASS's time varies by seed, so the ratio has a spread
            record["pretrain_epoch_time_s"] = 99.0 if held_up else 1.0 + 0.01 * record["seed"] * ours
    out = write_records(tmp_path / "r", records)
    costs = analyse(load_records(out)).costs
    assert costs.mean(TIME)[("d1", CPU, 1, 16, 10, "dino", "cnn")] == pytest.approx(1.0)
    assert costs.n(TIME)[("d1", CPU, 1, 16, 10, "dino", "cnn")] == 2
    write_report(out)
    text = (out / "report.md").read_text()
    assert "1 left out: dino/cnn bs=16 ep=10 seed=1 (CPU share 0.42)." in text
    row = analyse(load_records(out)).claims.set_index("key").loc["d1/b:bs16:ep10:dino"]
    assert row["n"] == 2 and "1 seed left out: a run timed under contention (section 2)" in row["measured"]
    clean = write_records(tmp_path / "clean", [{**r, "pretrain_cpu_share": None} for r in records])
    write_report(clean)
    clean_text = (clean / "report.md").read_text()
    assert "seed left out" not in clean_text and "none left out here" in clean_text


def test_config_lines_warn_only_when_one_dataset_mixes_configs() -> None:
    tuned = pd.DataFrame({"method": ["cass", "cass", "dino", "dino", "byol", "byol"],
                          "dataset": ["d1", "d2"] * 3,
                          "config_hash": ["c", "c", "a1", "a2", "b1", "b2"]})
    assert config_lines(tuned) == [
        "Records of byol, dino hold one config per dataset (config_hash differs only between datasets, as settings "
        "tuned per dataset give); each table cell holds one config."]
    mixed = pd.concat([tuned, pd.DataFrame({"method": ["dino"], "dataset": ["d1"], "config_hash": ["a3"]})])
    lines = config_lines(mixed)
    assert len(lines) == 1 and lines[0].startswith("Warning: records of dino come from several configs on one dataset")
    assert config_lines(tuned.assign(config_hash="same")) == []
