"""Fieldwork engine: trains neural fields in a process of its own.

Importing this package (or ``engine.protocol``) must never import torch or bpy:
Blender's own Python imports the protocol from the same files the engine runs.
"""

__version__ = "0.1.0"
