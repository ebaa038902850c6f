"""Per-spot image patches for the vision encoders, in the three variants.

`standard`: a spot-centred crop one spot diameter wide. `staig_strict`: STAIG's recipe (a crop 3.5 x the
fiducial diameter, resized to 512, greyscale, 5x5 Gaussian blur, only the central 30x30 window of the
shifted 2-D FFT kept, magnitude of the inverse FFT, 15x15 blur, copied to 3 channels). `freq`: that same
frequency filtering applied to the `standard` crop. Patches are cut from the highest-resolution image
present and produced one batch at a time, so memory stays bounded on a full-resolution slide.

numpy/scipy/PIL only: torch is never imported here, so the weight-free encoder stays light.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from ..errors import MihdError
from . import check_variant

IMAGE_ORDER = ("fullres", "hires", "lowres")
SCALE_KEYS = {"hires": "tissue_hires_scalef", "lowres": "tissue_lowres_scalef"}
MIN_CROP_PX = 8  # below this a crop holds no texture at all, whatever the image resolution
STAIG_CROP_FIDUCIALS = 3.5
STAIG_SIZE = 512
STAIG_WINDOW = 30
FIDUCIAL_PER_SPOT = 1.5  # fiducial / spot diameter in Space Ranger scalefactors (151673: 144.6 / 96.4)
GREY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as cv2's RGB->grey


def slice_name(adata) -> str:
    """The name errors use: the registered slice id, else the library id, else 'slice'."""
    mihd = adata.uns.get("mihd") or {}
    return str(mihd.get("slice_id") or next(iter(adata.uns.get("spatial") or {}), "slice"))


def _library(adata) -> dict | None:
    spatial = adata.uns.get("spatial") or {}
    lib = (adata.uns.get("mihd") or {}).get("library_id")
    if lib in spatial:
        return spatial[lib]
    for entry in spatial.values():
        if entry.get("images"):
            return entry
    return None


def _as_rgb_uint8(img) -> np.ndarray:
    """Images read by scanpy are float in [0, 1]; some are grey or RGBA. Encoders want HxWx3 uint8."""
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = img[:, :, :3]
    if img.dtype == np.uint8:
        return img
    img = img.astype(np.float32)
    if img.size and float(np.nanmax(img)) <= 1.0:
        img = img * 255.0
    return np.clip(np.nan_to_num(img), 0, 255).astype(np.uint8)


def best_image(adata) -> tuple[np.ndarray, float, str]:
    """The highest-resolution image of the slice (fullres > hires > lowres), its scale from full-resolution
    pixel coordinates (obsm["spatial"]) to its own pixels, and its name."""
    lib = _library(adata)
    images = (lib or {}).get("images") or {}
    for name in IMAGE_ORDER:
        if name in images and images[name] is not None:
            if name == "fullres":
                scale = 1.0
            else:
                scale = (lib.get("scalefactors") or {}).get(SCALE_KEYS[name])
                if scale is None:
                    raise MihdError(f"slice {slice_name(adata)}: {name} image present but scalefactors lack {SCALE_KEYS[name]}")
            return _as_rgb_uint8(images[name]), float(scale), name
    raise MihdError(
        f"slice {slice_name(adata)}: no H&E image (fullres, hires or lowres in uns['spatial']); a vision encoder needs an image"
    )


def _spot_diameter_fullres(adata, scalefactors: dict) -> float:
    """From the scalefactors; else 55/100 of the nearest-neighbour spacing (Visium: 55 um spots, 100 um apart)."""
    if scalefactors.get("spot_diameter_fullres"):
        return float(scalefactors["spot_diameter_fullres"])
    from scipy.spatial import cKDTree

    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)
    if len(xy) < 2:
        raise MihdError(f"slice {slice_name(adata)}: scalefactors lack spot_diameter_fullres and there are too few spots to estimate it")
    dist, _ = cKDTree(xy).query(xy, k=2)
    return 0.55 * float(np.median(dist[:, 1]))


class SpotPatches:
    """The patches of one slice for one variant, resized to `size` x `size`, as float32 RGB in [0, 1].

    `batches(batch_size)` yields (b, size, size, 3) arrays in spot order; `info()` is what the encoder
    records in its effective config (image used, scale, crop size in image pixels, variant).
    """

    def __init__(self, adata, variant: str, size: int):
        self.variant = check_variant(variant)
        self.size = int(size)
        self.image, self.scale, self.image_name = best_image(adata)
        lib = _library(adata)
        scalefactors = dict((lib or {}).get("scalefactors") or {})
        spot = _spot_diameter_fullres(adata, scalefactors)
        if variant == "staig_strict":
            fiducial = float(scalefactors.get("fiducial_diameter_fullres") or spot * FIDUCIAL_PER_SPOT)
            crop_fullres = STAIG_CROP_FIDUCIALS * fiducial
        else:
            crop_fullres = spot
        self.crop_px = max(MIN_CROP_PX, int(round(crop_fullres * self.scale)))
        xy = np.asarray(adata.obsm["spatial"], dtype=np.float64) * self.scale
        self.centres = np.rint(xy).astype(np.int64)  # column 0 = x (image column), column 1 = y (row)

    def __len__(self) -> int:
        return len(self.centres)

    def info(self) -> dict:
        return {"image": self.image_name, "scale": self.scale, "patch_px": self.crop_px,
                "input_px": self.size, "variant": self.variant}

    def crop(self, i: int) -> np.ndarray:
        """The crop_px x crop_px uint8 crop around spot i; parts outside the image are mirrored in
        (reflect), or white where the spot lies wholly outside the image."""
        h, w = self.image.shape[:2]
        c = self.crop_px
        x0 = int(self.centres[i, 0]) - c // 2
        y0 = int(self.centres[i, 1]) - c // 2
        ya, yb, xa, xb = max(y0, 0), min(y0 + c, h), max(x0, 0), min(x0 + c, w)
        if yb - ya < 2 or xb - xa < 2:
            return np.full((c, c, 3), 255, dtype=np.uint8)
        part = self.image[ya:yb, xa:xb]
        pad = ((ya - y0, y0 + c - yb), (xa - x0, x0 + c - xb), (0, 0))
        if any(p for pair in pad for p in pair):
            part = np.pad(part, pad, mode="reflect")
        return part

    def batches(self, batch_size: int = 32) -> Iterator[np.ndarray]:
        for start in range(0, len(self), batch_size):
            idx = range(start, min(start + batch_size, len(self)))
            if self.variant == "standard":
                yield np.stack([_resize_rgb(self.crop(i), self.size) for i in idx]) / np.float32(255)
            else:
                # grey then resize == resize then grey (both linear), and 3x less to resize
                grey = np.stack([_resize_grey(_grey(self.crop(i)), STAIG_SIZE) for i in idx])
                filtered = frequency_filter(grey)
                out = np.stack([_resize_grey(f, self.size) for f in filtered]) / np.float32(255)
                yield np.repeat(np.clip(out, 0, 1)[..., None], 3, axis=3)


def _resize_rgb(crop: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    if crop.shape[0] == size and crop.shape[1] == size:
        return crop
    return np.asarray(Image.fromarray(crop).resize((size, size), Image.BILINEAR))


def _resize_grey(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    if img.shape[0] == size:
        return img.astype(np.float32)
    return np.asarray(Image.fromarray(img.astype(np.float32), mode="F").resize((size, size), Image.BILINEAR))


def _grey(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) @ GREY_WEIGHTS


# cv2.getGaussianKernel uses fixed binomial kernels for sizes up to 7 when sigma is 0
_CV2_SMALL_KERNELS = {5: np.array([1, 4, 6, 4, 1]) / 16}


def gaussian_kernel(ksize: int) -> np.ndarray:
    """The 1-D kernel cv2.GaussianBlur(img, (k, k), 0) uses (sigma derived from the size as cv2 does)."""
    if ksize in _CV2_SMALL_KERNELS:
        return _CV2_SMALL_KERNELS[ksize]
    sigma = 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8
    r = np.arange(ksize, dtype=np.float64) - (ksize - 1) / 2
    kernel = np.exp(-(r**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def gaussian_blur(imgs: np.ndarray, ksize: int) -> np.ndarray:
    """cv2.GaussianBlur(img, (k, k), 0) on a batch (b, H, W); border reflected without repeating the edge
    (cv2's BORDER_REFLECT_101 = scipy's 'mirror')."""
    from scipy.ndimage import convolve1d

    kernel = gaussian_kernel(ksize)
    return convolve1d(convolve1d(imgs, kernel, axis=-1, mode="mirror"), kernel, axis=-2, mode="mirror")


def frequency_filter(grey: np.ndarray) -> np.ndarray:
    """STAIG's filtering of greyscale patches (b, H, W) in [0, 255]: 5x5 blur, keep the central
    STAIG_WINDOW x STAIG_WINDOW window of the shifted 2-D FFT (the lowest frequencies), magnitude of the
    inverse FFT, 15x15 blur. Returns float32 (b, H, W) on the same intensity scale."""
    from scipy import fft

    blurred = gaussian_blur(grey.astype(np.float32), 5)
    spectrum = fft.fft2(blurred, axes=(-2, -1), workers=-1)
    # the central window of the shifted spectrum = frequencies -half..half-1 on each axis, unshifted
    h, w = grey.shape[-2:]
    half = STAIG_WINDOW // 2
    keep = np.zeros((h, w), dtype=bool)
    keep[np.ix_(np.arange(-half, half) % h, np.arange(-half, half) % w)] = True
    spectrum *= keep
    back = np.abs(fft.ifft2(spectrum, axes=(-2, -1), workers=-1))
    return gaussian_blur(back.astype(np.float32), 15)


def to_model_input(batch: np.ndarray, mean, std) -> np.ndarray:
    """(b, H, W, 3) in [0, 1] -> (b, 3, H, W) float32 normalised with the model's pretrained mean/std."""
    mean = np.asarray(mean, dtype=np.float32)
    std = np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(((batch - mean) / std).transpose(0, 3, 1, 2), dtype=np.float32)
