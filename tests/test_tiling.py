"""The tiling engine: exact against whole-image inference, bit-exact identity, bounded, OOM-tolerant."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bdx.tiling import TiledRun, border_indices, layout_axis, pad_image, run_tiled

torch.manual_seed(0)


class SmallNet(torch.nn.Module):
    """Receptive field radius 2 + 2*2 + 2 = 8 px; translation-equivariant on a grid of 2."""

    multiple = 2

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.b = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.c = torch.nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x):
        y = torch.relu(self.a(x))
        y = torch.nn.functional.avg_pool2d(y, 2)
        y = torch.relu(self.b(y))
        y = torch.nn.functional.interpolate(y, scale_factor=2, mode="nearest")
        return self.c(y)


NET = SmallNet().eval()
HALO = 12


def whole_image(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    extra_h, extra_w = (-height) % 2, (-width) % 2
    padded = pad_image(image, HALO, HALO + extra_h, HALO, HALO + extra_w)
    with torch.no_grad():
        out = NET(torch.from_numpy(np.ascontiguousarray(padded)).permute(2, 0, 1)[None])
    return out[0].permute(1, 2, 0).numpy()[HALO : HALO + height, HALO : HALO + width]


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(1, 90),
    width=st.integers(1, 90),
    tile=st.sampled_from([16, 24, 32, 64]),
    blend=st.sampled_from([0, 4, 8]),
    batch=st.integers(1, 3),
    cut=st.booleans(),
)
def test_tiled_equals_whole_image(height, width, tile, blend, batch, cut):
    image = np.random.default_rng(height * 97 + width).random((height, width, 3)).astype(np.float32)
    run = TiledRun(tile=tile, halo=HALO, blend=blend, multiple=2, batch_size=batch, precision="float32", cut=cut)
    tiled = run_tiled(NET, image, settings=run)
    assert tiled.shape == (height, width, 3)
    np.testing.assert_allclose(tiled, whole_image(image), atol=1e-5)


class ZeroPaddedNet(torch.nn.Module):
    """Three 3x3 convolutions with zero padding (radius 3), as published networks run on a whole image."""

    def __init__(self):
        super().__init__()
        self.convs = torch.nn.Sequential(
            torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(6, 6, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(6, 3, 3, padding=1),
        )

    def forward(self, x, features=None, boxes=None):
        if boxes is not None:  # the boxes describe exactly what the model was given
            height, width = features
            for box in boxes.tolist():
                assert round((box[2] - box[0]) * height) == x.shape[2] and round((box[3] - box[1]) * width) == x.shape[3]
                assert box[0] >= 0 and box[1] >= 0 and box[2] <= 1 + 1e-6 and box[3] <= 1 + 1e-6
        return self.convs(x)


ZERO_PADDED = ZeroPaddedNet().eval()


@settings(max_examples=30, deadline=None)
@given(height=st.integers(1, 70), width=st.integers(1, 70), tile=st.sampled_from([8, 16, 40]), batch=st.integers(1, 3),
       with_boxes=st.booleans())
def test_inside_border_equals_the_networks_own_whole_image_run(height, width, tile, batch, with_boxes):
    image = np.random.default_rng(height * 31 + width).random((height, width, 3)).astype(np.float32)
    run = TiledRun(tile=tile, halo=4, blend=0, batch_size=batch, precision="float32", cut=True, border="inside")
    tiled = run_tiled(ZERO_PADDED, image, settings=run, global_features=(height, width) if with_boxes else None)
    with torch.no_grad():
        whole = ZERO_PADDED(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


@pytest.mark.parametrize("length,tile,blend,multiple", [(1, 32, 8, 1), (100, 32, 8, 1), (101, 32, 8, 4), (65, 64, 16, 8)])
def test_layout_tiles_are_equal_and_cover(length, tile, blend, multiple):
    layout = layout_axis(length, tile, blend, multiple)
    covered = np.zeros(layout.padded, bool)
    for i, start in enumerate(layout.starts):
        assert start % multiple == 0 and start + layout.tile <= layout.padded
        covered[start : start + layout.tile] = True
        weight = layout.ramp_weights(i)
        assert weight.shape == (layout.tile,) and weight.min() > 0
    assert covered.all()


@pytest.mark.parametrize("length,tile,blend,multiple", [(1, 32, 8, 1), (100, 32, 8, 1), (101, 32, 8, 4), (65, 64, 16, 8), (1000, 96, 0, 8)])
def test_cut_seams_give_every_position_to_exactly_one_tile(length, tile, blend, multiple):
    layout = layout_axis(length, tile, blend, multiple)
    owners = np.zeros(length, int)
    for i, start in enumerate(layout.starts):
        lo, hi = layout.owned(i)
        assert start <= lo and hi <= start + layout.tile
        owners[lo:hi] += 1
    assert (owners == 1).all()


def test_blend_weights_sum_to_one_for_regular_overlaps():
    layout = layout_axis(5 * 24 + 8, 32, 8, 1)
    total = np.zeros(layout.padded)
    for i, start in enumerate(layout.starts):
        total[start : start + layout.tile] += layout.ramp_weights(i)
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_border_indices_reflect_then_replicate():
    np.testing.assert_array_equal(border_indices(-2, 5, 4), [2, 1, 0, 1, 2, 3, 2])
    np.testing.assert_array_equal(border_indices(-3, 2, 1), [0, 0, 0, 0, 0])
    assert border_indices(-10, 0, 3).min() >= 0


class ZeroResidual(torch.nn.Module):
    """An identity model: a zero-initialised residual body."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Conv2d(3, 3, 3, padding=1)
        torch.nn.init.zeros_(self.body.weight)
        torch.nn.init.zeros_(self.body.bias)

    def forward(self, x):
        return self.body(x)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_identity_returns_every_16bit_code(precision):
    codes = np.arange(65536, dtype=np.uint16).reshape(256, 256, 1).repeat(3, axis=2)
    run = TiledRun(tile=96, halo=8, blend=8, precision=precision, residual=True)
    out = run_tiled(
        ZeroResidual(),
        codes,
        settings=run,
        finalize=lambda rows, top, left: np.rint(rows * 65535).astype(np.uint16),
        out_dtype=np.uint16,
    )
    np.testing.assert_array_equal(out, codes)
    assert np.unique(out[..., 0]).size == 65536


