"""Concurrent writers of one results folder (issue 36): a shard retrying its failed records (``RecordStore.remove``
rewrites ``records.jsonl``) while another shard appends loses nothing, because both take the folder's lock."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from cass_bench.records.store import RecordStore

from .conftest import ROOT

APPENDS = 150
APPENDER = """
import sys
from cass_bench.records.store import RecordStore
store = RecordStore(sys.argv[1])
for i in range(int(sys.argv[2])):
    assert store.append({"record_id": f"shard0-{i}", "status": "ok"})
"""
RETRIER = """
import sys
from pathlib import Path
from cass_bench.records.store import RecordStore
store, k = RecordStore(sys.argv[1]), 0
while not Path(sys.argv[2]).exists() or k < 20:
    store.append({"record_id": f"shard1-{k}", "status": "error"})
    assert store.remove({f"shard1-{k}"}) == 1
    store.append({"record_id": f"shard1-{k}", "status": "ok"})
    k += 1
print(k)
"""


def test_a_retry_rewriting_the_records_while_another_shard_appends_loses_nothing(tmp_path: Path) -> None:
    out, stop = tmp_path / "out", tmp_path / "stop"
    out.mkdir()
    retrier = subprocess.Popen([sys.executable, "-c", RETRIER, str(out), str(stop)], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.3)
    appender = subprocess.run([sys.executable, "-c", APPENDER, str(out), str(APPENDS)], cwd=ROOT, text=True,
                              capture_output=True, timeout=120)
    stop.touch()
    rounds, errors = retrier.communicate(timeout=120)
    assert appender.returncode == 0 and retrier.returncode == 0, appender.stderr[-2000:] + errors[-2000:]
    records = RecordStore(out).load()
    ids = [r["record_id"] for r in records]
    assert len(ids) == len(set(ids))
    assert {f"shard0-{i}" for i in range(APPENDS)} <= set(ids)
    retried = [r for r in records if r["record_id"].startswith("shard1-")]
    assert len(retried) == int(rounds) >= 20 and all(r["status"] == "ok" for r in retried)
    lines = (out / "records.jsonl").read_text().splitlines()
    assert len(lines) == len(ids) and all(json.loads(line)["record_id"] in ids for line in lines)
