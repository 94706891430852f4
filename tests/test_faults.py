"""Faults and hostile state: the output folder, the records file, the checkpoint cache, concurrent runs, a full disk.

Each fault ends in exit status 2 with one line naming the problem and the fix, or is healed with a warning; none
ends in a traceback or in records that only look finished.
"""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from cass_bench.engine import checkpoints
from cass_bench.run import preflight
from cass_bench.engine.checkpoints import CheckpointCache
from cass_bench.cli import main
from cass_bench.config.schema import stable_hash
from cass_bench.config.load import load_config
from cass_bench.errors import UserError
from cass_bench.run.cell import failure_status, run_cell
from cass_bench.records.identity import pretrain_key
from cass_bench.records.store import RecordStore
from cass_bench.run.grid import expand
from tests.test_report import make_records, write_records

ROOT = Path(__file__).resolve().parent.parent
SMOKE = str(ROOT / "configs" / "smoke.yaml")
TINY = ["--methods", "cass", "--config", SMOKE, "--image-size", "8", "--label-fractions", "1", "--evals", "knn"]


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


# --- the output folder, checked before any work -------------------------------------------------------------------

def test_out_naming_an_existing_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    out.write_text("keep me")
    assert main(["run", *TINY, "--out", str(out)]) == 2
    assert "is an existing file, not a folder" in _one_error_line(capsys)
    assert out.read_text() == "keep me"


def test_unwritable_out_is_refused_and_nothing_is_created(capsys: pytest.CaptureFixture[str]) -> None:
    out = Path("/proc/cass-bench-test/out")
    assert main(["run", *TINY, "--out", str(out)]) == 2
    assert f"cannot write to output folder '{out}'" in _one_error_line(capsys)


def test_full_disk_is_refused_before_pretraining(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    real = preflight.shutil.disk_usage
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda path: real(path)._replace(free=10 * 2**20))
    out = tmp_path / "deep" / "out"
    assert main(["run", *TINY, "--out", str(out)]) == 2
    line = _one_error_line(capsys)
    assert "only 10 MB free on the disk" in line and "free disk space or pass another --out" in line
    assert not (tmp_path / "deep").exists()


def test_missing_gpu_and_cpu_fp16_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["run", *TINY, "--out", str(out), "--accelerator", "gpu"]) == 2
    assert "accelerator 'gpu' asks for a CUDA GPU, but torch sees none" in _one_error_line(capsys)
    assert main(["run", *TINY, "--out", str(out), "--precision", "16-mixed"]) == 2
    assert "precision 16-mixed needs a GPU" in _one_error_line(capsys)
    assert not out.exists()


def test_allocation_failures_are_oom() -> None:
    cpu = RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried "
                       "to allocate 1099511627776 bytes")
    assert failure_status(cpu)[0] == "oom"
    assert failure_status(MemoryError())[0] == "oom"
    assert failure_status(ValueError("bad"))[0] == "error"


# --- the records file ---------------------------------------------------------------------------------------------

def _record(i: int) -> str:
    return json.dumps({"record_id": f"r{i}", "status": "ok"}) + "\n"


@pytest.mark.parametrize(("bad", "problem"), [("}{ garbage\n", "is not JSON"),
                                             ('{"record_id": "r9", "stat\n', "is not JSON"),
                                             ("[1, 2]\n", "is not a record (no record_id)")])
def test_a_bad_line_mid_records_is_named_by_the_store(tmp_path: Path, bad: str, problem: str) -> None:
    store = RecordStore(tmp_path)
    (tmp_path / "records.jsonl").write_text(_record(1) + "\n" + bad + _record(2))
    for action in (store.load, store.ids, lambda: store.append({"record_id": "r3"})):
        with pytest.raises(UserError, match=re.escape(f"records.jsonl line 3 {problem}; move it aside or fix it")):
            action()
    assert (tmp_path / "records.jsonl").read_text() == _record(1) + "\n" + bad + _record(2)


