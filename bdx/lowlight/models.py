"""Curve-estimation networks for low-light enhancement, and loading their weights.

Three architectures share one contract: ``net(x)`` maps sRGB values in [0, 1]
(N, 3, H, W) to curve parameters in (-1, 1) of shape (N, 3 * maps, H, W); the
curves are applied by :func:`bdx.lowlight.curves.apply_curves`.

- ``zero-dce``: DCE-Net (Guo et al., CVPR 2020), 7 plain 3x3 convolutions,
  24 maps (one per iteration and channel), run at full resolution.
- ``zero-dce++``: Zero-DCE++ (Li et al., TPAMI 2021), depthwise-separable
  convolutions, one 3-channel map reused for 8 iterations, run on a copy
  downscaled 12 times.
- ``bdx-lowlight-v1``: bdx's variant, 16 channels, an overlapping max-pool that
  doubles the receptive field, run on a copy of fixed size (256 px on its long
  side) so the curves do not depend on the input's resolution.

Official checkpoints (``.pth`` state dicts) are recognised by their keys; their
denormal weights are flushed to zero, which makes CPU inference tens of times
faster and does not change the output measurably.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from bdx.errors import BdxError
from bdx.safetensor_io import build_model, read_model, save_model

ARCHITECTURE = "bdx-lowlight-v1"
ITERATIONS = 8


class _DCETopology(nn.Module):
    """DCE-Net's seven layers with skip concatenations (3+4, 2+5, 1+6), whatever the layers are."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = F.relu(self.e_conv1(x))
        x2 = F.relu(self.e_conv2(x1))
        x3 = F.relu(self.e_conv3(x2))
        x4 = F.relu(self.e_conv4(x3))
        x5 = F.relu(self.e_conv5(torch.cat([x3, x4], 1)))
        x6 = F.relu(self.e_conv6(torch.cat([x2, x5], 1)))
        return torch.tanh(self.e_conv7(torch.cat([x1, x6], 1)))


class DCENet(_DCETopology):
    """Zero-DCE's curve estimator (79,416 parameters at 32 channels)."""

    maps = ITERATIONS
    receptive_radius = 7

    def __init__(self, width: int = 32) -> None:
        super().__init__()
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
    """Zero-DCE++'s curve estimator (10,561 parameters at 32 channels)."""

    maps = 1

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.e_conv1 = SeparableConv(3, width)
        self.e_conv2 = SeparableConv(width, width)
        self.e_conv3 = SeparableConv(width, width)
        self.e_conv4 = SeparableConv(width, width)
        self.e_conv5 = SeparableConv(2 * width, width)
        self.e_conv6 = SeparableConv(2 * width, width)
        self.e_conv7 = SeparableConv(2 * width, 3)


@dataclass(frozen=True)
class CurveNetConfig:
    """Width of bdx's curve estimator, the long side of the copy it runs on, and its default gamma post-step."""

    width: int = 16
    context_size: int = 256
    gamma: float = 1.0  # post-step applied after the curves unless the user sets one


