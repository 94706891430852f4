"""Hostile results folders (issue 27): pickles that would run code, records joined twice or cut at a newline, broken
record files, export and report targets that cannot be written. Reading a folder runs nothing it holds; every fault
is one line with exit status 2, or is read as the record it is."""

from __future__ import annotations

import errno
import json
import os
import pickle
import sys
import tempfile
from pathlib import Path
from contextlib import nullcontext as _no_raise
from typing import Any

import pytest
import timm
import torch
from matplotlib.figure import Figure

from cass_bench import report as report_module
from cass_bench.cli import main
from cass_bench.config.schema import to_dict
from cass_bench.config.load import load_config
from cass_bench.engine.checkpoints import CheckpointCache
from cass_bench.records.store import RecordStore
from cass_bench.run.tickets import CONFIG_FILE, Ticket, jobs_dir, write_ticket
from cass_bench.run.grid import expand
from tests.test_report import make_records, write_records

ROOT = Path(__file__).resolve().parent.parent
SMOKE = str(ROOT / "configs" / "smoke.yaml")
KEY = "feedfacecafe"


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("[records] warning")]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def _records() -> list[dict[str, Any]]:
    return make_records(datasets=("d1",), methods=("cass", "dino", "supervised"), batch_sizes=(16,), seeds=(0, 1))


class _Hostile:
    """Unpickling this creates ``marker`` (any code could run in its place)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return open, (str(self.marker), "w")


def _exportable(out: Path, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Gives the first CASS CNN record a checkpoint (a seeded resnet18) and returns it."""
    record = next(r for r in records if r["method"] == "cass" and r["arch"] == "cnn")
    record.update(checkpoint_key=KEY, small_input_stem=False)
    torch.manual_seed(0)
    state = timm.create_model("resnet18", num_classes=0).state_dict()
    CheckpointCache(out / "checkpoints").save(KEY, {"cell": "any"}, {"cnn": state}, {})
    return record


