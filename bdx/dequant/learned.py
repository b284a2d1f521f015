"""Learned bit-depth dequantizer: one small network for every input depth, bin-safe by construction.

The network sees the bin centres of the input and the quantization step (as a
constant conditioning channel), and predicts an offset bounded to half a step
less one 16-bit code (``(step / 2 - 1 / 65535) * tanh``), so its output never
leaves the input's bin, even after rounding to 16 bits. The head starts at zero,
so an untrained network is the bin centre. Weights are stored
as safetensors with the architecture in the file's metadata.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from bdx.errors import BdxError
from bdx.dequant.classical import MidpointDequantizer
from bdx.quantization import Convention, max_level, step_size

ARCHITECTURE = "bdx-dequant-unet-v1"


@dataclass(frozen=True)
class DequantNetConfig:
    """Widths of the three resolution levels (full, 1/2, 1/4 after pixel-unshuffle)."""

    widths: tuple[int, int, int] = (12, 32, 48)
    channels: int = 3


def _conv(inputs: int, outputs: int, kernel: int = 3) -> nn.Conv2d:
    return nn.Conv2d(inputs, outputs, kernel, padding=kernel // 2)


class DequantNet(nn.Module):
    """A three-level U-Net with pixel-(un)shuffle resampling; input size must be a multiple of 4.

    Input: bin centres (C channels, in [0, 1]) and one step channel
    (log2 of the number of levels / 16). Output: offsets in units of half a step,
    in (-1, 1).
    """

    multiple = 4

    def __init__(self, config: DequantNetConfig = DequantNetConfig()) -> None:
        super().__init__()
        self.config = config
        w0, w1, w2 = config.widths
        self.stem = _conv(config.channels + 1, w0)
        self.down1 = _conv(4 * w0, w1)
        self.block1 = nn.Sequential(_conv(w1, w1), nn.ReLU(), _conv(w1, w1))
        self.down2 = _conv(4 * w1, w2)
        self.block2 = nn.Sequential(_conv(w2, w2), nn.ReLU(), _conv(w2, w2), nn.ReLU(), _conv(w2, w2))
        self.up2 = _conv(w2, 4 * w1, 1)
        self.merge1 = _conv(w1, w1)
        self.up1 = _conv(w1, 4 * w0, 1)
        self.head = _conv(w0, config.channels)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        full = F.relu(self.stem(x))
        half = F.relu(self.down1(F.pixel_unshuffle(full, 2)))
        half = half + self.block1(half)
        quarter = F.relu(self.down2(F.pixel_unshuffle(half, 2)))
        quarter = quarter + self.block2(quarter)
        half = F.relu(self.merge1(half + F.pixel_shuffle(self.up2(quarter), 2)))
        full = full + F.pixel_shuffle(self.up1(half), 2)
        return torch.tanh(self.head(F.relu(full)))


def step_channel(bits: int) -> float:
    """The conditioning value the network sees for an N-bit input."""
    return math.log2(max_level(bits) + 1) / 16.0


def dequantize_levels(net: nn.Module, centres: torch.Tensor, bits: int | list[int], step: float | list[float]) -> torch.Tensor:
    """Values in [0, 1] from bin centres (N, C, H, W): centre plus a bounded offset, added in float32.

    ``bits`` and ``step`` are one value for the batch or one per sample; ``net``
    may be wrapped (DistributedDataParallel).
    """
    channels = getattr(net, "module", net).config.channels
    count = centres.shape[0]
    bits_list = [bits] * count if isinstance(bits, int) else list(bits)
    steps = [step] * count if isinstance(step, (int, float)) else list(step)
    x = centres if centres.shape[1] == channels else centres.expand(-1, channels, -1, -1)
    condition = torch.tensor([step_channel(b) for b in bits_list], dtype=x.dtype, device=x.device)
    condition = condition.view(count, 1, 1, 1).expand(count, 1, x.shape[2], x.shape[3])
    offset = net(torch.cat([x, condition], dim=1)).float()
    # half a step less one 16-bit code, so rounding to 16 bits can never cross into the next bin
    reach = torch.tensor(steps, dtype=torch.float32, device=x.device).view(count, 1, 1, 1) * 0.5 - 1.0 / 65535
    out = x.float() + reach * offset
    return out[:, : centres.shape[1]]


class LearnedDequantizer(nn.Module):
    """Adapter for the tiling engine: N-bit levels in, values in [0, 1] out."""

    def __init__(self, net: DequantNet, bits: int, convention: Convention = "centre") -> None:
        super().__init__()
        self.net = net
        self.bits = bits
        self.step = step_size(bits, convention)
        self.centres = MidpointDequantizer(bits, convention)
        self.multiple = DequantNet.multiple
        self.halo = 36  # covers the U-Net receptive field (radius about 32 px)

    def forward(self, levels: torch.Tensor) -> torch.Tensor:
        return dequantize_levels(self.net, self.centres(levels), self.bits, self.step)


def save_weights(net: DequantNet, path: str | Path, extra: dict | None = None) -> None:
    """Write the network as safetensors, its architecture and ``extra`` in the metadata."""
    from safetensors.torch import save_file

    metadata = {"architecture": ARCHITECTURE, "config": json.dumps(asdict(net.config))}
    metadata.update({k: json.dumps(v) for k, v in (extra or {}).items()})
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(path), metadata=metadata)


def load_weights(path: str | Path) -> DequantNet:
    """Load a network saved by :func:`save_weights`; anything else is a one-line error."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise BdxError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            state = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:
        raise BdxError(f"{path.name}: not a readable safetensors file ({str(exc).splitlines()[0][:80]})") from None
    if metadata.get("architecture") != ARCHITECTURE:
        raise BdxError(f"{path.name}: not bdx dequantizer weights (architecture {metadata.get('architecture')!r})")
    try:
        config = json.loads(metadata["config"])
        net = DequantNet(DequantNetConfig(widths=tuple(config["widths"]), channels=int(config["channels"])))
        net.load_state_dict(state)
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise BdxError(f"{path.name}: weights do not match the architecture ({str(exc).splitlines()[0][:80]})") from None
    return net.eval()
