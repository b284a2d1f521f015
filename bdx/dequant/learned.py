"""Learned bit-depth dequantizer: one small network for every input depth, bin-safe by construction.

The network sees the bin centres of the input and the quantization step (as a
constant conditioning channel), and predicts an offset bounded to half a step
less one 16-bit code (``(step / 2 - 1 / 65535) * tanh``), so its output never
leaves the input's bin, even after rounding to 16 bits. The head starts at zero,
so an untrained network is the bin centre. Weights are stored
as safetensors with the architecture in the file's metadata.

With ``prior="contour"`` the network refines the classical contour method
instead: it also sees the contour offsets, and its output is
``tanh(atanh(contour offset) + head)``, so an untrained network is the contour
method, still bounded to the bin.

With ``gate`` the head also predicts, per pixel, a confidence in (0, 1) that scales
the offset: where the content cannot tell where the truth lies inside the bin
(texture, noise) the network can fall back to the bin centre with one number instead
of cancelling the prior.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, cast, get_args

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from bdx.dequant.classical import (
    CONTOUR_SUPPORT,
    RESIDUE_CLASSES,
    Metric,
    MidpointDequantizer,
    PriorBackend,
    contour_fractions,
    level_fractions,
)
from bdx.dequant.self_check import ImageAlpha
from bdx.models import Architecture, TileNeeds
from bdx.quantization import Convention, step_size
from bdx.tiling import round_up

ARCHITECTURE = "bdx-dequant-unet-v2"
Prior = Literal["none", "contour", "contour-l1", "contour-l1-3"]
PRIORS: tuple[Prior, ...] = get_args(Prior)
PRIOR_LIMIT = 0.999  # prior offsets are clamped inside (-1, 1) so their atanh stays finite
HEAD_KERNELS: tuple[int, ...] = (1, 3)
ENSEMBLE_SIZES: tuple[int, ...] = (1, 2, 4, 8)  # identity; + left-right flip; + up-down flips; + transposes


@dataclass(frozen=True)
class DequantNetConfig:
    """Widths and residual-block counts of the levels (1/4, 1/8, then each a further half of the resolution),
    and the offset prior. Two levels at least."""

    widths: tuple[int, ...] = (16, 64)
    blocks: tuple[int, ...] = (1, 3)
    channels: int = 3
    prior: Prior = "none"  # "contour": refine the contour method's offsets instead of starting from the bin centre;
    # "contour-l1": the same with city-block contour distances (half the prior's work); "contour-l1-3": and levels
    # split into 3 residue classes instead of 4 (three distance transforms instead of four)
    gate: bool = False  # scale the offsets by a predicted confidence (0: the bin centre)
    norm: bool = False  # residual branches read their input normalised per pixel (channel_norm)
    gate_limit: float = 0.0  # gate logits clamped to +-gate_limit (0: unbounded)
    tone_head: bool = False  # the head also predicts a tone per block, interpolated to every pixel as a prior
    head_kernel: int = 3  # the head's kernel: 3 (3x3) or 1 (1x1: a ninth of its multiply-adds, each block read alone)


GATE_START = 4.0  # gate logit of a network grown from an ungated one: sigmoid(4) = 0.98, nearly its old output
TONE_WEIGHT_START = -2.0  # logit of a fresh tone head's weight: sigmoid(-2) = 0.12


def _act(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.1)


def _conv(inputs: int, outputs: int, kernel: int = 3) -> nn.Conv2d:
    return nn.Conv2d(inputs, outputs, kernel, padding=kernel // 2)


def channel_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``x`` (N, C, H, W) normalised over its channels at every pixel (zero mean, unit variance): statistics of
    one pixel only, so a tiled run stays exact."""
    mean = x.mean(1, keepdim=True)
    centred = x - mean
    return centred * torch.rsqrt(centred.square().mean(1, keepdim=True) + eps)


