"""Surfaces from fields: MISE and dense sampling, marching cubes, colours, clean-up, mesh files.

Importing this package, ``triangle_mesh`` or ``io`` must not import torch: the add-on
reads mesh files with :mod:`engine.mesh.io` inside Blender's own Python.
"""
