"""The FHDR-style feedback network for LDR to HDR, and loading its weights.

Like FHDR (Khan et al., GlobalSIP 2019) a feedback block with shared weights is
run several times, each pass refining a hidden state that starts from the input
features; every pass yields an HDR estimate (all are supervised in training, so
iteration 1 is a feed-forward model of the same weights). Unlike FHDR the state
is created inside ``forward`` (nothing leaks between images or sizes), the work
happens at 1/4 resolution after a 4x4 pixel-unshuffle (the full-resolution input
is added back through a skip connection in the mu-law domain), and a global
branch summarises a downscaled copy of the whole image into a vector that
modulates every tile alike, so tiles agree on exposure.

Two output heads. ``rgb`` (the original) predicts a correction per colour channel.
``curve`` predicts one tone curve shared by the three channels (values at ``knots``
evenly spaced display levels) per 4x4 block, interpolated bilinearly between blocks
and linearly between knots at each channel's own input value, and, for channels near
the clip point only, a correction per pixel and channel (the colour of reconstructed
highlights): a neutral unclipped pixel stays neutral by construction, as it does
through any camera's per-channel response, and detail finer than a block comes from
the input itself through the curve.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from bdx.color import srgb_to_linear
from bdx.models import Architecture, TileNeeds
from bdx.tiling import round_up

ARCHITECTURE = "bdx-hdr-feedback-v1"


@dataclass(frozen=True)
class FeedbackConfig:
    """Width of the features, dense-block growth and layers, and iterations of the feedback block."""

    width: int = 32
    growth: int = 16
    layers: int = 3
    iterations: int = 4
    context_size: int = 256
    state_scale: int = 1  # the feedback state runs at 1/(4 * state_scale) resolution
    head: str = "rgb"  # "rgb": a correction per channel; "curve": a tone curve shared by the channels (see above)
    knots: int = 8  # display levels at which the curve head gives its tone curve
    histogram_bins: int = 0  # the global branch also reads the context's histogram (0: not)
    headroom: float = 32.0  # the brightest output, in units of the input's clip point (bdx.hdr.tonemap.to_domain)


def _act(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.1)


class DenseBlock(nn.Module):
    """Densely connected 3x3 convolutions, fused back to ``width`` channels by a 1x1 convolution."""

    def __init__(self, width: int, growth: int, layers: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(width + i * growth, growth, 3, padding=1) for i in range(layers))
        self.fuse = nn.Conv2d(width + layers * growth, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for conv in self.convs:
            features.append(_act(conv(torch.cat(features, dim=1))))
        return self.fuse(torch.cat(features, dim=1))


class GlobalBranch(nn.Module):
    """A downscaled copy of the image to one feature vector (scale and shift per channel); with
    ``histogram_bins``, the copy's per-channel histogram (and its share of clipped values) joins the
    convolutional features: how values crowd towards white tells a hard clip from a camera's soft shoulder."""

    def __init__(self, width: int, histogram_bins: int = 0) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(32, 32, 3, stride=2, padding=1),
            nn.LeakyReLU(0.1),
        )
        self.bins = histogram_bins
        if histogram_bins:
            self.histogram = nn.Sequential(nn.Linear(3 * (histogram_bins + 1), 64), nn.LeakyReLU(0.1))
        self.to_film = nn.Linear(128 if histogram_bins else 64, 2 * width)
        nn.init.zeros_(self.to_film.weight)
        nn.init.zeros_(self.to_film.bias)

    def forward(self, small: torch.Tensor) -> torch.Tensor:
        features = self.convs(small)
        pooled = torch.cat([features.mean(dim=(2, 3)), features.amax(dim=(2, 3))], dim=1)
        if self.bins:
            pooled = torch.cat([pooled, self.histogram(histograms(small, self.bins))], dim=1)
        return self.to_film(pooled)


CLIPPED_CONTEXT = 254.5 / 255  # a context value at or above this is clipped


def histograms(images: torch.Tensor, bins: int) -> torch.Tensor:
    """(N, 3 x (bins + 1)): per channel of (N, 3, H, W) images in [0, 1], the square root of each of ``bins``
    equal bins' share of the pixels, then of the clipped share.

    >>> histograms(torch.ones(1, 3, 2, 2), 2).tolist()
    [[0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0]]
    """
    n, c = images.shape[:2]
    values = images.detach().clamp(0, 1).flatten(2)
    index = (values * bins).long().clamp(max=bins - 1)
    counts = torch.zeros(n, c, bins, device=images.device, dtype=values.dtype).scatter_add_(2, index, torch.ones_like(values))
    clipped = (values >= CLIPPED_CONTEXT).to(values.dtype).sum(2, keepdim=True)
    return (torch.cat([counts, clipped], dim=2) / values.shape[2]).sqrt().flatten(1)


