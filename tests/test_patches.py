"""Patch extraction: image choice, spot-centred crops, border crops, STAIG's recipe, the texture encoder."""

from __future__ import annotations

import time

import anndata as ad
import numpy as np
import pytest
from scipy.ndimage import convolve

from mihd.encoders.handcrafted import encode_texture
from mihd.encoders.patches import (STAIG_SIZE, SpotPatches, best_image, frequency_filter, gaussian_kernel)
from mihd.errors import MihdError

SCALEFACTORS = {"tissue_hires_scalef": 0.5, "tissue_lowres_scalef": 0.1,
                "spot_diameter_fullres": 64.0, "fiducial_diameter_fullres": 96.0}


def make_slice(n_side=12, spacing=100.0, image=None, images=("hires",), seed=0, slice_id="toy", xy=None):
    """A small slice: spots on a square grid (or at `xy`, full-res px), a random RGB image per name in `images`."""
    rng = np.random.default_rng(seed)
    ij = np.stack(np.meshgrid(np.arange(n_side), np.arange(n_side)), axis=-1).reshape(-1, 2)
    grid = 150.0 + ij * spacing
    full = int(grid.max() + 150)
    xy = grid if xy is None else np.asarray(xy, dtype=np.float64)
    imgs = {}
    for name in images:
        scale = 1.0 if name == "fullres" else SCALEFACTORS[f"tissue_{name}_scalef"]
        size = int(round(full * scale))
        imgs[name] = image if image is not None else rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    a = ad.AnnData(X=np.zeros((len(xy), 3), dtype=np.float32))
    a.obs_names = [f"s{i}" for i in range(len(xy))]
    a.obsm["spatial"] = xy
    a.uns["spatial"] = {"lib": {"images": imgs, "scalefactors": dict(SCALEFACTORS)}}
    a.uns["mihd"] = {"slice_id": slice_id, "library_id": "lib"}
    return a


def test_best_image_prefers_highest_resolution_and_scales():
    a = make_slice(images=("lowres", "hires", "fullres"))
    img, scale, name = best_image(a)
    assert (name, scale) == ("fullres", 1.0) and img.dtype == np.uint8 and img.shape[2] == 3
    del a.uns["spatial"]["lib"]["images"]["fullres"]
    assert best_image(a)[1:] == (0.5, "hires")
    del a.uns["spatial"]["lib"]["images"]["hires"]
    assert best_image(a)[1:] == (0.1, "lowres")


def test_float_image_as_scanpy_reads_it_becomes_uint8():
    a = make_slice()
    a.uns["spatial"]["lib"]["images"]["hires"] = a.uns["spatial"]["lib"]["images"]["hires"] / 255.0
    img, _, _ = best_image(a)
    assert img.dtype == np.uint8 and img.max() == 255


def test_no_image_names_the_slice():
    a = make_slice()
    a.uns["spatial"]["lib"]["images"] = {}
    with pytest.raises(MihdError, match="slice toy: .*vision encoder needs an image"):
        SpotPatches(a, "standard", 32)
    del a.uns["spatial"]
    with pytest.raises(MihdError, match="vision encoder needs an image"):
        best_image(a)


def test_standard_crop_is_centred_on_the_spot_and_sized_from_the_diameter():
    a = make_slice(n_side=3)
    img = np.full_like(a.uns["spatial"]["lib"]["images"]["hires"], 255)
    x, y = (a.obsm["spatial"][4] * 0.5).astype(int)  # the middle spot, in hires px
    img[y - 4:y + 4, x - 4:x + 4] = (200, 0, 0)  # a red dot under it
    a.uns["spatial"]["lib"]["images"]["hires"] = img
    p = SpotPatches(a, "standard", 32)
    assert p.crop_px == 32  # 64 full-res px x 0.5
    patches = np.concatenate(list(p.batches(batch_size=4)))
    assert patches.shape == (9, 32, 32, 3) and patches.dtype == np.float32
    assert np.allclose(patches[4, 14:18, 14:18], (200 / 255, 0, 0), atol=1e-6)
    assert np.allclose(patches[4, :8], 1.0)  # the rest is the white background
    assert np.allclose(patches[0], 1.0)


