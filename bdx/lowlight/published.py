"""Published low-light networks that ``bdx enhance-lowlight --weights`` runs from their own checkpoints.

Each is bdx's own implementation of the published architecture, recognised from the checkpoint's keys and
tensor shapes (never its file name) and loaded without unpickling code:

- ``zero-dce``: DCE-Net (Guo et al., "Zero-Reference Deep Curve Estimation for Low-Light Image Enhancement",
  CVPR 2020): 7 plain 3x3 convolutions with skip concatenations, 8 curve maps per colour channel, full resolution.
- ``zero-dce-improved``: Aiemu's Zero-DCE variant (no paper of its own): 16 channels, a 3x3 stride-1 max-pool
  before the fourth convolution, and a gamma of 1.15 applied after the curves by its test script. A 16-channel
  DCE-Net checkpoint is taken for this variant: it is the one published.
- ``zero-dce++``: Zero-DCE++ (Li et al., TPAMI 2021): depthwise-separable convolutions, one curve map reused for
  every iteration, estimated on a copy downscaled 12 times.
- ``sci``: SCI (Ma et al., "Toward Fast, Flexible, and Robust Low-Light Image Enhancement", CVPR 2022): its
  test-time illumination estimator (the training-only self-calibration module is ignored); the output is the input
  divided by the estimated illumination.

Full-resolution networks run with their own zero padding at the image's edges (the tiling engine's ``inside``
border), as their authors' code runs them on a whole image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from bdx.checkpoints import flush_denormals, load_matching
from bdx.lowlight.curves import ITERATIONS
from bdx.lowlight.models import CurveEstimator, curve_tiling
from bdx.models import Architecture

IMPROVED_WIDTH = 16  # Zero-DCE-improved's width (the official Zero-DCE has 32)
IMPROVED_GAMMA = 1 / 1.15  # its test script raises the result to the power 1.15


class _DCETopology(CurveEstimator):
    """DCE-Net's seven layers with skip concatenations (3+4, 2+5, 1+6), whatever the layers are; ``pool``: a 3x3
    stride-1 max-pool before the fourth layer (Zero-DCE-improved)."""

    pool = False
    e_conv1: nn.Module
    e_conv2: nn.Module
    e_conv3: nn.Module
    e_conv4: nn.Module
    e_conv5: nn.Module
    e_conv6: nn.Module
    e_conv7: nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = F.relu(self.e_conv1(x))
        x2 = F.relu(self.e_conv2(x1))
        x3 = F.relu(self.e_conv3(x2))
        x4 = F.relu(self.e_conv4(F.max_pool2d(x3, 3, stride=1, padding=1) if self.pool else x3))
        x5 = F.relu(self.e_conv5(torch.cat([x3, x4], 1)))
        x6 = F.relu(self.e_conv6(torch.cat([x2, x5], 1)))
        return torch.tanh(self.e_conv7(torch.cat([x1, x6], 1)))


class DCENet(_DCETopology):
    """Zero-DCE's curve estimator (79,416 parameters at 32 channels); with ``pool``, Zero-DCE-improved's.

    >>> DCENet(width=8)(torch.rand(1, 3, 16, 16)).shape
    torch.Size([1, 24, 16, 16])
    """

    def __init__(self, width: int = 32, pool: bool = False) -> None:
        super().__init__()
        self.pool = pool
        self.receptive_radius = 7 + int(pool)
        self.gamma = IMPROVED_GAMMA if pool else 1.0
        self.e_conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.e_conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.e_conv3 = nn.Conv2d(width, width, 3, padding=1)
        self.e_conv4 = nn.Conv2d(width, width, 3, padding=1)
        self.e_conv5 = nn.Conv2d(2 * width, width, 3, padding=1)
        self.e_conv6 = nn.Conv2d(2 * width, width, 3, padding=1)
        self.e_conv7 = nn.Conv2d(2 * width, 3 * ITERATIONS, 3, padding=1)


class SeparableConv(nn.Module):
    """Depthwise 3x3 then pointwise 1x1 (Zero-DCE++'s ``CSDN_Tem``; same state-dict keys)."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.depth_conv = nn.Conv2d(inputs, inputs, 3, padding=1, groups=inputs)
        self.point_conv = nn.Conv2d(inputs, outputs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(x))


class DCEPlusNet(_DCETopology):
    """Zero-DCE++'s curve estimator (10,561 parameters at 32 channels): one 3-channel curve map, estimated on a
    copy downscaled 12 times."""

    context_scale = 12

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.e_conv1 = SeparableConv(3, width)
        self.e_conv2 = SeparableConv(width, width)
        self.e_conv3 = SeparableConv(width, width)
        self.e_conv4 = SeparableConv(width, width)
        self.e_conv5 = SeparableConv(2 * width, width)
        self.e_conv6 = SeparableConv(2 * width, width)
        self.e_conv7 = SeparableConv(2 * width, 3)


class SCIIllumination(CurveEstimator):
    """SCI's illumination estimator: ``illumination = clamp(sigmoid(f(x)) + x, 1e-4, 1)``.

    ``f``: a 3x3 convolution with ReLU, then ``layers`` times one shared residual block (3x3 convolution, batch
    norm, ReLU, added), then a 3x3 convolution. :func:`divide_by_illumination` turns it into the output.

    >>> SCIIllumination()(torch.rand(1, 3, 8, 8)).shape
    torch.Size([1, 3, 8, 8])
    """

    def __init__(self, channels: int = 3, layers: int = 1) -> None:
        super().__init__()
        self.layers = layers
        self.receptive_radius = 2 + layers
        self.in_conv = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1))
        self.conv = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels))
        self.out_conv = nn.Sequential(nn.Conv2d(channels, 3, 3, padding=1))

    def render(self, x: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        """SCI's output: the input divided by its estimated illumination (``maps``)."""
        return divide_by_illumination(x, maps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = F.relu(self.in_conv(x))
        for _ in range(self.layers):
            features = features + F.relu(self.conv(features))
        return (torch.sigmoid(self.out_conv(features)) + x).clamp(1e-4, 1)


def divide_by_illumination(x: torch.Tensor, illumination: torch.Tensor) -> torch.Tensor:
    """SCI's output: the input divided by its estimated illumination, in [0, 1]."""
    return (x / illumination).clamp(0, 1)


_PLAIN_KEYS = {f"e_conv{i}.{p}" for i in range(1, 8) for p in ("weight", "bias")}
_SEPARABLE_KEYS = {f"e_conv{i}.{c}.{p}" for i in range(1, 8) for c in ("depth_conv", "point_conv") for p in ("weight", "bias")}
_SCI_KEYS = {"enhance.in_conv.0.weight", "enhance.conv.0.weight", "enhance.conv.1.running_var", "enhance.out_conv.0.weight"}


def _is_zero_dce(state: dict[str, torch.Tensor]) -> bool:
    return set(state) == _PLAIN_KEYS and state["e_conv1.bias"].shape[0] != IMPROVED_WIDTH


def _is_zero_dce_improved(state: dict[str, torch.Tensor]) -> bool:
    return set(state) == _PLAIN_KEYS and state["e_conv1.bias"].shape[0] == IMPROVED_WIDTH


def _dce(pool: bool, name: str) -> Callable[[dict[str, torch.Tensor], Path], DCENet]:
    def load(state: dict[str, torch.Tensor], path: Path) -> DCENet:
        flush_denormals(state)
        return load_matching(DCENet(int(state["e_conv1.bias"].shape[0]), pool=pool), state, path, name)

    return load


def _dce_plus(state: dict[str, torch.Tensor], path: Path) -> DCEPlusNet:
    flush_denormals(state)
    return load_matching(DCEPlusNet(int(state["e_conv1.point_conv.bias"].shape[0])), state, path, "zero-dce++")


def _sci(state: dict[str, torch.Tensor], path: Path) -> SCIIllumination:
    flush_denormals(state)
    kept, channels, layers = _sci_state(state)
    return load_matching(SCIIllumination(channels, layers), kept, path, "sci")


def _sci_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int, int]:
    """The test-time tensors of an SCI checkpoint (its ``blocks.N`` keys alias ``conv``), its width and layers."""
    layers = len({key.split(".")[2] for key in state if key.startswith("enhance.blocks.")}) or 1
    kept = {
        key[len("enhance.") :]: value
        for key, value in state.items()
        if key.startswith("enhance.") and not key.startswith("enhance.blocks.")
    }
    return kept, int(kept["in_conv.0.weight"].shape[0]), layers


ZERO_DCE = Architecture(
    "zero-dce",
    "lowlight",
    DCENet,
    curve_tiling,
    detect=_is_zero_dce,
    from_state=_dce(False, "zero-dce"),
    title="Zero-DCE",
)
ZERO_DCE_IMPROVED = Architecture(
    "zero-dce-improved",
    "lowlight",
    DCENet,
    curve_tiling,
    detect=_is_zero_dce_improved,
    from_state=_dce(True, "zero-dce-improved"),
    title="Zero-DCE-improved",
)
ZERO_DCE_PLUS = Architecture(
    "zero-dce++",
    "lowlight",
    DCEPlusNet,
    curve_tiling,
    detect=lambda state: set(state) == _SEPARABLE_KEYS,
    from_state=_dce_plus,
    title="Zero-DCE++",
)
SCI = Architecture(
    "sci",
    "lowlight",
    SCIIllumination,
    curve_tiling,
    detect=lambda state: _SCI_KEYS <= set(state),
    from_state=_sci,
    title="SCI",
)
