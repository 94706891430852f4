"""The one encoder factory every method uses: timm models, seeded, from random, ImageNet or harness weights.

``build_encoder`` returns a timm model whose forward gives pooled features (``num_classes=0``) or, when asked,
logits of a classifier of ``num_classes`` outputs. Three starting points (``init``):

- ``random``: timm's own initialisation under ``torch.manual_seed(seed)``. The body is always built with
  ``num_classes=0`` first, so the same (arch, seed) gives the same encoder weights in every method whatever
  classifier width it asks for; a classifier is then added from its own seed.
- ``imagenet``: timm's ImageNet weights (``pretrained=True``), from ``backbones.weights_dir/<timm name>.safetensors``
  (or ``.pth``/``.bin``) when that is set, from the hub otherwise. With ``num_classes`` equal to the checkpoint's
  (1000) the classifier is timm's own ImageNet head; with another width timm drops it and the new one is random.
- a path: a checkpoint the harness wrote (``checkpoints/<key>.pt``: ``{"states": {arch: state_dict}, ...}``, or a
  cached formula-driven start, whose states keep their classifiers), verified as the cache verifies it (its content
  hash: :func:`cass_bench.records.checkpoint_file.read_verified`) or a folder of ``cnn.safetensors`` /
  ``vit.safetensors`` state dicts (an exported start's keep their classifiers). The model is built as for
  ``random`` (small-image stem included, so a checkpoint trained with it loads), then the encoder weights are loaded
  strictly; the checkpoint's classifier weights, when it has them, are set aside.
- ``fractal`` is not built here: :mod:`cass_bench.starts` trains (or finds) the start and passes its path.

The classifier: a seeded random linear layer of ``num_classes`` outputs (from the seed alone, for every init), or,
with ``start_head=True``, the start's own classifier when the start has one (timm's ImageNet head, a checkpoint's
classifier), whatever its width; a start without one (``random``, a checkpoint of encoders only) falls back to the
seeded random layer.

Small images: with ``backbones.uses_small_stem(image_size)`` a ResNet-like CNN (``conv1`` a ``Conv2d`` and a
``maxpool``) gets a 3x3 stride-1 ``conv1`` and no max-pool, as lightly and solo-learn do for CIFAR-sized inputs.
The new convolution is initialised from the seed alone (timm's ResNet init, Kaiming normal fan-out), so it is the
same in every method. With ``init: imagenet`` it replaces the ImageNet 7x7 convolution *after* the weights are
loaded, so the first layer is freshly initialised while the rest keeps its ImageNet weights.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from cass_bench.config.schema import ARCHS, INITS, BackboneConfig
from cass_bench.errors import UserError
from cass_bench.records.checkpoint_file import CheckpointProblem, read_verified

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".bin")
HUB_TIMEOUT_S = 5.0
"""Seconds the check before work waits for the Hugging Face Hub to answer."""


def backbone_name(arch: str, backbones: BackboneConfig) -> str:
    """The timm model name configured for an architecture (``cnn`` or ``vit``)."""
    if arch not in ARCHS:
        raise UserError(f"unknown arch '{arch}'; choose from {', '.join(ARCHS)}")
    return backbones.cnn if arch == "cnn" else backbones.vit


def check_backbones(backbones: BackboneConfig, archs: tuple[str, ...], init: str = "random") -> None:
    """Checks up front what building the encoders needs; raises UserError with the fix on the first problem.

    Checks that every configured timm name exists, that a forced small-image stem (``small_input_stem: true``)
    fits the CNN, and what ``init`` needs: the local ImageNet weights file of each backbone when
    ``backbones.weights_dir`` is set, or each arch's encoder weights in a checkpoint path.
    """
    for arch in archs:
        name = backbone_name(arch, backbones)
        if not timm.is_model(name):
            raise UserError(
                f"unknown timm backbone '{name}' for {arch}; pick a name from timm.list_models(), "
                f"e.g. {'resnet18' if arch == 'cnn' else 'vit_tiny_patch16_224'}"
            )
        if arch == "cnn" and backbones.small_input_stem.lower() == "true":
            small_stem_applied(arch, backbones, image_size=0)
        if init == "imagenet" and backbones.weights_dir is not None:
            _local_weights(name, Path(backbones.weights_dir).expanduser())
        elif init == "imagenet":
            _check_hub_weights(name)
        elif init not in INITS:
            _checkpoint_state(init, arch)


def _local_weights(name: str, folder: Path) -> Path:
    """The ImageNet weights file of a timm model in ``folder``; UserError naming the file expected if none."""
    for suffix in WEIGHT_SUFFIXES:
        candidate = folder / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    raise UserError(
        f"no ImageNet weights for '{name}': expected {folder / name}.safetensors (or .pth/.bin); download it on a "
        f"machine with internet (m = timm.create_model('{name}', pretrained=True); "
        f"safetensors.torch.save_file(m.state_dict(), '{name}.safetensors')) and copy it there, "
        "or unset backbones.weights_dir to use the hub"
    )


HUB_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")
"""The weights files timm reads from a Hugging Face Hub repository."""


def _check_hub_weights(name: str) -> None:
    """Checks that timm can get the ImageNet weights of ``name`` from the Hugging Face Hub: already in the local
    cache, or the hub answers (one connection, a few seconds, instead of a minute of download retries in each
    cell); UserError with the offline fix otherwise."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants, try_to_load_from_cache

    with torch.device("meta"):
        repo = timm.create_model(name, pretrained=False, num_classes=0).pretrained_cfg.get("hf_hub_id")
    if not repo:
        return
    repo = repo.split("@")[0]
    if any(isinstance(try_to_load_from_cache(repo, f), str) for f in HUB_FILES):
        return
    endpoint = urlparse(constants.ENDPOINT)
    problem = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else None
    if problem is None:
        try:
            socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=HUB_TIMEOUT_S).close()
        except OSError as exc:
            problem = f"{endpoint.hostname} cannot be reached: {exc.strerror or type(exc).__name__}"
    if problem:
        raise UserError(
            f"no ImageNet weights for '{name}': they are not in the Hugging Face cache and {problem}; download them "
            f"on a machine with internet (m = timm.create_model('{name}', pretrained=True); "
            f"safetensors.torch.save_file(m.state_dict(), '{name}.safetensors')) into a folder named by "
            "backbones.weights_dir, or use init: random"
        )