def test_batches_are_lazy_and_in_spot_order():
    a = make_slice(n_side=5)
    p = SpotPatches(a, "standard", 16)
    gen = p.batches(batch_size=10)
    assert iter(gen) is gen  # a generator: patches are cut one batch at a time
    sizes = [len(b) for b in gen]
    assert sizes == [10, 10, 5]
    first = next(SpotPatches(a, "standard", 16).batches(1))
    assert np.array_equal(first[0], np.concatenate(list(p.batches(7)))[0])


def test_tiny_spots_still_give_a_crop_of_a_few_pixels():
    a = make_slice(images=("lowres",))
    a.uns["spatial"]["lib"]["scalefactors"]["spot_diameter_fullres"] = 20.0  # 2 px in the lowres image
    assert SpotPatches(a, "standard", 16).crop_px == 8


def test_border_and_outside_spots_are_padded_never_fail():
    a = make_slice(n_side=3, xy=[[0.0, 0.0], [10.0, 300.0], [1e6, 1e6], [-500.0, 50.0], [150.0, 150.0]])
    img = a.uns["spatial"]["lib"]["images"]["hires"]
    for variant in ("standard", "freq", "staig_strict"):
        p = SpotPatches(a, variant, 24)
        out = np.concatenate(list(p.batches(2)))
        assert out.shape == (5, 24, 24, 3) and np.isfinite(out).all()
    p = SpotPatches(a, "standard", 32)
    corner = p.crop(0)  # spot at the image corner: the missing quadrant is the mirror image of the present one
    assert corner.shape == (32, 32, 3)
    assert np.array_equal(corner[16:, 16:], img[:16, :16])
    assert np.array_equal(corner[15, 16:], img[1, :16])
    assert (p.crop(2) == 255).all()  # wholly outside: white, like bare glass


def _staig_reference(crop_rgb: np.ndarray) -> np.ndarray:
    """STAIG's filtering written the plain way, one patch, full 2-D kernels and numpy's FFT."""
    grey = crop_rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    k5, k15 = np.outer(gaussian_kernel(5), gaussian_kernel(5)), np.outer(gaussian_kernel(15), gaussian_kernel(15))
    f = np.fft.fftshift(np.fft.fft2(convolve(grey, k5, mode="mirror")))
    keep = np.zeros_like(f)
    c = grey.shape[0] // 2
    keep[c - 15:c + 15, c - 15:c + 15] = f[c - 15:c + 15, c - 15:c + 15]
    return convolve(np.abs(np.fft.ifft2(np.fft.ifftshift(keep))), k15, mode="mirror")


def test_gaussian_kernels_match_cv2():
    assert np.allclose(gaussian_kernel(5), [0.0625, 0.25, 0.375, 0.25, 0.0625])
    k15 = gaussian_kernel(15)  # sigma = 0.3 * ((15 - 1) / 2 - 1) + 0.8 = 2.6
    assert np.isclose(k15.sum(), 1) and np.isclose(k15[7] / k15[8], np.exp(1 / (2 * 2.6**2)))


