"""Batched image augmentations as pure tensor functions (run on the images' device).

Every random function takes an explicit `torch.Generator` living on the same device as the
images, so a run is reproducible from its seed. No per-sample Python loops: each sample's
random crop offset / flip / cutout square is drawn as a batch and applied by index arithmetic.

Training pipeline for the CIFAR studies (He et al. 2015; DeVries & Taylor 2017; Hoffer et al. 2019):

    x, y = batch_augment(images_uint8, labels, m=4, generator=g, mean=data.mean, std=data.std,
                         padding=4, flip=True, cutout=16)

crop and flip act on uint8 (zero padding = black pixels, as torchvision's RandomCrop on PIL
images), then normalize, then cutout (zeros after normalization = the mean colour).
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import torch
import torch.nn.functional as F


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 [0, 255] (or float [0, 1]) (N, C, H, W) -> float32 standardized per channel."""
    scale = 1 / 255.0 if images.dtype == torch.uint8 else 1.0
    factor, shift = _normalize_constants(tuple(map(float, mean)), tuple(map(float, std)), scale, images.device)
    # One multiply-add on a fresh float copy: x * scale/std - mean/std.
    return images.float().mul_(factor).sub_(shift)


@functools.lru_cache(maxsize=64)
def _normalize_constants(mean: tuple[float, ...], std: tuple[float, ...], scale: float,
                         device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """scale/std and mean/std as (1, C, 1, 1) tensors on `device`, made once: a copy from the host cannot be
    recorded in a CUDA graph, so a captured step (trainables.training.capture) must find them there already."""
    m = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=device).view(1, -1, 1, 1)
    return scale / s, m / s


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by `padding` on each side, then cut a random HxW window per sample."""
    if padding == 0:
        return images
    n, c, h, w = images.shape
    padded = F.pad(images, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n,), device=images.device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), device=images.device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=images.device)).view(n, 1, h, 1)
    cols = (dx[:, None] + torch.arange(w, device=images.device)).view(n, 1, 1, w)
    # Two gathers: first pick the rows of each sample's window, then its columns.
    out = padded.gather(2, rows.expand(n, c, h, w + 2 * padding))
    return out.gather(3, cols.expand(n, c, h, w))


def random_flip(images: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each sample left-right with probability p."""
    flip = torch.rand(images.shape[0], device=images.device, generator=generator) < p
    return torch.where(flip.view(-1, 1, 1, 1), images.flip(3), images)


def random_crop_flip(images: torch.Tensor, padding: int, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """`random_flip(random_crop(x, padding, g), g, p)` in one gather (same random draws, same
    result). Fewer, larger ops matter on CPU: each op is a parallel region, and with more busy
    threads than cores every region waits for a descheduled thread."""
    n, c, h, w = images.shape
    dev = images.device
    hp, wp = h + 2 * padding, w + 2 * padding
    padded = F.pad(images, (padding,) * 4).view(n, c, hp * wp) if padding else images.reshape(n, c, h * w)
    dy = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=dev, generator=generator) if padding else 0
    dx = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=dev, generator=generator) if padding else 0
    flip = (torch.rand(n, device=dev, generator=generator) < p) if p > 0 else torch.zeros(n, dtype=torch.bool, device=dev)
    flip = flip.view(n, 1, 1)
    q = torch.arange(w, device=dev)
    cols = dx + torch.where(flip, w - 1 - q, q)  # a flip reads the window's columns right to left
    index = (dy + torch.arange(h, device=dev).view(1, h, 1)) * wp + cols  # (N, H, W) flat offsets
    return padded.gather(2, index.view(n, 1, h * w).expand(n, c, h * w)).view(n, c, h, w)