class _Residual(nn.Module):
    """``x + conv(act(conv(x)))``, with ``normalized`` the branch's input normalised per pixel
    (:func:`channel_norm`): the branch then cannot amplify the growth of the stream it adds to. The second
    convolution starts at zero, so a fresh block is the identity."""

    def __init__(self, width: int, normalized: bool = False) -> None:
        super().__init__()
        self.normalized = normalized
        self.first = _conv(width, width)
        self.second = _conv(width, width)
        nn.init.zeros_(self.second.weight)
        nn.init.zeros_(cast(torch.Tensor, self.second.bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.second(_act(self.first(channel_norm(x) if self.normalized else x)))


def level_grid(levels: int) -> int:
    """The size grid of a network of ``levels`` levels (its input is a multiple of it): 8 for two levels, doubling
    with each further level."""
    return 2 ** (levels + 1)


class _Level(nn.Module):
    """A U-Net level below 1/8 resolution: half the resolution of the level above (``above`` channels), ``width``
    channels, ``blocks`` residual blocks; its output is added back to the level above and merged there."""

    def __init__(self, above: int, width: int, blocks: int, normalized: bool = False) -> None:
        super().__init__()
        self.down = _conv(4 * above, width)
        self.blocks = nn.Sequential(*[_Residual(width, normalized) for _ in range(blocks)])
        self.up = _conv(width, 4 * above, 1)
        self.merge = _conv(above, above)
        nn.init.zeros_(self.up.weight)  # a fresh level adds nothing to the one above, and learns from there
        nn.init.zeros_(cast(torch.Tensor, self.up.bias))


class DequantNet(nn.Module):
    """A U-Net that works at 1/4, 1/8 and (with more than two levels) lower resolutions; input size must be a
    multiple of :attr:`multiple` (8 for two levels, doubling with each further level).

    The full-resolution input is pixel-unshuffled 4x4 (so each 1/4-resolution
    feature sees its 16 pixels exactly) and the head pixel-shuffles 16 offsets per
    feature back to full resolution: no convolution runs at full resolution,
    which keeps the cost near 1.5 k multiply-adds per output pixel.

    Input: bin centres (C channels, in [0, 1]) and one conditioning value per
    sample (log2 of the number of levels / 16). Output: offsets in units of half
    a step, in (-1, 1).
    """

    def __init__(self, config: DequantNetConfig = DequantNetConfig()) -> None:
        super().__init__()
        self.config = config
        if len(config.widths) < 2 or len(config.blocks) != len(config.widths):
            raise ValueError(f"need one width and one block count per level, two levels at least: {config}")
        w1, w2 = config.widths[:2]
        c = config.channels
        if config.prior not in PRIORS:
            raise ValueError(f"unknown prior {config.prior!r}")
        self.multiple = level_grid(len(config.widths))
        self.stem = _conv(18 * c + 1 + (16 * c if self.has_prior else 0), w1)
        self.quarter = nn.Sequential(*[_Residual(w1, config.norm) for _ in range(config.blocks[0])])
        self.down = _conv(4 * w1, w2)
        self.eighth = nn.Sequential(*[_Residual(w2, config.norm) for _ in range(config.blocks[1])])
        self.up = _conv(w2, 4 * w1, 1)
        self.merge = _conv(w1, w1)
        above = config.widths[1:-1]
        self.deeper = nn.ModuleList(_Level(a, w, b, config.norm) for a, w, b in zip(above, config.widths[2:], config.blocks[2:]))
        if config.tone_head and self.has_prior:
            raise ValueError("a tone head is its own prior: it takes no contour prior")
        if config.head_kernel not in HEAD_KERNELS:
            raise ValueError(f"head_kernel must be one of {HEAD_KERNELS}, not {config.head_kernel}")
        self.head = _conv(w1, 16 * c * (2 if config.gate else 1) + (2 * c if config.tone_head else 0), config.head_kernel)
        bias = self.head.bias
        assert bias is not None
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(bias)
        if config.gate:
            nn.init.constant_(bias[16 * c : 32 * c], GATE_START)
        if config.tone_head:  # the tone's weight starts low: on texture an interpolated tone is worse than the centre
            nn.init.constant_(bias[-c:], TONE_WEIGHT_START)

    @property
    def has_prior(self) -> bool:
        """Whether the network refines prior offsets (given to :meth:`forward`) instead of the bin centre."""
        return self.config.prior != "none"

    @property
    def receptive_radius(self) -> int:
        """Pixels of context on each side that can influence an output pixel (an upper bound)."""
        blocks = self.config.blocks
        quarter_convs = 3 + 2 * blocks[0] + self.config.head_kernel // 2  # contrast pool, stem, residual blocks, merge, head
        radius = 4 * quarter_convs + (4 if self.config.tone_head else 0)  # tones are read between block centres
        for level, count in enumerate(blocks[1:], start=1):
            radius += 4 * 2**level * (1 + 2 * count)  # down, residual blocks
            if level >= 2:
                radius += 4 * 2 ** (level - 1)  # the merge of this level's output into the one above
        return radius + self.multiple - 1  # plus the position inside a block of the coarsest level

    def forward(self, centres: torch.Tensor, step: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        """Offsets for (N, C, H, W) bin centres quantized with ``step`` (one value per sample, shape (N,)).

        ``prior`` (networks with a prior only): the prior's offsets, (N, C, H, W) in (-1, 1).
        """
        return F.pixel_shuffle(self.block_offsets(centres, step, prior), 4)

    def block_offsets(self, centres: torch.Tensor, step: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`forward` before the final pixel shuffle: (N, 16 C, H / 4, W / 4), channel ``16 c + 4 dy + dx``."""
        n, c = centres.shape[:2]
        step = step.to(centres.dtype).view(n, 1, 1, 1)
        # the 16 pixels of every 4x4 block, in steps, less their mean (full-size tensors are updated in place:
        # none of these values is needed by backward, and inference keeps one full-size copy instead of three)
        pixels = unshuffled(centres, torch.div, step.view(n, 1, 1, 1, 1, 1))
        h, w = pixels.shape[2:]
        block_steps = pixels.view(n, c, 16, h, w).mean(2)
        detail = pixels.view(n, c, 16, h, w).sub_(block_steps.unsqueeze(2)).view(n, 16 * c, h, w)
        blocks = block_steps * step  # tone of each 4x4 block, in [0, 1]
        contrast = (blocks - F.avg_pool2d(blocks, 3, stride=1, padding=1, count_include_pad=False)) / step
        condition = (torch.log2(1.0 / step + 1.0) / 16.0).expand(n, 1, h, w)
        small = torch.cat([blocks, contrast.clamp(-8, 8), condition], dim=1)
        # the stem on [detail, small] as two convolutions, so the large detail tensor is never copied by a cat
        weight = self.stem.weight
        stem = F.conv2d(detail, weight[:, : 16 * c], None, padding=1)
        stem = stem + F.conv2d(small, weight[:, 16 * c : 18 * c + 1], self.stem.bias, padding=1)
        if (prior is None) == self.has_prior:
            raise ValueError("a network with a prior needs prior offsets, and one without takes none")
        if prior is not None:
            prior_pixels = unshuffled(prior.to(centres.dtype), torch.clamp, -PRIOR_LIMIT, PRIOR_LIMIT)
            stem = stem + F.conv2d(prior_pixels, weight[:, 18 * c + 1 :], None, padding=1)
        del pixels
        if not self.config.tone_head:
            del detail
        quarter = self.quarter(_act(stem))
        eighth = self._deeper(self.eighth(_act(self.down(F.pixel_unshuffle(quarter, 2)))), 0)
        quarter = _act(self.merge(quarter + F.pixel_shuffle(self.up(eighth), 2)))
        head = self.head(quarter).float()  # the rest in float32: mixed-precision element-wise work costs more than it saves
        gate = None
        if self.config.tone_head:
            # a tone per block (in steps, from the block's mean), interpolated bilinearly between block centres: on a
            # smooth gradient every pixel's place in its bin follows from it (what the contour prior finds by distances)
            # and a weight per block in (0, 1) for it against the centre (texture: 0)
            head, tone, weight = head[:, : -2 * c], head[:, -2 * c : -c], head[:, -c:]
            relative = interpolated_within_blocks(tone + block_steps).view(n, c, 16, h, w).sub_(detail.view(n, c, 16, h, w))
            # in units of the offsets' reach (about half a step), bounded for the tanh
            scale = torch.sigmoid(weight).unsqueeze(2) * (step / offset_reach(step)).view(n, 1, 1, 1, 1)
            relative = relative.mul_(scale).clamp_(-8, 8).view(n, 16 * c, h, w)
            del detail
        if self.config.gate:
            head, gate = head[:, : 16 * c], head[:, 16 * c :]
        if prior is not None:
            # the stem's weight gradient needs the prior: it is overwritten only when no gradient is kept
            head = head.add_(prior_pixels.atanh() if torch.is_grad_enabled() else prior_pixels.atanh_())
        if self.config.tone_head:
            head = head.add_(relative)
        offsets = head.tanh_()
        if gate is None:
            return offsets
        if self.config.gate_limit:  # a bounded logit: closing the gate fully is no reason to grow without bound
            gate = gate.clamp(-self.config.gate_limit, self.config.gate_limit)  # (after tanh_, which shares its storage)
        # tanh's backward reads its output: scaled in place only when no gradient is kept
        return offsets * torch.sigmoid(gate) if torch.is_grad_enabled() else offsets.mul_(torch.sigmoid_(gate))

    def _deeper(self, features: torch.Tensor, index: int) -> torch.Tensor:
        """``features`` of the level above deeper level ``index``, with what that level and those below it add."""
        if index == len(self.deeper):
            return features
        level = cast(_Level, self.deeper[index])
        below = self._deeper(level.blocks(_act(level.down(F.pixel_unshuffle(features, 2)))), index + 1)
        return _act(level.merge(features + F.pixel_shuffle(level.up(below), 2)))


def unshuffled(x: torch.Tensor, operation: Callable[..., torch.Tensor], *arguments: Any) -> torch.Tensor:
    """``operation(F.pixel_unshuffle(x, 4), *arguments)`` in one pass over ``x`` (N, C, H, W) of any strides (a
    tile's view less its halo): the operation reads ``x`` through a strided view in the unshuffled layout and
    writes the (N, 16 C, H / 4, W / 4) result, channel ``16 c + 4 dy + dx``; ``arguments`` broadcast against
    (N, C, 4, 4, H / 4, W / 4).

    >>> x = torch.arange(32.0).view(1, 2, 4, 4)
    >>> torch.equal(unshuffled(x, torch.mul, 2.0), F.pixel_unshuffle(x, 4) * 2.0)
    True
    """
    n, c, h, w = x.shape
    sn, sc, sh, sw = x.stride()
    blocks = x.as_strided((n, c, 4, 4, h // 4, w // 4), (sn, sc, sh, sw, 4 * sh, 4 * sw))
    if torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in (x, *arguments)):
        return operation(blocks, *arguments).reshape(n, 16 * c, h // 4, w // 4)  # out= keeps no gradient
    out = torch.empty((n, 16 * c, h // 4, w // 4), dtype=x.dtype, device=x.device)
    operation(blocks, *arguments, out=out.view(n, c, 4, 4, h // 4, w // 4))
    return out


def grow_from(net: DequantNet, smaller: DequantNet) -> None:
    """Load ``smaller``'s weights into the wider (or deeper) ``net`` so that its output is unchanged.

    New channels keep their random input weights but feed nothing into the old ones (those
    weights are zero, and learn from there); new residual blocks start as the identity.
    Channels are appended at the end of every level, which keeps each old channel's place
    through the pixel shuffles. The contour priors all read the same inputs, so a network of one starts from the
    weights of another (its output then differs as its prior does).
    """
    old_config, new_config = smaller.config, net.config
    if (
        (old_config.gate and not new_config.gate)
        or (old_config.channels, old_config.prior == "none", old_config.norm, old_config.tone_head, old_config.head_kernel)
        != (new_config.channels, new_config.prior == "none", new_config.norm, new_config.tone_head, new_config.head_kernel)
        or len(old_config.widths) != len(new_config.widths)
        or any(new < old for new, old in zip(new_config.widths + new_config.blocks, old_config.widths + old_config.blocks))
        or (old_config.norm and new_config.widths != old_config.widths)  # new channels would change every pixel's norm
        or (old_config.gate and new_config.gate_limit != old_config.gate_limit)
        or (new_config.gate and not old_config.gate and 0 < new_config.gate_limit < GATE_START)
    ):
        raise ValueError(f"cannot grow {old_config} into {new_config}")
    old_state = smaller.state_dict()
    gated = new_config.gate and not old_config.gate
    with torch.no_grad():
        for name, whole in net.named_parameters():
            old = old_state.get(name)
            parameter: torch.Tensor = whole
            if gated and name.startswith("head."):  # the offsets keep their weights, the gate starts near open
                offsets = 16 * new_config.channels
                parameter[offsets:] = GATE_START if name == "head.bias" else 0
                parameter = parameter[:offsets]
            if old is None:  # a new residual block: its second convolution starts at zero
                if ".second." in name:
                    parameter.zero_()
                continue
            if parameter.dim() == 4:
                parameter[: old.shape[0], old.shape[1] :] = 0
                parameter[: old.shape[0], : old.shape[1]] = old
            else:
                parameter[: old.shape[0]] = old
                parameter[old.shape[0] :] = 0


def without_blocks(net: DequantNet, keep: tuple[tuple[int, ...], ...]) -> DequantNet:
    """A copy of ``net`` that keeps, per level, only the residual blocks numbered in ``keep`` (a dropped block
    becomes the identity, so the rest of the network reads what it read before, less that block's addition):
    the start of a fine-tune towards a faster network.

    >>> net = DequantNet(DequantNetConfig(widths=(4, 8), blocks=(2, 4)))
    >>> without_blocks(net, ((0, 1), (1, 2))).config.blocks
    (2, 2)
    """
    config = net.config
    if len(keep) != len(config.blocks) or any(
        not kept or sorted(set(kept)) != list(kept) or not all(0 <= i < count for i in kept) for kept, count in zip(keep, config.blocks)
    ):
        raise ValueError(f"keep one or more of each level's blocks, in order, by number: {keep} for blocks {config.blocks}")
    smaller = copy.deepcopy(net)
    smaller.config = replace(config, blocks=tuple(len(kept) for kept in keep))
    levels: list[tuple[nn.Module, str]] = [(smaller, "quarter"), (smaller, "eighth")] + [(level, "blocks") for level in smaller.deeper]
    for (owner, name), kept in zip(levels, keep):
        blocks = cast(nn.Sequential, getattr(owner, name))
        setattr(owner, name, nn.Sequential(*(blocks[i] for i in kept)))
    return smaller


def narrowed(net: DequantNet, widths: tuple[int, ...], head_kernel: int | None = None) -> DequantNet:
    """A copy of ``net`` with narrower levels below 1/4 resolution and, with ``head_kernel`` 1, a 1x1 head: the
    start of a fine-tune towards a faster network.

    Each narrowed level keeps the channels of its residual stream, and of each block's inner layer, whose weights
    carry the most (the norm of what writes them times the norm of what reads them), in their order; a 1x1 head
    takes the sum of the 3x3 head's taps (its response to features that are locally constant). The same widths
    and head keep the network as it is.

    >>> net = DequantNet(DequantNetConfig(widths=(8, 16), blocks=(1, 2)))
    >>> small = narrowed(net, (8, 12), head_kernel=1)
    >>> small.config.widths, small.config.head_kernel, small.eighth[0].first.weight.shape
    ((8, 12), 1, torch.Size([12, 12, 3, 3]))
    """
    config = net.config
    kernel = config.head_kernel if head_kernel is None else head_kernel
    if (
        len(widths) != len(config.widths)
        or widths[0] != config.widths[0]
        or any(not 1 <= new <= old for new, old in zip(widths, config.widths))
        or kernel not in (1, config.head_kernel)
        or config.norm
    ):
        raise ValueError(f"cannot narrow {config} to widths {widths} and a {kernel}x{kernel} head")
    small = DequantNet(replace(config, widths=tuple(widths), head_kernel=kernel))
    state = {name: value.detach().clone() for name, value in net.state_dict().items()}
    # per level below 1/4: its down, blocks and up, and the merge of its output into the level above
    levels = [("down", "eighth", "up", "merge")] + [
        (f"deeper.{i}.down", f"deeper.{i}.blocks", f"deeper.{i}.up", f"deeper.{i}.merge") for i in range(len(net.deeper))
    ]
    for level, ((down, blocks, up, _), width) in enumerate(zip(levels, widths[1:])):
        count = config.blocks[level + 1]
        below = levels[level + 1] if level + 1 < len(levels) else None
        # the stream: written by the level's down and each block's second convolution, read by each block's first,
        # the level's up and the next level's down (its unshuffled input: channel 4 k + d reads stream channel k)
        writers = [state[f"{down}.weight"]] + [state[f"{blocks}.{b}.second.weight"] for b in range(count)]
        readers = [state[f"{up}.weight"]] + [state[f"{blocks}.{b}.first.weight"] for b in range(count)]
        if below is not None:
            readers.append(_grouped_inputs(state[f"{below[0]}.weight"], 4))
        stream = _strongest(writers, readers, width)
        _keep_outputs(state, down, stream)
        _keep_inputs(state, up, stream)
        for b in range(count):
            first, second = f"{blocks}.{b}.first", f"{blocks}.{b}.second"
            inner = _strongest([state[f"{first}.weight"][:, stream]], [state[f"{second}.weight"][stream]], width)
            _keep_inputs(state, first, stream)
            _keep_outputs(state, first, inner)
            _keep_inputs(state, second, inner)
            _keep_outputs(state, second, stream)
        if below is not None:  # the next level reads and writes this one's stream through (un)shuffles, and merges into it
            spread = (4 * stream[:, None] + torch.arange(4)).flatten()
            _keep_inputs(state, below[0], spread)
            _keep_outputs(state, below[2], spread)
            _keep_inputs(state, below[3], stream)
            _keep_outputs(state, below[3], stream)
    if kernel != config.head_kernel:
        state["head.weight"] = state["head.weight"].sum(dim=(2, 3), keepdim=True)
    small.load_state_dict(state)
    return small


def _strongest(writers: list[torch.Tensor], readers: list[torch.Tensor], count: int) -> torch.Tensor:
    """The ``count`` channels (in order) with the largest norm of their rows in ``writers`` times that of their
    columns in ``readers`` (convolution weights, out x in x kh x kw)."""
    written = sum(w.flatten(1).square().sum(1) for w in writers)
    read = sum(r.transpose(0, 1).flatten(1).square().sum(1) for r in readers)
    assert isinstance(written, torch.Tensor) and isinstance(read, torch.Tensor)
    return (written * read).topk(count).indices.sort().values


def _grouped_inputs(weight: torch.Tensor, group: int) -> torch.Tensor:
    """A weight's input columns summed in consecutive groups of ``group`` (as the columns of one channel each)."""
    out, inputs = weight.shape[:2]
    return weight.reshape(out, inputs // group, group, *weight.shape[2:]).square().sum(2).sqrt()


def _keep_outputs(state: dict[str, torch.Tensor], conv: str, index: torch.Tensor) -> None:
    state[f"{conv}.weight"] = state[f"{conv}.weight"][index]
    state[f"{conv}.bias"] = state[f"{conv}.bias"][index]


def _keep_inputs(state: dict[str, torch.Tensor], conv: str, index: torch.Tensor) -> None:
    state[f"{conv}.weight"] = state[f"{conv}.weight"][:, index]


# bilinear x4 between block centres (F.interpolate, align_corners=False): the pixel at offset d in its block reads
# its block and a neighbour, weights per d over the blocks (before, own, after)
_QUARTER_WEIGHTS = ((3 / 8, 5 / 8, 0.0), (1 / 8, 7 / 8, 0.0), (0.0, 7 / 8, 1 / 8), (0.0, 5 / 8, 3 / 8))


def interpolated_within_blocks(blocks: torch.Tensor) -> torch.Tensor:
    """Per 4x4 block, each pixel's value interpolated bilinearly between block centres (as
    ``F.interpolate(blocks, scale_factor=4, mode="bilinear")``, edges clamped) less the block's own value, in the
    blocks' layout: (N, C, h, w) in, (N, 16 C, h, w) out, channel ``16 c + 4 dy + dx``. One fixed 3x3 convolution
    at block resolution instead of a full-size interpolation and rearrangement.

    >>> ramp = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 3, 4)
    >>> interpolated_within_blocks(ramp)[0, :4, 1, 1].tolist()  # pixels 0-3 of a row: 3/8 step below to 3/8 above
    [-0.375, -0.125, 0.125, 0.375]
    """
    weights = torch.tensor(_QUARTER_WEIGHTS, dtype=torch.float32)
    kernel = (weights[:, None, :, None] * weights[None, :, None, :]).reshape(16, 1, 3, 3)  # (dy, dx) -> 3x3
    kernel[:, 0, 1, 1] -= 1.0  # less the block's own value
    channels = blocks.shape[1]
    kernel = kernel.repeat(channels, 1, 1, 1).to(device=blocks.device, dtype=blocks.dtype)
    return F.conv2d(F.pad(blocks, (1, 1, 1, 1), mode="replicate"), kernel, groups=channels)


def offset_reach(step: torch.Tensor) -> torch.Tensor:
    """The largest offset from a bin centre the network may add: half a ``step`` less one 16-bit code, so
    rounding to 16 bits can never cross into the next bin."""
    return step * 0.5 - 1.0 / 65535


def _per_sample(step: float | list[float], count: int) -> list[float]:
    """One quantization step per sample, from one for the batch or a list of them."""
    return [step] * count if isinstance(step, (int, float)) else list(step)


# how each contour prior finds its contours: distances (see bdx.dequant.classical) and residue classes
_CONTOURS: dict[Prior, tuple[Metric, int]] = {
    "contour": ("l2", RESIDUE_CLASSES),
    "contour-l1": ("l1", RESIDUE_CLASSES),
    "contour-l1-3": ("l1", 3),
}


def contour_prior(
    levels: np.ndarray | torch.Tensor,
    step: float | list[float],
    backend: PriorBackend = "auto",
    prior: Prior = "contour",
    margin: int = 0,
) -> torch.Tensor:
    """The contour method's offsets from the bin centres of (N, C, H, W) integer ``levels``, its contours found
    without checking their levels (``check_levels=False``, see :mod:`bdx.dequant.classical`), in units of
    :func:`offset_reach` (clamped inside (-1, 1)): the input of a network with that ``prior`` (its contours' distances
    and residue classes). An array is read with OpenCV, a tensor by :func:`bdx.dequant.classical.level_fractions`
    on its own device. ``margin``: the prior of the levels less that many pixels on each side (whose contours still
    count)."""
    if prior not in _CONTOURS:
        raise ValueError(f"{prior!r} is not a contour prior")
    metric, classes = _CONTOURS[prior]
    count = levels.shape[0]
    if isinstance(levels, np.ndarray):
        fraction = torch.from_numpy(contour_fractions(levels, check_levels=False, metric=metric, margin=margin, classes=classes))
    else:
        fraction = level_fractions(levels, backend, check_levels=False, metric=metric, margin=margin, classes=classes)
    steps = torch.tensor(_per_sample(step, count), dtype=torch.float32, device=fraction.device)
    scale = (steps / offset_reach(steps)).view(count, 1, 1, 1)
    return fraction.sub_(0.5).mul_(scale).clamp_(-PRIOR_LIMIT, PRIOR_LIMIT)


def dequantize_levels(
    net: nn.Module,
    centres: torch.Tensor,
    step: float | list[float],
    prior: torch.Tensor | None = None,
    *,
    overwrite: bool = False,
) -> torch.Tensor:
    """Values in [0, 1] from bin centres (N, C, H, W): centre plus a bounded offset, added in float32.

    Any size works (the input is padded to the network's multiple and the output cropped).

    ``step`` (the quantization step, 1 / (2^N - 1) for N-bit levels) is one value
    for the batch or one per sample; ``net`` may be wrapped (DistributedDataParallel).
    ``prior``: the prior offsets (:func:`contour_prior`) for a network that refines them.
    ``overwrite``: in inference, a float32 ``centres`` may hold the result (one full-size tensor less).
    """
    inner: Any = getattr(net, "module", net)  # the network, unwrapped from DistributedDataParallel
    channels: int = inner.config.channels
    count = centres.shape[0]
    steps = _per_sample(step, count)
    x = centres if centres.shape[1] == channels else centres.expand(-1, channels, -1, -1)
    if prior is not None and prior.shape[1] != channels:
        prior = prior.expand(-1, channels, -1, -1)
    step_values = torch.tensor(steps, dtype=torch.float32, device=x.device)
    height, width = x.shape[2], x.shape[3]
    multiple = inner.multiple
    pad_h, pad_w = -height % multiple, -width % multiple
    inputs = x
    if pad_h or pad_w:
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        inputs = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        if prior is not None:
            prior = F.pad(prior, (0, pad_w, 0, pad_h), mode=mode)
    reach = offset_reach(step_values.view(count, 1, 1, 1))
    if isinstance(net, DequantNet) and not torch.is_grad_enabled():
        # inference: add the offsets in their 4x4-block layout, which saves a full-size pixel shuffle
        blocks = net.block_offsets(inputs, step_values, prior).float()
        n, _, h, w = blocks.shape
        in_place = overwrite and inputs.dtype == torch.float32 and inputs.is_contiguous()
        out = inputs if in_place else torch.empty((n, channels, 4 * h, 4 * w), dtype=torch.float32, device=inputs.device)
        as_blocks = lambda t: t.view(n, channels, h, 4, w, 4)  # noqa: E731
        torch.addcmul(
            as_blocks(inputs.float()),
            reach.view(n, 1, 1, 1, 1, 1),
            blocks.view(n, channels, 4, 4, h, w).permute(0, 1, 4, 2, 5, 3),
            out=as_blocks(out),
        )
        return out[:, : centres.shape[1], :height, :width]
    offset = net(inputs, step_values) if prior is None else net(inputs, step_values, prior)
    if pad_h or pad_w:
        offset = offset[:, :, :height, :width]
    out = torch.addcmul(x.float(), reach, offset.float())
    return out[:, : centres.shape[1]]


def _orientations(count: int) -> list[tuple[bool, bool, bool]]:
    """The first ``count`` of the 8 image orientations as (transpose, flip rows, flip columns)."""
    if count not in ENSEMBLE_SIZES:
        raise ValueError(f"ensemble size must be one of {ENSEMBLE_SIZES}, not {count}")
    flips = [(False, False), (False, True), (True, False), (True, True)]
    return [(transpose, rows, columns) for transpose in (False, True) for rows, columns in flips][:count]


def _orient(x: torch.Tensor, transpose: bool, rows: bool, columns: bool, *, undo: bool = False) -> torch.Tensor:
    """``x`` (N, C, H, W) in one orientation, or back from it with ``undo``."""
    dims = [d for d, flip in ((2, rows), (3, columns)) if flip]
    if transpose and undo:
        x = x.transpose(2, 3)
    if dims:
        x = x.flip(dims)
    if transpose and not undo:
        x = x.transpose(2, 3)
    return x.contiguous()


class LearnedDequantizer(nn.Module):
    """Adapter for the tiling engine: N-bit levels in, values in [0, 1] out.

    ``ensemble`` > 1 averages the network's outputs for that many orientations of the input and of its
    contour prior, which is computed once (flips, then transposes): slower, a little more accurate, and
    still inside every bin (the bin is convex).
    Under autocast (the tiling engine's ``precision``) only the network's convolutions run in low
    precision: the offsets are bounded and added to the bin centres in float32.
    """

    def __init__(
        self,
        net: DequantNet,
        bits: int,
        convention: Convention = "centre",
        ensemble: int = 1,
        container_bits: int = 16,
        backend: PriorBackend = "auto",
    ) -> None:
        super().__init__()
        self.net = net
        self.backend = backend  # how the contour prior is computed (see bdx.dequant.classical.level_fractions)
        self.bits = bits
        self.orientations = _orientations(ensemble)
        self.step = step_size(bits, convention, container_bits)
        self.centres = MidpointDequantizer(bits, convention, container_bits)
        # the network reads its context around what it predicts, and the contour prior its own support around
        # those: the prior is computed on the whole input, the network runs on the input less that support, and
        # the output comes back trimmed by it (the tiling engine takes each tile from the centre)
        self.tiling = dequant_tiling(net)
        context = round_up(net.receptive_radius, net.multiple)
        self.output_trim = self.tiling.halo - context
        # a pixel with no other level around it keeps the bin centre (nothing tells where inside the bin its truth
        # lies); "around" reaches as far as the prior's support allows (128 px and more), else the network's context
        support = self.output_trim if net.has_prior else context
        self.flat_blocks = (support + 1) // FLAT_BLOCK - 1  # blocks each side: its farthest pixel is within support

    def forward(self, levels: torch.Tensor, checked: ImageAlpha | None = None, boxes: torch.Tensor | None = None) -> torch.Tensor:
        """Values in [0, 1] for (N, C, H, W) levels, less ``output_trim`` pixels on each side where the input
        is larger than twice that (the prior's context: the network reads only what it needs). Pixels whose
        surroundings hold one level only (:func:`uniform_surroundings`) keep the bin centre.

        ``checked`` (the self-check's alpha of the whole image, with each tile's ``boxes`` as the tiling engine
        gives them): the output becomes ``centre + alpha * (output - centre)``.
        """
        out = self._refine(levels)
        trim = (levels.shape[2] - out.shape[2]) // 2
        blocks = uniform_surroundings(levels, self.flat_blocks)
        if trim:
            levels = levels[:, :, trim:-trim, trim:-trim]
        flat_somewhere = bool(blocks.any())  # rare in photos: whole flat regions
        if not flat_somewhere and checked is None:
            return out
        centres = self.centres(levels)
        if flat_somewhere:
            flat = blocks.repeat_interleave(FLAT_BLOCK, 2).repeat_interleave(FLAT_BLOCK, 3)
            flat = flat[:, :, trim : trim + out.shape[2], trim : trim + out.shape[3]]
            out = torch.where(flat, centres, out)
        if checked is not None:
            if boxes is None:
                raise ValueError("a checked run needs each tile's box")
            for i in range(out.shape[0]):  # the same arithmetic as the numpy blend it replaces, in place
                alpha = checked.region(boxes[i], out.shape[2], out.shape[3], trim).to(out.device)
                out[i].sub_(centres[i]).mul_(alpha).add_(centres[i])
        return out

    def _refine(self, levels: torch.Tensor) -> torch.Tensor:
        prior = None
        trim = self.output_trim if min(levels.shape[2:]) > 2 * self.output_trim else 0
        if self.net.has_prior:
            # one prior for every orientation: computing it per orientation took half an ensemble's time, and
            # changed the held-out photos' 4->8 gain by 0.01 dB (the distance transform breaks ties by scan order)
            prior = contour_prior(levels, self.step, self.backend, self.net.config.prior, margin=trim)
        if trim:
            levels = levels[:, :, trim:-trim, trim:-trim]
        if len(self.orientations) == 1:
            return self._dequantize(levels, prior)
        outs = (
            _orient(
                self._dequantize(_orient(levels, *orientation), None if prior is None else _orient(prior, *orientation)),
                *orientation,
                undo=True,
            )
            for orientation in self.orientations
        )
        total = next(outs)
        for out in outs:
            total.add_(out)
        return total.div_(len(self.orientations))

    def _dequantize(self, levels: torch.Tensor, prior: torch.Tensor | None) -> torch.Tensor:
        return dequantize_levels(self.net, self.centres(levels), self.step, prior, overwrite=True)


FLAT_BLOCK = 8  # uniform_surroundings works on 8x8 blocks (the network's multiple: tiles start on this grid)


def uniform_surroundings(levels: torch.Tensor, reach_blocks: int) -> torch.Tensor:
    """Per 8x8 block (aligned to the input's origin) and channel: whether every level within ``reach_blocks``
    blocks of it equals its own. (N, C, ceil(H / 8), ceil(W / 8)) bool, from block minima and maxima.

    >>> flat = torch.full((1, 1, 32, 32), 3.0)
    >>> uniform_surroundings(flat, 2).shape, bool(uniform_surroundings(flat, 2).all())
    (torch.Size([1, 1, 4, 4]), True)
    """
    n, c, h, w = levels.shape
    if h % FLAT_BLOCK == 0 and w % FLAT_BLOCK == 0:
        # over each block's rows first (the reduced axis is not the innermost: a plain vectorized pass, 15 times
        # faster than reducing groups of 8 along a row), then over the 8 columns of the 8x smaller result; a
        # channels-last tensor (a tile as the engine hands it over) is read in its own (N, H, W, C) order
        block = FLAT_BLOCK
        if levels.is_contiguous() or not levels.permute(0, 2, 3, 1).is_contiguous():
            rows = levels.float().view(n, c, h // block, block, w)
            high = rows.amax(3).view(n, c, h // block, w // block, block).amax(-1)
            low = rows.amin(3).view(n, c, h // block, w // block, block).amin(-1)
        else:
            rows = levels.float().permute(0, 2, 3, 1).view(n, h // block, block, w, c)
            high = rows.amax(2).view(n, h // block, w // block, block, c).amax(3).permute(0, 3, 1, 2)
            low = rows.amin(2).view(n, h // block, w // block, block, c).amin(3).permute(0, 3, 1, 2)
    else:
        high = F.max_pool2d(levels.float(), FLAT_BLOCK, ceil_mode=True)
        low = -F.max_pool2d(-levels.float(), FLAT_BLOCK, ceil_mode=True)

    def spread(x: torch.Tensor) -> torch.Tensor:  # separable maximum over the reach
        return window_max(window_max(x, reach_blocks, 3), reach_blocks, 2)

    return spread(high) == -spread(-low)


def window_max(x: torch.Tensor, reach: int, dim: int) -> torch.Tensor:
    """The maximum of ``x`` over the ``reach`` entries each side along ``dim`` (a window cut at the ends), by
    doubling the window: log2(reach) steps instead of one maximum pool with a 2 * reach + 1 kernel (ten times faster
    on a CPU for a reach of 21).

    >>> window_max(torch.tensor([0.0, 5.0, 0.0, 0.0, 0.0, 1.0]), 2, 0).tolist()
    [5.0, 5.0, 5.0, 5.0, 1.0, 1.0]
    """
    out, covered, length = x, 0, x.shape[dim]
    while covered < reach:
        step = min(covered + 1, reach - covered, length)  # the window grows from covered to covered + step
        if step <= 0:
            break
        later, earlier = out.narrow(dim, step, length - step), out.narrow(dim, 0, length - step)
        grown = out.clone()
        grown.narrow(dim, 0, length - step).copy_(torch.maximum(grown.narrow(dim, 0, length - step), later))
        grown.narrow(dim, step, length - step).copy_(torch.maximum(grown.narrow(dim, step, length - step), earlier))
        out, covered = grown, covered + step
    return out


def _from_config(config: dict) -> DequantNet:
    return DequantNet(
        DequantNetConfig(
            widths=tuple(config["widths"]),
            blocks=tuple(config["blocks"]),
            channels=int(config["channels"]),
            prior=config.get("prior", "none"),
            gate=bool(config.get("gate", False)),
            norm=bool(config.get("norm", False)),
            gate_limit=float(config.get("gate_limit", 0.0)),
            tone_head=bool(config.get("tone_head", False)),
            head_kernel=int(config.get("head_kernel", 3)),
        )
    )


def dequant_tiling(net: DequantNet) -> TileNeeds:
    """The tiling needs of :class:`LearnedDequantizer` around ``net``: the network's context plus, with a prior,
    the prior's support (the network runs on its tile less that support)."""
    context = round_up(net.receptive_radius, net.multiple)
    trim = round_up(CONTOUR_SUPPORT, net.multiple) if net.has_prior else 0
    # measured on 2 CPU threads: without a prior the halo adds about 37 % work at 1024 px and larger tiles were no
    # faster; with the prior, 1536 px tiles peak at 1.65 GiB at 100 MP and run as fast as 1792 px (1.9 GiB),
    # while 1280 px tiles are 10 % slower
    return TileNeeds(halo=context + trim, multiple=net.multiple, preferred_tile=1536 if net.has_prior else 1024)


DEQUANT_UNET = Architecture(
    ARCHITECTURE,
    "depth",
    DequantNet,
    dequant_tiling,
    from_config=_from_config,
    bfloat16=True,
)