def test_staig_strict_recipe_on_a_synthetic_image():
    a = make_slice(n_side=2)
    p = SpotPatches(a, "staig_strict", 224)
    assert p.crop_px == round(3.5 * 96 * 0.5)  # 3.5 x fiducial diameter, in hires px
    out = np.concatenate(list(p.batches(4)))
    assert out.shape == (4, 224, 224, 3)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 0], out[..., 2])

    # the batch implementation equals the recipe written plainly, on the 512 px greyscale crop
    from PIL import Image

    crop = np.asarray(Image.fromarray(p.crop(0)).resize((STAIG_SIZE, STAIG_SIZE), Image.BILINEAR))
    grey = (crop.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[None]
    assert np.allclose(frequency_filter(grey)[0], _staig_reference(crop), atol=1e-2)

    # only the lowest frequencies pass: fine stripes vanish, a slow gradient stays
    stripes = np.tile(128 + 100 * np.sign(np.sin((np.arange(STAIG_SIZE) + 0.5) * np.pi / 2)), (STAIG_SIZE, 1))
    ramp = np.tile(np.linspace(20, 230, STAIG_SIZE), (STAIG_SIZE, 1))
    f_stripes, f_ramp = frequency_filter(np.stack([stripes, ramp]).astype(np.float32))
    centre = slice(64, -64)
    assert f_stripes[centre, centre].std() < 2 and abs(f_stripes[centre, centre].mean() - 128) < 3
    assert f_ramp[256, 400] - f_ramp[256, 100] > 80


def test_freq_filters_the_standard_crop():
    a = make_slice(n_side=3)
    std_p, freq_p = SpotPatches(a, "standard", 32), SpotPatches(a, "freq", 32)
    assert freq_p.crop_px == std_p.crop_px == 32
    out = np.concatenate(list(freq_p.batches(9)))
    assert np.array_equal(out[..., 0], out[..., 2])
    # random pixels, low-passed (15 cycles per crop kept, blurred): smoother than the raw crop
    raw = np.concatenate(list(std_p.batches(9)))
    assert out.std(axis=(1, 2)).mean() < 0.5 * raw.std(axis=(1, 2)).mean()


def _two_texture_image(size=1200, seed=0):
    """Left half fine-grained, right half coarse-grained; same mean colour and same pixel spread."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    fine = rng.normal(0, 1, (size, size))
    coarse = gaussian_filter(rng.normal(0, 1, (size, size)), 4)
    coarse = coarse / coarse.std()
    field = np.where(np.arange(size)[None, :] < size // 2, fine, coarse)
    colour = np.array([200.0, 130.0, 170.0])  # pinkish, like eosin
    img = colour + 30 * field[..., None] * np.array([1.0, 1.2, 0.8])
    return np.clip(img, 0, 255).astype(np.uint8)


def test_texture_encoder_separates_regions_that_differ_only_in_texture():
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score
    from sklearn.preprocessing import StandardScaler

    img = _two_texture_image()
    a = make_slice(n_side=11, image=img, images=("fullres",))
    left = a.obsm["spatial"][:, 0] < 600
    means = [img[:, :600].reshape(-1, 3).mean(0), img[:, 600:].reshape(-1, 3).mean(0)]
    assert np.abs(means[0] - means[1]).max() < 2  # the colours do not tell the halves apart
    seen = []
    emb, cfg = encode_texture(a, variant="standard", config={}, progress=lambda d, t: seen.append((d, t)))
    assert emb.dtype == np.float32 and emb.shape[0] == a.n_obs and np.isfinite(emb).all()
    assert cfg["image"] == "fullres" and cfg["variant"] == "standard" and cfg["random_init"] is False
    assert seen[-1] == (a.n_obs, a.n_obs)
    x = StandardScaler().fit_transform(emb)
    labels = KMeans(2, n_init=10, random_state=0).fit_predict(x)
    assert adjusted_rand_score(left, labels) > 0.8


@pytest.mark.parametrize("variant", ["freq", "staig_strict"])
def test_texture_encoder_runs_on_every_variant(variant):
    a = make_slice(n_side=4)
    emb, cfg = encode_texture(a, variant=variant, config={"input_px": 32})
    assert emb.shape[0] == 16 and np.isfinite(emb).all() and cfg["variant"] == variant


def test_texture_encoder_is_fast_on_4000_spots():
    a = make_slice(n_side=64, spacing=40.0)  # 4,096 spots, 32 px crops in the hires image
    a.uns["spatial"]["lib"]["scalefactors"]["spot_diameter_fullres"] = 40.0
    start = time.perf_counter()
    emb, _ = encode_texture(a, variant="standard", config={})
    seconds = time.perf_counter() - start
    assert emb.shape[0] == 4096
    assert seconds < 10, f"texture encoder took {seconds:.1f} s on 4,096 spots"
