"""One file per record (``records.d/``): whole, unique appends under concurrent writers; readers merge both forms."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import multiprocessing.queues
import multiprocessing.synchronize
from pathlib import Path

from cass_bench.records.files import RECORDS_DIR
from cass_bench.records.store import RecordStore

WRITERS, PER_WRITER = 8, 200


def _record(record_id: str) -> dict:
    payload = hashlib.sha256(record_id.encode()).hexdigest() * 64
    return {"record_id": record_id, "status": "ok", "payload": payload}


def _writer(out: str, index: int, barrier: multiprocessing.synchronize.Barrier,
            written: multiprocessing.queues.Queue) -> None:
    store = RecordStore(out)
    barrier.wait()
    fresh = sum(store.append(_record(f"w{index}-{k}")) for k in range(PER_WRITER))
    neighbour = (index + 1) % WRITERS
    again = sum(store.append(_record(f"w{neighbour}-{k}")) for k in range(0, PER_WRITER, 10))
    written.put((fresh, again))  # a neighbour's id may be taken here first; one of the two appends wins


def test_eight_concurrent_writers_give_every_record_once_and_whole(tmp_path: Path) -> None:
    out = tmp_path / "out"
    RecordStore(out).use_record_files()
    ctx = mp.get_context("fork")
    barrier, written = ctx.Barrier(WRITERS), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(out), i, barrier, written)) for i in range(WRITERS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=300)
    assert [proc.exitcode for proc in procs] == [0] * WRITERS
    counts = [written.get(timeout=5) for _ in procs]
    assert sum(fresh + again for fresh, again in counts) == WRITERS * PER_WRITER
    records = RecordStore(out).load()
    ids = [r["record_id"] for r in records]
    assert len(ids) == len(set(ids)) == WRITERS * PER_WRITER
    assert all(r == _record(r["record_id"]) for r in records)
    assert not [p for p in (out / RECORDS_DIR).iterdir() if p.name.startswith(".")]
    assert not (out / "records.jsonl").exists()


def test_readers_merge_both_forms_and_skip_unpublished_files(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    assert store.append(_record("a")) and store.append(_record("b"))
    store.use_record_files()
    assert not store.append(_record("a"))
    assert store.append(_record("c"))
    (tmp_path / RECORDS_DIR / ".d.0123.tmp").write_bytes(b'{"record_id": "d", "sta')
    assert [r["record_id"] for r in store.load()] == ["a", "b", "c"]
    assert store.ids() == {"a", "b", "c"}
    assert store.remove({"b", "c"}) == 2
    assert [r["record_id"] for r in store.load()] == ["a"]
    assert store.append(_record("c"))
    assert store.ids() == {"a", "c"}
