"""Collections of textured shapes for conditional texture fields: per shape a mesh and its posed RGBA views.

A collection is a folder written by ``scripts/make_textured_collection.py`` (Blender, headless)::

    textured_collection.json          format, version, image size, views per shape, the shape list
    shapes/<name>/mesh.ply            the shape's triangles in world units
    shapes/<name>/transforms.json     its cameras and images (engine/data/transforms.py reads it)
    shapes/<name>/images/*.png        RGBA, sRGB
    shapes/<name>/texture.json        the true texture parameters: for evaluation only

Only numpy and the standard library: the Blender script imports the names from here, and reading the index
never imports torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .transforms import Transforms, TransformsError, read_transforms

INDEX_NAME = "textured_collection.json"
FORMAT = "fieldwork-textured-collection"
FORMAT_VERSION = 1
SHAPES_FOLDER = "shapes"
MESH_NAME = "mesh.ply"


class TexturedCollectionError(ValueError):
    """A collection that cannot be read; the message names the file and the key or shape at fault."""


def shape_name(index: int) -> str:
    return f"shape_{index:04d}"


@dataclass(frozen=True)
class TexturedShape:
    """One shape of a collection: its name, mesh file and posed views."""

    name: str
    mesh_path: Path
    transforms: Transforms


@dataclass(frozen=True)
class TexturedCollection:
    root: Path
    size: int
    views: int
    color_space: str
    shapes: tuple[TexturedShape, ...]

    def names(self) -> list[str]:
        return [shape.name for shape in self.shapes]


def index_path(path: Path) -> Path:
    """The index file of a collection folder (or the index itself)."""
    path = Path(path)
    return path if path.name == INDEX_NAME or path.suffix == ".json" else path / INDEX_NAME


def load_textured_collection(path: Path) -> TexturedCollection:
    """Read and check a collection's index and every shape's transforms.json (not the images)."""
    index = index_path(path)
    try:
        document = json.loads(index.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TexturedCollectionError(
            f"{index}: no such file (make a collection with scripts/make_textured_collection.py)"
        ) from None
    except (OSError, json.JSONDecodeError) as error:
        raise TexturedCollectionError(f"{index}: unreadable ({error})") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise TexturedCollectionError(f"{index}: not a textured collection (format is not {FORMAT!r})")
    if document.get("version") != FORMAT_VERSION:
        raise TexturedCollectionError(
            f"{index}: version {document.get('version')!r}; this engine reads {FORMAT_VERSION}"
        )
    if not document.get("complete", False):
        raise TexturedCollectionError(
            f"{index}: the collection is incomplete (its maker was interrupted); run the same command again"
        )
    try:
        size, views = int(document["size"]), int(document["views"])
        names = [str(name) for name in document["shapes"]]
        color_space = str(document.get("color_space", "srgb"))
    except (KeyError, TypeError, ValueError) as error:
        raise TexturedCollectionError(f"{index}: 'size', 'views' and 'shapes' must be given ({error})") from error
    if not names:
        raise TexturedCollectionError(f"{index}: the collection lists no shapes")
    root = index.parent
    shapes = []
    for name in names:
        folder = root / SHAPES_FOLDER / name
        mesh_path = folder / MESH_NAME
        if not mesh_path.is_file():
            raise TexturedCollectionError(f"{mesh_path}: shape {name!r} has no mesh")
        try:
            transforms = read_transforms(folder)
        except TransformsError as error:
            raise TexturedCollectionError(f"shape {name!r}: {error}") from error
        if len(transforms.frames) < 2:
            raise TexturedCollectionError(
                f"{folder}: shape {name!r} needs at least two views, has {len(transforms.frames)}"
            )
        shapes.append(TexturedShape(name=name, mesh_path=mesh_path, transforms=transforms))
    return TexturedCollection(root=root, size=size, views=views, color_space=color_space, shapes=tuple(shapes))
