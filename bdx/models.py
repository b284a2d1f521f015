"""Every network bdx runs, in one table: any weights file loads as a :class:`LoadedModel`.

The pattern is a loader, a registry and a descriptor. :func:`load_model` reads a weights file: bdx's own
safetensors name their architecture in their metadata, published PyTorch checkpoints are recognised from their
keys by each architecture's ``detect``. The registry (:func:`architectures`) holds one :class:`Architecture` per
network, defined next to the network itself. What comes back describes the network for the code that runs it:
its task, its name, its tiling needs and what precision it supports.

Adding a model is one module (the network and its ``Architecture``) plus one line in :func:`architectures`.

>>> from bdx.models import load_model
>>> model = load_model(None, "depth")  # the shipped dequantizer
>>> model.architecture, model.tiling.multiple
('bdx-dequant-unet-v2', 8)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, get_args

from bdx.errors import SettingError, WeightsError, check_setting

if TYPE_CHECKING:
    import torch
    from torch import nn

Task = Literal["depth", "lowlight", "hdr"]
TASKS: tuple[Task, ...] = get_args(Task)
TASK_NAMES: dict[Task, str] = {"depth": "dequantizer", "lowlight": "low-light", "hdr": "HDR"}
ALL_DEVICES = ("cpu", "cuda", "mps")  # torch device types


@dataclass(frozen=True)
class TileNeeds:
    """What a network asks of the tiling engine: ``halo`` pixels of context on each side of a tile (its receptive
    field, so tiles join exactly), tile sizes and origins on a grid of ``multiple``, and the tile size it runs
    fastest at."""

    halo: int = 0
    multiple: int = 1
    preferred_tile: int = 1024


@dataclass(frozen=True)
class Architecture:
    """One network bdx can run.

    bdx's own architectures give ``from_config``: the network built from the configuration stored in its
    safetensors file. Published ones give ``detect`` (does a checkpoint's state dict hold this network?) and
    ``from_state`` (the network with that state loaded), and their ``title`` as their authors write it.
    ``tiling`` tells the tiling engine what a built network needs; ``bfloat16``: whether its convolutions may run
    in bfloat16 with the same quality; ``devices``: the torch device types it runs on.
    """

    name: str
    task: Task
    network: type
    tiling: Callable[[Any], TileNeeds]
    from_config: Callable[[dict], Any] | None = None
    detect: Callable[[dict[str, Any]], bool] | None = None
    from_state: Callable[[dict[str, Any], Path], Any] | None = None
    bfloat16: bool = False
    title: str = ""
    devices: tuple[str, ...] = ALL_DEVICES


@dataclass(frozen=True)
class LoadedModel:
    """A network ready to run, and what the code running it needs to know.

    ``net`` is the ``torch.nn.Module``; ``tiling``, ``bfloat16`` and ``devices`` are its architecture's (see
    :class:`Architecture`); ``metadata`` holds what a bdx weights file recorded of its training
    (empty for published checkpoints); ``path`` is the file it came from (None when built in memory).
    """

    task: Task
    architecture: str
    net: nn.Module
    tiling: TileNeeds
    bfloat16: bool = False
    devices: tuple[str, ...] = ALL_DEVICES
    path: Path | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


def check_task_arguments(image: object, model: object, settings: object, settings_type: type, device: object) -> None:
    """A :class:`TypeError` at the call for arguments of the wrong kind (a file name where an image belongs, a
    path where a loaded model does), instead of an ``AttributeError`` from deep inside a task function."""
    import torch

    from bdx.io.image import check_image

    check_image(image)
    if model is not None and not isinstance(model, LoadedModel):
        raise TypeError(f"model must be a bdx.LoadedModel (bdx.load_model loads weights) or None, not {type(model).__name__}")
    if not isinstance(settings, settings_type):
        raise TypeError(f"settings must be a bdx.{settings_type.__name__} or None (the defaults), not {type(settings).__name__}")
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a name such as 'auto', 'cpu' or 'cuda:0', not {type(device).__name__}")


@cache
def architectures() -> tuple[Architecture, ...]:
    """The registry: every architecture bdx can load (imported on first use: the networks need torch)."""
    from bdx.dequant.learned import DEQUANT_UNET
    from bdx.hdr.models import HDR_FEEDBACK
    from bdx.hdr.published import EXPANDNET, FHDR
    from bdx.lowlight.models import CURVE_NET
    from bdx.lowlight.published import SCI, ZERO_DCE, ZERO_DCE_IMPROVED, ZERO_DCE_PLUS

    return (
        DEQUANT_UNET,
        CURVE_NET,
        ZERO_DCE,
        ZERO_DCE_IMPROVED,
        ZERO_DCE_PLUS,
        SCI,
        HDR_FEEDBACK,
        FHDR,
        EXPANDNET,
    )


def architecture_of(net: Any) -> Architecture:
    """The registered bdx architecture (one bdx saves) whose network ``net`` is."""
    for entry in architectures():
        if entry.from_config is not None and type(net) is entry.network:
            return entry
    raise WeightsError(f"{type(net).__name__} is not a network bdx saves")


def describe(
    net: Any, entry: Architecture | None = None, path: Path | None = None, metadata: Mapping[str, Any] | None = None
) -> LoadedModel:
    """The :class:`LoadedModel` of a network already in memory (``entry``: its architecture, found from its
    type when None)."""
    entry = entry or architecture_of(net)
    return LoadedModel(entry.task, entry.name, net, entry.tiling(net), entry.bfloat16, entry.devices, path, dict(metadata or {}))


def load_model(path: str | Path | None, task: Task, *, bits: int | None = None) -> LoadedModel:
    """Load the weights file ``path`` for ``task`` (None: the shipped weights; for inputs of ``bits`` bits when
    given, see :func:`bdx.assets.default_weights`).

    bdx's safetensors are built from the architecture and configuration in their metadata, published checkpoints
    (``.pth``, ``.pt``, ``.ckpt``, read with ``weights_only``) from the architecture their keys reveal. A file
    that is missing, unreadable, of another task or of no known architecture is a one-line :class:`WeightsError`.
    """
    from bdx.assets import default_weights

    check_setting("task", task, TASKS)
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file name (str or Path) or None, not {type(path).__name__}")
    return _load(Path(path) if path is not None else default_weights(task, bits), task)


def identify(path: str | Path) -> LoadedModel:
    """Load a weights file of any task: bdx's own safetensors name their architecture, a published checkpoint is
    recognised among every task's; a :class:`WeightsError` when none takes it."""
    return _load(Path(path), None)