def _derived_seed(seed: int, tag: str) -> int:
    """A seed for one part of a model (``stem``, ``head``), derived from the run seed alone."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{tag}".encode()).digest()[:7], "big")


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Runs the block under ``torch.manual_seed(seed)`` and restores the global CPU RNG afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _has_resnet_stem(model: nn.Module) -> bool:
    return isinstance(getattr(model, "conv1", None), nn.Conv2d) and hasattr(model, "maxpool")


def _wants_small_stem(arch: str, backbones: BackboneConfig, image_size: int, model: nn.Module) -> bool:
    """Whether ``model`` gets the small-image stem; UserError when it is forced on a CNN without a ResNet stem."""
    if arch != "cnn" or not backbones.uses_small_stem(image_size):
        return False
    if _has_resnet_stem(model):
        return True
    if backbones.small_input_stem.lower() == "true":
        raise UserError(
            f"backbones.small_input_stem is true but '{backbones.cnn}' has no ResNet stem (a Conv2d conv1 and a "
            "maxpool) to replace; set backbones.small_input_stem to auto or false, or pick a ResNet"
        )
    return False


def small_stem_applied(arch: str, backbones: BackboneConfig, image_size: int) -> bool:
    """Whether :func:`build_encoder` gives ``arch`` the small-image stem at ``image_size`` (for the records).

    Builds the model on the meta device (no memory, no weights) to see whether it has a ResNet stem.

    Raises:
        UserError: ``small_input_stem: true`` on a CNN without a ResNet stem.
    """
    if arch != "cnn" or not backbones.uses_small_stem(image_size):
        return False
    with torch.device("meta"):
        model = timm.create_model(backbone_name(arch, backbones), num_classes=0)
    return _wants_small_stem(arch, backbones, image_size, model)


def swap_small_stem(model: nn.Module, seed: int) -> None:
    """Replaces ``conv1`` by a seeded 3x3 stride-1 convolution (same channels and bias) and ``maxpool`` by Identity."""
    old = model.conv1
    generator = torch.Generator().manual_seed(_derived_seed(seed, "small_stem"))
    conv = nn.Conv2d(old.in_channels, old.out_channels, kernel_size=3, stride=1, padding=1, bias=old.bias is not None)
    with torch.no_grad():
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu", generator=generator)
        if conv.bias is not None:
            conv.bias.zero_()
    model.conv1 = conv.to(device=old.weight.device, dtype=old.weight.dtype)
    model.maxpool = nn.Identity()


def _checkpoint_state(init: str, arch: str) -> tuple[dict[str, torch.Tensor], Path]:
    """The encoder state dict of ``arch`` in a harness checkpoint file or a folder of ``<arch>.safetensors``."""
    path = Path(init).expanduser()
    if path.is_dir():
        file = path / f"{arch}.safetensors"
        if not file.is_file():
            held = sorted(p.stem for p in path.glob("*.safetensors"))
            raise UserError(
                f"init folder '{path}' has no {arch}.safetensors (it holds: {', '.join(held) or 'none'}); "
                f"save the {arch} encoder's state dict there with safetensors.torch.save_file, or pretrain it"
            )
        try:
            from safetensors.torch import load_file

            return load_file(str(file)), file
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user problem
            raise UserError(f"cannot read init weights '{file}' ({_first_line(exc)}); "
                            "rewrite it with safetensors.torch.save_file(encoder.state_dict(), ...)") from None
    if not path.is_file():
        raise UserError(f"init '{init}' is neither random, imagenet, fractal nor an existing checkpoint file or "
                        "folder; pass --init random|imagenet|fractal|PATH")
    try:
        states, _ = read_verified(path)
    except CheckpointProblem as exc:
        raise UserError(f"init checkpoint '{path}' {exc}; pass a checkpoints/<key>.pt file this version wrote, or "
                        "a folder of cnn.safetensors / vit.safetensors") from None
    if arch not in states:
        raise UserError(f"init checkpoint '{path}' has no '{arch}' encoder (it holds: "
                        f"{', '.join(sorted(states)) or 'none'}); pass a checkpoint pretrained with {arch}")
    return states[arch], path


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _load_encoder_state(model: nn.Module, state: dict[str, torch.Tensor], file: Path, arch: str) -> None:
    """Loads an encoder state dict strictly; UserError naming the file and the first mismatch."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or mismatched:
        if mismatched:
            k = mismatched[0]
            problem = f"'{k}' is {tuple(state[k].shape)} there but {tuple(own[k].shape)} here"
        elif missing:
            problem = f"{len(missing)} weights missing (first '{missing[0]}')"
        else:
            problem = f"{len(unexpected)} unexpected weights (first '{unexpected[0]}')"
        raise UserError(
            f"init weights '{file}' do not fit the {arch} encoder ({problem}); use the backbones (timm name, "
            "vit_patch_size, small_input_stem) and image size the checkpoint was trained with"
        )
    model.load_state_dict(state, strict=True)