def test_run_and_report_name_the_bad_line_and_change_nothing(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = write_records(tmp_path / "out", make_records(datasets=("d1",), seeds=(0,)))
    lines = (out / "records.jsonl").read_text().splitlines(keepends=True)
    lines.insert(16, "not json at all\n")
    text = "".join(lines)
    (out / "records.jsonl").write_text(text)
    assert main(["run", *TINY, "--out", str(out)]) == 2
    assert "records.jsonl line 17 is not JSON; move it aside or fix it" in _one_error_line(capsys)
    assert main(["report", str(out)]) == 2
    assert "records.jsonl line 17 is not JSON; move it aside or fix it" in _one_error_line(capsys)
    assert (out / "records.jsonl").read_text() == text
    assert sorted(p.name for p in out.iterdir()) == ["records.jsonl"]


def test_report_refuses_to_pool_configurations_as_seeds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = make_records(datasets=("d1",), seeds=(0, 1))
    for record in records:
        if record["method"] == "dino" and record["seed"] == 1:
            record["config_hash"] = "h-dino-lr-0.01"
    out = write_records(tmp_path / "mixed", records)
    assert main(["report", str(out)]) == 2
    line = _one_error_line(capsys)
    assert "2 configurations (config_hash h-dino, h-dino-lr-0.01)" in line and "method dino" in line
    assert "one --out per configuration" in line


def test_failed_records_of_another_configuration_do_not_block_the_report(tmp_path: Path) -> None:
    records = make_records(datasets=("d1",), seeds=(0,))
    failed = dict(records[0], record_id="failed", status="error", error="ValueError: lr", config_hash="h-other",
                  f1_macro=None)
    out = write_records(tmp_path / "out", [*records, failed])
    assert main(["report", str(out)]) == 0


# --- the checkpoint cache -----------------------------------------------------------------------------------------

def _payload(n: int) -> dict:
    return {"cell": {"method": "m", "seed": n}, "shared": {"image_size": 16}}


def _states(seed: int) -> checkpoints.States:
    generator = torch.Generator().manual_seed(seed)
    return {"cnn": {"w": torch.randn(4, 3, generator=generator), "n": torch.tensor(3)}}


MEASURES = {"pretrain_time_s": 12.5, "centred_rank_history": {"cnn": [3.0, 2.5]}, "peak_gpu_mem_mb": None}


def _saved(folder: Path, n: int = 0) -> tuple[CheckpointCache, str]:
    cache = CheckpointCache(folder)
    key = stable_hash(_payload(n))
    cache.save(key, _payload(n), _states(n), MEASURES)
    return cache, key


def test_checkpoint_round_trip_is_verified(tmp_path: Path) -> None:
    cache, key = _saved(tmp_path)
    states, measures = cache.load(key, _payload(0))
    assert torch.equal(states["cnn"]["w"], _states(0)["cnn"]["w"]) and measures == MEASURES
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{key}.pt"]


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(data[: len(data) // 2]))


def _tamper(path: Path) -> None:
    saved = torch.load(path, weights_only=True)
    saved["states"]["cnn"]["w"][0, 0] += 1.0
    torch.save(saved, path)


def _legacy(path: Path) -> None:
    torch.save({"states": _states(0), "measures": MEASURES}, path)


@pytest.mark.parametrize(("damage", "problem"), [
    (_corrupt, "is unreadable"),
    (_tamper, "fails its content hash"),
    (_legacy, "has no key and content hash"),
])
def test_a_damaged_checkpoint_is_moved_aside(tmp_path: Path, damage, problem: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    cache, key = _saved(tmp_path)
    damage(cache.path(key))
    assert cache.load(key, _payload(0)) is None
    err = capsys.readouterr().err
    assert f"checkpoint {key}.pt {problem}" in err and f"moved it aside to {key}.bad and pretraining again" in err
    assert "weights_only" not in err
    assert not cache.path(key).exists() and (tmp_path / f"{key}.bad").exists()
    cache.save(key, _payload(0), _states(0), MEASURES)
    assert cache.load(key, _payload(0)) is not None


def test_a_swapped_checkpoint_is_moved_aside(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache, other = _saved(tmp_path, n=1)
    key = stable_hash(_payload(0))
    cache.path(key).write_bytes(cache.path(other).read_bytes())
    assert cache.load(key, _payload(0)) is None
    assert f"holds the pretraining of another cell or setting (key {other})" in capsys.readouterr().err
    assert (tmp_path / f"{key}.bad").exists() and cache.load(other, _payload(1)) is not None


def _full_disk(path: Path, data: bytes) -> None:
    path.write_bytes(data[:100])
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_enospc_while_saving_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoints, "write_file", _full_disk)
    with pytest.raises(OSError, match="No space left on device while saving checkpoint .*--retry-failed"):
        _saved(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_cell_lock_is_exclusive(tmp_path: Path) -> None:
    cache, events = CheckpointCache(tmp_path), []

    def second() -> None:
        with cache.lock("k"):
            events.append("second")

    with cache.lock("k"):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.5)
        events.append("first done")
    thread.join(10)
    assert events == ["first done", "second"]


def test_enospc_while_saving_a_pretraining_is_a_failure_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoints, "write_file", _full_disk)
    out = tmp_path / "out"
    cfg = load_config(SMOKE, {"methods": "cass", "image_size": 8, "label_fractions": "1", "eval.evals": "knn",
                              "out": str(out)})
    cell = expand(cfg)[0]
    run_cell(cell, cfg, RecordStore(out))
    records = RecordStore(out).load()
    assert len(records) == 2 and {r["status"] for r in records} == {"error"}
    assert all("No space left on device while saving checkpoint" in r["error"] for r in records)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [f"{pretrain_key(cell, cfg)}.lock"]


# --- two identical runs started together --------------------------------------------------------------------------

def test_two_identical_runs_started_together_pretrain_once(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [sys.executable, "-m", "cass_bench", "run", *TINY, "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two processes on a small CI machine: one thread each
    procs = [subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outputs = [p.communicate(timeout=1200) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outputs]
    assert sum(o.count("[cache] saved checkpoints/") for o, _ in outputs) == 1
    records = RecordStore(out).load()
    assert sorted(r["arch"] for r in records) == ["cnn", "vit"] and {r["status"] for r in records} == {"ok"}
    saved = sorted((out / "checkpoints").glob("*.pt"))
    assert len(saved) == 1 and not list((out / "checkpoints").glob("*.tmp"))
    measures = torch.load(saved[0], weights_only=True)["measures"]
    for record in records:
        for name in ("pretrain_time_s", "pretrain_epoch_time_s", "images_per_s", "peak_rss_mb"):
            assert record[name] == measures[name], name
