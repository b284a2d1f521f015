"""The contour prior as tensor operations (jump flooding): close to the OpenCV path, no NumPy or OpenCV inside,
bin-safe end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bdx.dequant.classical as classical
from bdx.dequant import jump_flood
from bdx.dequant.classical import ContourDequantizer, contour_fractions, level_fractions
from bdx.dequant.learned import DequantNet, DequantNetConfig, LearnedDequantizer
from bdx.quantization import max_level


def _levels(bits: int, noise: float, seed: int = 0, size: tuple[int, int] = (90, 130)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : size[0], 0 : size[1]]
    scene = 0.5 + 0.3 * np.sin(x / 23) * np.cos(y / 31) + rng.normal(0, noise, size)
    return np.rint(np.clip(scene, 0, 1) * max_level(bits)).astype(np.int32)[None, None]


def test_nearest_seeds_are_the_exact_nearest_within_reach():
    rng = np.random.default_rng(1)
    seeds = torch.from_numpy(rng.random((2, 40, 50)) < 0.01)
    rows, cols = jump_flood.nearest_seeds(seeds, 64)
    for p in range(2):
        points = torch.nonzero(seeds[p]).float()
        ys, xs = torch.meshgrid(torch.arange(40.0), torch.arange(50.0), indexing="ij")
        exact = torch.cdist(torch.stack([ys, xs], -1).view(-1, 2), points).min(1).values.view(40, 50)
        found = torch.sqrt(((rows[p] - ys) ** 2 + (cols[p] - xs) ** 2).float())
        assert float((found - exact).abs().max()) < 1e-4  # jump flooding with the extra pass finds the nearest here


@pytest.mark.parametrize("check_levels", [True, False])
@pytest.mark.parametrize("bits,noise", [(4, 0.0), (6, 0.002), (8, 0.0), (8, 0.003)])
def test_tensor_fractions_are_close_to_opencvs(bits, noise, check_levels):
    levels = _levels(bits, noise)
    reference = contour_fractions(levels, check_levels)
    flooded = jump_flood.contour_fractions(torch.from_numpy(levels), check_levels).numpy()
    difference = np.abs(flooded - reference)
    assert difference.mean() < 0.01 and (difference > 0.05).mean() < 0.05
    assert ((flooded >= 0) & (flooded <= 1)).all()


class _Forbidden:
    def __getattr__(self, name):
        raise AssertionError(f"OpenCV called on the tensor path ({name})")


@pytest.mark.parametrize("prior", ["contour", "contour-l1"])
def test_tensor_path_runs_without_numpy_or_opencv(monkeypatch, prior):
    levels = torch.from_numpy(_levels(6, 0.002)).float()
    torch.manual_seed(0)
    net = DequantNet(DequantNetConfig(widths=(8, 16), blocks=(1, 1), prior=prior, gate=True)).eval()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.normal_(0, 0.05)
    contour = ContourDequantizer(6, backend="torch")
    learned = LearnedDequantizer(net, 6, backend="torch")
    monkeypatch.setattr(classical, "cv2", _Forbidden())
    monkeypatch.setattr(classical, "contour_fractions", lambda *a: (_ for _ in ()).throw(AssertionError("NumPy path")))
    monkeypatch.setattr(torch.Tensor, "numpy", lambda self, *a, **k: (_ for _ in ()).throw(AssertionError(".numpy()")))
    with torch.inference_mode():
        outputs = [contour(levels), learned(levels)]
    monkeypatch.undo()
    step = 1 / max_level(6)
    for out in outputs:
        trim = (levels.shape[2] - out.shape[2]) // 2
        inner = levels[:, :, trim : levels.shape[2] - trim, trim : levels.shape[3] - trim] if trim else levels
        assert torch.all((out - inner * step).abs() <= step / 2 + 1e-6)  # inside every bin


def test_tensor_and_opencv_paths_agree_through_the_dequantizers():
    levels = torch.from_numpy(_levels(5, 0.0)).float()
    for backend_pair in (("opencv", "torch"),):
        a, b = (ContourDequantizer(5, backend=backend)(levels) for backend in backend_pair)
        assert float((a - b).abs().mean()) < 0.01 / max_level(5)
    torch.testing.assert_close(level_fractions(levels, "opencv"), torch.from_numpy(contour_fractions(levels.int().numpy())))
    with pytest.raises(ValueError, match="unknown backend"):
        level_fractions(levels, "cuda")


def test_city_block_distances_are_exact_and_equal_opencvs():
    rng = np.random.default_rng(2)
    seeds = torch.from_numpy(rng.random((2, 40, 50)) < 0.004)
    distance = jump_flood.city_block_distances(seeds, 64)
    ys, xs = np.mgrid[0:40, 0:50]
    for p in range(2):
        points = np.argwhere(seeds[p].numpy())
        exact = np.min(np.abs(ys[..., None] - points[:, 0]) + np.abs(xs[..., None] - points[:, 1]), axis=-1)
        within = exact <= 64
        np.testing.assert_array_equal(distance[p].numpy()[within], exact[within])
        assert (distance[p].numpy()[~within] > 64).all()
        opencv = classical.cv2.distanceTransform((~seeds[p].numpy()).astype(np.uint8), classical.cv2.DIST_L1, 3)
        np.testing.assert_array_equal(opencv[within], exact[within])


@pytest.mark.parametrize("bits,noise", [(4, 0.0), (8, 0.003)])
def test_city_block_prior_is_the_same_on_both_paths_and_only_unchecked(bits, noise):
    levels = _levels(bits, noise, size=(300, 170))
    reference = contour_fractions(levels, False, "l1")
    np.testing.assert_array_equal(jump_flood.contour_fractions(torch.from_numpy(levels), False, "l1").numpy(), reference)
    assert ((reference >= 0) & (reference <= 1)).all()
    euclidean = contour_fractions(levels, False)
    assert 0 < np.abs(reference - euclidean).mean() < 0.1  # a different distance, the same kind of prior
    for function in (contour_fractions, jump_flood.contour_fractions):
        with pytest.raises(ValueError, match="unchecked contours only"):
            function(levels if function is contour_fractions else torch.from_numpy(levels), True, "l1")
        with pytest.raises(ValueError, match="unknown metric"):
            function(levels if function is contour_fractions else torch.from_numpy(levels), False, "l3")


@pytest.mark.parametrize("metric,check_levels", [("l1", False), ("l2", False), ("l2", True)])
def test_fractions_less_a_margin_are_the_inner_part_of_the_whole(metric, check_levels):
    levels = _levels(5, 0.01, size=(120, 90))
    whole = contour_fractions(levels, check_levels, metric)
    flooded = jump_flood.contour_fractions(torch.from_numpy(levels), check_levels, metric)
    for margin in (1, 3, 4, 5, 30):
        inner = (slice(None), slice(None), slice(margin, -margin), slice(margin, -margin))
        np.testing.assert_array_equal(contour_fractions(levels, check_levels, metric, margin), whole[inner])
        torch.testing.assert_close(jump_flood.contour_fractions(torch.from_numpy(levels), check_levels, metric, margin), flooded[inner])
    with pytest.raises(ValueError, match="a margin of 45 leaves nothing of 120x90 levels"):
        contour_fractions(levels, check_levels, metric, 45)
    with pytest.raises(ValueError, match="a margin of 45 leaves nothing of 120x90 levels"):
        jump_flood.contour_fractions(torch.from_numpy(levels), check_levels, metric, 45)


def test_three_residue_classes_agree_on_both_paths_and_with_four_on_an_even_gradient():
    levels = _levels(6, 0.004, size=(140, 120))
    three = contour_fractions(levels, False, "l1", classes=3)
    np.testing.assert_array_equal(jump_flood.contour_fractions(torch.from_numpy(levels), False, "l1", classes=3).numpy(), three)
    ramp = np.broadcast_to(np.arange(200)[None, None, None, :] // 9, (1, 1, 40, 200)).astype(np.int32)  # bands 9 px wide
    inner = (..., slice(27, -27))  # the first and last bands have no neighbour beyond: each class count finds another
    np.testing.assert_array_equal(contour_fractions(ramp, False, "l1", classes=3)[inner], contour_fractions(ramp, False, "l1")[inner])
    for function in (contour_fractions, jump_flood.contour_fractions):
        data = levels if function is contour_fractions else torch.from_numpy(levels)
        with pytest.raises(ValueError, match="3 residue classes serve the unchecked contours only"):
            function(data, True, "l2", classes=3)
        with pytest.raises(ValueError, match="split into 3 or 4 residue classes, not 2"):
            function(data, False, "l1", classes=2)
