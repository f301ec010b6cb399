"""Image quality metrics: PSNR and SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5)."""

from __future__ import annotations

import math

import torch


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB for values in 0..1; any matching shapes."""
    mse = float(torch.mean((prediction.float() - target.float()) ** 2))
    return float("inf") if mse == 0.0 else -10.0 * math.log10(mse)


def ssim(prediction: torch.Tensor, target: torch.Tensor, window: int = 11, sigma: float = 1.5) -> float:
    """Mean structural similarity of two (h, w, c) images in 0..1, per channel then averaged. Images
    smaller than the window use a window of their smaller side."""
    return float(ssim_map(prediction, target, window, sigma).mean())


def masked_ssim(
    prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, window: int = 11, sigma: float = 1.5
) -> float:
    """SSIM averaged over the windows centred on ``mask`` (h, w) pixels (an object's, not its background)."""
    local = ssim_map(prediction, target, window, sigma).mean(dim=0)  # (h - window + 1, w - window + 1)
    margin_y = (prediction.shape[0] - local.shape[0]) // 2
    margin_x = (prediction.shape[1] - local.shape[1]) // 2
    inside = mask[margin_y : margin_y + local.shape[0], margin_x : margin_x + local.shape[1]].bool()
    return float(local[inside].mean()) if bool(inside.any()) else float("nan")


def ssim_map(prediction: torch.Tensor, target: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """(c, h', w') local SSIM of two (h, w, c) images over every full window (h' = h - window + 1)."""
    if prediction.shape != target.shape or prediction.dim() != 3:
        raise ValueError(
            f"ssim needs two (h, w, c) images of one shape, got {tuple(prediction.shape)} and {tuple(target.shape)}"
        )
    window = min(window, prediction.shape[0], prediction.shape[1])
    coordinates = torch.arange(window, dtype=torch.float32, device=prediction.device) - (window - 1) / 2
    gauss = torch.exp(-(coordinates**2) / (2 * sigma**2))
    gauss = gauss / gauss.sum()
    channels = prediction.shape[-1]
    kernel = (gauss[:, None] * gauss[None, :]).expand(channels, 1, window, window).contiguous()

    def blur(image: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(image, kernel, groups=channels)

    x = prediction.float().permute(2, 0, 1)[None]
    y = target.float().permute(2, 0, 1)[None]
    c1, c2 = 0.01**2, 0.03**2
    mean_x, mean_y = blur(x), blur(y)
    var_x = blur(x * x) - mean_x**2
    var_y = blur(y * y) - mean_y**2
    cov = blur(x * y) - mean_x * mean_y
    local = ((2 * mean_x * mean_y + c1) * (2 * cov + c2)) / ((mean_x**2 + mean_y**2 + c1) * (var_x + var_y + c2))
    return local[0]
