"""The encoder factory: offline ImageNet weights, harness checkpoints as init, the small-image stem, seeding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file
from torch import nn

from cass_bench.config.load import load_config
from cass_bench.config.schema import BackboneConfig
from cass_bench.models.encoders import build_encoder, check_backbones, small_stem_applied
from cass_bench.engine.checkpoints import CheckpointCache
from cass_bench.errors import UserError
from cass_bench.records.identity import expected_ids
from cass_bench.run.grid import expand

from .conftest import ROOT, run_cli

CNN, VIT = "resnet18", "vit_tiny_patch16_224"


def write_imagenet_weights(folder: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Stand-in ImageNet checkpoints: seeded 1000-class timm models at their own config, as ``<name>.safetensors``.

    Returns:
        The saved state dicts keyed by timm name.
    """
    saved = {}
    for name in (CNN, VIT):
        torch.manual_seed(123)
        state = {k: v.contiguous() for k, v in timm.create_model(name, num_classes=1000).state_dict().items()}
        save_file(state, str(folder / f"{name}.safetensors"))
        saved[name] = state
    return saved


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, torch.Tensor]]]:
    folder = tmp_path_factory.mktemp("imagenet")
    return folder, write_imagenet_weights(folder)


def _params_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_imagenet_weights_load_from_the_local_folder(imagenet) -> None:  # type: ignore[no-untyped-def]
    folder, saved = imagenet
    backbones = BackboneConfig(weights_dir=str(folder), small_input_stem="false")
    check_backbones(backbones, ("cnn", "vit"), "imagenet")
    cnn = build_encoder("cnn", backbones, 32, seed=0, init="imagenet", start_head=True)
    for key, value in cnn.state_dict().items():
        assert torch.equal(value, saved[CNN][key]), key
    pooled = build_encoder("cnn", backbones, 32, seed=0, init="imagenet")
    assert pooled(torch.randn(2, 3, 32, 32)).shape == (2, 512)
    assert torch.equal(pooled.layer4[1].conv2.weight, saved[CNN]["layer4.1.conv2.weight"])
    vit = build_encoder("vit", backbones, 32, seed=0, init="imagenet", start_head=True)
    assert vit.patch_embed.patch_size == (8, 8)
    for key in ("head.weight", "head.bias", "blocks.0.attn.qkv.weight", "cls_token", "norm.weight"):
        assert torch.equal(vit.state_dict()[key], saved[VIT][key]), key


def test_imagenet_small_stem_is_fresh_and_the_rest_imagenet(imagenet) -> None:  # type: ignore[no-untyped-def]
    folder, saved = imagenet
    backbones = BackboneConfig(weights_dir=str(folder))
    cnn = build_encoder("cnn", backbones, 32, seed=3, init="imagenet")
    assert cnn.conv1.kernel_size == (3, 3) and isinstance(cnn.maxpool, nn.Identity)
    assert torch.equal(cnn.conv1.weight, build_encoder("cnn", backbones, 32, seed=3).conv1.weight)
    assert torch.equal(cnn.layer1[0].conv1.weight, saved[CNN]["layer1.0.conv1.weight"])
    assert torch.equal(cnn.bn1.weight, saved[CNN]["bn1.weight"])


def test_missing_imagenet_file_names_the_file_expected(tmp_path: Path) -> None:
    backbones = BackboneConfig(weights_dir=str(tmp_path))
    expected = str(tmp_path / "resnet18.safetensors")
    for call in (lambda: check_backbones(backbones, ("cnn",), "imagenet"),
                 lambda: build_encoder("cnn", backbones, 32, seed=0, init="imagenet")):
        with pytest.raises(UserError) as err:
            call()
        message = str(err.value)
        assert expected in message and "\n" not in message
        assert "timm.create_model('resnet18', pretrained=True)" in message and "weights_dir" in message
    check_backbones(backbones, ("cnn",), "random")  # random init needs no file