class FeedbackHDRNet(nn.Module):
    """LDR (display-referred, [0, 1]) to HDR in the mu-law domain; input size must be a multiple of
    ``multiple`` (4, or 4 x ``state_scale`` with a coarser feedback state).

    ``forward(x, context)`` returns the estimate of the last iteration, or all of
    them with ``all_iterations=True``. ``context`` is :meth:`global_features` of a
    downscaled copy of the whole image (or pass ``context_images``, one per
    sample; with neither, it is computed from ``x`` itself).
    """

    def __init__(self, config: FeedbackConfig = FeedbackConfig()) -> None:
        super().__init__()
        self.config = config
        w, s = config.width, config.state_scale
        if s < 1:
            raise ValueError("state_scale must be at least 1")
        self.multiple = 4 * s
        if s > 1:  # a coarser state: each iteration's convolutions reach s times farther
            self.to_state = nn.Conv2d(w * s * s, w, 1)
            self.from_state = nn.Conv2d(w, w * s * s, 1)
        self.extract = nn.Sequential(nn.Conv2d(48 + 48, w, 3, padding=1), nn.LeakyReLU(0.1), nn.Conv2d(w, w, 3, padding=1))
        self.compress = nn.Conv2d(2 * w, w, 1)
        self.block = DenseBlock(w, config.growth, config.layers)
        if config.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, not {config.head!r}")
        if config.head == "curve" and config.knots < 2:
            raise ValueError("a curve head needs at least 2 knots")
        self.reconstruct = nn.Conv2d(w, 48 if config.head == "rgb" else config.knots + 48, 3, padding=1)
        self.global_branch = GlobalBranch(w, config.histogram_bins)
        nn.init.zeros_(self.reconstruct.weight)
        nn.init.zeros_(_bias(self.reconstruct))

    @property
    def receptive_radius(self) -> int:
        """Pixels of context on each side that can influence an output pixel (an upper bound), at the network's
        own iteration count."""
        return self.reach(self.config.iterations)

    def reach(self, iterations: int) -> int:
        """:attr:`receptive_radius` after ``iterations`` passes of the feedback block."""
        config = self.config
        upsampling = 4 if config.head == "curve" else 0  # the curve's bilinear upsampling reads the next block
        if config.state_scale == 1:
            return 4 * (3 + iterations * config.layers) + 3 + upsampling
        coarse = 4 * config.state_scale
        return 4 * 3 + coarse * (iterations * config.layers) + 2 * (coarse - 1) + 3 + upsampling

    def global_features(self, small: torch.Tensor) -> torch.Tensor:
        return self.global_branch(small)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        *,
        context_images: list[torch.Tensor] | None = None,
        iterations: int | None = None,
        all_iterations: bool = False,
    ) -> torch.Tensor | list[torch.Tensor]:
        from bdx.hdr.tonemap import to_domain

        if context_images is not None:  # one downscaled copy per sample
            context = torch.cat([self.global_features(image) for image in context_images])
        if context is None:
            context = self.global_features(F.interpolate(x, scale_factor=0.25, mode="area") if min(x.shape[2:]) >= 32 else x)
        linear = srgb_to_linear(x)  # the starting point the network refines
        skip = to_domain(linear, self.config.headroom)
        inputs = torch.cat([F.pixel_unshuffle(x, 4), F.pixel_unshuffle(skip, 4)], dim=1)
        scale, shift = context.view(context.shape[0], -1, 1, 1).chunk(2, dim=1)  # one context for every tile
        features = self.extract(inputs) * (1 + scale) + shift
        s = self.config.state_scale
        coarse = features if s == 1 else self.to_state(F.pixel_unshuffle(features, s))
        hidden = coarse  # the state starts from this image's own features: nothing carries over
        outputs = []
        count = iterations or self.config.iterations
        for iteration in range(count):
            hidden = hidden + self.block(_act(self.compress(torch.cat([coarse, hidden], dim=1))))
            if all_iterations or iteration == count - 1:  # only the estimates asked for are reconstructed
                state = hidden if s == 1 else features + F.pixel_shuffle(self.from_state(hidden), s)
                maps = self.reconstruct(_act(state))
                if self.config.head == "rgb":
                    outputs.append(skip + F.pixel_shuffle(maps, 4))
                else:
                    knots = F.interpolate(maps[:, : self.config.knots], scale_factor=4, mode="bilinear", align_corners=False)
                    highlight = F.pixel_shuffle(maps[:, self.config.knots :], 4)
                    outputs.append(skip + _curve_correction(knots, highlight, x))
        return outputs if all_iterations else outputs[-1]

    def to_linear(self, output: torch.Tensor) -> torch.Tensor:
        """An output of :meth:`forward` as linear radiance (1.0: the input's clip point), capped at the headroom."""
        from bdx.hdr.tonemap import from_domain

        return from_domain(output.float().clamp(0, 1), self.config.headroom)