def test_out_of_memory_halves_batch_then_tile():
    calls = []

    def fussy(x):
        calls.append(tuple(x.shape))
        if x.shape[0] * x.shape[2] * x.shape[3] > 2 * 48 * 48:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")
        return x * 2

    image = np.random.default_rng(0).random((100, 90, 3)).astype(np.float32)
    out = run_tiled(fussy, image, settings=TiledRun(tile=64, halo=4, blend=8, batch_size=4))
    np.testing.assert_allclose(out, image * 2, rtol=1e-6)
    assert calls[0][0] == 4 and min(c[0] for c in calls) <= 2
    assert any(c[2] < 64 + 8 for c in calls)


def test_global_context_hook_sees_downscaled_image_once():
    seen = []

    def context(small):
        seen.append(tuple(small.shape))
        return small.mean()

    def model(x, ctx, boxes):
        assert boxes.shape == (x.shape[0], 4)
        return x * 0 + ctx

    image = np.random.default_rng(0).random((300, 500, 3)).astype(np.float32)
    out = run_tiled(model, image, settings=TiledRun(tile=128, halo=8, blend=8), context=context, context_size=64)
    assert len(seen) == 1 and max(seen[0][2:]) == 64
    np.testing.assert_allclose(out, out[0, 0, 0], rtol=1e-6)


def test_peak_float_buffer_is_a_band_not_the_image():
    shapes = []

    def finalize(rows, top, left):
        shapes.append(rows.shape[0])
        return rows

    image = np.zeros((1000, 64, 3), np.float32)
    run_tiled(lambda x: x, image, settings=TiledRun(tile=64, halo=0, blend=8), finalize=finalize)
    assert sum(shapes) == 1000 and max(shapes) <= 64


