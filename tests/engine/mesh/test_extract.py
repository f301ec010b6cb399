"""Extraction from a radiance field: level, colours along normals, clean-up, empty fields, settings."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from engine.mesh.cleanup import face_components
from engine.mesh.extract import ExtractSettings, SamplingMethod, extract_radiance_mesh
from engine.mesh.surface import EmptySurfaceError

from .analytic import Sphere, cameras_around

BOX_MIN = np.array([2.0, -1.0, 0.5])
BOX_MAX = np.array([4.0, 1.0, 2.5])
SPHERE = Sphere(centre=np.array([3.1, 0.1, 1.4]), radius=0.6)


class FoggySphere:
    """A radiance field: density rising smoothly to 200 across the sphere's surface, colour = a ramp in x.

    Density is a logistic in the signed distance, so the level set for threshold t sits at
    sdf = -ln(t / (200 - t)) / sharpness: computable, and not the sphere itself unless t = 100.
    """

    peak, sharpness = 200.0, 40.0

    def query_surface(self, points_world: np.ndarray) -> np.ndarray:
        return self.peak / (1.0 + np.exp(np.clip(self.sharpness * SPHERE.signed_distance(points_world), -50, 50)))

    def query_radiance(self, points_world: np.ndarray, view_dirs_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert np.allclose(np.linalg.norm(view_dirs_world, axis=1), 1.0, atol=1e-5)
        red = np.clip((points_world[:, 0] - 2.5) / 1.2, 0.0, 1.0)
        return self.query_surface(points_world), np.stack([red, 1.0 - red, np.full_like(red, 0.5)], axis=1)

    def level_radius(self, threshold: float) -> float:
        return SPHERE.radius - math.log(threshold / (self.peak - threshold)) / self.sharpness


def test_radiance_mesh_sits_on_the_density_level_with_the_field_colours() -> None:
    field = FoggySphere()
    settings = ExtractSettings(resolution=64, level=50.0)
    result = extract_radiance_mesh(field, BOX_MIN, BOX_MAX, settings, batch_points=50_000)
    radii = np.linalg.norm(result.mesh.vertices - SPHERE.centre, axis=1)
    # Half a cell, plus the logistic's curvature within a cell (linear interpolation error).
    assert np.abs(radii - field.level_radius(50.0)).max() <= 0.5 * result.grid.cell_size
    assert result.n_queries < result.grid.n_points / 3
    colours = result.mesh.vertex_colors
    assert colours is not None
    expected_red = np.clip((result.mesh.vertices[:, 0] - 2.5) / 1.2, 0.0, 1.0)
    # Colours are composited over a band of +-2 cells along the normal: the ramp moves 2 cells' worth.
    assert np.abs(colours[:, 0] - expected_red).max() <= 2 * result.grid.cell_size / 1.2 + 1e-3
    np.testing.assert_allclose(colours[:, 2], 0.5, atol=1e-6)
    assert result.mesh.signed_volume() > 0


def test_default_density_level_makes_a_slab_of_a_twentieth_of_the_diagonal_half_opaque() -> None:
    field = FoggySphere()
    result = extract_radiance_mesh(field, BOX_MIN, BOX_MAX, ExtractSettings(resolution=32), batch_points=50_000)
    diagonal = float(np.linalg.norm(BOX_MAX - BOX_MIN))
    assert result.level.value == pytest.approx(math.log(2) / (0.05 * diagonal))


def test_mise_and_dense_give_the_same_mesh_for_far_fewer_queries() -> None:
    field = FoggySphere()
    mise = extract_radiance_mesh(field, BOX_MIN, BOX_MAX, ExtractSettings(resolution=64, colour=False), 50_000)
    dense_settings = ExtractSettings(resolution=64, method=SamplingMethod.DENSE, colour=False)
    dense = extract_radiance_mesh(field, BOX_MIN, BOX_MAX, dense_settings, 50_000)
    assert dense.n_queries == 65**3 and mise.n_queries * 4 < dense.n_queries
    assert mise.mesh.n_faces == dense.mesh.n_faces
    np.testing.assert_allclose(mise.mesh.vertices, dense.mesh.vertices, atol=1e-6)


def test_a_hollow_field_gives_one_solid_seen_from_its_cameras() -> None:
    class HollowSphere(FoggySphere):
        """Dense only in a shell 0.15 thick under the surface: what a trained field leaves behind it."""

        def query_surface(self, points_world: np.ndarray) -> np.ndarray:
            radius = np.linalg.norm(points_world - SPHERE.centre, axis=1)
            return super().query_surface(points_world) * (radius > SPHERE.radius - 0.15)

    centre, half_size = 0.5 * (BOX_MIN + BOX_MAX), 0.5 * float(np.max(BOX_MAX - BOX_MIN))
    cameras = cameras_around(centre, half_size, 16)
    settings = ExtractSettings(resolution=48, level=50.0, colour=False)
    filled = extract_radiance_mesh(HollowSphere(), BOX_MIN, BOX_MAX, settings, 50_000, cameras=cameras)
    assert face_components(filled.mesh).max() + 1 == 1
    assert filled.unseen_points_filled > 0 and filled.summary()["unseen_points_filled"] == filled.unseen_points_filled
    unfilled_settings = ExtractSettings(resolution=48, level=50.0, colour=False, fill_unseen=False)
    unfilled = extract_radiance_mesh(HollowSphere(), BOX_MIN, BOX_MAX, unfilled_settings, 50_000, cameras=cameras)
    assert face_components(unfilled.mesh).max() + 1 == 2 and unfilled.unseen_points_filled == 0


def test_empty_field_says_so_and_names_the_level() -> None:
    class EmptySpace(FoggySphere):
        def query_surface(self, points_world: np.ndarray) -> np.ndarray:
            return np.zeros(len(points_world))

    message = r"the field has nothing above the surface level \(density 50 per world unit\)"
    with pytest.raises(EmptySurfaceError, match=message):
        extract_radiance_mesh(EmptySpace(), BOX_MIN, BOX_MAX, ExtractSettings(resolution=32, level=50.0), 50_000)


def test_settings_from_protocol_options_reject_unknown_names() -> None:
    settings = ExtractSettings.from_options(128, {"method": "dense", "target_faces": 5000, "level": 20.0})
    assert settings.method is SamplingMethod.DENSE and settings.cleanup.target_faces == 5000
    with pytest.raises(ValueError, match=r"unknown setting\(s\) smoothness"):
        ExtractSettings.from_options(128, {"smoothness": 3})
    with pytest.raises(ValueError, match="power of two"):
        ExtractSettings(resolution=96, initial_resolution=40)


def test_cli_names_a_missing_run_folder(tmp_path: Path) -> None:
    import subprocess
    import sys

    missing = tmp_path / "no-such-run"
    completed = subprocess.run(
        [sys.executable, "-m", "engine", "extract", str(missing)], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 2
    assert f"{missing}: no such run folder" in completed.stderr
