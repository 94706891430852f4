"""Cells as submitit jobs: local jobs killed, preempted and resubmitted; SLURM scripts; bad launcher settings."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from cass_bench.cli import main
from cass_bench.config.files import write_resolved
from cass_bench.config.load import load_config
from cass_bench.run.tickets import read_tickets
from cass_bench.engine.logs import PRETRAIN, log_dir
from cass_bench.records.identity import Cell, expected_ids, pretrain_key, record_keys
from cass_bench.records.store import RecordStore
from cass_bench.run.grid import expand

from .conftest import ROOT, run_cli

GRID = ["--config", "configs/smoke.yaml", "--methods", "dino", "--image-size", "8",
        "--label-fractions", "1", "--evals", "finetune"]
GRID_CONFIG = load_config(ROOT / "configs/smoke.yaml", {"methods": "dino", "image_size": 8,
                                                       "label_fractions": "1", "eval.evals": "finetune"})
METRICS = ("f1_macro", "f1_micro", "balanced_accuracy", "accuracy")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _wait_for(predicate, what: str, timeout: float = 900.0):  # noqa: ANN001, ANN202 - test helper
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _started_pretraining(out: Path, job_id: str, cell: Cell) -> int | None:
    """The task process of a local job once its pretraining has begun.

    Lightning creates the run's log folder (``logs/pretrain/<checkpoint key>``) when ``fit`` starts, before the first
    batch; the harness's own folder is the marker, not a library's log line (quiet runs print none).
    """
    if not (out / log_dir(PRETRAIN, pretrain_key(cell, GRID_CONFIG))).is_dir():
        return None
    tasks = _children(int(job_id))
    return tasks[0] if tasks else None


def _by_id(records: list[dict]) -> dict[str, dict]:
    return {r["record_id"]: r for r in records}


@pytest.fixture()
def jobs_out(tmp_path: Path) -> Iterator[Path]:
    """A results folder for local jobs; jobs still running when the test ends are killed."""
    out = tmp_path / "jobs"
    yield out
    for ticket in read_tickets(out).values():
        controller = int(ticket.job_id)
        for pid in [*_children(controller), controller]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_local_jobs_killed_preempted_and_resubmitted_write_the_in_process_records_once(tmp_path: Path,
                                                                                       jobs_out: Path) -> None:
    inprocess, jobs = tmp_path / "inprocess", jobs_out
    proc = run_cli("run", "--launcher", "local", *GRID, "--out", str(inprocess), timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]

    run = [sys.executable, "-m", "cass_bench", "run", "--launcher", "submitit-local", "--wait", *GRID,
           "--out", str(jobs)]
    with (tmp_path / "first.out").open("w") as log:
        first = subprocess.Popen(run, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    tickets = _wait_for(lambda: (t := read_tickets(jobs)) and len(t) == 2 and t, "two submitted jobs")
    by_cell = {t.cell.describe(): t for t in tickets.values()}
    preempted = by_cell["embedded dino/cnn bs=16 ep=1 seed=0"]
    killed = by_cell["embedded dino/vit bs=16 ep=1 seed=0"]
    os.kill(_wait_for(lambda: _started_pretraining(jobs, preempted.job_id, preempted.cell), "dino/cnn pretraining"),
            signal.SIGUSR2)
    os.kill(_wait_for(lambda: _started_pretraining(jobs, killed.job_id, killed.cell), "dino/vit pretraining"),
            signal.SIGKILL)
    first.wait(timeout=1800)
    stdout = (tmp_path / "first.out").read_text()
    assert first.returncode == 0, stdout[-2000:]
    assert "1 cell(s) ended without all their records" in stdout
    assert "requeueing" in (jobs / "jobs" / "logs" / f"{preempted.job_id}_0_log.err").read_text()

    status = run_cli("status", str(jobs))
    assert status.returncode == 0, status.stderr[-2000:]
    assert "2 cells: 1 done, 0 running, 1 failed, 0 pending" in status.stdout
    assert f"job {killed.job_id} ended without a result" in status.stdout

    again = run_cli("run", "--launcher", "submitit-local", "--wait", *GRID, "--out", str(jobs), timeout=1800)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "1 already done, 0 queued or running, 1 to submit" in again.stdout
    assert again.stdout.count("[jobs] submitted ") == 1
    assert "embedded dino/vit bs=16 ep=1 seed=0" in again.stdout

    files = sorted(p.name for p in (jobs / "records.d").iterdir())
    assert not [name for name in files if name.startswith(".")]
    expected, got = _by_id(RecordStore(inprocess).load()), _by_id(RecordStore(jobs).load())
    assert len(files) == len(got) == len(expected) == 2
    assert sorted(got) == sorted(expected)
    assert set(got) == {i for cell in expand(GRID_CONFIG) for i in expected_ids(cell, GRID_CONFIG)}
    for record_id, record in got.items():
        assert record["status"] == "ok"
        for metric in METRICS:
            assert record[metric] == pytest.approx(expected[record_id][metric], abs=0.01)
    done = run_cli("status", str(jobs))
    assert "2 cells: 2 done, 0 running, 0 failed, 0 pending" in done.stdout


def _fake_slurm(bin_dir: Path, calls: Path, sacct_state: str) -> None:
    scripts = {
        "sbatch": f'cp "$1" "{calls}/sbatch_$(ls {calls} | wc -l).sh"\necho "Submitted batch job 4242"\n',
        "srun": "exit 0\n",
        "sacct": f'echo "JobID|State|NodeList"\necho "4242_[0-2]|{sacct_state}|None"\n',
    }
    bin_dir.mkdir()
    calls.mkdir()
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_slurm_array_carries_resources_and_ddp_tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    bin_dir, calls, out = tmp_path / "bin", tmp_path / "calls", tmp_path / "out"
    _fake_slurm(bin_dir, calls, "RUNNING")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    config = tmp_path / "cluster.yaml"
    config.write_text((ROOT / "configs/smoke.yaml").read_text() + "\n".join([
        "launcher: slurm", "slurm:", "  partition: gpu", "  account: lab", "  constraint: a100", "  mem_gb: 64",
        "  timeout_min: 600", "  cpus_per_task: 8", "  array_parallelism: 2", "  setup: ['module load cuda/12']",
        "  additional_parameters: {qos: high}", ""]))
    args = ["run", "--config", str(config), "--methods", "cass,dino", "--accelerator", "gpu", "--devices", "2",
            "--num-nodes", "2", "--strategy", "ddp", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert [line.split()[2] for line in printed.splitlines() if "submitted" in line] == [
        "4242_0:", "4242_1:", "4242_2:"]
    script = (calls / "sbatch_0.sh").read_text()
    for flag in ("--array=0-2%2", "--partition=gpu", "--account=lab", "--constraint=a100", "--mem=64GB",
                 "--time=600", "--nodes=2", "--ntasks-per-node=2", "--gpus-per-node=2", "--cpus-per-task=8",
                 "--qos=high", "--job-name=cass-bench"):
        assert f"#SBATCH {flag}\n" in script
    assert "module load cuda/12\n" in script
    assert f"export PYTHONPATH={ROOT}" in script
    assert "srun --unbuffered" in script and "submitit.core._submit" in script
    assert len(read_tickets(out)) == 3
    saved = json.loads((out / "jobs" / "config.json").read_text())
    assert saved["devices"] == 2 and saved["strategy"] == "ddp" and saved["launcher"] == "slurm"

    assert main(args) == 0
    assert "0 already done, 3 queued or running, 0 to submit" in capsys.readouterr().out
    assert len(list(calls.iterdir())) == 1
    assert main(["status", str(out)]) == 0
    assert "3 cells: 0 done, 3 running, 0 failed, 0 pending" in capsys.readouterr().out


BAD = [
    (["--set", "slurm.partiton=gpu"], "unknown config key 'slurm.partiton'"),
    (["--launcher", "slurm"], "needs sbatch and srun on the PATH"),
    (["--launcher", "slurm", "--set", "slurm.nodes=2"], "slurm.nodes is 2 but num_nodes is 1"),
    (["--set", "launcher=pbs"], "unknown launcher 'pbs'"),
    (["--set", "slurm.additional_parameters.partition=gpu"], "set slurm.partition instead"),
]


@pytest.mark.parametrize(("extra", "message"), BAD, ids=["unknown-key", "no-sbatch", "nodes", "launcher", "dup"])
def test_bad_launcher_settings_exit_2_with_one_line_and_submit_nothing(
        extra: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    out = tmp_path / "out"
    assert main(["run", "--config", str(ROOT / "configs/smoke.yaml"), *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not out.exists()


def test_status_of_a_folder_without_jobs_needs_its_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", str(tmp_path)]) == 2
    assert "pass the config it was run with" in capsys.readouterr().err
    assert main(["status", str(tmp_path), "--config", str(ROOT / "configs/smoke.yaml")]) == 0
    assert "1 cells: 0 done, 0 running, 0 failed, 1 pending" in capsys.readouterr().out


def test_status_of_a_local_run_reads_its_registered_config_and_shows_the_pilot_before_the_plan(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = load_config(ROOT / "configs/smoke.yaml", {"plan.pilot": 2, "plan.cap": 4, "out": str(tmp_path)})
    write_resolved(cfg, tmp_path)
    assert main(["status", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 cells: 0 done, 0 running, 0 failed, 2 pending" in out and "seed=1" in out and "seed=2" not in out
    write_resolved(dataclasses.replace(cfg, seeds=(0, 1, 2), plan=dataclasses.replace(cfg.plan, planned=3)),
                   tmp_path)
    assert main(["status", str(tmp_path)]) == 0
    assert "3 cells: 0 done, 0 running, 0 failed, 3 pending" in capsys.readouterr().out


def test_status_with_the_runs_own_config_reads_the_folders_planned_seeds(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out, given = tmp_path / "out", tmp_path / "given"
    cfg = load_config(ROOT / "configs/smoke.yaml", {"plan.pilot": 2, "plan.cap": 4, "out": str(out)})
    write_resolved(cfg, given)  # the config the user runs with: a plan, no planned seeds yet
    write_resolved(dataclasses.replace(cfg, seeds=(0, 1, 2), plan=dataclasses.replace(cfg.plan, planned=3)), out)
    assert main(["status", str(out), "--config", str(given / "config.yaml")]) == 0
    assert "3 cells: 0 done, 0 running, 0 failed, 3 pending" in capsys.readouterr().out
    assert main(["status", str(out), "--config", str(ROOT / "configs/smoke.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "registered this folder with another 'plan.pilot'" in err


def test_status_shows_the_cell_a_local_sweep_is_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from cass_bench import cli
    from cass_bench.run import sweep
    from cass_bench.run.cell import failure_record

    out = tmp_path / "out"
    cfg = load_config(ROOT / "configs/smoke.yaml", {"methods": "byol", "archs": "cnn", "label_fractions": "1",
                                                    "eval.evals": "knn", "out": str(out)})
    [cell] = expand(cfg)
    seen: list[str] = []

    def child(spec: Path) -> int:
        assert main(["status", str(out)]) == 0
        seen.append(capsys.readouterr().out)
        for key in record_keys(cell, cfg):
            RecordStore(out).append({**failure_record(cell, *key, cfg, "ok", None), "f1_macro": 0.5})
        return 0

    monkeypatch.setattr(sweep, "run_cell_child", child)
    monkeypatch.setattr(cli, "_ending", lambda out: "")
    assert main(["run", "--config", str(ROOT / "configs/smoke.yaml"), "--methods", "byol", "--archs", "cnn",
                 "--label-fractions", "1", "--evals", "knn", "--out", str(out)]) == 0
    assert "1 cells: 0 done, 1 running, 0 failed, 0 pending" in seen[0]
    capsys.readouterr()
    assert main(["status", str(out)]) == 0
    assert "1 cells: 1 done, 0 running, 0 failed, 0 pending" in capsys.readouterr().out
