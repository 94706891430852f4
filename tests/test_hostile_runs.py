"""Hostile moments of real runs (issue 27): scores that are not finite, a finished record missing only its newline,
a deleted checkpoint (``run --rebuild``), and Ctrl-C in the middle of a cell."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from cass_bench.cli import main
from cass_bench.config.load import load_config
from cass_bench.evaluation import evaluate
from cass_bench.records.store import RecordStore
from cass_bench.run.cell import run_cell
from cass_bench.run.grid import expand

from .conftest import ROOT, run_cli

SMOKE = str(ROOT / "configs" / "smoke.yaml")
TINY = ["--config", SMOKE, "--methods", "byol", "--archs", "cnn", "--image-size", "8", "--label-fractions", "1",
        "--evals", "knn"]


def test_scores_that_are_not_finite_give_a_failure_record_not_an_ok_one(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(SMOKE, {"methods": "supervised", "archs": "cnn", "label_fractions": "1",
                              "eval.evals": "knn", "out": str(tmp_path)})

    def overflowing_vote(*args: Any, **kwargs: Any) -> np.ndarray:
        scores = evaluate_knn(*args, **kwargs)
        scores[::2] = np.nan  # what exp(similarity / 1e-4) summed in float32 gives on half the rows
        return scores

    evaluate_knn = evaluate.knn_scores
    monkeypatch.setattr(evaluate, "knn_scores", overflowing_vote)
    store = RecordStore(tmp_path)
    run_cell(expand(cfg)[0], cfg, store)
    [record] = store.load()
    assert record["status"] == "error" and record["f1_macro"] is None
    assert "test images got NaN or infinite knn scores" in record["error"] and "--retry-failed" in record["error"]
    assert not (tmp_path / "predictions" / f"{record['record_id']}.npz").exists()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of one BYOL CNN cell (one kNN record and its checkpoint)."""
    out = tmp_path_factory.mktemp("tiny") / "out"
    proc = run_cli("run", *TINY, "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _copy(tiny: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(tiny, copy)
    (copy / "config.yaml").write_text((copy / "config.yaml").read_text().replace(str(tiny), str(copy)))
    return copy


def test_a_finished_record_missing_only_its_newline_is_not_run_again(tiny: Path, tmp_path: Path) -> None:
    out = _copy(tiny, tmp_path)
    records = out / "records.jsonl"
    original = records.read_bytes()
    assert original.endswith(b"\n") and original.count(b"\n") == 1
    records.write_bytes(original[:-1])
    proc = run_cli("run", *TINY, "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert records.read_bytes() == original[:-1]  # the record as it was, not deleted and computed again
    assert "[cache]" not in proc.stdout
    assert RecordStore(out).append({"record_id": "next", "status": "ok"})
    assert records.read_bytes() == original + b'{"record_id": "next", "status": "ok"}\n'


def test_a_deleted_checkpoint_is_rebuilt_with_run_rebuild(tiny: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = _copy(tiny, tmp_path)
    [before] = RecordStore(out).load()
    shutil.rmtree(out / "checkpoints")
    export = ["export", "--record", before["record_id"], str(out), str(tmp_path / "encoder")]
    assert main(export) == 2
    assert f"--rebuild {before['record_id']}" in capsys.readouterr().err
    again = run_cli("run", *TINY, "--out", str(out))
    assert again.returncode == 0 and not (out / "checkpoints" / f"{before['checkpoint_key']}.pt").exists()

    proc = run_cli("run", *TINY, "--out", str(out), "--rebuild", before["record_id"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rebuilding embedded byol/cnn bs=16 ep=1 seed=0: 1 record(s) removed; it pretrains again" in proc.stdout
    [after] = RecordStore(out).load()
    assert after["record_id"] == before["record_id"] and after["status"] == "ok"
    assert (out / "checkpoints" / f"{before['checkpoint_key']}.pt").is_file()
    assert main(export) == 0
    assert (tmp_path / "encoder" / "cnn.safetensors").is_file()


def test_rebuild_of_an_unknown_id_is_refused_before_any_work(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["run", *TINY, "--out", str(out), "--rebuild", "no-such-id"]) == 2
    assert "no cell of this run has checkpoint key or record id 'no-such-id'" in capsys.readouterr().err
    assert not out.exists()


def _cell_child_running_torch(parent: int) -> int | None:
    """The pid of a ``_cell`` child of ``parent`` that has imported torch (it is inside the CLI's main by then)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == parent and b"_cell" in (entry / "cmdline").read_bytes():
                return int(entry.name) if "libtorch" in (entry / "maps").read_text() else None
        except (OSError, IndexError, ValueError):
            continue
    return None


@contextlib.contextmanager
def _foreground_run(out: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A tiny ``run`` into ``out`` as a terminal's foreground job, yielded with the pid of its cell process once
    that process has imported torch; the run's process group is killed on the way out if it is still running.

    A terminal's foreground job has SIGINT at its default, though a suite run as a background job ignores it (and
    Python keeps an inherited SIG_IGN); the exec keeps the pid that the signal goes to.
    """
    argv = [sys.executable, "-c", "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
            "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])",
            "-m", "cass_bench", "run", *TINY, "--out", str(out)]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not (child := _cell_child_running_torch(proc.pid)):
            assert proc.poll() is None and time.monotonic() < deadline, "the cell process never started"
            time.sleep(0.2)
        yield proc, child
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_ctrl_c_prints_one_line_and_exits_130(tmp_path: Path) -> None:
    with _foreground_run(tmp_path / "out") as (proc, _):
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == ("interrupted; finished records are kept: run the same command again "
                                               "to resume")
    assert not [json.loads(line) for line in (tmp_path / "out" / "records.jsonl").read_text().splitlines()]


EXITS = [("SIGTERM from outside", -signal.SIGTERM, (0, 0), "interrupted", "ended by SIGTERM"),
         ("SIGTERM handled by the cell", 128 + signal.SIGTERM, (0, 0), "interrupted", "ended by SIGTERM"),
         ("SIGHUP", -signal.SIGHUP, (0, 0), "interrupted", "ended by SIGHUP"),
         ("SIGKILL by the OOM killer", -signal.SIGKILL, (3, 4), "oom", "killed by the kernel's OOM killer"),
         ("SIGKILL by someone else", -signal.SIGKILL, (3, 3), "interrupted", "ended by SIGKILL"),
         ("SIGKILL, OOM count unreadable", -signal.SIGKILL, (None, None), "interrupted", "ended by SIGKILL"),
         ("a crash", 1, (0, 0), "error", "cell process exited with status 1")]


@pytest.mark.parametrize(("case", "code", "kills", "status", "message"), EXITS, ids=[c[0] for c in EXITS])
def test_how_a_cell_process_ended_is_its_records_status(case: str, code: int, kills: tuple[Any, Any], status: str,
                                                        message: str) -> None:
    from cass_bench.run.exits import exit_outcome

    got, error = exit_outcome(code, *kills)
    assert got == status and message in error


def test_interrupted_records_are_pending_and_a_plain_rerun_runs_them_again(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from cass_bench import cli
    from cass_bench.run import sweep
    from cass_bench.run.cell import failure_record
    from cass_bench.run.plan import plan_sweep
    from cass_bench.records.identity import record_keys

    out = tmp_path / "out"
    argv = ["run", *TINY, "--out", str(out)]
    cfg = load_config(SMOKE, {"methods": "byol", "archs": "cnn", "image_size": 8, "label_fractions": "1",
                              "eval.evals": "knn", "out": str(out)})
    [cell] = expand(cfg)
    codes = iter([-signal.SIGTERM, 0])

    def child(spec: Path) -> int:
        code = next(codes)
        if code == 0:
            for key in record_keys(cell, cfg):
                RecordStore(out).append({**failure_record(cell, *key, cfg, "ok", None), "f1_macro": 0.5})
        return code

    monkeypatch.setattr(sweep, "run_cell_child", child)
    monkeypatch.setattr(cli, "_ending", lambda out: "")
    assert main(argv) == 0
    [record] = RecordStore(out).load()
    assert record["status"] == "interrupted" and "ended by SIGTERM" in record["error"]
    [plan] = plan_sweep(cfg, RecordStore(out).load())
    assert plan.pending == (record["record_id"],) and not plan.failed and plan.state == "pending"
    capsys.readouterr()
    assert main(argv) == 0
    assert "[sweep] running 1 interrupted record(s) again" in capsys.readouterr().out
    [again] = RecordStore(out).load()
    assert again["record_id"] == record["record_id"] and again["status"] == "ok"


def test_sigterm_to_a_cell_process_records_it_as_interrupted(tmp_path: Path) -> None:
    with _foreground_run(tmp_path / "out") as (proc, child):
        os.kill(child, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    [record] = RecordStore(tmp_path / "out").load()
    assert record["status"] == "interrupted", record
    assert record["error"] == "cell process ended by SIGTERM; run the same command again to run it again"
