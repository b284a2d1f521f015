"""bdx's curve-estimation network for low-light enhancement, and what every low-light network declares.

``net(x)`` maps sRGB values in [0, 1] (N, 3, H, W) to maps that :meth:`CurveEstimator.render` turns into the
enhanced image: for curve networks, curve parameters in (-1, 1) of shape (N, 3 * maps, H, W), applied by
:func:`bdx.lowlight.curves.apply_curves`. bdx's own network (``bdx-lowlight-v1``: 16 channels, an overlapping
max-pool that doubles the receptive field) runs on a copy of fixed size (256 px on its long side), so its curves
do not depend on the input's resolution. Published checkpoints (Zero-DCE, Zero-DCE-improved, Zero-DCE++, SCI)
load through :mod:`bdx.lowlight.published`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from bdx.lowlight.curves import apply_curves
from bdx.models import Architecture, TileNeeds

ARCHITECTURE = "bdx-lowlight-v1"


@dataclass(frozen=True)
class CurveNetConfig:
    """Width of bdx's curve estimator, the long side of the copy it runs on, and its default gamma post-step."""

    width: int = 16
    context_size: int = 256
    gamma: float = 1.0  # post-step applied after the curves unless the user sets one
    global_context: bool = False  # the image-wide branch (see CurveNet)
    members: int = 1  # independently trained networks whose maps are averaged (see CurveNet)

    def __post_init__(self) -> None:
        for name in ("width", "context_size", "members"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, not {getattr(self, name)!r}")
        if not (isinstance(self.gamma, (int, float)) and math.isfinite(self.gamma) and self.gamma > 0):
            raise ValueError(f"gamma must be a positive number, not {self.gamma!r}")


class CurveEstimator(nn.Module):
    """A low-light network: ``net(x)`` gives maps that :meth:`render` turns into the enhanced image, and how it
    is run.

    ``context_size``: the long side of the downscaled copy the maps are estimated on (None: at full resolution,
    tiled, with ``receptive_radius`` pixels of context); ``context_scale`` instead divides the input size
    (Zero-DCE++'s factor 12); ``gamma``: the post-step applied unless the user sets one.
    """

    context_size: int | None = None
    context_scale: int | None = None
    gamma: float = 1.0
    receptive_radius: int = 0

    def render(self, x: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        """The enhanced image from the input and the network's maps: the curves of :func:`apply_curves`."""
        return apply_curves(x, maps)

    def context_shape(self, height: int, width: int) -> tuple[int, int] | None:
        """(h, w) of the copy the maps are estimated on, or None for full resolution."""
        if self.context_scale:
            return max(1, round(height / self.context_scale)), max(1, round(width / self.context_scale))
        if self.context_size:
            return fit_long_side(height, width, self.context_size)
        return None


def curve_tiling(net: CurveEstimator) -> TileNeeds:
    """A low-light network's tiling needs: its receptive field when it runs at full resolution (the curves of a
    downscaled copy are sampled per tile and need no context)."""
    return TileNeeds(halo=net.receptive_radius if net.context_shape(2, 2) is None else 0, preferred_tile=512)


class CurveNet(CurveEstimator):
    """bdx's curve estimator: plain 3x3 convolutions with an overlapping max-pool between two scales.

    Conv, conv, then a 3x3 stride-2 max-pool (overlapping windows), three convs at
    half resolution, bilinear upsampling, and skip concatenations as in DCE-Net;
    one 3-channel map reused for every iteration. With ``global_context`` the mean and
    maximum of the half-resolution features over the whole copy pass through two linear
    layers and shift the last half-resolution conv's activations: how bright the scene is
    as a whole (its exposure) informs every pixel's curve. Plain convolutions rather than
    depthwise-separable ones: at 256 px the cost is negligible, and they train
    several times faster on a CPU.

    With ``members`` m > 1 the module holds m such networks side by side (grouped
    convolutions, members stacked along the channels) and returns the mean of their maps:
    an ensemble whose members are trained on their own losses (``each_member``).

    >>> net = CurveNet(CurveNetConfig(context_size=16, members=3))
    >>> x = torch.rand(2, 3, 16, 12)
    >>> net(x, each_member=True).shape, net(x).shape
    (torch.Size([2, 3, 3, 16, 12]), torch.Size([2, 3, 16, 12]))
    """

    maps = 1

    def __init__(self, config: CurveNetConfig = CurveNetConfig()) -> None:
        super().__init__()
        self.config = config
        self.context_size, self.gamma = config.context_size, config.gamma
        w, m = config.width, config.members
        if m < 1:
            raise ValueError(f"members must be at least 1, not {m}")
        self.conv1 = nn.Conv2d(3, w * m, 3, padding=1)
        self.conv2 = nn.Conv2d(w * m, w * m, 3, padding=1, groups=m)
        self.conv3 = nn.Conv2d(w * m, w * m, 3, padding=1, groups=m)
        self.conv4 = nn.Conv2d(w * m, w * m, 3, padding=1, groups=m)
        self.conv5 = nn.Conv2d(2 * w * m, w * m, 3, padding=1, groups=m)
        self.conv6 = nn.Conv2d(2 * w * m, w * m, 3, padding=1, groups=m)
        self.head = nn.Conv2d(2 * w * m, 3 * m, 3, padding=1, groups=m)
        self.context: nn.Sequential | None = None
        if config.global_context:
            # linear layers whose weights (m w, 2 w) and (m w, w) run as grouped 1x1 convolutions
            last = nn.Linear(w, w * m)
            nn.init.zeros_(last.weight)  # the branch starts as the network without it
            nn.init.zeros_(last.bias)
            self.context = nn.Sequential(nn.Linear(2 * w, w * m), nn.ReLU(), last)

    def member_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's maps, (N, members, 3, H, W)."""
        m = self.config.members
        x1 = F.relu(self.conv1(x))
        x2 = F.relu(self.conv2(x1))
        low = F.max_pool2d(x2, 3, stride=2, padding=1)
        x3 = F.relu(self.conv3(low))
        x4 = F.relu(self.conv4(x3))
        x5 = self.conv5(_by_member(x3, x4, m))
        if self.context is not None:
            first, last = cast(nn.Linear, self.context[0]), cast(nn.Linear, self.context[2])
            summary = _by_member(x4.mean((2, 3)), x4.amax((2, 3)), m)[:, :, None]
            hidden = F.relu(F.conv1d(summary, first.weight[:, :, None], first.bias, groups=m))
            x5 = x5 + F.conv1d(hidden, last.weight[:, :, None], last.bias, groups=m)[:, :, :, None]
        x5 = F.relu(x5)
        x5 = F.interpolate(x5, size=x2.shape[-2:], mode="bilinear", align_corners=False)
        x6 = F.relu(self.conv6(_by_member(x2, x5, m)))
        maps = torch.tanh(self.head(_by_member(x1, x6, m)))
        return maps.unflatten(1, (m, 3))

    def forward(self, x: torch.Tensor, each_member: bool = False) -> torch.Tensor:
        """The members' mean maps (N, 3, H, W), or with ``each_member`` every member's (N, members, 3, H, W)."""
        maps = self.member_maps(x)
        return maps if each_member else maps.mean(1)


def _by_member(a: torch.Tensor, b: torch.Tensor, members: int) -> torch.Tensor:
    """``a`` and ``b`` (members stacked along dim 1) concatenated member by member, for grouped convolutions."""
    return torch.cat([a.unflatten(1, (members, -1)), b.unflatten(1, (members, -1))], 2).flatten(1, 2)


def fit_long_side(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) scaled down (never up) so the long side is ``size``."""
    scale = min(1.0, size / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


CURVE_NET = Architecture(
    ARCHITECTURE,
    "lowlight",
    CurveNet,
    curve_tiling,
    from_config=lambda config: CurveNet(CurveNetConfig(**config)),
)