WEIGHT_SUFFIXES = frozenset({".safetensors", ".pth", ".pt", ".ckpt"})


def _load(path: Path, task: Task | None) -> LoadedModel:
    """The weights file at ``path`` for ``task`` (None: whichever task its architecture has)."""
    from bdx.checkpoints import is_safetensors

    if path.is_dir():
        raise WeightsError(f"{path} is a folder; weights are one file (.safetensors, .pth, .pt or .ckpt)")
    if not path.exists():
        raise WeightsError(f"weights file not found: {path}")
    if not path.is_file():
        raise WeightsError(f"{path} is not a regular file; weights are one file (.safetensors, .pth, .pt or .ckpt)")
    own = path.suffix.lower() == ".safetensors" or is_safetensors(path)
    model = _load_bdx(path, task) if own else _load_published(path, task)
    check_finite(model.net, path)
    return model


def check_finite(net: nn.Module, path: Path) -> None:
    """A :class:`WeightsError` when a weight or buffer of ``net`` is NaN or infinite (a diverged training run):
    such a network writes black or NaN images without a word."""
    import torch

    for name, tensor in [*net.named_parameters(), *net.named_buffers()]:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise WeightsError(f"{path.name}: weights hold NaN or infinite values ({name}); a training run diverged?")


def _load_bdx(path: Path, task: Task | None) -> LoadedModel:
    from bdx.safetensor_io import build_model, read_model

    name, state, metadata = read_model(path)
    entry = next((entry for entry in architectures() if entry.name == name and entry.from_config is not None), None)
    if entry is None or entry.task != (task or entry.task):
        kind = f"bdx {TASK_NAMES[task]}" if task is not None else "bdx"
        raise WeightsError(f"{path.name}: not {kind} weights (architecture {name!r})")
    config = metadata.pop("config", None)
    if not isinstance(config, dict):
        raise WeightsError(f"{path.name}: weights do not match the architecture (no config object in its metadata)")
    build = entry.from_config
    assert build is not None  # chosen above
    net = build_model(lambda: build(config), state, path)
    return describe(net, entry, path, metadata)


