"""`texture`: a weight-free vision encoder — colour and texture statistics of each spot's patch.

It needs no download and runs in seconds on a CPU, yet carries real signal: tissue domains in H&E differ
in stain balance (haematoxylin vs eosin) and in texture (cell density, fibre orientation, grain), and
these statistics see both. Raw output, not standardised (the fusion method's profile does that once).

Per patch (resized to `input_px`, default 64): RGB mean/std/quantiles; HSV hue (circular), saturation,
value; H&E optical-density stain concentrations (Ruifrok & Johnston colour deconvolution); gradient
magnitude and orientation coherence at 3 scales; local-binary-pattern histograms at 2 scales; radial
band energies of the 2-D power spectrum.
"""

from __future__ import annotations

import numpy as np

from .patches import GREY_WEIGHTS, SpotPatches

# Ruifrok & Johnston stain vectors (haematoxylin, eosin, DAB) in optical density, rows normalised
_STAINS = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
_UNMIX = np.linalg.inv(_STAINS / np.linalg.norm(_STAINS, axis=1, keepdims=True)).astype(np.float32)
QUANTILES = (0.1, 0.5, 0.9)
GRADIENT_SCALES = (1, 2, 4)
LBP_SCALES = (1, 2)
BAND_EDGES = (0.0, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2 + 1e-6)  # cycles per pixel
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def _stats(values: np.ndarray) -> list[np.ndarray]:
    """values (b, c, n) -> per channel mean, std and quantiles, each (b, c). Sorting along the contiguous
    last axis is several times faster than np.quantile here."""
    n = values.shape[2]
    ordered = np.sort(values, axis=2)
    return [values.mean(axis=2), values.std(axis=2)] + [ordered[:, :, int(q * (n - 1))] for q in QUANTILES]


def _colour(rgb: np.ndarray) -> list[np.ndarray]:
    """Colour statistics over every other pixel in each direction (as good as all of them, 4x faster)."""
    b = len(rgb)
    chans = np.ascontiguousarray(rgb[:, ::2, ::2].reshape(b, -1, 3).transpose(0, 2, 1))  # (b, 3, n)
    r, g, bl = chans[:, 0], chans[:, 1], chans[:, 2]
    hi, lo = chans.max(axis=1), chans.min(axis=1)
    chroma = hi - lo
    sat = chroma / np.maximum(hi, 1e-6)
    # hue as an angle on the opponent axes, averaged as a vector weighted by chroma (hue is circular)
    weight = chroma / np.maximum(chroma.sum(axis=1, keepdims=True), 1e-6)
    hue_x, hue_y = 2 * r - g - bl, np.sqrt(3) * (g - bl)
    norm = np.maximum(np.sqrt(hue_x**2 + hue_y**2), 1e-6)
    hue_vec = [(weight * hue_x / norm).sum(axis=1, keepdims=True), (weight * hue_y / norm).sum(axis=1, keepdims=True)]
    od = -np.log10(np.clip(chans, 1 / 255, 1))
    stains = np.matmul(_UNMIX.T, od)  # haematoxylin, eosin, residual concentrations, (b, 3, n)
    return _stats(chans) + hue_vec + _stats(np.stack([sat, hi], axis=1)) + _stats(stains)


def _downsample(grey: np.ndarray, k: int) -> np.ndarray:
    if k == 1:
        return grey
    b, h, w = grey.shape
    h, w = h // k * k, w // k * k
    return grey[:, :h, :w].reshape(b, h // k, k, w // k, k).mean(axis=(2, 4))


def _gradients(grey: np.ndarray) -> list[np.ndarray]:
    out = []
    for k in GRADIENT_SCALES:
        g = _downsample(grey, k)
        gx = g[:, 1:-1, 2:] - g[:, 1:-1, :-2]
        gy = g[:, 2:, 1:-1] - g[:, :-2, 1:-1]
        mag = np.sqrt(gx**2 + gy**2).reshape(len(g), -1)
        jxx, jyy, jxy = (gx**2).mean(axis=(1, 2)), (gy**2).mean(axis=(1, 2)), (gx * gy).mean(axis=(1, 2))
        coherence = np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / np.maximum(jxx + jyy, 1e-9)
        out += [mag.mean(axis=1)[:, None], mag.std(axis=1)[:, None], coherence[:, None]]
    return out


def _lbp(grey: np.ndarray) -> list[np.ndarray]:
    """Histogram (9 bins) of how many of the 8 neighbours at distance r are at least as bright as the pixel."""
    out = []
    for r in LBP_SCALES:
        centre = grey[:, r:-r, r:-r]
        h, w = centre.shape[1:]
        count = sum((grey[:, r + dy * r:r + dy * r + h, r + dx * r:r + dx * r + w] >= centre).astype(np.int8)
                    for dy, dx in _NEIGHBOURS)
        codes = count.reshape(len(grey), -1) + 9 * np.arange(len(grey))[:, None]
        out.append(np.bincount(codes.ravel(), minlength=9 * len(grey)).reshape(-1, 9) / (h * w))
    return out


def _spectrum(grey: np.ndarray) -> list[np.ndarray]:
    """Share of the (mean-removed) power in radial frequency bands, and the log of the total power."""
    b, h, w = grey.shape
    power = np.abs(np.fft.rfft2(grey - grey.mean(axis=(1, 2), keepdims=True))) ** 2
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    radius = np.sqrt(fy**2 + fx**2)
    total = power.reshape(b, -1).sum(axis=1)
    bands = [power[:, (radius >= lo) & (radius < hi)].sum(axis=1) / np.maximum(total, 1e-12)
             for lo, hi in zip(BAND_EDGES[:-1], BAND_EDGES[1:])]
    return [np.stack(bands, axis=1), np.log1p(total)[:, None]]


def texture_features(rgb: np.ndarray) -> np.ndarray:
    """(b, H, W, 3) float RGB in [0, 1] -> (b, d) float32 colour and texture statistics."""
    rgb = rgb.astype(np.float32, copy=False)
    grey = rgb @ GREY_WEIGHTS
    parts = _colour(rgb) + _gradients(grey) + _lbp(grey) + _spectrum(grey)
    return np.concatenate([p.reshape(len(rgb), -1) for p in parts], axis=1).astype(np.float32)


def encode_texture(adata, *, variant: str, config: dict, progress=None):
    """Colour and texture statistics of every spot's patch; (float32 n x d, effective config)."""
    patches = SpotPatches(adata, variant, int(config.get("input_px", 64)))
    batch_size = int(config.get("batch_size", 256))
    chunks, done = [], 0
    for batch in patches.batches(batch_size):
        chunks.append(texture_features(batch))
        done += len(batch)
        if progress:
            progress(done, len(patches))
    out = np.concatenate(chunks) if chunks else np.zeros((0, texture_features(np.zeros((1, 8, 8, 3))).shape[1]), np.float32)
    return out, {"model": "texture", "weights": None, "random_init": False, "batch_size": batch_size,
                 "dim": int(out.shape[1]), **patches.info()}