def test_cut_seams_finalize_tile_sized_blocks_at_their_place():
    image = np.random.default_rng(3).random((300, 410, 3)).astype(np.float32)
    blocks = []

    def finalize(block, top, left):
        blocks.append(block.shape[:2])
        np.testing.assert_array_equal(block, image[top : top + block.shape[0], left : left + block.shape[1]])
        return block * 2

    out = run_tiled(lambda x: x, image, settings=TiledRun(tile=64, halo=4, blend=8, cut=True), finalize=finalize)
    np.testing.assert_array_equal(out, image * 2)
    assert max(max(shape) for shape in blocks) <= 64
    assert sum(h * w for h, w in blocks) == 300 * 410


@pytest.mark.parametrize("residual", [False, True])
def test_models_may_return_their_output_trimmed_by_part_of_the_halo(residual):
    """A model that drops 4 px of context on each side: the engine takes each tile from the centre of its output."""
    image = np.random.default_rng(3).random((37, 53, 3)).astype(np.float32)
    trimmed = lambda x: 2 * x[:, :, 4:-4, 4:-4]  # noqa: E731
    run = TiledRun(tile=16, halo=HALO, blend=0, multiple=2, precision="float32", cut=True, residual=residual)
    np.testing.assert_allclose(run_tiled(trimmed, image, settings=run), (3 if residual else 2) * image, atol=1e-6)
    too_much = lambda x: x[:, :, HALO + 1 : -HALO - 1, HALO + 1 : -HALO - 1]  # noqa: E731
    with pytest.raises(ValueError, match="halo"):
        run_tiled(too_much, image, settings=run)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"multiple": 0}, "multiple must be a whole number between 1"),
        ({"blend": -3}, "blend must be a whole number between 0"),
        ({"batch_size": -1}, "batch_size must be a whole number between 1"),
        ({"tile": 3.5}, "tile must be a whole number between 1"),
        ({"halo": -1}, "halo must be a whole number between 0"),
        ({"precision": "fp8"}, "precision must be one of auto, float32, bfloat16, float16, not 'fp8'"),
        ({"border": "zero"}, "border must be one of reflect, inside, not 'zero'"),
        ({"cut": "yes"}, "cut must be True or False"),
    ],
)
def test_tiled_run_settings_are_checked_when_made(fields, message):
    """multiple=0 was a ZeroDivisionError, batch_size=-1 an AssertionError, precision="fp8" a KeyError, border="zero"
    ran as reflect: each only once an image was being processed."""
    from bdx.errors import SettingError

    with pytest.raises(SettingError, match=message):
        TiledRun(**fields)
    assert TiledRun(tile=np.int64(64), halo=np.int32(8)).tile == 64


def test_run_tiled_refuses_what_is_no_image_and_a_model_of_the_wrong_channel_count():
    """An Image object was an AttributeError, a 0-row array a ValueError from numpy, and a model returning one
    channel where out_channels said three was broadcast into three identical channels."""
    from bdx.errors import BdxError, InputError
    from bdx.io import Image

    for bad in (Image(np.zeros((4, 4, 3), np.uint8)), np.zeros((0, 4, 3), np.uint8), np.zeros(5, np.uint8)):
        with pytest.raises(InputError, match="run_tiled takes an"):
            run_tiled(lambda x: x, bad)
    grey = lambda x: x[:, :1]  # noqa: E731
    with pytest.raises(BdxError, match="output has 1 channels, not the 3 of out_channels"):
        run_tiled(grey, np.zeros((8, 8, 3), np.uint8), out_channels=3, settings=TiledRun(tile=8, halo=0, blend=0))


def test_a_model_whose_output_is_not_finite_is_an_error_not_a_black_image():
    from bdx.errors import WeightsError

    image = np.full((40, 50, 3), 0.5, np.float32)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(WeightsError, match="not finite"):
            run_tiled(lambda x, bad=bad: x * bad, image, settings=TiledRun(tile=32), out_dtype=np.uint16)

    def one_pixel(x, bad):  # one bad sample among finite ones, anywhere in a tile
        out = x.clone()
        out[0, 1, 7, 3] = bad
        return out

    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(WeightsError, match="not finite"):
            run_tiled(lambda x, bad=bad: one_pixel(x, bad), image, settings=TiledRun(tile=32), out_dtype=np.uint16)
    assert run_tiled(lambda x: x * 2, image, settings=TiledRun(tile=32)).max() == 1.0
