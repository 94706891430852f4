"""Dataset names -> bundles: the one entry point the protocol uses to get data.

Names: ``embedded`` and ``embedded-multilabel`` (bundled digits, offline), ``fashion[:<train>[/<test>]]``
(Fashion-MNIST's IDX files, see ``cass_bench.data.fashion``), ``medmnist:<flag>`` (a local MedMNIST ``.npz``), or a
path to a dataset ``.yaml`` file (``format: csv`` or ``format: imagefolder``, see ``cass_bench.data.spec``).
Every source applies the same channel policy: grayscale replicated to 3 channels, images resized to the configured
size (``cass_bench.data.bundle.to_rgb``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from cass_bench.data.bundle import DatasetBundle
from cass_bench.data.embedded import embedded, embedded_multilabel
from cass_bench.data.fashion import DEFAULT_TEST, DEFAULT_TRAIN, INSTALL, is_fashion, load_fashion
from cass_bench.data.medmnist import known_flags, load_medmnist
from cass_bench.data.spec import CsvSpec, read_spec
from cass_bench.data.tabular import load_csv, load_imagefolder
from cass_bench.errors import UserError

BUILTIN: dict[str, Callable[[int, int], DatasetBundle]] = {
    "embedded": embedded,
    "embedded-multilabel": embedded_multilabel,
}
MEDMNIST_PREFIX = "medmnist:"
YAML_SUFFIXES = (".yaml", ".yml")


def dataset_names() -> list[str]:
    """The dataset forms ``list`` shows."""
    return [
        "embedded             bundled digits, 10 classes (offline)",
        "embedded-multilabel  pairs of bundled digits, 10 labels (offline)",
        f"fashion              Fashion-MNIST, 10 classes: IDX files in --data-dir or from {INSTALL}; draws "
        f"{DEFAULT_TRAIN} train / {DEFAULT_TEST} test images (fashion:<train>/<test>, or all; alias fashion-mnist)",
        f"medmnist:<flag>      a MedMNIST .npz in --data-dir; flags: {', '.join(known_flags())}",
        "<path>.yaml          a dataset file: format csv (train/test CSVs + image folder) or imagefolder",
    ]


def _is_yaml(name: str) -> bool:
    return name.lower().endswith(YAML_SUFFIXES) or Path(name).expanduser().is_file()


def load_dataset(name: str, image_size: int, data_dir: str, split_seed: int) -> DatasetBundle:
    """Loads a dataset by name.

    Args:
        name: ``embedded``, ``embedded-multilabel``, ``fashion[:<train>[/<test>]]``, ``medmnist:<flag>`` or a path
            to a dataset YAML file.
        image_size: side of the images handed to the models.
        data_dir: folder holding MedMNIST ``.npz`` or Fashion-MNIST IDX files (``~`` expanded).
        split_seed: seed for splits the source does not fix itself.

    Returns:
        The dataset bundle.

    Raises:
        UserError: unknown name, missing or malformed files.
    """
    if name in BUILTIN:
        return BUILTIN[name](image_size, split_seed)
    if is_fashion(name):
        return load_fashion(name, image_size, data_dir, split_seed)
    if name.lower().startswith(MEDMNIST_PREFIX):
        return load_medmnist(name[len(MEDMNIST_PREFIX):].strip().lower(), image_size, data_dir)
    if _is_yaml(name):
        spec = read_spec(name)
        if isinstance(spec, CsvSpec):
            return load_csv(spec, image_size, split_seed)
        return load_imagefolder(spec, image_size, split_seed)
    raise UserError(
        f"unknown dataset '{name}'; use embedded, embedded-multilabel, fashion, medmnist:<flag> or a path to a "
        "dataset .yaml file (see python -m cass_bench list)"
    )


def check_dataset(bundle: DatasetBundle) -> None:
    """Raises UserError if a split is empty."""
    for split in ("train", "val", "test"):
        if len(getattr(bundle, split)) == 0:
            raise UserError(
                f"dataset '{bundle.name}' has an empty {split} split (too few images to split); "
                "add images or give a larger dataset"
            )