def with_headroom(net: FeedbackHDRNet, headroom: float) -> FeedbackHDRNet:
    """A copy of ``net`` whose outputs reach ``headroom``, exactly ``net`` below its own: the domain shrinks by a
    constant factor (:func:`bdx.hdr.tonemap.domain_ratio`), so the weights that read the domain grow by it and
    those that write it shrink by it.

    >>> net = with_headroom(FeedbackHDRNet(FeedbackConfig(width=8, growth=4, layers=1, iterations=1)), 256.0)
    >>> net.config.headroom
    256.0
    """
    from dataclasses import replace

    from bdx.hdr.tonemap import domain_ratio

    ratio = domain_ratio(net.config.headroom, headroom)
    grown = FeedbackHDRNet(replace(net.config, headroom=headroom))
    grown.load_state_dict(net.state_dict())
    first = grown.extract[0]
    assert isinstance(first, nn.Conv2d)
    with torch.no_grad():
        first.weight[:, 48:] /= ratio  # the input's own linearization, in the domain
        grown.reconstruct.weight *= ratio  # every head's correction is linear in these maps
        _bias(grown.reconstruct).mul_(ratio)
    return grown.to(next(net.parameters()).device)


HEADS = ("rgb", "curve")
MAX_HEADROOM = 65504.0  # the largest half-float EXR value
HIGHLIGHT_START = 0.9  # display value from which a channel's own highlight correction fades in (full at 1.0)


def _curve_correction(knots: torch.Tensor, highlight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The curve head's correction (N, 3, H, W) for display input ``x`` (N, 3, H, W) in [0, 1]: the per-pixel curve
    ``knots`` (N, K, H, W; values at K evenly spaced display levels) read at each channel's value, plus each
    channel's ``highlight`` correction (N, 3, H, W) faded in from :data:`HIGHLIGHT_START` to the clip point.

    >>> knots = torch.tensor([0.0, 1.0]).view(1, 2, 1, 1)
    >>> _curve_correction(knots, torch.zeros(1, 3, 1, 1), torch.tensor([0.25, 0.25, 0.5]).view(1, 3, 1, 1)).flatten().tolist()
    [0.25, 0.25, 0.5]
    """
    count = knots.shape[1]
    position = x.clamp(0, 1) * (count - 1)
    below = position.floor().clamp(max=count - 2)
    index = below.long()
    shared = torch.lerp(torch.gather(knots, 1, index), torch.gather(knots, 1, index + 1), position - below)
    return shared + ((x - HIGHLIGHT_START) / (1 - HIGHLIGHT_START)).clamp(0, 1) * highlight


def _bias(conv: nn.Conv2d) -> torch.Tensor:
    assert conv.bias is not None  # every convolution here has one
    return conv.bias


def hdr_tiling(net: FeedbackHDRNet, iterations: int | None = None) -> TileNeeds:
    """The network's receptive field after ``iterations`` passes (None: its own count) on its grid (every tile
    shares one global context, so seams can be cut)."""
    halo = round_up(net.reach(iterations or net.config.iterations), net.multiple)
    return TileNeeds(halo=halo, multiple=net.multiple, preferred_tile=1024)


HDR_FEEDBACK = Architecture(
    ARCHITECTURE,
    "hdr",
    FeedbackHDRNet,
    hdr_tiling,
    from_config=lambda config: FeedbackHDRNet(FeedbackConfig(**config)),
)
