"""Parts several pretraining methods share: heads on encoders, momentum networks and schedules, small-image blur."""

from __future__ import annotations

from typing import Callable, TypeVar

from lightly.models.utils import deactivate_requires_grad
from lightly.utils.scheduler import cosine_schedule
from torch import Tensor, nn

from cass_bench.engine.trainer import Progress

M = TypeVar("M", bound=nn.Module)


class EncoderWithHead(nn.Module):
    """A timm encoder followed by a projection head."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))


def frozen_copy(source: nn.Module, target: M) -> M:
    """Loads ``source``'s weights into ``target`` (built afresh with the same shape) and freezes it.

    Momentum networks are built rather than deep-copied because lightly's weight-normalised heads cannot be
    deep-copied.

    Returns:
        ``target``, holding ``source``'s weights and without gradients.
    """
    target.load_state_dict(source.state_dict())
    deactivate_requires_grad(target)
    return target


def momentum_pair(network: Callable[[], M]) -> tuple[M, M]:
    """A trained network and its momentum copy: ``network()`` built twice, the second frozen with the first's weights."""
    online = network()
    return online, frozen_copy(online, network())


def ema_momentum(start: float, end: float, progress: Progress) -> float:
    """EMA momentum at a step: cosine from ``start`` to ``end`` over the run (``start`` when its length is unknown)."""
    if progress.total_steps is None:
        return start
    return cosine_schedule(progress.step, progress.total_steps, start, end)


def blur_sigmas(image_size: int, min_scale: float = 0.25) -> tuple[float, float]:
    """The blur sigma range of lightly's 224 px recipes, scaled to ``image_size`` (scale floored at ``min_scale``)."""
    scale = max(image_size / 224, min_scale)
    return 0.1 * scale, 2.0 * scale