def _split_head(model: nn.Module, state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor],
                                                                            dict[str, torch.Tensor]]:
    """A checkpoint's encoder weights and its classifier's (``<classifier>.*`` keys the pooled model lacks)."""
    classifier = str(getattr(model, "pretrained_cfg", {}).get("classifier") or "")
    own = model.state_dict()
    keys = [k for k in state if classifier and k not in own and k.startswith(classifier + ".")]
    head = {k[len(classifier) + 1:]: state[k] for k in keys}
    return {k: v for k, v in state.items() if k not in keys}, head


def _attach_head(model: nn.Module, head: dict[str, torch.Tensor]) -> None:
    """Gives a pooled timm model back the classifier whose weights are ``head`` (its width from ``weight``)."""
    model.reset_classifier(int(head["weight"].shape[0]))
    model.get_classifier().load_state_dict(head, strict=True)


def vit_arguments(image_size: int, patch_size: int | None) -> dict[str, Any]:
    """The ``timm.create_model`` arguments of a harness ViT: built for ``image_size`` with ``dynamic_img_size`` (so
    DINO's smaller local crops pass through), with ``patch_size`` (None: the model's own)."""
    return {"img_size": image_size, "dynamic_img_size": True, **({"patch_size": patch_size} if patch_size else {})}


