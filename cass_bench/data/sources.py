"""Dataset names -> bundles: the one entry point the protocol uses to get data."""

from __future__ import annotations

from cass_bench.data.bundle import DatasetBundle
from cass_bench.data.embedded import embedded
from cass_bench.errors import UserError

BUILTIN = ("embedded",)


def dataset_names() -> list[str]:
    """The dataset names ``list`` shows."""
    return list(BUILTIN) + ["medmnist:<flag>", "<path to dataset .yaml>"]


def load_dataset(name: str, image_size: int, data_dir: str, split_seed: int) -> DatasetBundle:
    """Loads a dataset by name.

    Args:
        name: ``embedded``, ``embedded-multilabel``, ``medmnist:<flag>`` or a path to a dataset YAML file.
        image_size: side of the images handed to the models.
        data_dir: folder holding MedMNIST ``.npz`` files.
        split_seed: seed for splits the source does not fix itself.

    Returns:
        The dataset bundle.

    Raises:
        UserError: unknown name, missing or malformed files.
    """
    if name == "embedded":
        return embedded(image_size, split_seed)
    raise UserError(
        f"unknown dataset '{name}'; use one of {', '.join(dataset_names())}"
    )


def check_dataset(bundle: DatasetBundle) -> None:
    """Raises UserError if a split is empty."""
    for split in ("train", "val", "test"):
        if len(getattr(bundle, split)) == 0:
            raise UserError(f"dataset '{bundle.name}' has an empty {split} split; add images or use a larger dataset")