def _load_published(path: Path, task: Task | None) -> LoadedModel:
    from bdx.checkpoints import read_state_dict

    state = read_state_dict(path)
    try:
        entry = recognise(state, task)
    except WeightsError as exc:
        raise WeightsError(f"{path.name}: {exc}") from None
    assert entry.from_state is not None  # published entries give it with detect
    try:
        net = entry.from_state(state, path)
    except WeightsError:
        raise
    except Exception as exc:  # tensors of the right names but not of the shapes the network is made from
        raise WeightsError(f"{path.name}: {_mismatch(entry, exc, with_type=False)}") from None
    return describe(net, entry, path)


def recognise(state: dict[str, Any], task: Task | None) -> Architecture:
    """The published architecture (of ``task``; None: of any task) whose ``detect`` takes the checkpoint
    ``state``; a :class:`WeightsError` naming the ones bdx runs otherwise."""
    from bdx.checkpoints import describe_keys

    candidates = [entry for entry in architectures() if entry.task == (task or entry.task) and entry.detect is not None]
    for entry in candidates:
        assert entry.detect is not None
        try:
            found = entry.detect(state)
        except Exception as exc:  # a tensor of an expected name but another rank (a 0-d bias)
            raise WeightsError(_mismatch(entry, exc, with_type=True)) from None
        if found:
            return entry
    known = ", ".join(entry.title or entry.name for entry in candidates)
    kind = f"{TASK_NAMES[task]} checkpoint" if task is not None else "checkpoint"
    formats = f"{known}, or bdx's own safetensors" if known else "bdx's own safetensors only"
    raise WeightsError(f"not a {kind} bdx recognises ({formats}); keys: {describe_keys(state)}")


def _mismatch(entry: Architecture, exc: Exception, *, with_type: bool) -> str:
    """One line for weights ``entry`` could not take: the first line of ``exc`` (its type where it says nothing,
    or ahead of it with ``with_type``)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    # torch's load_state_dict says "Error(s) in loading state_dict for X:" first, and what does not fit after it
    telling = [line for line in lines if not line.startswith("Error(s) in loading")] or lines
    detail = telling[0] if telling else ""
    if len(detail) > 160:
        detail = detail[:159] + "…"
    if with_type or not detail:
        detail = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return f"weights do not match {entry.title or entry.name} ({detail})"


def check_device(model: LoadedModel, device: Any) -> None:
    """A :class:`SettingError` unless ``model`` runs on ``device`` (a ``torch.device``)."""
    if device.type not in model.devices:
        raise SettingError(f"{{device}} {device.type}: {model.architecture} runs on {', '.join(model.devices)}")


def check_task(model: LoadedModel, task: Task) -> None:
    """A :class:`WeightsError` unless ``model`` is a network for ``task``."""
    if model.task != task:
        raise WeightsError(f"{model.architecture} is a {TASK_NAMES[model.task]} network, not a {TASK_NAMES[task]} one")


def save_model(net: Any, path: str | Path, extra: Mapping[str, Any] | None = None) -> None:
    """Write one of bdx's own networks as safetensors: its architecture's name, its configuration and ``extra``
    (what the training run records) in the metadata; atomically."""
    from bdx.safetensor_io import write_model

    write_model(net, path, architecture_of(net).name, dict(extra or {}))


def parameter_count(net: torch.nn.Module) -> int:
    """The number of parameters of ``net``."""
    return sum(parameter.numel() for parameter in net.parameters())
