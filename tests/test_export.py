"""Exporting a pretrained encoder: the .safetensors and timm arguments rebuild the same encoder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch

from cass_bench.cli import main
from cass_bench.config.load import load_config
from cass_bench.models.encoders import build_encoder
from cass_bench.run.export import load_exported
from cass_bench.records.store import RecordStore


def _records(out: Path, method: str) -> list[dict]:
    return [r for r in RecordStore(out).load() if r["method"] == method and r["eval"] == "finetune"
            and r["label_fraction"] == 1.0]


def test_exported_encoders_give_the_checkpoints_outputs(smoke_run: Path, tmp_path: Path) -> None:
    cfg = load_config(smoke_run / "config.yaml")
    batch = torch.randn(4, 3, cfg.image_size, cfg.image_size, generator=torch.Generator().manual_seed(0))
    records = _records(smoke_run, "cass")
    assert sorted(r["arch"] for r in records) == ["cnn", "vit"]
    for record in records:
        arch, dest = record["arch"], tmp_path / record["record_id"]
        assert main(["export", str(smoke_run), "--record", record["record_id"], str(dest)]) == 0
        assert sorted(p.name for p in dest.iterdir()) == [f"{arch}.json", f"{arch}.safetensors"]
        state = torch.load(smoke_run / "checkpoints" / f"{record['checkpoint_key']}.pt",
                           weights_only=True)["states"][arch]
        original = build_encoder(arch, cfg.backbones, cfg.image_size, seed=1)
        original.load_state_dict(state)
        expected = original.eval()(batch)
        torch.testing.assert_close(load_exported(dest / f"{arch}.json")(batch), expected)
        spec = json.loads((dest / f"{arch}.json").read_text())
        assert spec["source"]["record_id"] == record["record_id"] and spec["small_input_stem"] == (arch == "cnn")
        if arch == "vit":  # timm alone, as docs/records.md shows
            model = timm.create_model(**spec["timm"], pretrained=True, pretrained_cfg_overlay=dict(
                file=str(dest / spec["weights"]), custom_load=False))
            torch.testing.assert_close(model.eval()(batch), expected)


@pytest.mark.parametrize("record_id", ["no-such-record", None])
def test_export_of_an_unknown_or_unpretrained_record_exits_2(smoke_run: Path, tmp_path: Path, record_id: str | None,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    record_id = record_id or _records(smoke_run, "supervised")[0]["record_id"]
    assert main(["export", str(smoke_run), "--record", record_id, str(tmp_path / "dest")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and record_id in err
    assert not (tmp_path / "dest").exists()
