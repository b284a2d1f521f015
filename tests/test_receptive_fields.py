"""One contract over every network bdx runs at full resolution: the receptive radius it declares (which sets its
tiling halo) bounds how far a change in the input can reach in the output. Measured by changing one input pixel
of a randomly weighted network and finding the farthest output pixel that moves."""

from __future__ import annotations

from typing import Callable

import pytest
import torch

from bdx.dequant.learned import DequantNet, DequantNetConfig
from bdx.hdr.models import FeedbackConfig, FeedbackHDRNet
from bdx.hdr.published import ExpandNet, FHDRNet
from bdx.lowlight.published import DCENet, SCIIllumination


def _randomised(net: torch.nn.Module, scale: float = 0.1) -> torch.nn.Module:
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.normal_(0, scale)
    return net.eval()


def _reach(run: Callable[[torch.Tensor], torch.Tensor], size: int, at: tuple[int, int]) -> int:
    """The largest Chebyshev distance from ``at`` of an output pixel that changes when that input pixel does."""
    torch.manual_seed(1)
    x = torch.rand(1, 3, size, size) * 0.8 + 0.1
    changed = x.clone()
    changed[:, :, at[0], at[1]] += 0.05
    with torch.no_grad():
        moved = (run(changed) - run(x)).abs().amax(1)[0] > 0
    ys, xs = torch.nonzero(moved, as_tuple=True)
    assert len(ys) > 0, "the change reached no output pixel"
    return int(torch.maximum((ys - at[0]).abs(), (xs - at[1]).abs()).max())


def _dequant(prior: str, levels: int = 2) -> tuple[Callable[[torch.Tensor], torch.Tensor], int]:
    widths, blocks = (8, 16, 8, 8)[:levels], (1, 2, 1, 1)[:levels]
    net = _randomised(DequantNet(DequantNetConfig(widths=widths, blocks=blocks, prior=prior, gate=True)), 0.2)
    step = torch.tensor([1 / 63])
    if prior == "none":
        return lambda x: net(x, step), net.receptive_radius
    return lambda x: net(x, step, torch.zeros_like(x)), net.receptive_radius


def _feedback_hdr() -> tuple[Callable[[torch.Tensor], torch.Tensor], int]:
    net = _randomised(FeedbackHDRNet(FeedbackConfig(width=8, growth=4, layers=2, iterations=2)), 0.2)
    context = net.global_features(torch.rand(1, 3, 32, 32))  # one context for the whole image, as in tiling
    return lambda x: net(x, context), net.receptive_radius


def _expandnet() -> tuple[Callable[[torch.Tensor], torch.Tensor], int]:
    net = _randomised(ExpandNet(), 0.05)
    features = net.global_features(torch.rand(1, 3, 256, 256))
    return lambda x: net(x, features), ExpandNet.receptive_radius


def _fhdr(iterations: int) -> tuple[Callable[[torch.Tensor], torch.Tensor], int]:
    net = _randomised(FHDRNet(), 0.03)
    return lambda x: net(x, iterations), net.receptive_radius(iterations)


NETWORKS: dict[str, Callable[[], tuple[Callable[[torch.Tensor], torch.Tensor], int]]] = {
    "bdx dequantizer": lambda: _dequant("none"),
    "bdx dequantizer with prior": lambda: _dequant("contour"),
    "bdx dequantizer, 3 levels": lambda: _dequant("none", 3),
    "bdx dequantizer, 4 levels": lambda: _dequant("none", 4),
    "bdx HDR feedback": _feedback_hdr,
    "Zero-DCE": lambda: ((net := _randomised(DCENet(width=8))), net.receptive_radius),
    "Zero-DCE-improved": lambda: ((net := _randomised(DCENet(width=8, pool=True))), net.receptive_radius),
    "SCI": lambda: ((net := _randomised(SCIIllumination())), net.receptive_radius),
    "ExpandNet": _expandnet,
    "FHDR, 1 iteration": lambda: _fhdr(1),
    "FHDR, 2 iterations": lambda: _fhdr(2),
}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_declared_receptive_radius_bounds_the_reach_of_one_pixel(name):
    run, radius = NETWORKS[name]()
    size = 2 * radius + 40
    size += -size % 32  # the dequantizers take multiples of 8 to 32, bdx's HDR network of 4
    for at in ((size // 2, size // 2), (size // 2 + 3, size // 2 - 5)):  # two places on the networks' block grids
        assert _reach(run, size, at) <= radius, name