def build_encoder(
    arch: str, backbones: BackboneConfig, image_size: int, seed: int, init: str = "random", num_classes: int = 0,
    start_head: bool = False,
) -> nn.Module:
    """Builds the timm model of an architecture, seeded, from random, ImageNet or harness weights.

    ViTs are built for ``image_size`` with ``dynamic_img_size=True`` so smaller crops (DINO's local views)
    pass through too; timm resamples ImageNet patch and position embeddings to the configured patch and image
    size. See the module docstring for the three ``init`` choices and the small-image stem.

    Args:
        arch: ``cnn`` or ``vit``.
        backbones: timm names, ViT patch size, local ImageNet weights folder and small-image stem choice.
        image_size: side of the training images.
        seed: initialisation seed; the same (arch, seed, init) gives the same weights in every method.
        init: ``random``, ``imagenet`` or the path of harness encoder weights (``fractal`` resolved to its path).
        num_classes: 0 for pooled features; otherwise the width of a seeded random classifier kept on the model.
        start_head: keep the start's own classifier instead (timm's ImageNet head, a checkpoint's classifier),
            whatever its width; without one, the seeded random classifier of ``num_classes`` outputs.

    Returns:
        A timm model whose forward returns ``(B, model.num_features)`` (no classifier) or its logits.

    Raises:
        UserError: a missing or unreadable weights file, a checkpoint without the arch or of another shape, or
            a forced small-image stem on a CNN without one.
    """
    name = backbone_name(arch, backbones)
    kwargs: dict[str, object] = vit_arguments(image_size, backbones.vit_patch_size) if arch == "vit" else {}
    if init == "fractal":
        raise ValueError("init 'fractal' is resolved to the cached start's path by cass_bench.starts before "
                         "encoders are built")
    head: dict[str, torch.Tensor] = {}
    if init == "imagenet":
        model = _imagenet_model(name, backbones, seed, start_head, kwargs)
        if start_head:
            return _with_small_stem(model, arch, backbones, image_size, seed)
        model = _with_small_stem(model, arch, backbones, image_size, seed)
    else:
        with _seeded(seed):
            model = timm.create_model(name, num_classes=0, **kwargs)
        model = _with_small_stem(model, arch, backbones, image_size, seed)
        if init != "random":
            state, file = _checkpoint_state(init, arch)
            body, head = _split_head(model, state)
            _load_encoder_state(model, body, file, arch)
    if start_head and head:
        _attach_head(model, head)
    elif num_classes > 0:
        with _seeded(_derived_seed(seed, "classifier")):
            model.reset_classifier(num_classes)
    return model


def _with_small_stem(model: nn.Module, arch: str, backbones: BackboneConfig, image_size: int, seed: int) -> nn.Module:
    if _wants_small_stem(arch, backbones, image_size, model):
        swap_small_stem(model, seed)
    return model


def _imagenet_model(
    name: str, backbones: BackboneConfig, seed: int, keep_head: bool, kwargs: dict[str, object]
) -> nn.Module:
    """timm's ImageNet model (with its own classifier when ``keep_head``, pooled otherwise), offline from
    ``backbones.weights_dir`` when set; UserError naming the file if it fails."""
    source = "the hub"
    if backbones.weights_dir is not None:
        path = _local_weights(name, Path(backbones.weights_dir).expanduser())
        # custom_load (e.g. ViT .npz loaders) does not apply to a state-dict file
        kwargs = {**kwargs, "pretrained_cfg_overlay": {"file": str(path), "custom_load": False}}
        source = f"'{path}'"
    try:
        with _seeded(seed):
            if keep_head:
                return timm.create_model(name, pretrained=True, **kwargs)
            return timm.create_model(name, pretrained=True, num_classes=0, **kwargs)
    except Exception as exc:  # noqa: BLE001 - network, file and shape errors all reach the user the same way
        raise UserError(
            f"could not load ImageNet weights for '{name}' from {source} ({_first_line(exc)}); put the state dict "
            f"timm.create_model('{name}', pretrained=True) gives in backbones.weights_dir as {name}.safetensors, "
            "or use init: random"
        ) from None
