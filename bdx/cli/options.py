"""Option declarations shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

FLAG = " "  # the metavar of a flag: typer would show <bool>, as if it took a value

Inputs = Annotated[list[str], typer.Argument(help="Image files, directories (recursive), globs, or - for stdin.", show_default=False)]
Output = Annotated[
    Optional[str],
    typer.Option("--output", "-o", help="Output file (one input), folder (mirrors input tree), or - for stdout."),
]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")]
Precision = Annotated[
    str,
    typer.Option(help="Network arithmetic: auto (bfloat16 where the CPU or GPU has it natively, else float32), float32 or bfloat16."),
]
Json = Annotated[bool, typer.Option("--json", help="Write one JSON object per file to stdout.", metavar=FLAG)]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.", metavar=FLAG)]
Overwrite = Annotated[bool, typer.Option(metavar=FLAG, help="Replace outputs that already exist.")]
SkipExisting = Annotated[bool, typer.Option(metavar=FLAG, help="Leave existing outputs alone (makes batches resumable).")]
Shard = Annotated[
    Optional[str],
    typer.Option(help="Process every N-th input starting at I, as I/N (default: from SLURM_ARRAY_TASK_ID/COUNT or RANK/WORLD_SIZE)."),
]
Convention = Annotated[
    str,
    typer.Option(help="How N-bit levels sit in the container: centre (bin centres) or truncate (top bits, zero-filled)."),
]
Tile = Annotated[Optional[int], typer.Option(help="Tile size in pixels, halo excluded (default: chosen per model).")]
Dequantize = Annotated[str, typer.Option(help="Dequantizer run first: auto (the shipped learned one), learned, contour, midpoint or none.")]
WeightsOutput = Annotated[Path, typer.Option("--output", "-o", help="Weights file to write (safetensors).")]
Steps = Annotated[int, typer.Option(help="Optimizer steps in all.")]
Minutes = Annotated[
    Optional[float],
    typer.Option(
        help="Time budget: the run ends by then (its learning-rate schedule follows time or steps, whichever runs out first).",
        show_default=False,
    ),
]
LearningRate = Annotated[float, typer.Option(help="Peak learning rate (cosine decay).")]
ValidateEvery = Annotated[int, typer.Option(help="Steps between validation runs.")]
CheckpointEvery = Annotated[int, typer.Option(help="Steps between checkpoints (<output>.ckpt.pt).")]
Resume = Annotated[Optional[Path], typer.Option(help="Checkpoint to continue from.")]
Seed = Annotated[int, typer.Option(help="Random seed.")]
Workers = Annotated[
    int, typer.Option(min=0, help="Processes that synthesize training batches ahead of the optimizer (0: batches are made between steps).")
]
