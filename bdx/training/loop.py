"""The optimisation loop every ``bdx train`` command shares.

AdamW with cosine decay, bfloat16 autocast on CUDA, DistributedDataParallel when
launched by ``torchrun`` (gloo on CPU, NCCL on CUDA), periodic validation on
rank 0, checkpoints that load with ``torch.load(weights_only=True)``, and resume.
"""

from __future__ import annotations

import io
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Collection, Generator, Generic, TypeVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from bdx.checkpoints import is_safetensors, is_torch_file
from bdx.errors import BdxError
from bdx.io import atomic_write_bytes

Net = TypeVar("Net", bound=nn.Module)
Batch = TypeVar("Batch")
Config = TypeVar("Config")
MAX_CROP = 2048  # pixels per side of a training crop
MAX_BATCH = 4096  # crops or images per step


def check_start(init: object | None, resume: object | None) -> None:
    """A run starts from weights (``init``) or continues a checkpoint (``resume``), not both: a usage error."""
    from bdx.errors import SettingUsageError

    if init is not None and resume is not None:
        raise SettingUsageError("start from weights ({init}) or continue a checkpoint ({resume}), not both")


def check_run_settings(config: object) -> None:
    """Refuse a training config whose shared settings cannot run (whichever of them it has): ``steps``,
    ``batch_size`` (up to :data:`MAX_BATCH`), ``validate_every`` and ``checkpoint_every`` of at least 1, a finite positive ``lr``, a
    ``seed`` of at least 0, a ``crop`` of 16 to :data:`MAX_CROP` pixels, shares (``*_fraction``,
    ``*_probability``) from 0 to 1 and a ``validation_fraction`` below 1."""
    from bdx.errors import SettingUsageError

    def value(name: str):
        return getattr(config, name, None)

    for name in ("steps", "batch_size", "validate_every", "checkpoint_every"):
        if value(name) is not None and value(name) < 1:
            raise SettingUsageError(f"{{{name}}} must be at least 1, not {value(name)}")
    if value("batch_size") is not None and value("batch_size") > MAX_BATCH:
        raise SettingUsageError(f"{{batch_size}} must be between 1 and {MAX_BATCH}, not {value('batch_size')}")
    if value("lr") is not None and not (math.isfinite(value("lr")) and value("lr") > 0):
        raise SettingUsageError(f"{{lr}} must be a positive number, not {value('lr')}")
    if value("minutes") is not None and not (math.isfinite(value("minutes")) and value("minutes") > 0):
        raise SettingUsageError(f"{{minutes}} must be a positive number, not {value('minutes')}")
    if value("seed") is not None and value("seed") < 0:
        raise SettingUsageError(f"{{seed}} must be at least 0, not {value('seed')}")
    if value("crop") is not None and not 16 <= value("crop") <= MAX_CROP:
        raise SettingUsageError(f"{{crop}} must be between 16 and {MAX_CROP}, not {value('crop')}")
    for name in vars(config):
        if name.endswith(("_fraction", "_probability")) and value(name) is not None:
            share = value(name)
            top_ok = share < 1 if name == "validation_fraction" else share <= 1
            if not (math.isfinite(share) and share >= 0 and top_ok):
                bounds = "at least 0 and below 1" if name == "validation_fraction" else "between 0 and 1"
                raise SettingUsageError(f"{{{name}}} must be {bounds}, not {share}")


@dataclass
class LoopSettings:
    """Schedule of one run."""

    steps: int
    lr: float
    validate_every: int
    checkpoint_every: int
    seed: int = 0
    weight_decay: float = 1e-4
    minutes: float | None = None  # time budget: the cosine schedule follows the larger of the step and time fractions


@dataclass
class TrainState(Generic[Net]):
    """Progress of a run: steps done, validation history, and the network itself."""

    step: int = 0
    history: list[dict] = field(default_factory=list)
    net: Net | None = None
    rank: int = 0
    skipped: int = 0  # steps whose loss was not finite (no update made)


class _Sampled(IterableDataset):
    """Endless batches of ``sample``, each worker process drawing from its own generator."""

    def __init__(self, sample: Callable[[np.random.Generator], Any], seed: int) -> None:
        self.sample = sample
        self.seed = seed

    def __iter__(self):
        worker = get_worker_info()
        rng = np.random.default_rng([self.seed, worker.id if worker is not None else 0])
        while True:
            yield self.sample(rng)


