"""Figures several methods share (stdlib only)."""

from __future__ import annotations

from . import Figure

PSNR = Figure("psnr", "PSNR", ".2f", "dB")
RAYS_PER_SECOND = Figure("rays_per_second", "rays/s", ".0f")
SAMPLES_PER_RAY = Figure("samples_per_ray", "samples/ray", ".1f")

# What every method rendering posed images reports (the trainer adds rays_per_second from the batch).
RADIANCE_FIGURES = (PSNR, RAYS_PER_SECOND, SAMPLES_PER_RAY)

# Surface methods (neus, unisurf)
EIKONAL = Figure("eikonal", "eikonal", ".4f")  # mean (|grad f| - 1)^2 over the samples
SHARPNESS = Figure("sharpness", "s", ".0f")  # NeuS's learned logistic sharpness, per unit-cube length
MASK = Figure("mask", "mask BCE", ".4f")  # opacity against the images' alpha
SMOOTHNESS = Figure("smoothness", "normal smoothness", ".4f")  # mean |n(x) - n(x + eps)|
SURFACE_HITS = Figure("surface_hits", "rays on surface", ".0%")  # share of rays whose root was found
INTERVAL = Figure("interval", "interval", ".3f")  # UNISURF's sampling interval around the surface