class CurveNet(nn.Module):
    """bdx's curve estimator: plain 3x3 convolutions with an overlapping max-pool between two scales.

    Conv, conv, then a 3x3 stride-2 max-pool (overlapping windows), three convs at
    half resolution, bilinear upsampling, and skip concatenations as in DCE-Net;
    one 3-channel map reused for every iteration. Plain convolutions rather than
    depthwise-separable ones: at 256 px the cost is negligible, and they train
    several times faster on a CPU.
    """

    maps = 1

    def __init__(self, config: CurveNetConfig = CurveNetConfig()) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.conv1 = nn.Conv2d(3, w, 3, padding=1)
        self.conv2 = nn.Conv2d(w, w, 3, padding=1)
        self.conv3 = nn.Conv2d(w, w, 3, padding=1)
        self.conv4 = nn.Conv2d(w, w, 3, padding=1)
        self.conv5 = nn.Conv2d(2 * w, w, 3, padding=1)
        self.conv6 = nn.Conv2d(2 * w, w, 3, padding=1)
        self.head = nn.Conv2d(2 * w, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = F.relu(self.conv1(x))
        x2 = F.relu(self.conv2(x1))
        low = F.max_pool2d(x2, 3, stride=2, padding=1)
        x3 = F.relu(self.conv3(low))
        x4 = F.relu(self.conv4(x3))
        x5 = F.relu(self.conv5(torch.cat([x3, x4], 1)))
        x5 = F.interpolate(x5, size=x2.shape[-2:], mode="bilinear", align_corners=False)
        x6 = F.relu(self.conv6(torch.cat([x2, x5], 1)))
        return torch.tanh(self.head(torch.cat([x1, x6], 1)))


@dataclass
class CurveModel:
    """A loaded curve estimator and how to run it.

    ``context_size`` is the long side of the downscaled copy the curves are
    estimated on (``None``: at full resolution, tiled); ``context_scale`` instead
    divides the input size (Zero-DCE++'s factor 12).
    """

    name: str
    net: nn.Module
    context_size: int | None = None
    context_scale: int | None = None
    gamma: float = 1.0

    @property
    def maps(self) -> int:
        return self.net.maps

    def context_shape(self, height: int, width: int) -> tuple[int, int] | None:
        """(h, w) of the copy the curves are estimated on, or None for full resolution."""
        if self.context_scale:
            return max(1, round(height / self.context_scale)), max(1, round(width / self.context_scale))
        if self.context_size:
            return fit_long_side(height, width, self.context_size)
        return None


def fit_long_side(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) scaled down (never up) so the long side is ``size``."""
    scale = min(1.0, size / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def flush_denormals(state: dict[str, torch.Tensor]) -> int:
    """Set subnormal float weights to zero in place; returns how many there were."""
    count = 0
    for tensor in state.values():
        if tensor.is_floating_point():
            tiny = torch.finfo(tensor.dtype).tiny
            mask = (tensor != 0) & (tensor.abs() < tiny)
            count += int(mask.sum())
            tensor[mask] = 0
    return count


def detect_architecture(state: dict[str, torch.Tensor]) -> str:
    """``zero-dce`` or ``zero-dce++`` from an official state dict's keys, else a one-line error."""
    keys = set(state)
    plain = {f"e_conv{i}.{p}" for i in range(1, 8) for p in ("weight", "bias")}
    separable = {f"e_conv{i}.{c}.{p}" for i in range(1, 8) for c in ("depth_conv", "point_conv") for p in ("weight", "bias")}
    if keys == plain:
        return "zero-dce"
    if keys == separable:
        return "zero-dce++"
    sample = ", ".join(sorted(keys)[:3])
    raise BdxError(f"not a Zero-DCE or Zero-DCE++ checkpoint (keys: {sample}, ...)")


def _strip_prefix(state: dict) -> dict:
    """Checkpoints saved from DataParallel carry a ``module.`` prefix."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module.") :]: v for k, v in state.items()}
    return state


def load_official(path: Path) -> CurveModel:
    """A Zero-DCE or Zero-DCE++ ``.pth`` state dict, loaded without unpickling code."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BdxError(f"{path.name}: not a loadable checkpoint ({str(exc).splitlines()[0][:80]})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BdxError(f"{path.name}: not a state dict of tensors")
    state = _strip_prefix(dict(state))
    kind = detect_architecture(state)
    width = int(state["e_conv1.bias"].shape[0]) if kind == "zero-dce" else int(state["e_conv1.point_conv.bias"].shape[0])
    net: nn.Module = DCENet(width) if kind == "zero-dce" else DCEPlusNet(width)
    flush_denormals(state)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise BdxError(f"{path.name}: weights do not match {kind} ({str(exc).splitlines()[0][:80]})") from None
    net.eval()
    if kind == "zero-dce":
        return CurveModel(kind, net)
    return CurveModel(kind, net, context_scale=12)


def save_curve_net(net: CurveNet, path: str | Path, extra: dict | None = None) -> None:
    """Write bdx's curve estimator as safetensors with its architecture in the metadata."""
    save_model(net, path, ARCHITECTURE, extra)


def load_curve_net(path: Path) -> CurveModel:
    """bdx's curve estimator from safetensors written by :func:`save_curve_net`."""
    config, state = read_model(path, ARCHITECTURE, "bdx low-light")
    net = build_model(lambda: CurveNet(CurveNetConfig(**config)), state, path)
    return CurveModel(ARCHITECTURE, net, context_size=net.config.context_size, gamma=net.config.gamma)


def load_curve_model(path: str | Path) -> CurveModel:
    """Any supported low-light weights file: bdx safetensors, or an official Zero-DCE / Zero-DCE++ ``.pth``."""
    path = Path(path)
    if not path.is_file():
        raise BdxError(f"weights file not found: {path}")
    with open(path, "rb") as handle:
        head = handle.read(16)
    # safetensors begins with an 8-byte little-endian header length, then '{'
    if len(head) > 8 and head[8:9] == b"{":
        return load_curve_net(path)
    return load_official(path)