def batch_stream(
    sample: Callable[[np.random.Generator], Batch], seed: int, workers: int = 0, pin: bool = False
) -> Generator[Batch, None, None]:
    """Endless batches drawn by ``sample``: in this process from one generator seeded with ``seed`` (``workers``
    0), else by that many worker processes (forked, so the training data in memory is shared, not copied), each
    from its own generator, two batches ahead each; ``pin``: in page-locked memory for a faster copy to a GPU.
    Close it to stop the workers.

    >>> stream = batch_stream(lambda rng: float(rng.random()), seed=0)
    >>> next(stream) == float(np.random.default_rng(0).random())
    True
    """
    if workers < 0:
        raise ValueError(f"workers must be at least 0, not {workers}")
    if workers == 0:
        return _drawn(sample, np.random.default_rng(seed))
    loader = DataLoader(
        _Sampled(sample, seed),
        batch_size=None,
        num_workers=workers,
        pin_memory=pin,
        multiprocessing_context="fork",
        prefetch_factor=2,
        worker_init_fn=_leave_signals_to_the_parent,
        collate_fn=_as_drawn,  # the batch as ``sample`` made it (the default turned NumPy arrays into tensors)
    )
    return _drawn_by(loader)


def _as_drawn(batch: Any) -> Any:
    return batch


def _leave_signals_to_the_parent(_worker: int) -> None:
    """A worker ignores Ctrl-C and takes SIGTERM as it comes: a terminal's Ctrl-C reaches the whole process group, and
    a worker that raised on it made the parent report an internal error instead of stopping cleanly (the parent shuts
    its workers down)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _drawn(sample: Callable[[np.random.Generator], Batch], rng: np.random.Generator) -> Generator[Batch, None, None]:
    while True:
        yield sample(rng)


def _drawn_by(loader: DataLoader) -> Generator[Any, None, None]:
    batches = iter(loader)
    try:
        yield from batches
    finally:
        # stop the workers now, also when one of them raised: left to the interpreter's exit, they are killed there
        # and torch's signal handler reports it with a traceback
        shutdown = getattr(batches, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()


def read_checkpoint(path: Path) -> dict:
    """A checkpoint written by :func:`run_training` (plain data only: ``weights_only=True``); a one-line error otherwise."""
    if not path.is_file():
        raise BdxError(f"{path}: no such checkpoint")
    if is_safetensors(path):
        why = "a weights file, not a training checkpoint (written beside the output as .ckpt.pt); start a new run from weights instead"
        raise BdxError(f"{path}: {why}")
    if not is_torch_file(path):
        raise BdxError(f"{path}: not a bdx training checkpoint (not a file torch.save writes)")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, or holding more than plain data
        raise BdxError(f"{path}: not a bdx training checkpoint ({exc.__class__.__name__})") from None
    if not isinstance(saved, dict) or not {"model", "optimizer", "step"} <= set(saved):
        raise BdxError(f"{path}: not a bdx training checkpoint (missing model, optimizer or step)")
    return saved


def resumed_config(config: Config, resume: Path | None, given: Collection[str]) -> Config:
    """``config`` for a run that continues the checkpoint ``resume``: every setting not named in ``given`` (those
    chosen for this run) is the checkpoint's run's own, so a run resumed with no settings goes on as it started
    (its steps, schedule, seed, data mix and network). ``config`` unchanged without a checkpoint."""
    if resume is None:
        return config
    saved = read_checkpoint(resume).get("config") or {}
    names = {item.name for item in fields(config)}  # type: ignore[arg-type]  # a dataclass instance
    kept = {name: value for name, value in saved.items() if name in names and name not in given}
    return replace(config, **kept)  # type: ignore[type-var]


def distributed_rank(device: torch.device) -> int:
    """Join the process group when launched by torchrun; returns this process's rank (0 otherwise)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank()


# settings of a run that do not shape its network: not named when a checkpoint's network differs
_SCHEDULE_SETTINGS = frozenset(
    {"steps", "minutes", "lr", "batch_size", "crop", "validate_every", "checkpoint_every", "seed", "validation_fraction", "init"}
)


def network_difference(saved: dict, asked: dict) -> str:
    """Why a checkpoint's network may not be the one asked for, from the two runs' settings: another kind of
    training, or the settings that differ (empty when none explains it)."""
    if saved and asked and set(saved) != set(asked):
        return "a checkpoint of another kind of training"
    differing = [key for key in asked if key in saved and key not in _SCHEDULE_SETTINGS and saved[key] != asked[key]]
    return ", ".join(f"{key} {_shown(saved[key])} in the checkpoint, {_shown(asked[key])} asked" for key in differing[:3])


