"""Reading and writing bdx's model weights as safetensors, the architecture named in the metadata.

Every bdx model file carries ``architecture`` (a name such as ``bdx-dequant-unet-v2``) and ``config`` (its
dataclass as JSON), plus whatever the training run recorded (steps, files, validation figures). Nothing is ever
unpickled. :mod:`bdx.models` decides which network a file holds; this module only reads and writes.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch
from torch import nn

from bdx.checkpoints import state_dict_mismatch
from bdx.errors import WeightsError

Model = TypeVar("Model", bound=nn.Module)


def write_model(net: Any, path: str | Path, architecture: str, extra: dict | None = None) -> None:
    """Write ``net``'s state dict with its architecture, its ``config`` dataclass and ``extra`` in the metadata
    (atomically: a full disk or an interrupt never leaves a truncated file)."""
    from safetensors.torch import save

    from bdx.io import atomic_write_bytes

    metadata = {"architecture": architecture, "config": json.dumps(asdict(net.config))}
    metadata.update({k: json.dumps(v) for k, v in (extra or {}).items()})
    atomic_write_bytes(path, save({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, metadata=metadata))


def read_model(path: str | Path) -> tuple[str, dict[str, torch.Tensor], dict[str, Any]]:
    """(architecture name, state dict, the other metadata with JSON values decoded) of a file written by
    :func:`write_model`; a one-line :class:`WeightsError` for a file that is not one."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if path.stat().st_size == 0:
        raise WeightsError(f"{path.name}: the file is empty")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            state = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:
        raise WeightsError(f"{path.name}: not a readable safetensors file ({str(exc).splitlines()[0][:80]})") from None
    name = metadata.get("architecture")
    if name is None:
        raise WeightsError(f"{path.name}: not bdx weights (no architecture in its metadata)")
    return name, state, metadata_json({key: value for key, value in metadata.items() if key != "architecture"})


def metadata_json(metadata: dict[str, str]) -> dict[str, Any]:
    """A safetensors metadata mapping with its JSON values decoded (values that are not JSON kept as text)."""
    decoded: dict[str, Any] = {}
    for key, value in metadata.items():
        try:
            decoded[key] = json.loads(value)
        except ValueError:
            decoded[key] = value
    return decoded


def build_model(factory: Callable[[], Model], state: dict, path: str | Path) -> Model:
    """The network ``factory`` makes, with ``state`` loaded; a one-line error when they do not match.

    The network is first made on the ``meta`` device (no memory) and its tensor shapes compared with the file's:
    a config asking for a huge network is refused before anything is allocated, since a matching network is no
    larger than the file itself.
    """
    name = Path(path).name
    try:
        with torch.device("meta"):
            probe = factory()
    except Exception as exc:  # a config no network can be made of (a negative width: a RuntimeError)
        raise WeightsError(f"{name}: weights do not match the architecture (config: {str(exc).splitlines()[0][:120]})") from None
    wanted = {key: tuple(value.shape) for key, value in probe.state_dict().items()}
    found = {key: tuple(value.shape) for key, value in state.items()}
    if wanted != found:
        different = sorted(set(wanted) ^ set(found)) or [k for k in wanted if wanted[k] != found[k]]
        raise WeightsError(f"{name}: weights do not match the architecture (its config and tensors differ at {different[0]})")
    net = factory()
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsError(f"{name}: weights do not match the architecture ({state_dict_mismatch(exc)})") from None
    return net.eval()
