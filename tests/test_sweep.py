"""The sweep engine: grid expansion, sharding, resume after SIGKILL, failures recorded as records."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cass_bench.config.load import load_config
from cass_bench.errors import UserError
from cass_bench.records.identity import expected_ids
from cass_bench.records.store import RecordStore
from cass_bench.run.grid import expand, parse_shard, shard_cells

from .conftest import ROOT, run_cli

TINY = ["--config", "configs/smoke.yaml", "--image-size", "8", "--label-fractions", "0.1,1", "--evals", "finetune",
        "--set", "backbones.vit_patch_size=4"]


def test_grid_expansion_counts_cells_per_method() -> None:
    cfg = load_config(ROOT / "configs/smoke.yaml", {"methods": "cass,dino,byol,supervised", "batch_sizes": "8,16",
                                                   "seeds": "0,1", "pretrain_epochs": "1,2"})
    cells = expand(cfg)
    per_method = {m: sum(c.method == m for c in cells) for m in ("cass", "dino", "byol", "supervised")}
    assert per_method == {"cass": 8, "dino": 16, "byol": 16, "supervised": 4}
    assert all(c.archs == ("cnn", "vit") for c in cells if c.method == "cass")
    assert len({c for c in cells}) == len(cells)
    shards = [shard_cells(cfg, parse_shard(f"{i}/3")) for i in range(3)]
    assert all(shards) and sorted(map(repr, sum(shards, []))) == sorted(map(repr, cells))
    assert not set(map(repr, shards[0])) & set(map(repr, shards[1]))


@pytest.mark.parametrize("text", ["2/2", "a/b", "1", "-1/3"])
def test_bad_shard_is_a_user_error(text: str) -> None:
    with pytest.raises(UserError, match="shard"):
        parse_shard(text)


def _records(out: Path) -> list[dict]:
    return RecordStore(out).load()


def _complete_lines(out: Path) -> list[dict]:
    """The records of every complete line, checking that each parses (a torn last line is allowed)."""
    path = out / "records.jsonl"
    if not path.exists():
        return []
    raw = path.read_bytes()
    return [json.loads(line) for line in raw[: raw.rfind(b"\n") + 1].splitlines()]


def _kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_sigkill_inside_a_cell_then_resume_gives_each_record_once(tmp_path: Path) -> None:
    """A kill at a random moment, then a kill while a cell has written some but not all of its records; resuming
    writes exactly the missing records."""
    out = tmp_path / "out"
    args = [sys.executable, "-m", "cass_bench", "run", "--methods", "cass,supervised", *TINY, "--out", str(out)]
    cfg = load_config(ROOT / "configs/smoke.yaml", {"methods": "cass,supervised", "image_size": 8,
                                                   "label_fractions": "0.1,1", "backbones.vit_patch_size": 4,
                                                   "eval.evals": "finetune", "out": str(out)})
    cells = [set(expected_ids(cell, cfg)) for cell in expand(cfg)]
    expected = set().union(*cells)

    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    time.sleep(random.Random(7).uniform(8, 14))
    if proc.poll() is None:
        _kill(proc)
    _complete_lines(out)

    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    partial: list[set[str]] = []
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        written = {r["record_id"] for r in _complete_lines(out)}
        partial = [ids for ids in cells if 0 < len(ids & written) < len(ids)]
        if partial:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before any cell was caught half-written"
    _kill(proc)
    at_kill = [r["record_id"] for r in _complete_lines(out)]
    assert partial and 0 < len(at_kill) < len(expected)
    assert any(0 < len(ids & set(at_kill)) < len(ids) for ids in cells), "the kill did not interrupt a cell"
    assert len(at_kill) == len(set(at_kill))

    final = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert final.returncode == 0, final.stderr[-2000:]
    records = _records(out)
    ids = [r["record_id"] for r in records]
    assert sorted(ids) == sorted(expected)
    assert set(at_kill) <= set(ids)
    assert all(r["status"] == "ok" for r in records)
    assert (out / "records.jsonl").read_bytes().endswith(b"\n")


def _cell_processes(pid: int) -> list[int]:
    """The ``_cell`` child processes of ``pid``."""
    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        return [c for c in children if b"_cell" in Path(f"/proc/{c}/cmdline").read_bytes()]
    except FileNotFoundError:
        return []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads child processes from Linux /proc")
def test_sigterm_to_the_sweep_ends_its_running_cell_too(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "cass_bench", "run", "--methods", "cass", *TINY, "--out", str(tmp_path / "out")]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not _cell_processes(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        (cell,) = _cell_processes(proc.pid)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 30
        while _alive(cell) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(cell), "the cell's process outlived the sweep"
    finally:
        if proc.poll() is None:
            _kill(proc)


def test_ddp_on_two_cpu_processes_records_the_effective_batch(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli("run", "--methods", "cass", *TINY, "--label-fractions", "1", "--batch-sizes", "8",
                   "--devices", "2", "--strategy", "ddp", "--accelerator", "cpu", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = _records(out)
    assert sorted(r["arch"] for r in records) == ["cnn", "vit"]
    for record in records:
        assert record["status"] == "ok", record["error"]
        assert record["world_size"] == 2 and record["effective_batch_size"] == 16 and record["batch_size"] == 8


def test_init_and_evaluation_are_part_of_every_record_id(tmp_path: Path) -> None:
    cfg = load_config(ROOT / "configs/smoke.yaml", {"methods": "cass,supervised"})
    checkpoint = tmp_path / "encoders.pt"
    checkpoint.write_bytes(b"")
    other = load_config(ROOT / "configs/smoke.yaml", {"methods": "cass,supervised", "init": str(checkpoint)})
    for cell in expand(cfg):
        ids = expected_ids(cell, cfg)
        assert len(ids) == len(set(ids)) == len(cell.archs) * 3 * 3  # archs x label fractions x evaluations
        assert not set(ids) & set(expected_ids(cell, other))


def test_a_shard_that_ends_before_any_record_exists_says_so_and_succeeds(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = run_cli("run", *TINY, "--methods", "cass", "--out", str(out), "--shard", "1/2")
    assert done.returncode == 0, done.stderr
    assert "No records in" in done.stdout and "still running" in done.stdout
    assert not (out / "report.md").exists(), "no report of an empty folder"
