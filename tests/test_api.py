"""The public API: ``import bdx`` stays cheap, every exported name resolves, and the docstring examples run."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import subprocess
import sys

import pytest

import bdx


def test_import_bdx_does_not_load_torch():
    probe = "import sys, bdx; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_every_exported_name_resolves_to_its_module():
    for name in bdx.__all__:
        assert getattr(bdx, name) is not None
    assert set(bdx._LAZY) <= set(bdx.__all__)
    with pytest.raises(AttributeError):
        bdx.no_such_name  # noqa: B018


@pytest.mark.parametrize("task", ["upscale_depth", "enhance_lowlight", "ldr_to_hdr"])
def test_arguments_of_the_wrong_kind_are_a_type_error_at_the_call(task):
    """A file name where an image belongs, a path where a loaded model does, a dict of settings or device None
    raised AttributeError from deep inside ('str' object has no attribute 'is_float')."""
    import numpy as np
    import torch

    function = getattr(bdx, task)
    image = bdx.Image(np.full((16, 16, 3), 100, np.uint8))
    cases = [
        (("photo.png",), {}, "image must be a bdx.Image"),
        ((np.zeros((8, 8, 3), np.uint8),), {}, "image must be a bdx.Image"),
        ((image, "weights.safetensors"), {}, "model must be a bdx.LoadedModel"),
        ((image, None, {"method": "midpoint"}), {}, "settings must be a bdx."),
        ((image,), {"device": None}, "device must be a name"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(TypeError, match=message):
            function(*args, **kwargs)
    other = bdx.EnhanceSettings() if task != "enhance_lowlight" else bdx.HdrSettings()
    with pytest.raises(TypeError, match="settings must be a bdx."):
        function(image, None, other)
    assert function(image, None, device=torch.device("cpu")).image.pixels.shape[:2] == (16, 16)  # a torch.device is fine


def test_writing_an_array_instead_of_an_image_is_a_type_error(tmp_path):
    import numpy as np

    with pytest.raises(TypeError, match=r"image must be a bdx.Image \(wrap an array: bdx.Image\(pixels\)\), not ndarray"):
        bdx.write_image(tmp_path / "o.tiff", np.zeros((8, 8, 3), np.uint8))
    assert not list(tmp_path.iterdir())


def test_the_three_tasks_share_one_call_shape():
    import inspect

    for function in (bdx.upscale_depth, bdx.enhance_lowlight, bdx.ldr_to_hdr):
        parameters = list(inspect.signature(function).parameters.values())
        assert [p.name for p in parameters[:3]] == ["image", "model", "settings"]
        assert parameters[1].default is None
        assert {p.name for p in parameters[3:]} == {"device", "progress"}


MODULES = ["bdx"] + sorted(info.name for info in pkgutil.walk_packages(bdx.__path__, "bdx.") if not info.name.startswith(("bdx.cli", "bdx.__main__")))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    failed, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert failed == 0


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: bdx.DepthSettings(tile=2.5), "tile must be a whole number"),
        (lambda: bdx.DepthSettings(tile="64"), "tile must be a whole number"),
        (lambda: bdx.DepthSettings(tile=-5), "tile must be a whole number"),
        (lambda: bdx.EnhanceSettings(tile=True), "tile must be a whole number"),
        (lambda: bdx.HdrSettings(tile=0), "tile must be a whole number"),
        (lambda: bdx.HdrSettings(iterations=2.0), "iterations must be a whole number"),
        (lambda: bdx.EnhanceSettings(denoise_subsample=2.0), "denoise_subsample must be a whole number"),
        (lambda: bdx.DepthSettings(relax="no"), "relax must be True or False"),
        (lambda: bdx.DepthSettings(self_check=None), "self_check must be True or False"),
        (lambda: bdx.HdrSettings(exposure=True), "exposure must be a number of stops"),
        (lambda: bdx.HdrSettings(exposure="1"), "exposure must be a number of stops from -64 to 64, not '1'"),
    ],
)
def test_settings_refuse_values_that_would_fail_later_with_a_raw_exception(make, message):
    """tile=2.5 or "64" was a TypeError at run time, tile=-5 and relax="no" were taken; iterations=2.0 an IndexError."""
    with pytest.raises(bdx.SettingError, match=message):
        make()


def test_settings_take_numpy_numbers():
    import numpy as np

    assert bdx.DepthSettings(tile=np.int64(256)).tile == 256
    assert bdx.EnhanceSettings(denoise=np.float32(0.5)).denoise == 0.5
    settings = bdx.DepthSettings(method="learned", in_bits=np.uint8(12), ensemble=np.int64(2), relax=np.False_)
    assert (settings.in_bits, settings.ensemble, settings.relax) == (12, 2, False)  # ensemble and relax were refused
    assert type(settings.in_bits) is int and type(settings.ensemble) is int


def test_a_numpy_small_integer_depth_gives_the_same_result_as_the_int():
    """in_bits=np.uint8(12) (or significant_bits) computed 1 << 12 in uint8: an IndexError in a fresh process,
    else bin centres off by up to 8 codes, depending on what a cache held."""
    import numpy as np

    codes = (np.random.default_rng(0).integers(0, 4096, (16, 16, 3)) * 16 + 8).astype(np.uint16)
    plain = bdx.upscale_depth(bdx.Image(codes), None, bdx.DepthSettings(method="midpoint", in_bits=12), device="cpu")
    numpy_depth = bdx.DepthSettings(method="midpoint", in_bits=np.uint8(12))
    np.testing.assert_array_equal(bdx.upscale_depth(bdx.Image(codes), None, numpy_depth, device="cpu").image.pixels, plain.image.pixels)
    declared = bdx.Image(codes, significant_bits=np.uint8(12))
    assert type(declared.significant_bits) is int
    by_sbit = bdx.upscale_depth(declared, None, bdx.DepthSettings(method="midpoint"), device="cpu")
    np.testing.assert_array_equal(by_sbit.image.pixels, plain.image.pixels)


def test_enhance_refuses_nan_and_jpeg_is_written_straight():
    """A float image holding NaN was enhanced into garbage codes; a premultiplied image lost its alpha to JPEG
    with its colour left darkened by it."""
    import numpy as np

    from bdx.io import Image, decode_image, encode_image

    pixels = np.full((8, 8, 3), 0.2, np.float32)
    pixels[0, 0, 0] = np.nan
    with pytest.raises(bdx.InputError, match="1 NaN/Inf samples"):
        bdx.enhance_lowlight(Image(pixels), None, bdx.EnhanceSettings(dequantize="none"), device="cpu")
    half = Image(np.full((8, 8, 3), 64, np.uint8), alpha=np.full((8, 8), 128, np.uint8), premultiplied=True)
    assert abs(int(decode_image(encode_image(half, "jpeg"), "x.jpg").pixels.mean()) - 128) <= 2
    with pytest.raises(bdx.SettingError, match="jpeg_quality must be a whole number"):
        encode_image(half, "jpeg", jpeg_quality=90.5)
    with pytest.raises(bdx.SettingError, match="significant_bits must be a whole number"):
        encode_image(half, "png", significant_bits="10")
    with pytest.raises(TypeError):  # the options are named: a misspelt one is an error, not ignored
        bdx.write_image("x.png", half, jpeg_qualty=90)


def test_quantize_and_load_model_refuse_unknown_names():
    """convention="bogus" silently mixed two conventions and dither="bogus" meant no dither; load_model's task was
    a bare ValueError."""
    import numpy as np

    from bdx.reduce import quantize_image

    image = bdx.Image(np.arange(0, 256, 4, dtype=np.uint8).reshape(8, 8))
    with pytest.raises(bdx.SettingError, match="convention must be one of"):
        quantize_image(image, 4, convention="bogus")
    with pytest.raises(bdx.SettingError, match="dither must be one of"):
        quantize_image(image, 4, dither="bogus")
    with pytest.raises(TypeError, match="must be a bdx.Image"):
        quantize_image(image.pixels, 4)
    with pytest.raises(bdx.SettingError, match="task must be one of depth, lowlight, hdr, not 'Depth'"):
        bdx.load_model(None, "Depth")
    with pytest.raises(TypeError, match="path must be a file name"):
        bdx.load_model(5, "depth")


def test_image_metadata_is_checked_when_the_image_is_made():
    """significant_bits=20 surfaced later as "in_bits 20 does not fit" (a setting never given); a str ICC profile
    as a struct.error from the TIFF writer."""
    import numpy as np

    codes = np.zeros((4, 4, 3), np.uint8)
    for fields, message in (({"significant_bits": 20}, "significant_bits must be None or a whole number from 1 to 8"),
                            ({"significant_bits": "4"}, "significant_bits"),
                            ({"orientation": 42}, "orientation must be an EXIF orientation from 1 to 8"),
                            ({"icc_profile": "sRGB"}, "icc_profile must be bytes or None, not str")):
        with pytest.raises(bdx.InputError, match=message):
            bdx.Image(codes, **fields)
    with pytest.raises(bdx.InputError, match="significant_bits"):
        bdx.Image(np.zeros((4, 4, 3), np.float32), significant_bits=4)
    assert bdx.Image(codes, icc_profile=bytearray(b"abc"), significant_bits=np.int64(5)).icc_profile == b"abc"


@pytest.mark.parametrize("task", ["lowlight", "hdr"])
def test_a_declared_depth_the_codes_contradict_does_not_steer_enhancement(task):
    """An 8-bit photo marked 3-bit (sBIT) was dequantized as 3-bit before enhancement: its display codes moved
    by up to 25 8-bit codes, with nothing said."""
    import numpy as np

    codes = np.random.default_rng(1).integers(0, 256, (24, 24, 3)).astype(np.uint8)
    if task == "lowlight":
        run = lambda image: bdx.enhance_lowlight(image, None, bdx.EnhanceSettings(dequantize="contour"), device="cpu")  # noqa: E731
    else:
        run = lambda image: bdx.ldr_to_hdr(image, None, bdx.HdrSettings(method="classical", dequantize="contour"), device="cpu")  # noqa: E731
    plain = run(bdx.Image(codes)).image.pixels
    np.testing.assert_array_equal(run(bdx.Image(codes, significant_bits=3)).image.pixels, plain)


def test_image_flags_are_booleans_and_lazy_names_are_listed():
    """linear="yes" and premultiplied=1 were kept as given; dir(bdx) left out every lazily loaded name."""
    import numpy as np

    pixels = np.zeros((2, 2, 3), np.uint8)
    for flag in ("linear", "premultiplied"):
        with pytest.raises(bdx.SettingError, match=f"{flag} must be True or False"):
            bdx.Image(pixels, **{flag: "yes"})
    assert bdx.Image(pixels, linear=np.True_).linear is True
    assert {"upscale_depth", "DepthSettings", "read_image"} <= set(dir(bdx))


def test_fields_assigned_after_construction_are_checked_by_the_tasks_and_the_writer(tmp_path):
    """im.pixels = a 2-D array was an AxisError (upscale_depth) or IndexError (enhance_lowlight, write_image), and
    an alpha of another size a numpy ValueError."""
    import numpy as np

    image = bdx.Image(np.zeros((6, 6, 3), np.uint8))
    image.pixels = image.pixels[..., 0]  # grey, as the constructor would take it
    assert bdx.upscale_depth(image, None, bdx.DepthSettings(method="midpoint"), device="cpu").image.pixels.shape == (6, 6, 1)
    image.alpha = np.zeros((3, 3), np.uint8)
    for call in (
        lambda: bdx.upscale_depth(image, None, bdx.DepthSettings(method="midpoint"), device="cpu"),
        lambda: bdx.enhance_lowlight(image, None, bdx.EnhanceSettings(dequantize="none"), device="cpu"),
        lambda: bdx.write_image(tmp_path / "a.png", image),
    ):
        with pytest.raises(bdx.InputError, match=r"alpha must be \(height, width\) = \(6, 6\)"):
            call()
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("seed", [None, "a", 1.5, True])
def test_quantize_refuses_a_seed_that_is_no_whole_number(seed):
    """seed=None or "a" was a TypeError from a comparison, 1.5 one from NumPy's SeedSequence."""
    import numpy as np

    from bdx.reduce import quantize_image

    with pytest.raises(bdx.SettingError, match="seed must be a whole number of at least 0"):
        quantize_image(bdx.Image(np.zeros((4, 4, 3), np.uint8)), 4, dither="random", seed=seed)


def test_settings_none_means_the_defaults():
    """upscale_depth(image, None, None) was a TypeError although model=None means the shipped weights."""
    import numpy as np

    image = bdx.Image(np.tile(np.arange(0, 256, 16, dtype=np.uint8)[None, :, None], (8, 1, 3)))
    for task in (bdx.upscale_depth, bdx.enhance_lowlight, bdx.ldr_to_hdr):
        assert task(image, None, None, device="cpu").image.pixels.shape[:2] == (8, 16)