def _trained_states(seed: int = 5) -> dict[str, dict[str, torch.Tensor]]:
    """Encoder state dicts as the harness saves them (pooled-feature models, small stem at 32 px)."""
    return {arch: build_encoder(arch, BackboneConfig(), 32, seed=seed).state_dict() for arch in ("cnn", "vit")}


def test_init_from_a_harness_checkpoint(tmp_path: Path) -> None:
    states = _trained_states()
    path = CheckpointCache(tmp_path).save("cell", {"cell": 1}, states, {"embedding_std": 0.1})
    check_backbones(BackboneConfig(), ("cnn", "vit"), str(path))
    for arch in ("cnn", "vit"):
        encoder = build_encoder(arch, BackboneConfig(), 32, seed=0, init=str(path))
        assert encoder.state_dict().keys() == states[arch].keys()
        assert all(torch.equal(v, states[arch][k]) for k, v in encoder.state_dict().items()), arch
        with_head = build_encoder(arch, BackboneConfig(), 32, seed=0, init=str(path), num_classes=7)
        body = {k: v for k, v in with_head.state_dict().items() if k in states[arch]}
        assert body.keys() == states[arch].keys() and all(torch.equal(v, states[arch][k]) for k, v in body.items())
        assert with_head(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    path.unlink()
    CheckpointCache(tmp_path).save("cell", {"cell": 1}, {"cnn": states["cnn"]}, {})
    with pytest.raises(UserError, match="no 'vit' encoder"):
        build_encoder("vit", BackboneConfig(), 32, seed=0, init=str(path))
    with pytest.raises(UserError, match="no 'vit' encoder"):
        check_backbones(BackboneConfig(), ("cnn", "vit"), str(path))
    with pytest.raises(UserError) as err:  # trained with the small stem, built without it
        build_encoder("cnn", BackboneConfig(small_input_stem="false"), 32, seed=0, init=str(path))
    assert str(path) in str(err.value) and "conv1.weight" in str(err.value)


def test_an_init_checkpoint_is_verified_as_the_cache_verifies_it(tmp_path: Path) -> None:
    states = _trained_states()
    path = CheckpointCache(tmp_path).save("cell", {"cell": 1}, states, {})
    saved = torch.load(path, weights_only=True)
    saved["states"]["cnn"]["layer1.0.conv1.weight"].zero_()
    torch.save(saved, path)
    with pytest.raises(UserError, match=r"init checkpoint '.*cell.pt' fails its content hash \(corrupted\)"):
        check_backbones(BackboneConfig(), ("cnn",), str(path))
    torch.save({"states": states, "measures": {}}, path)
    with pytest.raises(UserError, match="has no key and content hash"):
        build_encoder("cnn", BackboneConfig(), 32, seed=0, init=str(path))


def test_init_from_a_folder_of_safetensors(tmp_path: Path) -> None:
    states = _trained_states()
    save_file({k: v.contiguous() for k, v in states["cnn"].items()}, str(tmp_path / "cnn.safetensors"))
    encoder = build_encoder("cnn", BackboneConfig(), 32, seed=0, init=str(tmp_path))
    assert all(torch.equal(v, states["cnn"][k]) for k, v in encoder.state_dict().items())
    with pytest.raises(UserError) as err:
        build_encoder("vit", BackboneConfig(), 32, seed=0, init=str(tmp_path))
    assert "vit.safetensors" in str(err.value) and str(tmp_path) in str(err.value)
    (tmp_path / "vit.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="cannot read init weights"):
        build_encoder("vit", BackboneConfig(), 32, seed=0, init=str(tmp_path))


def test_small_stem_at_32px_and_imagenet_stem_at_64px() -> None:
    auto = BackboneConfig()
    small = build_encoder("cnn", auto, 32, seed=0)
    assert isinstance(small.conv1, nn.Conv2d) and small.conv1.kernel_size == (3, 3)
    assert small.conv1.stride == (1, 1) and small.conv1.padding == (1, 1) and small.conv1.bias is None
    assert isinstance(small.maxpool, nn.Identity)
    assert _params_equal(small, build_encoder("cnn", auto, 32, seed=0))
    assert not torch.equal(small.conv1.weight, build_encoder("cnn", auto, 32, seed=1).conv1.weight)
    x = torch.randn(2, 3, 32, 32)
    assert small.forward_features(x).shape == (2, 512, 4, 4)
    imagenet_stem = build_encoder("cnn", BackboneConfig(small_input_stem="false"), 32, seed=0)
    assert imagenet_stem.forward_features(x).shape == (2, 512, 1, 1)
    assert imagenet_stem.conv1.kernel_size == (7, 7) and isinstance(imagenet_stem.maxpool, nn.MaxPool2d)
    at_64 = build_encoder("cnn", auto, 64, seed=0)
    assert at_64.conv1.kernel_size == (7, 7) and at_64.conv1.stride == (2, 2)
    assert isinstance(at_64.maxpool, nn.MaxPool2d)
    forced = build_encoder("cnn", BackboneConfig(small_input_stem="true"), 64, seed=0)
    assert forced.conv1.kernel_size == (3, 3)
    assert small_stem_applied("cnn", auto, 32) and not small_stem_applied("cnn", auto, 64)
    assert not small_stem_applied("vit", auto, 32)


def test_small_stem_on_a_cnn_without_a_resnet_stem() -> None:
    auto = BackboneConfig(cnn="mobilenetv3_small_050")
    plain = build_encoder("cnn", auto, 32, seed=0)
    assert not hasattr(plain, "conv1") and not small_stem_applied("cnn", auto, 32)
    forced = BackboneConfig(cnn="mobilenetv3_small_050", small_input_stem="true")
    for call in (lambda: build_encoder("cnn", forced, 32, seed=0), lambda: check_backbones(forced, ("cnn",)),
                 lambda: small_stem_applied("cnn", forced, 32)):
        with pytest.raises(UserError, match="no ResNet stem"):
            call()


def test_classifier_width_does_not_change_the_encoder_weights() -> None:
    for arch in ("cnn", "vit"):
        pooled = build_encoder(arch, BackboneConfig(), 32, seed=0)
        with_head = build_encoder(arch, BackboneConfig(), 32, seed=0, num_classes=1000)
        body = {k: v for k, v in with_head.state_dict().items() if k in pooled.state_dict()}
        assert body.keys() == pooled.state_dict().keys()
        assert all(torch.equal(v, pooled.state_dict()[k]) for k, v in body.items()), arch
        again = build_encoder(arch, BackboneConfig(), 32, seed=0, num_classes=1000)
        assert _params_equal(with_head, again)


@pytest.mark.slow
def test_run_with_imagenet_init_works_offline_and_records_it(imagenet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder, _ = imagenet
    out = tmp_path / "out"
    args = ["run", "--methods", "cass", "--init", "imagenet", "--config", "configs/smoke.yaml", "--image-size", "8", "--label-fractions",
            "1", "--evals", "knn", "--set", f"backbones.weights_dir={folder}", "--out", str(out)]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert len(records) == 2 and {r["init"] for r in records} == {"imagenet"}
    assert all(r["status"] == "ok" for r in records)
    imagenet_ids = {r["record_id"] for r in records}
    before = (out / "records.jsonl").read_text()
    mixed = run_cli(*[a if a != "imagenet" else "random" for a in args])  # another init is another configuration
    assert mixed.returncode == 2 and "its own --out" in mixed.stderr.strip().splitlines()[-1], mixed.stderr[-3000:]
    assert (out / "records.jsonl").read_text() == before
    overrides = {"methods": "cass", "image_size": 8, "label_fractions": "1", "eval.evals": "knn",
                 "backbones.weights_dir": str(folder), "out": str(out)}

    def ids(init: str) -> set[str]:
        cfg = load_config(ROOT / "configs/smoke.yaml", {**overrides, "init": init})
        return {i for cell in expand(cfg) for i in expected_ids(cell, cfg)}

    assert ids("imagenet") == imagenet_ids
    assert imagenet_ids.isdisjoint(ids("random"))  # the init is part of the identity
