"""Choosing the torch device (``auto`` takes CUDA, then MPS, then the CPU) and the inference precision."""

from __future__ import annotations

from typing import Literal, get_args

from bdx.errors import SettingError, SettingUsageError

Precision = Literal["auto", "float32", "bfloat16"]  # what a user chooses
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
EnginePrecision = Literal["auto", "float32", "bfloat16", "float16"]  # what the tiling engine runs (torch dtype names)


def resolve_device(name: str = "auto"):
    """The torch.device for ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; a clear error if absent."""
    import torch

    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        index = name.removeprefix("cuda")
        if index and not (index.startswith(":") and index[1:].isdigit() and index[1:].isascii()):
            raise SettingUsageError(f"{{device}} must be auto, cpu, cuda, cuda:N or mps, not {name!r}")
        if not torch.cuda.is_available():
            raise SettingError(f"{{device}} {name} asked for, but torch sees no CUDA GPU (is a CUDA build of torch installed?)")
        count = torch.cuda.device_count()
        if index and int(index[1:]) >= count:
            gpus = f"{count} CUDA GPU{'s' if count != 1 else ''}"
            raise SettingError(f"{{device}} {name} asked for, but torch sees {gpus} (cuda:0 to cuda:{count - 1})")
        return torch.device(name)
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise SettingError("{device} mps asked for, but MPS is not available")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise SettingUsageError(f"{{device}} must be auto, cpu, cuda, cuda:N or mps, not {name!r}")


def for_inference(module, device):
    """``module`` on ``device`` in eval mode, its convolution weights channels-last (15-80 % faster on CPU
    with oneDNN: Zero-DCE 1200x900 took 2.6 s instead of 4.7 s; no change to results beyond float rounding)."""
    import torch

    return module.to(device, memory_format=torch.channels_last).eval()


def native_bfloat16(device) -> bool:
    """Whether ``device`` runs bfloat16 convolutions in hardware: an x86 CPU with AVX512-BF16 or AMX, or a
    CUDA GPU that supports bfloat16."""
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)
    return False


def resolve_precision(name: str, device) -> Literal["float32", "bfloat16"]:
    """The precision to run for a user's ``auto``, ``float32`` or ``bfloat16``: ``auto`` takes bfloat16 where
    the device runs it natively (:func:`native_bfloat16`), else float32."""
    if name not in PRECISIONS:
        raise SettingUsageError(f"{{precision}} must be one of {', '.join(PRECISIONS)}, not {name!r}")
    if name == "bfloat16" or (name == "auto" and native_bfloat16(device)):
        return "bfloat16"
    return "float32"
