"""Input encodings: Fourier features (NeRF) and the multiresolution hash grid (instant-NGP)."""
