"""Texture baking: an analytic colour comes back from the texture, seams are padded for mip-maps, bad input is named."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from engine.mesh.bake import BakeError, BakeSettings, bake_texture, check_texture_size, pad_charts
from engine.mesh.extract import ExtractSettings, extract_radiance_mesh, write_result
from engine.mesh.io import encode_png, read_ply_with_texture
from engine.mesh.triangle_mesh import TriangleMesh

from .conftest import sphere_mesh
from .test_extract import BOX_MAX, BOX_MIN, FoggySphere

MESH = sphere_mesh(centre=(0.0, 0.0, 0.0), radius=1.0, resolution=32)


def analytic_colour(points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """A smooth colour that is never black, so background (black) texels can be told apart."""
    return np.clip(0.2 + 0.3 * (points + 1.0), 0.0, 1.0)


def bilinear(image: np.ndarray, uvs: np.ndarray) -> np.ndarray:
    """(n, 3) colours in [0, 1] of ``image`` at ``uvs`` (v up), texel centres at +0.5, as a GPU samples."""
    size = image.shape[0]
    x, y = uvs[:, 0] * size - 0.5, (1.0 - uvs[:, 1]) * size - 0.5
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0, y0 = np.clip(x0, 0, size - 2), np.clip(y0, 0, size - 2)
    texels = image.astype(np.float64) / 255.0
    top = texels[y0, x0] * (1 - fx) + texels[y0, x0 + 1] * fx
    bottom = texels[y0 + 1, x0] * (1 - fx) + texels[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def test_a_baked_sphere_gives_back_the_analytic_colour_within_quantisation() -> None:
    baked = bake_texture(MESH, analytic_colour, BakeSettings(size=512))
    mesh = baked.mesh
    assert mesh.uvs is not None and mesh.uvs.min() >= 0.0 and mesh.uvs.max() <= 1.0
    # Seams split vertices but never move them: every vertex is one of the original positions.
    assert np.isin(mesh.vertices.view("f8,f8,f8"), MESH.vertices.view("f8,f8,f8")).all()
    assert mesh.n_faces == MESH.n_faces and baked.image.shape == (512, 512, 3)
    # Random points on the mesh, looked up through their interpolated UVs the way a renderer does.
    rng = np.random.default_rng(1)
    faces = rng.integers(0, mesh.n_faces, 5000)
    weights = rng.dirichlet(np.ones(3), 5000)
    points = (mesh.vertices[mesh.faces[faces]] * weights[:, :, None]).sum(1)
    uvs = (mesh.uvs[mesh.faces[faces]] * weights[:, :, None]).sum(1)
    error = np.abs(bilinear(baked.image, uvs) - analytic_colour(points, points))
    # The colour moves 0.3 per unit; a texel spans ~0.01 units here, so bilinear weights of the
    # neighbouring texel centres add at most ~0.005 to the half-step of 8-bit quantisation.
    assert error.max() < 0.5 / 255 + 0.006, error.max()
    assert np.median(error) < 1.0 / 255


def background_free_levels(image: np.ndarray, coverage: np.ndarray, levels: int) -> list[bool]:
    """For mip levels 1..levels: is every texel that a chart covers free of background beneath it?"""
    background = (image == 0).all(axis=2)
    results = []
    for level in range(1, levels + 1):
        block = 2**level
        size = image.shape[0] // block
        covered = coverage.reshape(size, block, size, block).any(axis=(1, 3))
        bled = background.reshape(size, block, size, block).any(axis=(1, 3))
        results.append(not (covered & bled).any())
    return results


def test_seam_padding_keeps_background_out_of_mip_maps() -> None:
    baked = bake_texture(MESH, analytic_colour, BakeSettings(size=512, padding=15))
    assert not (baked.image[baked.coverage] == 0).all(axis=1).any(), "a chart texel is background"
    # Padding 15 = 2^4 - 1: levels 1 to 4 (2x2 up to 16x16 blocks) never average in background.
    assert background_free_levels(baked.image, baked.coverage, 4) == [True] * 4
    # The check can fail: without padding the first mip level already bleeds, and 15 texels
    # are not enough for level 5's 32x32 blocks.
    unpadded = np.where(baked.coverage[..., None], baked.image, 0).astype(np.uint8)
    assert background_free_levels(pad_charts(unpadded, baked.coverage, 0), baked.coverage, 1) == [False]
    assert background_free_levels(baked.image, baked.coverage, 5)[-1] is False


@pytest.mark.parametrize("size", [128, 300, 1000, 16384, 0, 2048.0, True])
def test_texture_sizes_other_than_powers_of_two_from_256_to_8192_are_refused(size: object) -> None:
    with pytest.raises(BakeError, match=rf"power of two between 256 and 8192 .* got {size!r}"):
        check_texture_size(size)  # type: ignore[arg-type]
    if size == 0:
        return  # extraction's 0 means vertex colours, not a texture size
    with pytest.raises(ValueError, match="power of two between 256 and 8192"):
        ExtractSettings(texture_size=size)  # type: ignore[arg-type]


def test_a_mesh_without_faces_is_refused() -> None:
    faceless = TriangleMesh(np.zeros((3, 3)), np.zeros((0, 3), dtype=np.int64))
    with pytest.raises(BakeError, match="cannot bake a texture on a mesh without faces"):
        bake_texture(faceless, analytic_colour, BakeSettings(size=256))


def test_extraction_bakes_the_field_colours_and_writes_png_beside_the_mesh(tmp_path: Path) -> None:
    settings = ExtractSettings(resolution=32, level=50.0, texture_size=256)
    result = extract_radiance_mesh(FoggySphere(), BOX_MIN, BOX_MAX, settings, batch_points=50_000)
    assert result.texture is not None and result.mesh.uvs is not None and result.mesh.vertex_colors is None
    written = write_result(result, tmp_path / "mesh.ply")
    assert written.texture_path == tmp_path / "mesh.png"
    assert written.summary()["texture_path"] == str(tmp_path / "mesh.png") and written.summary()["bake_seconds"] > 0
    mesh, texture = read_ply_with_texture(tmp_path / "mesh.ply")
    assert texture == tmp_path / "mesh.png" and mesh.uvs is not None
    image = iio.imread(texture)
    np.testing.assert_array_equal(image, result.texture.image)  # our PNG encoder, read back by Pillow
    # The field's colour is red = (x - 2.5) / 1.2, blue 0.5: the texture holds it at each vertex.
    looked_up = bilinear(image, mesh.uvs)
    expected_red = np.clip((mesh.vertices[:, 0] - 2.5) / 1.2, 0.0, 1.0)
    assert np.abs(looked_up[:, 0] - expected_red).max() < 2 * result.grid.cell_size / 1.2 + 0.02
    np.testing.assert_allclose(looked_up[:, 2], 0.5, atol=1.5 / 255)


def test_png_encoder_round_trips_grey_and_colour() -> None:
    rng = np.random.default_rng(0)
    for image in (rng.integers(0, 256, (7, 5, 3), dtype=np.uint8), rng.integers(0, 256, (4, 9), dtype=np.uint8)):
        np.testing.assert_array_equal(iio.imread(encode_png(image), extension=".png"), image)


def test_the_cli_names_a_bad_texture_size_before_any_work(tmp_path: Path) -> None:
    import subprocess
    import sys

    completed = subprocess.run(
        [sys.executable, "-m", "engine", "extract", str(tmp_path), "--texture", "3000"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2
    assert "texture size must be a power of two between 256 and 8192" in completed.stderr
    assert "got 3000" in completed.stderr and list(tmp_path.iterdir()) == []
