"""What a person sees: no library chatter, one line per finished cell, a short ending within 120 columns, ``--verbose``
bringing Lightning's lines back, a ``--help`` without internal commands, and committed results that rerun."""

from __future__ import annotations

import logging
import math
import os
import re
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from cass_bench.cli import main
from cass_bench.config.files import resolve_config
from cass_bench.config.load import load_config
from cass_bench.engine import quiet
from cass_bench.run.console import WIDTH, cell_line, claims_table, ending
from tests.conftest import ROOT, run_cli

COMMITTED_RERUN = "results/start-quality"
"""The committed results folder whose ``config.yaml`` is rerun with ``--dry-run`` (nothing may be pending)."""
LIBRARY_LINES = ("GPU available", "TPU available", "💡 Tip", "litlogger", "Loading `train_dataloader`",
                 "`Trainer.fit` stopped", "You defined a `validation_step`", "_pytree.py", "weight_norm.py",
                 "FutureWarning", "site-packages")
"""Lines the libraries print unless told otherwise (issue 26)."""


def _quiet_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in (quiet.VERBOSE_ENV, "CI")}


def test_smoke_run_prints_one_line_per_cell_no_library_lines_and_a_short_ending(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli("run", "--config", "smoke", "--methods", "cass,dino", "--image-size", "8", "--label-fractions",
                   "0.1", "--evals", "finetune", "--out", str(out), env=_quiet_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    assert not [line for line in LIBRARY_LINES if line in text], text[-3000:]
    assert "it/s" not in text and "\r" not in text, "no per-step progress when output is a file"
    lines = proc.stdout.splitlines()
    started = [re.match(r"\[sweep\] cell \d+/\d+: (.+?) \| elapsed", line) for line in lines]
    cells = [m.group(1) for m in started if m]
    results = [line for line in lines if line.startswith("[cell] ")]
    assert len(cells) == 3 and len(results) == len(cells)
    for cell in cells:
        (line,) = [r for r in results if r.startswith(f"[cell] {cell} | ")]
        assert " | ok | " in line and re.search(r"\d+\.\d\d s/epoch", line), line
        assert re.search(r"finetune macro-F1 (cnn|vit) [01]\.\d{3}@10%", line), line
    ending_lines = lines[next(i for i, line in enumerate(lines) if line.startswith("[sweep] finished")) + 1:]
    assert ending_lines and max(len(line) for line in ending_lines) <= WIDTH, ending_lines
    assert ending_lines[0] == "Claim checks:" and "4 records: 4 finished, 0 failed." in ending_lines
    assert any(re.search(r"best.* -?\d+\.\d\d", line) for line in ending_lines), "a measured row against the best other"
    assert f"Report: {out / 'report.md'}" in ending_lines and (out / "report.md").is_file()
    assert any(line.startswith(f"Plots in {out}/: ") for line in ending_lines)
    assert "## " not in "\n".join(ending_lines), "the full report stays in report.md"


def test_verbose_brings_lightning_lines_back(tmp_path: Path) -> None:
    proc = run_cli("run", "--config", "smoke", "--methods", "supervised", "--archs", "cnn", "--image-size", "8",
                   "--label-fractions", "0.1", "--evals", "finetune", "--out", str(tmp_path / "out"), "--verbose",
                   env=_quiet_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    for line in ("GPU available", "`Trainer.fit` stopped: `max_steps=5` reached", "You defined a `validation_step`"):
        assert line in text, line
    assert len([line for line in proc.stdout.splitlines() if line.startswith("[cell] ")]) == 1


def test_help_and_errors_do_not_show_the_internal_cell_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    shown = capsys.readouterr().out
    assert "usage: " in shown and "{run,report,status,list,export," in shown and "_cell" not in shown
    assert "SUPPRESS" not in shown
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-command"])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and "'run'" in error and "_cell" not in error


def _committed_folders() -> list[Path]:
    return sorted(path.parent for path in (ROOT / "results").glob("**/records.jsonl"))


def test_every_committed_results_folder_carries_its_config() -> None:
    folders = _committed_folders()
    assert len(folders) >= 2
    for folder in folders:
        config = folder / "config.yaml"
        assert config.is_file(), f"{folder} has records but no config.yaml"
        cfg = load_config(config)
        assert (ROOT / cfg.out).resolve() == folder.resolve(), (folder, cfg.out)


def test_committed_results_rerun_with_nothing_pending(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The folder's config gives every record it holds: a dry run on the device it was measured on has nothing to do."""
    from cass_bench.records import environment, store

    folder = ROOT / COMMITTED_RERUN
    devices = {r["device"] for r in store.RecordStore(folder).load()}
    assert len(devices) == 1
    measured_on = devices.pop()
    for module in [m for name, m in sys.modules.items() if name.startswith("cass_bench") and m is not None]:
        if getattr(module, "device_name", None) is environment.device_name:
            monkeypatch.setattr(module, "device_name", lambda accelerator="auto": measured_on)
    monkeypatch.chdir(ROOT)
    assert main(["run", "--config", f"{COMMITTED_RERUN}/config.yaml", "--dry-run"]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.search(r"\d+ cells \(\d+ done\), (\d+) records \(0 pending, 0 failed\)", summary), summary


def _record(arch: str, fraction: float, evaluation: str, f1: float, **extra: object) -> dict[str, object]:
    return {"arch": arch, "label_fraction": fraction, "eval": evaluation, "f1_macro": f1, "status": "ok",
            "error": None, "batch_size": 16, "pretrain_epoch_time_s": 2.5, **extra}


def test_cell_line_shows_status_epoch_time_and_macro_f1_per_encoder_and_fraction() -> None:
    records = [_record(a, f, e, f1) for a, f1 in (("vit", 0.25), ("cnn", 0.5)) for f in (1.0, 0.01)
               for e in ("knn", "finetune")]
    line = cell_line("embedded cass/cnn+vit bs=16 ep=1 seed=0", records, 8, ("knn", "finetune"))
    assert line == ("[cell] embedded cass/cnn+vit bs=16 ep=1 seed=0 | ok | 2.50 s/epoch | finetune macro-F1 cnn "
                    "0.500@1% 0.500@100%; vit 0.250@1% 0.250@100%")
    probes = cell_line("x", [_record("cnn", 0.1, "linear", 0.75, batch_size=None, pretrain_epoch_time_s=None)], 1,
                       ("linear", "knn"))
    assert probes == "[cell] x | ok | no pretraining | linear macro-F1 cnn 0.750@10%"


def test_cell_line_of_a_failed_cell_names_the_failure_in_one_line() -> None:
    failed = [{"arch": "vit", "label_fraction": 0.1, "eval": "finetune", "status": "oom",
               "error": "OutOfMemoryError: CUDA out of memory", "batch_size": 16}] * 2
    line = cell_line("embedded dino/vit bs=16 ep=1 seed=0", failed, 3, ("finetune",))
    assert line == ("[cell] embedded dino/vit bs=16 ep=1 seed=0 | failed (2 oom, 1 missing of 3 records): "
                    "OutOfMemoryError: CUDA out of memory")
    partly = cell_line("c", [failed[0], _record("vit", 0.01, "finetune", 0.4)], 2, ("finetune",))
    assert "partly failed (1 oom of 2 records)" in partly and "vit 0.400@1%" in partly and "\n" not in partly


def _claims() -> pd.DataFrame:
    long_claim = "F1 gain over DINO at 100% labels (vit) on a dataset with a long name " * 2
    return pd.DataFrame({
        "key": ["a", "b", "c"], "claim": [long_claim, "less pretraining time than BYOL", "unmeasured claim"],
        "comparator": ["dino", "byol", "byol"], "estimate": [3.878, 0.46, math.nan], "low": [1.4016, 0.38, math.nan],
        "high": [6.355, math.nan, math.nan], "measured": ["x" * 300] * 3, "new_column": [1, 2, 3],
        "status": ["inconclusive: " + "too few seeds " * 10, "contradicted", "not measured"],
    })


def test_claims_table_fits_120_columns_and_counts_rows_not_measured() -> None:
    lines = claims_table(_claims())
    assert max(len(line) for line in lines) <= WIDTH
    assert lines[0].split() == ["claim", "vs", "estimate", "[95%", "interval]", "outcome"]
    assert "3.88 [1.40, 6.36]" in lines[2] and lines[2].endswith("…")
    assert "0.46 " in lines[3] and "contradicted" in lines[3]
    assert lines[-1] == "1 claim row(s) not measured by these records (report.md says why)."
    assert claims_table(pd.DataFrame(columns=["claim", "status"])) == ["No claim rows (see report.md)."]


def test_ending_counts_records_and_names_report_and_plots_within_120_columns(tmp_path: Path) -> None:
    plots = [tmp_path / f"a_rather_long_plot_name_number_{i}.png" for i in range(8)]
    text = ending(_claims(), ["ok"] * 10 + ["oom", "error"], tmp_path / "report.md", plots,
                  ["warning: data wait above 5% of the epoch time, raise --num-workers: dino cnn on embedded: 12.0%"])
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= WIDTH
    assert "12 records: 10 finished, 2 failed (report.md lists them)." in lines
    assert f"Report: {tmp_path / 'report.md'}" in lines
    assert all(p.name in text for p in plots) and sum(line.startswith("warning: ") for line in lines) == 1


def test_interactive_only_on_a_terminal_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(sys, "stdout", SimpleNamespace(isatty=lambda: True))
    assert quiet.interactive()
    monkeypatch.setenv("CI", "true")
    assert not quiet.interactive()
    monkeypatch.delenv("CI")
    monkeypatch.setattr(sys, "stdout", SimpleNamespace(isatty=lambda: False))
    assert not quiet.interactive()


@pytest.mark.parametrize("terminal", [True, False])
def test_pretraining_trainer_draws_its_bar_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch, terminal: bool) -> None:
    from cass_bench.engine import trainer as engine_trainer

    monkeypatch.setattr(engine_trainer, "interactive", lambda: terminal)
    cfg = load_config(resolve_config("smoke"), {"accelerator": "cpu"})
    module = SimpleNamespace(gradient_clip_val=None, sync_batchnorm=False)
    built = engine_trainer.pretrain_trainer(module, cfg, 1, [])
    assert isinstance(built.progress_bar_callback, engine_trainer.RunProgressBar) == terminal
    assert (built.progress_bar_callback is None) == (not terminal)


class _TinyRun(pl.LightningModule):
    gradient_clip_val = None
    sync_batchnorm = False

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.layer(batch[0]).pow(2).mean()
        self.log("pretrain_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_the_bar_on_a_terminal_redraws_in_place_and_is_erased_at_the_end(monkeypatch: pytest.MonkeyPatch,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from cass_bench.engine import trainer as engine_trainer

    monkeypatch.setattr(engine_trainer, "interactive", lambda: True)
    cfg = load_config(resolve_config("smoke"), {"accelerator": "cpu", "pretrain_batches": 12})
    run = engine_trainer.pretrain_trainer(_TinyRun(), cfg, 2, [])
    run.fit(_TinyRun(), DataLoader(TensorDataset(torch.randn(48, 2)), batch_size=4))
    shown = capsys.readouterr().out
    assert "pretraining epoch 2/2: 100%" in shown and "pretrain_loss=" in shown and "v_num" not in shown
    assert "\n" not in shown, "redrawn in place: carriage returns only"
    assert shown.rstrip(" ").endswith("\r"), "erased when the run ends"


def test_library_warnings_are_silenced_at_their_source_and_others_still_show(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(quiet.VERBOSE_ENV, raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet.silence_library_warnings()
        torch.nn.utils.weight_norm(torch.nn.Linear(2, 2))
        warnings.warn("a warning of the harness's own", FutureWarning)
    assert [str(w.message) for w in caught] == ["a warning of the harness's own"]
    monkeypatch.setenv(quiet.VERBOSE_ENV, "1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet.silence_library_warnings()
        torch.nn.utils.weight_norm(torch.nn.Linear(2, 2))
    assert any("weight_norm" in str(w.message) for w in caught)


def test_a_linear_probe_fit_stopped_at_max_iter_is_silent(monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.linear_model import LogisticRegression

    monkeypatch.delenv(quiet.VERBOSE_ENV, raising=False)
    x = np.random.default_rng(0).normal(size=(60, 40))
    y = (x[:, 0] > 0).astype(int)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet.silence_library_warnings()
        LogisticRegression(C=1e6, max_iter=2).fit(x, y)
    assert not caught
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        LogisticRegression(C=1e6, max_iter=2).fit(x, y)
    assert any("failed to converge" in str(w.message) for w in caught), "the fit must not converge for this test"


def test_a_resumed_cell_rewrites_its_log_silently(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pytorch_lightning.loggers import CSVLogger

    def rerun(quieted: bool) -> list[str]:
        first = CSVLogger(tmp_path, name="pretrain", version="key")
        first.log_metrics({"loss": 1.0})
        first.save()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if quieted:
                quiet.silence_library_warnings()
            CSVLogger(tmp_path, name="pretrain", version="key").experiment
        return [str(w.message) for w in caught]

    monkeypatch.delenv(quiet.VERBOSE_ENV, raising=False)
    assert not rerun(quieted=True)
    assert any("exists and is not empty" in m for m in rerun(quieted=False)), "the log must exist for this test"


def test_every_silenced_warning_is_named_with_its_module_and_reason() -> None:
    for item in quiet.LIBRARY_WARNINGS:
        assert re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", item.module) and item.reason and item.message
        assert issubclass(item.category, Warning)


def test_lightning_loggers_at_warning_unless_verbose(monkeypatch: pytest.MonkeyPatch) -> None:
    import pytorch_lightning  # noqa: F401 - its import sets its logger to INFO

    lightning = logging.getLogger("pytorch_lightning")
    monkeypatch.setattr(lightning, "level", logging.INFO)
    monkeypatch.setenv(quiet.VERBOSE_ENV, "1")
    quiet.quiet_lightning()
    assert lightning.level == logging.INFO
    monkeypatch.delenv(quiet.VERBOSE_ENV)
    quiet.quiet_lightning()
    assert lightning.level == logging.WARNING
