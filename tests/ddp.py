"""Two-process DistributedDataParallel training on CPU (gloo), shared by the three models' tests."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _train(kind: str, data: Path, output: Path):
    if kind == "depth":
        from bdx.training.depth import DepthTrainConfig, train_depth

        return train_depth([data], output, DepthTrainConfig(steps=3, batch_size=2, crop=32, validate_every=3, checkpoint_every=3))
    if kind == "lowlight":
        from bdx.training.lowlight import LowlightTrainConfig, train_lowlight

        config = LowlightTrainConfig(steps=3, batch_size=2, crop=32, context_size=48, validate_every=3, checkpoint_every=3)
        return train_lowlight([data], output, config)
    from bdx.training.hdr import HdrTrainConfig, train_hdr

    config = HdrTrainConfig(steps=3, batch_size=2, crop=32, width=8, iterations=2, validate_every=3, checkpoint_every=3,
                            validation_fraction=0.4)
    return train_hdr([data], output, config)


def _worker(rank: int, world: int, port: int, kind: str, data: str, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    state = _train(kind, Path(data), Path(folder) / "ddp.safetensors")
    torch.save(state.net.state_dict(), Path(folder) / f"rank{rank}.pt")
    import torch.distributed as dist

    dist.barrier()
    dist.destroy_process_group()


def train_on_two_processes(kind: str, data: Path, folder: Path) -> list[dict]:
    """Train ``kind`` for 3 steps on 2 processes; returns both ranks' final state dicts."""
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(2, free_port(), kind, str(data), str(folder)), nprocs=2, join=True)
    assert (folder / "ddp.safetensors").exists()
    assert torch.load(folder / "ddp.safetensors.ckpt.pt", weights_only=True)["step"] == 3
    return [torch.load(folder / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
