"""Reading published PyTorch checkpoints (``.pth``, ``.pt``, ``.ckpt`` state dicts) without running their code.

Published models ship as pickled state dicts. They are read with ``torch.load(..., weights_only=True)``, which
refuses anything but tensors and plain containers, so a checkpoint can never execute code. Which architecture a
file holds is decided from its keys and tensor shapes (each published architecture's ``detect`` in
:mod:`bdx.models`), never from the file's name.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from pathlib import Path
from typing import TypeVar

import torch

from bdx.errors import TrainingCheckpointError, WeightsError

Model = TypeVar("Model", bound=torch.nn.Module)


def is_safetensors(path: Path) -> bool:
    """Whether ``path`` starts like a safetensors file (an 8-byte header length, then ``{``)."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def is_torch_file(path: Path) -> bool:
    """Whether ``path`` starts like what ``torch.save`` writes (a zip archive, or a pickle of the legacy format)."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    return head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")


def _load_failure(exc: Exception) -> str:
    """Why ``torch.load`` refused a file, in a few words."""
    text = str(exc)
    if "GLOBAL" in text:  # torch's weights_only loader met a class or function: a pickled model or training state
        return "it holds Python objects besides tensors, which bdx does not unpickle"
    if text.startswith("Weights only load failed"):
        return "unreadable data"
    message = (text.splitlines() or [""])[0]
    if not message:  # an empty or cut-short file: torch gives an empty message
        return f"{type(exc).__name__}: empty or truncated file"
    return message if len(message) <= 80 else message[:80].rsplit(" ", 1)[0] + " ..."


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a PyTorch checkpoint, on the CPU, with a ``state_dict`` wrapper and a DataParallel
    ``module.`` prefix removed; a one-line error for a file that is not a state dict of tensors."""
    if path.stat().st_size == 0:
        raise WeightsError(f"{path.name}: the file is empty")
    if not is_torch_file(path):
        raise WeightsError(f"{path.name}: not a PyTorch checkpoint or a safetensors file")
    try:
        with warnings.catch_warnings():  # torch warns about odd pickle protocols of damaged files: the error says it
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{path.name}: not a loadable checkpoint ({_load_failure(exc)})") from None
    if isinstance(state, dict) and {"model", "optimizer", "step"} <= set(state) and isinstance(state["model"], dict):
        step = _whole_step(state["step"])
        if step is None:
            raise WeightsError(f"{path.name}: not a checkpoint bdx reads (its step is not a whole number)")
        parameters = sum(v.numel() for v in state["model"].values() if isinstance(v, torch.Tensor))
        raise TrainingCheckpointError(
            f"{path.name}: a bdx training checkpoint (step {step}), not weights: resume the training from it, or use "
            "the weights file its run wrote",
            step,
            parameters,
        )
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path.name}: not a state dict of tensors")
    if not all(isinstance(key, str) for key in state):
        raise WeightsError(f"{path.name}: not a state dict of tensors (its keys are not all names)")
    state = dict(state)
    if all(str(key).startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    return state


def _whole_step(step: object) -> int | None:
    """A checkpoint's step as an int (a Python or one-element tensor whole number), else None."""
    if isinstance(step, torch.Tensor):
        step = step.item() if step.numel() == 1 else None
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not math.isfinite(step) or step != int(step):
        return None
    return int(step)


def describe_keys(state: dict[str, torch.Tensor], count: int = 3) -> str:
    """The first few keys of a state dict, for error messages."""
    keys = sorted(state)
    return ", ".join(keys[:count]) + (", ..." if len(keys) > count else "")


def flush_denormals(state: dict[str, torch.Tensor]) -> int:
    """Set subnormal float weights to zero in place; returns how many there were.

    Some published checkpoints hold thousands of them; on a CPU they make inference tens of times slower, and
    zeroing them does not change the output measurably.
    """
    count = 0
    for tensor in state.values():
        if tensor.is_floating_point():
            tiny = torch.finfo(tensor.dtype).tiny
            mask = (tensor != 0) & (tensor.abs() < tiny)
            count += int(mask.sum())
            tensor[mask] = 0
    return count


def sha256(path: Path) -> str:
    """The file's SHA-256, hex (published files whose settings are not stored in them are known by it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_matching(net: Model, state: dict[str, torch.Tensor], path: Path, kind: str) -> Model:
    """Load ``state`` into ``net`` (eval mode); a one-line error naming ``kind`` when they do not match."""
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsError(f"{path.name}: weights do not match {kind} ({state_dict_mismatch(exc)})") from None
    return net.eval()


def state_dict_mismatch(exc: Exception) -> str:
    r"""The first specific line of a ``load_state_dict`` error (which tensor, which shapes), cut to 160 characters.

    >>> state_dict_mismatch(RuntimeError("Error(s) in loading state_dict for Net:\n\tsize mismatch for a.weight: x"))
    'size mismatch for a.weight: x'
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    specific = [line for line in lines if not line.startswith("Error(s) in loading state_dict")]
    return ((specific or lines or [type(exc).__name__])[0])[:160]
