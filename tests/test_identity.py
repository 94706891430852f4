"""Record identities are stable: the default config's hashes and record ids stay what committed results hold.

Record ids key resume and the committed results; a refactor that changes how a config is hashed would silently
orphan every finished record. The device is part of the identity, so it is fixed here to the machine the values
were computed on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cass_bench import protocol
from cass_bench.config import load_config
from cass_bench.protocol import config_hash, expected_ids, pretrain_key
from cass_bench.sweep import expand

ROOT = Path(__file__).resolve().parent.parent
DEVICE = "CPU (x86_64, 2 cores)"
DEFAULT_HASHES = {"cass": "5918f00923e0", "dino": "64e891b524a3", "byol": "f0d67a1d156f",
                  "supervised": "ae0c29d961bf"}
DEFAULT_CELLS = {
    "embedded supervised/cnn bs=- ep=0 seed=0": ("a6ba232c28d7", "a78554ec72ea138e"),
    "embedded supervised/vit bs=- ep=0 seed=0": ("c8c434b93a21", "4a9d85ffdc495850"),
    "embedded cass/cnn+vit bs=16 ep=10 seed=0": ("315afb518128", "274d922792893cad"),
    "embedded dino/cnn bs=16 ep=10 seed=0": ("da44c340b1ae", "ec549ac30f396883"),
    "embedded dino/vit bs=16 ep=10 seed=0": ("89c351ee523e", "3182f47e0cefc63a"),
    "embedded byol/cnn bs=16 ep=10 seed=0": ("1e8fe4d675a6", "7483605012f18f40"),
    "embedded byol/vit bs=16 ep=10 seed=0": ("138f2a65eb76", "05d7d9111f6ffaf2"),
}


@pytest.fixture(autouse=True)
def _fixed_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "device_name", lambda accelerator="auto": DEVICE)


def test_default_config_hashes_are_pinned() -> None:
    cfg = load_config(ROOT / "configs" / "default.yaml")
    assert {m: config_hash(cfg, m) for m in DEFAULT_HASHES} == DEFAULT_HASHES


def test_default_config_cells_keep_their_checkpoint_keys_and_record_ids() -> None:
    cfg = load_config(ROOT / "configs" / "default.yaml")
    found = {cell.describe(): (pretrain_key(cell, cfg), expected_ids(cell, cfg)[0]) for cell in expand(cfg)}
    assert found == DEFAULT_CELLS
