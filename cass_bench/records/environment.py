"""The environment a record was measured in: the device, the library versions and the harness's commit.

Torch is imported only where a figure needs it, so reading or planning records works without it (there is then no
GPU to name: the device is the CPU).
"""

from __future__ import annotations

import os
import platform
import subprocess
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the harness checkout, or None outside git."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Versions of the libraries whose behaviour the numbers depend on."""
    import lightly
    import pytorch_lightning
    import timm
    import torch
    import torchmetrics

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "lightly": lightly.__version__,
        "pytorch_lightning": pytorch_lightning.__version__,
        "torchmetrics": torchmetrics.__version__,
    }


def _cuda_device() -> str | None:
    """The first CUDA device's name, or None when torch is absent or sees no GPU."""
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def device_name(accelerator: str = "auto") -> str:
    """The compute device in words: the GPU's name, or the CPU with its core count."""
    if accelerator in ("auto", "gpu", "cuda"):
        gpu = _cuda_device()
        if gpu is not None:
            return gpu
    cpu = platform.processor() or platform.machine()
    return f"CPU ({cpu}, {os.cpu_count()} cores)"
