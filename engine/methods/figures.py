"""Figures several methods share (stdlib only)."""

from __future__ import annotations

from . import Figure

PSNR = Figure("psnr", "PSNR", ".2f", "dB")
RAYS_PER_SECOND = Figure("rays_per_second", "rays/s", ".0f")
SAMPLES_PER_RAY = Figure("samples_per_ray", "samples/ray", ".1f")

# What every method rendering posed images reports (the trainer adds rays_per_second from the batch).
RADIANCE_FIGURES = (PSNR, RAYS_PER_SECOND, SAMPLES_PER_RAY)
