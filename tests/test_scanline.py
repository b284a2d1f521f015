"""The scanline prior: runs along rows and columns, as torch operations only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bdx.dequant.scanline import SCANLINE_SUBSAMPLE, SCANLINE_SUPPORT, scanline_fractions


def _rmse(levels: np.ndarray, fractions: torch.Tensor, truth: np.ndarray, margin: int = 40) -> float:
    estimate = levels - 0.5 + fractions[0, 0].numpy()
    inner = (slice(margin, -margin), slice(margin, -margin))
    return float(np.sqrt(((estimate - truth)[inner] ** 2).mean()))


@pytest.mark.parametrize("angle", [0.0, 0.3, 0.8, 1.2, np.pi / 2])
@pytest.mark.parametrize("subsample", [1, SCANLINE_SUBSAMPLE])
def test_a_ramp_in_any_direction_comes_back_far_closer_than_its_bin_centres(angle, subsample):
    ys, xs = np.mgrid[0:240, 0:320]
    truth = (xs * np.cos(angle) + ys * np.sin(angle)) * 0.06
    levels = np.floor(truth + 0.5)
    fractions = scanline_fractions(torch.tensor(levels)[None, None], subsample)
    assert fractions.dtype == torch.float32 and 0 <= fractions.min() and fractions.max() <= 1
    assert _rmse(levels, fractions, truth) < 0.15 * _rmse(levels, torch.full_like(fractions, 0.5), truth)


def test_crests_and_troughs_rise_from_their_contours_and_edges_are_not_contours():
    """A plateau with the level below on both sides (a crest) starts at the bin's bottom at its contours and reaches
    the centre midway; a trough is its mirror; a jump of two levels or more is an edge, which leaves the centre."""
    row = torch.tensor([3.0] * 8 + [4.0] * 9 + [3.0] * 8 + [2.0] * 9 + [3.0] * 8 + [9.0] * 8)
    fractions = scanline_fractions(row.view(1, 1, 1, -1).expand(1, 1, 5, -1), subsample=1)[0, 0, 2]
    crest, trough = fractions[8:17], fractions[25:34]
    assert crest[0] < crest[2] < crest[4] <= 0.5 and crest[4] > 0.4
    torch.testing.assert_close(trough, 1 - crest)
    assert torch.all(fractions[-8:] == 0.5)  # the 9s: only an edge on their left


def test_a_pixel_depends_only_on_its_support_and_tiles_on_the_sample_grid_match_the_whole():
    generator = torch.Generator().manual_seed(3)
    smooth = torch.nn.functional.interpolate(torch.rand(1, 2, 12, 12, generator=generator), size=(400, 400), mode="bicubic")
    wide = torch.zeros(1, 1, 400, 400)
    wide[..., 150:] = 1  # a run longer than the tile: a tile sees it end where the tile does
    levels = torch.cat([torch.floor(smooth * 40 + 0.5), torch.floor(smooth * 5 + 0.5), wide], 1)
    whole = scanline_fractions(levels)
    margin = SCANLINE_SUPPORT
    top, left = 8 * SCANLINE_SUBSAMPLE, 12 * SCANLINE_SUBSAMPLE
    tile = scanline_fractions(levels[:, :, top : top + 2 * margin + 40, left : left + 2 * margin + 40])
    inner = (slice(None), slice(None), slice(top + margin, top + margin + 40), slice(left + margin, left + margin + 40))
    torch.testing.assert_close(tile[:, :, margin:-margin, margin:-margin], whole[inner])
    changed = levels.clone()
    changed[:, :, 200 + SCANLINE_SUPPORT + 1 :, :] += 1  # beyond the support of row 200
    changed[:, :, :, 200 + SCANLINE_SUPPORT + 1 :] -= 1
    assert torch.equal(scanline_fractions(changed)[:, :, 200, 200], whole[:, :, 200, 200])


def test_only_tensor_operations_run():
    """On the meta device (no data, so no NumPy or OpenCV could read it) the prior still runs."""
    from bdx.dequant.learned import prior_offsets

    levels = torch.zeros(2, 3, 64, 72, device="meta")
    assert scanline_fractions(levels).shape == levels.shape
    assert prior_offsets(levels, [1 / 255, 1 / 15], "scanline").device.type == "meta"
