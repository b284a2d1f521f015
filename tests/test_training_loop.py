"""The shared training loop: batches drawn in this process or by worker processes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bdx.training.loop import LoopSettings, batch_stream, run_training


def _draw(rng: np.random.Generator) -> torch.Tensor:
    return torch.from_numpy(rng.random(4))


def test_in_process_batches_follow_the_seed():
    stream = batch_stream(_draw, seed=7)
    rng = np.random.default_rng(7)
    assert all(torch.equal(next(stream), torch.from_numpy(rng.random(4))) for _ in range(3))


def test_worker_batches_come_from_distinct_generators_and_repeat_with_the_seed():
    first = batch_stream(_draw, seed=3, workers=2)
    batches = [next(first) for _ in range(6)]
    first.close()
    assert len({tuple(b.tolist()) for b in batches}) == 6  # no worker repeats another's batches
    again = batch_stream(_draw, seed=3, workers=2)
    assert all(torch.equal(a, next(again)) for a in batches)  # workers take turns: the same order every run
    again.close()


def _draw_arrays(rng: np.random.Generator) -> tuple[torch.Tensor, list[np.ndarray]]:
    return torch.from_numpy(rng.random(4)), [rng.random((2, 3)), rng.random((3, 2))]


def test_worker_batches_are_what_the_sampler_made():
    """Worker batches went through the loader's default conversion: NumPy arrays (the HDR trainer's context images)
    came back as tensors, and train hdr --workers failed with an internal TypeError."""
    in_process, by_workers = batch_stream(_draw_arrays, seed=5), batch_stream(_draw_arrays, seed=5, workers=1)
    mine, theirs = next(in_process), next(by_workers)
    by_workers.close()
    assert all(isinstance(c, np.ndarray) for c in theirs[1]) and torch.equal(mine[0], theirs[0])


def test_negative_worker_count_is_refused():
    with pytest.raises(ValueError, match="at least 0"):
        batch_stream(_draw, seed=0, workers=-1)


def test_training_with_workers_updates_the_network(tmp_path):
    net = nn.Linear(4, 1)
    before = net.weight.detach().clone()
    settings = LoopSettings(steps=3, lr=0.1, validate_every=10, checkpoint_every=10)
    state = run_training(net, _draw, lambda model, x: model(x.float()).square().mean(), settings, tmp_path / "c.pt", workers=1)
    assert state.step == 3 and not torch.equal(before, net.weight)
    assert (tmp_path / "c.pt").exists()


def test_a_time_budget_ends_the_run_and_completes_its_schedule(tmp_path):
    net = nn.Linear(4, 1)
    settings = LoopSettings(steps=10**9, lr=0.1, validate_every=10**9, checkpoint_every=10**9, minutes=0.5 / 60)
    records = []
    state = run_training(
        net, _draw, lambda model, x: model(x.float()).square().mean(), settings, tmp_path / "c.pt",
        report=lambda step, record: records.append(record),
    )
    assert 0 < state.step < 10**9 and len(records) == state.step
    assert records[-1]["seconds"] >= 0.5 and records[-1]["milestone"]  # the last step is a milestone, as at the step count
    assert (tmp_path / "c.pt").exists()  # and its checkpoint is written


def test_a_run_whose_loss_is_never_finite_fails_instead_of_writing_untrained_weights(tmp_path):
    """`train lowlight --exposure-level nan` skipped every update and ended with 'wrote ... after 2 steps'."""
    from bdx.errors import BdxError

    net = nn.Linear(4, 1)
    settings = LoopSettings(steps=3, lr=1e-2, validate_every=10, checkpoint_every=10)
    with pytest.raises(BdxError, match="not finite in any of the 3 steps"):
        run_training(net, _draw, lambda model, x: model(x.float()).sum() * float("nan"), settings, tmp_path / "c.pt")
    calls = iter([float("nan"), 1.0, 1.0])  # one bad step among good ones is skipped, the run goes on
    state = run_training(net, _draw, lambda model, x: model(x.float()).square().mean() * next(calls), settings, tmp_path / "d.pt")
    assert state.step == 3 and state.skipped == 1


def test_a_run_that_diverges_fails_instead_of_writing_broken_weights(tmp_path):
    """`train lowlight --lr 1e6`: one huge update, then a non-finite loss at every step, and 'wrote ... after 6 steps'."""
    from bdx.errors import BdxError

    net = nn.Linear(4, 1)
    settings = LoopSettings(steps=4, lr=1e-2, validate_every=10, checkpoint_every=10)
    calls = iter([1.0, float("nan"), 1.0, float("nan")])  # the last step's loss is not finite
    with pytest.raises(BdxError, match="diverged: the loss was not finite in 2 of 4 steps"):
        run_training(net, _draw, lambda model, x: model(x.float()).square().mean() * next(calls), settings, tmp_path / "c.pt")


def test_a_worker_that_raises_is_stopped_with_the_run(tmp_path):
    """The workers were left to the interpreter's exit, where torch reported their killing with a traceback."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import numpy as np
        from torch import nn
        from bdx.training.loop import LoopSettings, run_training

        def draw(rng):
            raise ValueError("bad reference")

        try:
            run_training(nn.Linear(4, 1), draw, lambda m, x: x, LoopSettings(steps=3, lr=0.1, validate_every=10, checkpoint_every=10), "c.pt", workers=2)
        except ValueError:
            print("raised")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "raised"
    assert "Traceback" not in done.stderr, done.stderr