@pytest.fixture()
def folder(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A results folder with records, one exportable checkpoint, and a job whose result pickle would run code."""
    out = tmp_path / "out"
    out.mkdir()
    records = _records()
    record = _exportable(out, records)
    write_records(out, records)
    cfg = load_config(SMOKE, {"methods": "cass", "out": str(out)})
    (jobs_dir(out)).mkdir()
    (jobs_dir(out) / CONFIG_FILE).write_text(json.dumps(to_dict(cfg)))
    logs = jobs_dir(out) / "logs"
    logs.mkdir()
    write_ticket(out, Ticket(expand(cfg)[0], "4242", "submitit-local", str(logs), 0.0))
    (logs / "4242_0_result.pkl").write_bytes(pickle.dumps(("success", _Hostile(tmp_path / "pwned"))))
    return out, record


# --- class 1: no code from a results folder -----------------------------------------------------------------------

def test_status_report_and_export_never_run_a_pickle_of_the_folder(folder: tuple[Path, dict[str, Any]],
                                                                   tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out, record = folder
    marker = tmp_path / "pwned"
    assert main(["status", str(out)]) == 0
    assert "job 4242 finished without writing all its records" in capsys.readouterr().out
    assert main(["report", str(out)]) == 0
    assert main(["export", "--record", record["record_id"], str(out), str(tmp_path / "exported")]) == 0
    assert main(["run", "--config", SMOKE, "--methods", "cass", "--out", str(out), "--dry-run"]) == 0
    assert (tmp_path / "exported" / "cnn.safetensors").is_file()
    assert not marker.exists()
    pickle.loads((out / "jobs" / "logs" / "4242_0_result.pkl").read_bytes())  # the pickle is live: it would have
    assert marker.exists()


def _spec_naming(out: Path, module: str) -> Path:
    """A job spec in ``out/jobs/specs`` for a real cell whose ``method_modules`` names ``module``."""
    from cass_bench.run.sweep import _spec_file

    cfg = load_config(SMOKE, {"methods": "cass", "out": str(out)})
    folder = jobs_dir(out) / "specs"
    folder.mkdir(parents=True)
    spec = _spec_file(folder, expand(cfg)[0], cfg)
    payload = json.loads(spec.read_text())
    spec.write_text(json.dumps({**payload, "method_modules": [module]}))
    return spec


def test_a_job_spec_naming_a_module_imports_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / "beside_the_spec.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = _spec_naming(tmp_path / "out", "beside_the_spec")
    assert main(["_cell", str(spec)]) == 2
    line = _one_line(capsys)
    assert f"cell spec {spec} names method module 'beside_the_spec', which was not given on the command line" in line
    assert not marker.exists() and "beside_the_spec" not in sys.modules
    assert not (tmp_path / "out" / "records.jsonl").exists()


def test_a_job_spec_is_read_only_when_it_is_a_regular_file(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "spec.json"
    os.mkfifo(fifo)
    assert main(["_cell", str(fifo)]) == 2
    assert f"cell spec {fifo} is a FIFO, not a regular file, and is not read" in _one_line(capsys)
    spec = _spec_naming(tmp_path / "out", "tests.toy_method")
    payload = json.loads(spec.read_text())
    spec.write_text(json.dumps({**payload, "cell": {**payload["cell"], "method": "toy"}, "method_modules": []}))
    assert main(["_cell", str(spec)]) == 2
    assert "names method 'toy', which its config does not run" in _one_line(capsys)


# --- class 2: one id is one record; a line that parses is a record ------------------------------------------------

def test_two_different_records_of_one_id_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = _records()
    copy = {**records[2], "f1_macro": 0.1}
    out = write_records(tmp_path / "out", [*records, copy])
    assert main(["report", str(out)]) == 2
    line = _one_line(capsys)
    assert f"lines 3 and {len(records) + 1} hold two different records of one id '{records[2]['record_id']}'" in line
    assert "delete the line that should not count" in line
    assert not (out / "report.md").exists()


def test_a_repeated_identical_record_counts_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = _records()
    out = write_records(tmp_path / "out", [*records, records[0], records[0]])
    assert [r["record_id"] for r in RecordStore(out).load()] == [r["record_id"] for r in records]
    assert len(report_module.load_records(out)) == len(records)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "repeats record" in line]
    assert len(warnings) == 1 and records[0]["record_id"] in warnings[0]


def test_a_complete_last_record_without_its_newline_is_kept(tmp_path: Path) -> None:
    lines = [json.dumps({"record_id": f"r{i}", "status": "ok", "f1_macro": i / 10}) for i in range(3)]
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines))
    store = RecordStore(tmp_path)
    assert [r["record_id"] for r in store.load()] == ["r0", "r1", "r2"]
    assert store.append({"record_id": "r3", "status": "ok"})
    assert path.read_text().splitlines() == [*lines, json.dumps({"record_id": "r3", "status": "ok"})]
    path.write_text(path.read_text() + '{"record_id": "r4", "sta')
    assert store.ids() == {"r0", "r1", "r2", "r3"}
    assert store.remove({"r1"}) == 1
    assert path.read_text() == "\n".join([lines[0], lines[2], json.dumps({"record_id": "r3", "status": "ok"})]) + "\n"


def _corrupt(folder: Path) -> Path:
    path = folder / "records.d" / "abc.json"
    path.write_text('{"record_id": "abc", "sta')
    return path


def _list_valued(folder: Path) -> Path:
    path = folder / "records.d" / "abc.json"
    path.write_text("[1, 2, 3]\n")
    return path


def _misnamed(folder: Path) -> Path:
    path = folder / "records.d" / "abc.json"
    path.write_text(json.dumps({"record_id": "xyz", "status": "ok"}) + "\n")
    return path


def _list_as_id(folder: Path) -> Path:
    path = folder / "records.jsonl"
    path.write_text(path.read_text() + json.dumps({"record_id": ["a", "b"], "status": "ok"}) + "\n")
    return path


BROKEN = [("corrupt record file", _corrupt, "cannot be read as JSON"),
          ("list-valued record file", _list_valued, "is not a record whose record_id is 'abc'"),
          ("record file under another id", _misnamed, "is not a record whose record_id is 'abc'"),
          ("a list as record_id", _list_as_id, "is not a record (its record_id ['a', 'b'] is not a non-empty text)")]


@pytest.mark.parametrize(("case", "damage", "message"), BROKEN, ids=[c[0] for c in BROKEN])
def test_a_broken_record_file_is_one_line_naming_it(case: str, damage: Any, message: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = write_records(tmp_path / "out", _records())
    RecordStore(out).use_record_files()
    path = damage(out)
    for argv in (["report", str(out)], ["run", "--config", SMOKE, "--methods", "cass", "--out", str(out)]):
        assert main(argv) == 2
        line = _one_line(capsys)
        assert str(path) in line and message in line and "move it aside or fix it" in line
    assert not (out / "report.md").exists()


def test_a_records_file_that_is_a_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    (out / "records.jsonl").mkdir(parents=True)
    for argv in (["report", str(out)], ["run", "--config", SMOKE, "--methods", "cass", "--out", str(out)]):
        assert main(argv) == 2
        assert "records.jsonl is not a file (a folder?); move it aside" in _one_line(capsys)


def _link_loop(folder: Path) -> tuple[Path, str]:
    path = folder / "records.d" / "loop.json"
    path.symlink_to(path)
    return path, "is a symbolic link, not a regular file, and is not read"


def _link_to_device(folder: Path) -> tuple[Path, str]:
    path = folder / "records.d" / "zero.json"
    path.symlink_to("/dev/zero")
    return path, "is a symbolic link, not a regular file, and is not read"


def _fifo(folder: Path) -> tuple[Path, str]:
    path = folder / "records.d" / "fifo.json"
    os.mkfifo(path)
    return path, "is a FIFO, not a regular file, and is not read"


def _link_out_of_the_folder(folder: Path) -> tuple[Path, str]:
    elsewhere = folder.parent / "elsewhere.json"
    elsewhere.write_text(json.dumps({"record_id": "far", "status": "ok"}))
    path = folder / "records.d" / "far.json"
    path.symlink_to(elsewhere)
    return path, "is a symbolic link, not a regular file, and is not read"


def _huge(folder: Path) -> tuple[Path, str]:
    path = folder / "records.d" / "huge.json"
    with open(path, "wb") as handle:
        handle.truncate(5 * 2**20)
    return path, f"holds {5 * 2**20} bytes, more than the {4 * 2**20} one may hold"


def _ticket_edit(**changes: Any) -> Any:
    def edit(folder: Path) -> tuple[Path, str]:
        [path] = (jobs_dir(folder) / "cells").glob("*.json")
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
        return path, "is not a ticket this version wrote (a job id, launcher, folder and time of their types)"
    return edit


def _ticket_fifo(folder: Path) -> tuple[Path, str]:
    [path] = (jobs_dir(folder) / "cells").glob("*.json")
    path.unlink()
    os.mkfifo(path)
    return path, "is a FIFO, not a regular file, and is not read"


UNREADABLE = [("record file: a symlink loop", _link_loop), ("record file: a link to /dev/zero", _link_to_device),
              ("record file: a FIFO", _fifo), ("record file: a link out of the folder", _link_out_of_the_folder),
              ("record file: 5 MiB", _huge), ("ticket: folder is a number", _ticket_edit(folder=7)),
              ("ticket: job id is text", _ticket_edit(job_id="rm -rf")), ("ticket: a FIFO", _ticket_fifo)]


@pytest.mark.parametrize(("case", "damage"), UNREADABLE, ids=[c[0] for c in UNREADABLE])
def test_status_and_report_read_only_bounded_regular_files(case: str, damage: Any,
                                                           folder: tuple[Path, dict[str, Any]],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = folder
    RecordStore(out).use_record_files()
    path, message = damage(out)
    commands = [["status", str(out)]] + ([["report", str(out)]] if case.startswith("record") else [])
    for argv in commands:
        assert main(argv) == 2
        line = _one_line(capsys)
        assert str(path) in line and message in line and "move it aside" in line, line
    assert not (out / "report.md").exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["report", "{out}", "--batch-size", "-5"], "report --batch-size -5: no finished pretraining run has it; pass one "
                                                "the records hold (16)"),
    (["report", "{out}", "--epochs", "99"], "report --epochs 99: no finished pretraining run has it at batch size 16"),
    (["status", "{out}", "--lines", "0"], "argument --lines: '0' is not a whole number of 1 or more")])
def test_report_and_status_options_naming_nothing_are_one_line(argv: list[str], message: str,
                                                               folder: tuple[Path, dict[str, Any]],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = folder
    with pytest.raises(SystemExit) if argv[0] == "status" else _no_raise() as caught:
        code = main([a.format(out=out) for a in argv])
    assert (caught.value.code if argv[0] == "status" else code) == 2
    assert message in _one_line(capsys)
    assert not (out / "report.md").exists()


# --- export: overwrite only with --force, a damaged checkpoint, targets that cannot be written ---------------------

def test_export_refuses_to_overwrite_without_force(folder: tuple[Path, dict[str, Any]], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out, record = folder
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "cnn.json").write_text("mine")
    argv = ["export", "--record", record["record_id"], str(out), str(dest)]
    assert main(argv) == 2
    assert "already holds cnn.json; pass --force to overwrite them" in _one_line(capsys)
    assert (dest / "cnn.json").read_text() == "mine" and not (dest / "cnn.safetensors").exists()
    assert main([*argv, "--force"]) == 0
    assert json.loads((dest / "cnn.json").read_text())["source"]["record_id"] == record["record_id"]


def test_export_of_a_truncated_checkpoint_says_how_to_rebuild_it(folder: tuple[Path, dict[str, Any]], tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out, record = folder
    checkpoint = out / "checkpoints" / f"{KEY}.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:5000])
    assert main(["export", "--record", record["record_id"], str(out), str(tmp_path / "dest")]) == 2
    line = _one_line(capsys)
    assert f"checkpoint {checkpoint} of record '{record['record_id']}' cannot be read" in line
    assert f"--rebuild {record['record_id']}" in line
    assert not (tmp_path / "dest").exists()


def _zeroed_inside(folder: Path, record: dict[str, Any]) -> str:
    checkpoint = folder / "checkpoints" / f"{KEY}.pt"
    data = bytearray(checkpoint.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 65536] = bytes(65536)
    checkpoint.write_bytes(bytes(data))
    return f"checkpoint {checkpoint} of record '{record['record_id']}' fails its content hash (corrupted)"


def _another_key(folder: Path, record: dict[str, Any]) -> str:
    checkpoint = folder / "checkpoints" / f"{KEY}.pt"
    states, measures = torch.load(checkpoint, weights_only=True)["states"], {}
    checkpoint.unlink()
    CheckpointCache(folder / "checkpoints").save("0123456789ab", {"cell": "other"}, states, measures)
    (folder / "checkpoints" / "0123456789ab.pt").rename(checkpoint)
    return "holds the pretraining of another cell or setting (key 0123456789ab)"


def _edit_record(**changes: Any) -> Any:
    def edit(folder: Path, record: dict[str, Any]) -> str:
        path = folder / "records.jsonl"
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        for line in lines:
            if line["record_id"] == record["record_id"]:
                line.update(changes)
                for key in [k for k, v in changes.items() if v is _GONE]:
                    line.pop(key)
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        return ""
    return edit


_GONE = object()
EXPORT_DAMAGE = [
    ("64 KiB zeroed inside the checkpoint", _zeroed_inside, None),
    ("another cell's checkpoint under the key", _another_key, None),
    ("backbone renamed to no timm model", _edit_record(backbone="resnet_nonexistent"),
     "names arch 'cnn' and backbone 'resnet_nonexistent', which are not a timm encoder this version builds"),
    ("backbone renamed to another timm model", _edit_record(backbone="resnet34"),
     "names backbone 'resnet34', whose weights are not the ones its checkpoint holds"),
    ("record of an older schema", _edit_record(small_input_stem=_GONE),
     "has no field 'small_input_stem' (written by an older cass-bench, or edited)"),
    ("checkpoint key that is a path", _edit_record(checkpoint_key="../../elsewhere"),
     "has checkpoint_key '../../elsewhere', which is not a key the harness writes"),
]


@pytest.mark.parametrize(("case", "damage", "message"), EXPORT_DAMAGE, ids=[c[0] for c in EXPORT_DAMAGE])
def test_export_verifies_the_checkpoint_and_the_record_as_the_cache_does(
        case: str, damage: Any, message: str | None, folder: tuple[Path, dict[str, Any]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out, record = folder
    expected = damage(out, record) or message
    assert main(["export", "--record", record["record_id"], str(out), str(tmp_path / "dest")]) == 2
    line = _one_line(capsys)
    assert expected in line, line
    assert not (tmp_path / "dest").exists()


@pytest.mark.parametrize("target", ["file", "read-only"])
def test_export_into_a_path_it_cannot_write_is_one_line(target: str, folder: tuple[Path, dict[str, Any]],
                                                        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, record = folder
    if target == "file":
        dest = tmp_path / "a-file"
        dest.write_text("keep me")
        expected = "is a file, not a folder; pass a folder path"
    else:
        dest = Path("/sys/fs")  # a folder no one may write into, root included
        expected = "cannot write the export to '/sys/fs' (Permission denied); pass a writable folder"
    assert main(["export", "--record", record["record_id"], str(out), str(dest)]) == 2
    assert expected in _one_line(capsys)
    if target == "file":
        assert dest.read_text() == "keep me"


# --- report: a read-only folder, a full disk while writing a plot --------------------------------------------------

def test_report_into_a_read_only_folder_is_one_line_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = write_records(tmp_path / "out", _records())
    out.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: the kernel's answer to anyone else, as it gives it
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise PermissionError(errno.EACCES, "Permission denied")
        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    try:
        assert main(["report", str(out)]) == 2
        line = _one_line(capsys)
        assert f"cannot write the report into '{out}' (Permission denied); make the folder writable" in line
        assert sorted(p.name for p in out.iterdir()) == ["records.jsonl"]
    finally:
        out.chmod(0o755)


def test_a_full_disk_while_writing_a_plot_leaves_no_file_and_says_how_to_resume(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    out = write_records(tmp_path / "out", _records())

    def full_disk(self: Figure, fname: Any, *args: Any, **kwargs: Any) -> None:
        Path(fname).write_bytes(b"\x89PNG\r\n")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", full_disk)
    assert main(["report", str(out)]) == 2
    line = _one_line(capsys)
    assert "(No space left on device); free disk space or make the folder writable" in line
    assert f"then run `report {out}` again" in line
    assert sorted(p.name for p in out.iterdir()) == ["records.jsonl"]


# --- export --start: destinations and caches that cannot be written (issue 36) ------------------------------------

def _under_a_file(tmp_path: Path) -> tuple[str, str]:
    (tmp_path / "afile").write_text("keep me")
    return str(tmp_path / "afile" / "sub"), f"is under '{tmp_path / 'afile'}', which is a file, not a folder"


def _under_proc(tmp_path: Path) -> tuple[str, str]:
    return "/proc/cass-bench-export", "cannot create the export folder '/proc/cass-bench-export'"


@pytest.mark.parametrize("where", [_under_a_file, _under_proc], ids=["under a file", "under /proc"])
def test_export_start_into_a_path_it_cannot_create_is_one_line_before_training(
        where: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from cass_bench.starts import export as start_export

    monkeypatch.setenv("CASS_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(start_export, "ensure_start", lambda cfg: pytest.fail("trained before the checks"))
    dest, message = where(tmp_path)
    assert main(["export", "--start", dest, "--config", SMOKE]) == 2
    assert message in _one_line(capsys)


@pytest.mark.parametrize("cache", ["a file", "/proc"])
def test_export_start_with_a_cache_it_cannot_write_is_one_line(cache: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from cass_bench.starts import export as start_export

    root = tmp_path / "afile" / "cache" if cache == "a file" else Path("/proc/.cache/cass_bench")
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("CASS_BENCH_CACHE", str(root))
    monkeypatch.setattr(start_export, "ensure_start", lambda cfg: pytest.fail("trained before the checks"))
    assert main(["export", "--start", str(tmp_path / "dest"), "--config", SMOKE]) == 2
    line = _one_line(capsys)
    assert f"the start cache '{root}'" in line and "set CASS_BENCH_CACHE to a writable folder" in line
    assert not (tmp_path / "dest").exists()


def test_a_full_disk_while_saving_the_start_is_one_line_and_leaves_nothing(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from cass_bench.starts import export as start_export

    def full_disk(cfg: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device while saving checkpoint start.pt")

    monkeypatch.setenv("CASS_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(start_export, "ensure_start", full_disk)
    dest = tmp_path / "new" / "dest"
    assert main(["export", "--start", str(dest), "--config", SMOKE]) == 2
    line = _one_line(capsys)
    assert "cannot save the start (No space left on device while saving checkpoint start.pt); free disk space" in line
    assert not (tmp_path / "new").exists()


def test_report_on_a_folder_whose_config_is_not_utf8_is_one_line(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = write_records(tmp_path / "out", _records())
    (out / "config.yaml").write_bytes(b"methods: [cass]\nout: \xff\xfe\n")
    assert main(["report", str(out)]) == 2
    line = _one_line(capsys)
    assert f"config file '{out / 'config.yaml'}' is not UTF-8 text (byte 21 cannot be decoded); save it as UTF-8" in line
    assert not (out / "report.md").exists()
