"""MedMNIST (v2/v3) 2D datasets read straight from their ``.npz`` files with numpy (no ``medmnist`` package needed).

Flag facts (task, label names): from ``medmnist.INFO`` when the ``medmnist`` package is installed, which also checks
the file against the official channels (refused on a mismatch) and split sizes (a warning: subsets and other
versions are allowed, but not comparable with the official splits); else from the built-in table :data:`FLAGS`.

File choice: ``<flag>.npz`` holds 28 px images and ``<flag>_<size>.npz`` the 64, 128 and 224 px ones. Among the
files present in the data folder, the loader takes the smallest size >= the configured image size, or else the
largest available; images are then resized to the configured size (grayscale replicated to 3 channels).
The official train/val/test splits are used as they are. Licence: CC BY 4.0 (DermaMNIST: CC BY-NC 4.0).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from cass_bench.data.bundle import MULTICLASS, MULTILABEL, ArrayImages, DatasetBundle, ImageSet
from cass_bench.data.medmnist_info import FlagFacts, facts_from_info, package_info
from cass_bench.errors import UserError, warn

SIZES = (28, 64, 128, 224)
SPLITS = ("train", "val", "test")
_ORGANS = ("bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right", "liver", "lung-left",
           "lung-right", "pancreas", "spleen")

FLAGS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "pathmnist": ("PathMNIST", MULTICLASS, (
        "adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle", "normal colon mucosa",
        "cancer-associated stroma", "colorectal adenocarcinoma epithelium")),
    "chestmnist": ("ChestMNIST", MULTILABEL, (
        "atelectasis", "cardiomegaly", "effusion", "infiltration", "mass", "nodule", "pneumonia", "pneumothorax",
        "consolidation", "edema", "emphysema", "fibrosis", "pleural", "hernia")),
    "dermamnist": ("DermaMNIST", MULTICLASS, (
        "actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma", "benign keratosis-like lesions",
        "dermatofibroma", "melanoma", "melanocytic nevi", "vascular lesions")),
    "octmnist": ("OCTMNIST", MULTICLASS, (
        "choroidal neovascularization", "diabetic macular edema", "drusen", "normal")),
    "pneumoniamnist": ("PneumoniaMNIST", MULTICLASS, ("normal", "pneumonia")),
    "retinamnist": ("RetinaMNIST", MULTICLASS, ("0", "1", "2", "3", "4")),
    "breastmnist": ("BreastMNIST", MULTICLASS, ("malignant", "normal, benign")),
    "bloodmnist": ("BloodMNIST", MULTICLASS, (
        "basophil", "eosinophil", "erythroblast",
        "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)", "lymphocyte", "monocyte",
        "neutrophil", "platelet")),
    "tissuemnist": ("TissueMNIST", MULTICLASS, (
        "Collecting Duct, Connecting Tubule", "Distal Convoluted Tubule", "Glomerular endothelial cells",
        "Interstitial endothelial cells", "Leukocytes", "Podocytes", "Proximal Tubule Segments",
        "Thick Ascending Limb")),
    "organamnist": ("OrganAMNIST", MULTICLASS, _ORGANS),
    "organcmnist": ("OrganCMNIST", MULTICLASS, _ORGANS),
    "organsmnist": ("OrganSMNIST", MULTICLASS, _ORGANS),
}
"""2D flag -> (medmnist class, task, label names). Binary and ordinal (RetinaMNIST) flags are multi-class here."""

FLAGS_3D = ("organmnist3d", "nodulemnist3d", "adrenalmnist3d", "fracturemnist3d", "vesselmnist3d", "synapsemnist3d")


def file_name(flag: str, size: int) -> str:
    """The MedMNIST file name of a flag at a size (``pathmnist.npz``, ``pathmnist_64.npz``)."""
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def choose_file(flag: str, image_size: int, data_dir: Path) -> Path | None:
    """The file to read: the smallest size >= ``image_size`` present, else the largest present, else None."""
    present = [s for s in SIZES if (data_dir / file_name(flag, s)).is_file()]
    if not present:
        return None
    larger = [s for s in present if s >= image_size]
    return data_dir / file_name(flag, min(larger) if larger else max(present))


def _is_3d(flag: str) -> bool:
    return flag in FLAGS_3D or flag.endswith("3d")


def known_flags() -> tuple[str, ...]:
    """The 2D flags: ``medmnist.INFO``'s when the package is installed, then the built-in table's."""
    info = package_info()
    return tuple(f for f in dict.fromkeys([*(info or ()), *FLAGS]) if not _is_3d(f))


def flag_facts(flag: str) -> FlagFacts:
    """A 2D flag's facts, from ``medmnist.INFO`` when the package is installed, else from :data:`FLAGS`.

    Raises:
        UserError: a 3D or unknown flag.
    """
    if _is_3d(flag):
        raise UserError(
            f"MedMNIST flag '{flag}' is a 3D volume dataset, which is not supported; "
            f"use a 2D flag: {', '.join(known_flags())}"
        )
    info = package_info()
    facts = facts_from_info(info[flag]) if info is not None and flag in info else None
    if facts is not None:
        return facts
    if flag not in FLAGS:
        raise UserError(f"unknown MedMNIST flag '{flag}'; use medmnist:<flag> with one of {', '.join(known_flags())}")
    return FlagFacts(*FLAGS[flag])


def _missing_message(flag: str, cls: str, image_size: int, data_dir: Path) -> str:
    size = min((s for s in SIZES if s >= image_size), default=max(SIZES))
    return (
        f"MedMNIST file for '{flag}' not found: expected '{data_dir / file_name(flag, size)}' "
        f"(or {flag}.npz / {flag}_<64|128|224>.npz) in --data-dir '{data_dir}'; copy the file there, or on a "
        f"machine with internet run: pip install medmnist && python -c \"import medmnist; "
        f"medmnist.{cls}(split='train', download=True, root='{data_dir}', size={size})\""
    )


def _read(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as npz:
            missing = [f"{s}_{k}" for s in SPLITS for k in ("images", "labels") if f"{s}_{k}" not in npz.files]
            if missing:
                raise UserError(
                    f"MedMNIST file '{path}' lacks key(s) {', '.join(missing)} (it has {', '.join(npz.files)}); "
                    f"replace it with the official {path.name}"
                )
            return {k: npz[k] for k in npz.files if k.split("_")[0] in SPLITS}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(
            f"MedMNIST file '{path}' cannot be read as .npz ({type(exc).__name__}); re-download {path.name}"
        ) from None


def _split(arrays: dict[str, np.ndarray], split: str, task: str, classes: tuple[str, ...], path: Path,
           image_size: int) -> ImageSet:
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    if images.ndim == 4 and images.shape[-1] != 3:
        raise UserError(f"'{path}' holds 3D volumes {images.shape}; only 2D MedMNIST flags are supported")
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise UserError(
            f"'{path}' {split}_images has dtype {images.dtype} and shape {images.shape}; expected uint8 (N, H, W) "
            "or (N, H, W, 3): replace it with the official file"
        )
    if len(images) == 0:
        raise UserError(f"'{path}' has an empty {split} split; replace it with the official file")
    if 0 in images.shape[1:3]:
        raise UserError(f"'{path}' {split}_images are {images.shape[1]}x{images.shape[2]} pixels (empty images); "
                        "replace it with the official file")
    if len(labels) != len(images):
        raise UserError(
            f"'{path}' has {len(images)} {split} images but {len(labels)} labels; replace it with the official file"
        )
    y = _whole_labels(labels, split, path)
    if task == MULTILABEL:
        if y.shape[1] != len(classes) or not np.isin(y, (0, 1)).all():
            raise UserError(
                f"'{path}' {split}_labels must be 0/1 with {len(classes)} columns, got shape {labels.shape}; "
                "replace it with the official file"
            )
        return ImageSet(ArrayImages(images, image_size), y)
    if y.shape[1] != 1 or y.min() < 0 or y.max() >= len(classes):
        raise UserError(
            f"'{path}' {split}_labels must be one class index in 0..{len(classes) - 1} per image, "
            f"got shape {labels.shape} and range {y.min()}..{y.max()}; replace it with the official file"
        )
    if split == "train" and len(np.unique(y)) < 2:
        raise UserError(f"'{path}' train_labels hold one class only ({classes[int(y[0, 0])]!r}); a classification "
                        "dataset needs at least two classes: replace it with the official file")
    return ImageSet(ArrayImages(images, image_size), y[:, 0])


def _whole_labels(labels: np.ndarray, split: str, path: Path) -> np.ndarray:
    """``labels`` as ``(N, L)`` int64; UserError unless they are numbers that are whole (no truncation)."""
    if labels.dtype.kind not in "biuf":
        raise UserError(f"'{path}' {split}_labels holds {labels.dtype} values, not class numbers; replace it with "
                        "the official file")
    if labels.dtype.kind == "f":
        bad = ~np.isfinite(labels) | (labels != np.round(labels))
        if bad.any():
            raise UserError(f"'{path}' {split}_labels holds {int(bad.sum())} value(s) that are not whole numbers "
                            f"(e.g. {labels[bad].flat[0]:g}); labels are class indices or 0/1: replace it with "
                            "the official file")
    return labels.reshape(len(labels), -1).astype(np.int64)


def _check_against(facts: FlagFacts, arrays: dict[str, np.ndarray], path: Path) -> None:
    """Refuses images whose channels differ from ``facts``; warns when split sizes differ from the official ones."""
    images = arrays["train_images"]
    channels = 3 if images.ndim == 4 else 1
    if facts.channels is not None and channels != facts.channels:
        raise UserError(f"'{path}' holds {channels}-channel images but {facts.source} gives {facts.channels} for this "
                        f"flag; replace it with the official {path.name}")
    if facts.samples is None:
        return
    found = [len(arrays[f"{s}_images"]) for s in SPLITS]
    official = [facts.samples[s] for s in SPLITS]
    if found != official:
        warn(f"'{path}' holds {'/'.join(map(str, found))} train/val/test images, {facts.source} gives "
             f"{'/'.join(map(str, official))} for the official file: a subset or another version, whose results are "
             "not comparable with results on the official splits")


def load_medmnist(flag: str, image_size: int, data_dir: str | Path) -> DatasetBundle:
    """Loads a 2D MedMNIST dataset from ``<data_dir>/<flag>[_<size>].npz``.

    The file read is the one whose size is the smallest >= ``image_size`` among those present, or else the
    largest present (see the module docstring). ChestMNIST is multi-label (14 labels); binary and ordinal
    (RetinaMNIST) flags are read as multi-class.

    Args:
        flag: a 2D MedMNIST flag, e.g. ``pathmnist``.
        image_size: side of the images handed to the models.
        data_dir: folder of ``.npz`` files (``~`` expanded).

    Returns:
        The bundle with the official train/val/test splits.

    Raises:
        UserError: 3D or unknown flag, missing file (the message says how to fetch it), missing keys, bad shapes,
            channels other than the package's ``INFO`` gives.
    """
    facts = flag_facts(flag)
    folder = Path(data_dir).expanduser()
    path = choose_file(flag, image_size, folder)
    if path is None:
        raise UserError(_missing_message(flag, facts.python_class, image_size, folder))
    arrays = _read(path)
    sets = [_split(arrays, s, facts.task, facts.classes, path, image_size) for s in SPLITS]
    _check_against(facts, arrays, path)
    return DatasetBundle(f"medmnist:{flag}", facts.task, facts.classes, *sets)