def _shown(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def run_training(
    net: Net,
    sample: Callable[[np.random.Generator], Batch],
    loss_fn: Callable[[Net, Batch], torch.Tensor],
    settings: LoopSettings,
    checkpoint: Path,
    *,
    validate: Callable[[Net], dict] | None = None,
    resume: Path | None = None,
    device: str = "cpu",
    workers: int = 0,
    report: Callable[[int, dict], None] | None = None,
    config: dict | None = None,
) -> TrainState[Net]:
    """Optimise ``net`` for ``settings.steps`` steps of ``loss_fn(model, sample(rng))``.

    ``sample`` draws one batch from ``rng`` (seeded per rank and resumed step, so a resumed run does not replay
    the batches it has seen); with ``workers`` it runs in that many processes ahead of the optimizer
    (:func:`batch_stream`).
    """
    torch_device = torch.device(device)
    rank = distributed_rank(torch_device)
    net = net.to(torch_device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    state: TrainState[Net] = TrainState(rank=rank)
    if resume is not None:
        saved = read_checkpoint(resume)
        try:
            net.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
        except (RuntimeError, ValueError) as exc:
            why = network_difference(saved.get("config") or {}, config or {}) or str(exc).splitlines()[0].rstrip(":")
            raise BdxError(f"{resume}: holds a different network than the one to train ({why})") from None
        state = TrainState(step=int(saved["step"]), history=list(saved["history"]), rank=rank)
    model: nn.Module = net
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        model = nn.parallel.DistributedDataParallel(net)
    first_step = state.step
    batches = batch_stream(sample, settings.seed + 1000 * rank + state.step, workers, pin=torch_device.type == "cuda")
    amp = torch_device.type == "cuda"
    started = time.perf_counter()
    net.train()
    budget = settings.minutes * 60 if settings.minutes is not None else math.inf
    final_loss = math.nan
    try:
        while state.step < settings.steps:
            elapsed = _shared_elapsed(started, torch_device, model is not net) if settings.minutes is not None else 0.0
            progress = min(1.0, max(state.step / settings.steps, elapsed / budget))
            for group in optimizer.param_groups:
                group["lr"] = settings.lr * 0.5 * (1 + math.cos(math.pi * progress))
            with torch.autocast(torch_device.type, dtype=torch.bfloat16, enabled=amp):
                loss = loss_fn(model, next(batches))  # type: ignore[arg-type]  # the wrapper runs the same network
            optimizer.zero_grad(set_to_none=True)
            if torch.isfinite(loss):
                loss.backward()
                optimizer.step()
            else:  # a non-finite loss would poison the weights: skip the update, keep the step count
                state.skipped += 1
            state.step += 1
            final_loss = float(loss.item())
            record = {"step": state.step, "loss": final_loss, "seconds": time.perf_counter() - started}
            last = state.step == settings.steps or elapsed >= budget
            record["milestone"] = state.step % settings.validate_every == 0 or last  # validation (if any) and a report line
            if rank == 0 and validate is not None and record["milestone"]:
                net.eval()
                with torch.no_grad():
                    record.update(validate(net))
                net.train()
                state.history.append(record)
            if rank == 0 and (state.step % settings.checkpoint_every == 0 or last):
                buffer = io.BytesIO()
                torch.save(
                    {
                        "model": net.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "step": state.step,
                        "history": state.history,
                        "config": config or {},
                    },
                    buffer,
                )
                atomic_write_bytes(checkpoint, buffer.getvalue())
            if rank == 0 and report is not None:
                report(state.step, record)
            if last:
                break
    finally:
        batches.close()  # stops the worker processes, if any
    steps = state.step - first_step
    if state.skipped and state.skipped == steps:
        raise BdxError(f"the loss was not finite in any of the {state.skipped} steps: nothing was learned (check the settings)")
    if state.skipped and not math.isfinite(final_loss):
        raise BdxError(
            f"the training diverged: the loss was not finite in {state.skipped} of {steps} steps, the last one among them, "
            "so no weights were written (a lower learning rate may help)"
        )
    state.net = net
    return state


def _shared_elapsed(started: float, device: torch.device, distributed: bool) -> float:
    """Seconds since ``started``; in a distributed run the largest over the processes, so that all of them follow
    the same time-budgeted learning rate and stop at the same step."""
    elapsed = time.perf_counter() - started
    if not distributed:
        return elapsed
    import torch.distributed as dist

    shared = torch.tensor([elapsed], dtype=torch.float64, device=device)
    dist.all_reduce(shared, op=dist.ReduceOp.MAX)
    return float(shared.item())


def save_trained(state: TrainState, output: Path, config: Any, **extra: Any) -> None:
    """Write the trained network (on rank 0 only) with what the run records in its metadata: the run's settings
    (``config``, a dataclass), its steps, its last validation and ``extra``."""
    from bdx.models import save_model

    if state.rank == 0 and state.net is not None:
        record = {"train_config": asdict(config), "steps": state.step, **extra, "history": state.history[-1:]}
        save_model(state.net, output, extra=record)
