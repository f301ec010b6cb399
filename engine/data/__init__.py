"""Datasets: cameras, rays, ``transforms.json`` read/write, image loading."""