def cutout(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero one size x size square per sample; its centre is uniform over the image and the
    square is clipped at the border (so near the edges fewer than size^2 pixels are zeroed)."""
    if size <= 0:
        return images
    n, _, h, w = images.shape
    cy = torch.randint(0, h, (n, 1), device=images.device, generator=generator)
    cx = torch.randint(0, w, (n, 1), device=images.device, generator=generator)
    r = torch.arange(h, device=images.device)
    q = torch.arange(w, device=images.device)
    in_rows = (r >= cy - size // 2) & (r < cy - size // 2 + size)  # (N, H)
    in_cols = (q >= cx - size // 2) & (q < cx - size // 2 + size)  # (N, W)
    mask = in_rows[:, :, None] & in_cols[:, None, :]
    return images.masked_fill(mask[:, None], 0)


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of float images to size x size (e.g. 28x28 -> 64x64 for AlexNet)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False)


def augment(
    images: torch.Tensor,
    generator: torch.Generator,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    padding: int = 4,
    flip: bool = True,
    cutout_size: int = 0,
    size: int | None = None,
) -> torch.Tensor:
    """The standard training pipeline: crop -> flip (on uint8) -> normalize -> cutout [-> resize]."""
    x = random_crop_flip(images, padding, generator, 0.5 if flip else 0.0)
    x = cutout(normalize(x, mean, std), cutout_size, generator)
    return resize(x, size) if size else x


def batch_augment(
    images: torch.Tensor,
    labels: torch.Tensor,
    m: int,
    generator: torch.Generator,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    padding: int = 4,
    flip: bool = True,
    cutout: int = 0,
    size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch augmentation (Hoffer et al. 2019): every sample appears m times, each copy with its
    own crop/flip/cutout draw; labels repeated the same way. Returns (m*B, C, H, W), (m*B,).
    m=1 is exactly the plain pipeline `augment`."""
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    x = images.repeat(m, 1, 1, 1)  # copy k of sample i sits at row k*B + i
    x = augment(x, generator, mean=mean, std=std, padding=padding, flip=flip, cutout_size=cutout, size=size)
    return x, labels.repeat(m)


def eval_transform(images: torch.Tensor, *, mean: Sequence[float], std: Sequence[float],
                   size: int | None = None) -> torch.Tensor:
    """Test-time pipeline: normalize (and resize if the model needs it), nothing random."""
    x = normalize(images, mean, std)
    return resize(x, size) if size else x


def random_resized_crop_flip(images: torch.Tensor, size: int, generator: torch.Generator, *,
                             scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                             flip: bool = True, attempts: int = 10) -> torch.Tensor:
    """Inception-style random-resized crop (torchvision's RandomResizedCrop) and horizontal flip, batched:
    per sample a box of a random fraction `scale` of the image's area and aspect ratio in `ratio` (log-uniform),
    placed uniformly, resampled bilinearly to size x size; uint8 in, float [0, 1] out (`normalize` takes it from there).

    As torchvision, a box that does not fit is drawn again (up to `attempts` times, all at once); a sample
    whose every draw failed takes the whole image. One `affine_grid` + `grid_sample` does crop, resize and flip."""
    n, _, h, w = images.shape
    dev = images.device
    area = torch.empty(n, attempts, device=dev).uniform_(*scale, generator=generator) * (h * w)
    log_r = torch.empty(n, attempts, device=dev).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    bw, bh = (area * log_r.exp()).sqrt().round(), (area / log_r.exp()).sqrt().round()  # box size in pixels
    fits = (bw <= w) & (bh <= h) & (bw > 0) & (bh > 0)
    first = torch.where(fits.any(1), fits.float().argmax(1), 0)  # the first draw that fits
    pick = lambda t, whole: torch.where(fits.any(1), t.gather(1, first[:, None])[:, 0], whole)  # noqa: E731
    bw, bh = pick(bw, torch.full_like(bw[:, 0], w)), pick(bh, torch.full_like(bh[:, 0], h))
    x0 = (torch.rand(n, device=dev, generator=generator) * (w - bw + 1)).floor()  # left edge, 0..w-bw
    y0 = (torch.rand(n, device=dev, generator=generator) * (h - bh + 1)).floor()
    mirror = torch.rand(n, device=dev, generator=generator) < (0.5 if flip else 0.0)
    # affine_grid's normalized coordinates (align_corners=False): x_in = sx * x_out + tx, image spans [-1, 1]
    sx = torch.where(mirror, -bw / w, bw / w)
    tx, ty = (2 * x0 + bw) / w - 1, (2 * y0 + bh) / h - 1
    theta = torch.zeros(n, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, tx, bh / h, ty
    grid = F.affine_grid(theta, [n, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False).div_(255)


def center_crop_resize(images: torch.Tensor, size: int, crop_fraction: float = 0.875) -> torch.Tensor:
    """Test-time view (ImageNet's "resize 256, centre-crop 224"): the central `crop_fraction` of each side,
    resized to size x size (bilinear, antialiased) if it is not that size already; uint8 in, float [0, 1] out."""
    h, w = images.shape[-2:]
    ch, cw = max(1, round(h * crop_fraction)), max(1, round(w * crop_fraction))
    top, left = (h - ch) // 2, (w - cw) // 2
    x = images[..., top: top + ch, left: left + cw].float().div_(255)
    if (ch, cw) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True).clamp_(0, 1)
