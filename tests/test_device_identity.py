"""The device is part of a record's identity: what one device measured is never reused as another's."""

from __future__ import annotations

from pathlib import Path

import pytest

from cass_bench.records import identity
from cass_bench.run import cell as cell_module
from cass_bench.config.load import load_config
from cass_bench.run.cell import run_cell
from cass_bench.records.identity import Cell, pretrain_key
from cass_bench.records.environment import device_name
from cass_bench.records.store import RecordStore
from cass_bench.run.grid import expand

ROOT = Path(__file__).resolve().parent.parent
FAKE_GPU = "NVIDIA H100 80GB HBM3"


def test_a_cpu_record_is_not_reused_by_the_same_command_on_another_device(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(ROOT / "configs" / "smoke.yaml", {
        "methods": "supervised", "archs": "cnn", "label_fractions": "1", "eval.evals": "knn", "image_size": 8,
        "accelerator": "cpu", "out": str(tmp_path)})
    store = RecordStore(tmp_path)
    (cell,) = expand(cfg)
    run_cell(cell, cfg, store)
    (cpu_record,) = store.load()
    assert cpu_record["device"] == device_name("cpu") != FAKE_GPU
    cass = Cell("embedded", "cass", ("cnn", "vit"), 16, 1, 0)
    cpu_key = pretrain_key(cass, cfg)

    for module in (identity, cell_module):  # the record's identity and its environment name the same device
        monkeypatch.setattr(module, "device_name", lambda accelerator="auto": FAKE_GPU)
    run_cell(cell, cfg, store)
    records = store.load()
    assert len(records) == 2 and records[0] == cpu_record
    assert records[1]["device"] == FAKE_GPU and records[1]["record_id"] != cpu_record["record_id"]
    assert pretrain_key(cass, cfg) != cpu_key
