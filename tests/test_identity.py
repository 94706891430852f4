"""Record identities are stable: a committed results folder holds exactly the records its config asks for.

Record ids key resume and the committed results; a refactor that changes how a config is hashed, or a config
change without regenerated results, would silently orphan every finished record. The device is part of the
identity, so it is fixed here to the machine the committed records name.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cass_bench.records import identity
from cass_bench.config.load import load_config
from cass_bench.records.identity import config_hash, expected_ids
from cass_bench.run.grid import expand

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "results" / "start-quality"
"""A committed folder produced by the current record schema, complete for its config."""
COMMITTED = pd.read_json(FOLDER / "records.jsonl", lines=True)


@pytest.fixture(autouse=True)
def _committed_device(monkeypatch: pytest.MonkeyPatch) -> None:
    (device,) = COMMITTED["device"].unique()
    monkeypatch.setattr(identity, "device_name", lambda accelerator="auto": device)


def _default_config():
    return load_config(FOLDER / "config.yaml")


def test_the_folder_config_hashes_match_its_committed_records() -> None:
    cfg = _default_config()
    committed = COMMITTED.groupby("method")["config_hash"].unique().map(list).to_dict()
    assert {m: [config_hash(cfg, m)] for m in cfg.methods} == committed


def test_the_folder_config_asks_for_exactly_its_committed_record_ids() -> None:
    cfg = _default_config()
    expected = {record_id for cell in expand(cfg) for record_id in expected_ids(cell, cfg)}
    assert expected == set(COMMITTED["record_id"])


def test_swapping_the_weights_behind_an_init_path_changes_every_key_and_id(tmp_path: Path) -> None:
    from cass_bench.records.identity import pretrain_key

    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "cnn.safetensors").write_bytes(b"first weights")
    cfg = load_config(ROOT / "configs" / "smoke.yaml", {"init": str(weights), "methods": "byol", "archs": "cnn",
                                                        "out": str(tmp_path / "out")})
    cell = expand(cfg)[0]
    before = pretrain_key(cell, cfg), expected_ids(cell, cfg)
    assert (pretrain_key(cell, cfg), expected_ids(cell, cfg)) == before
    (weights / "cnn.safetensors").write_bytes(b"other, longer weights")
    after = pretrain_key(cell, cfg), expected_ids(cell, cfg)
    assert after[0] != before[0] and not set(after[1]) & set(before[1])
    file_cfg = load_config(ROOT / "configs" / "smoke.yaml", {"init": str(weights / "cnn.safetensors"),
                                                             "methods": "byol", "archs": "cnn", "out": "x"})
    assert pretrain_key(cell, file_cfg) not in (before[0], after[0])
