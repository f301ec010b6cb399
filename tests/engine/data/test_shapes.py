"""Shape datasets: the format round trip, clear errors, winding-number labels and signed distances on spheres."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.data.shapes import (
    CACHE_FOLDER,
    SHAPES_NAME,
    ShapeError,
    ShapeGeometry,
    ShapeNormalization,
    ShapeSampleConfig,
    collection_normalization,
    is_watertight,
    read_shape_dataset,
    sample_shape,
    shape_samples,
    winding_numbers,
    world_geometry,
    write_shape_dataset,
)


def icosphere(subdivisions: int, radius: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3) vertices on the sphere and (m, 3) triangles, counter-clockwise seen from outside."""
    t = (1.0 + 5.0**0.5) / 2.0
    vertices = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t)]
    vertices += [(0, -1, -t), (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2)]
    faces += [(10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5)]
    faces += [(2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    points = [np.array(v, dtype=np.float64) / np.linalg.norm(v) for v in vertices]
    midpoints: dict[tuple[int, int], int] = {}  # edge -> its midpoint's index; edges of every level differ

    def midpoint(a: int, b: int) -> int:
        key = (min(a, b), max(a, b))
        if key not in midpoints:
            middle = points[a] + points[b]
            points.append(middle / np.linalg.norm(middle))
            midpoints[key] = len(points) - 1
        return midpoints[key]

    for _ in range(subdivisions):
        finer = []
        for a, b, c in faces:
            ab, bc, ca = midpoint(a, b), midpoint(b, c), midpoint(c, a)
            finer += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = finer
    return np.array(points) * radius, np.array(faces, dtype=np.int64)


def test_the_icosphere_faces_outwards_and_is_watertight() -> None:
    vertices, faces = icosphere(2)
    corners = vertices[faces]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    outward = np.einsum("ij,ij->i", face_normals, corners[:, 0])
    assert np.all(outward > 0)
    assert is_watertight(faces)
    assert not is_watertight(faces[1:]), "a missing triangle leaves a hole"
    flipped = faces.copy()
    flipped[0] = flipped[0, ::-1]
    assert not is_watertight(flipped), "one triangle facing in is not consistently oriented"


def test_winding_numbers_label_inside_and_outside_an_analytic_sphere() -> None:
    vertices, faces = icosphere(3, radius=1.0)
    rng = np.random.default_rng(1)
    points = rng.uniform(-1.5, 1.5, size=(4000, 3))
    radius = np.linalg.norm(points, axis=1)
    # The mesh's triangles are chords, up to 1 - cos(edge/2) ~ 0.002 inside the sphere: skip that shell.
    clear = np.abs(radius - 1.0) > 0.01
    winding = winding_numbers(vertices, faces, points[clear])
    assert np.array_equal(winding > 0.5, radius[clear] < 1.0)
    # Far from the surface the winding number is 1 inside and 0 outside, not just on the right side of 0.5.
    assert np.allclose(winding[radius[clear] < 0.8], 1.0, atol=1e-2)
    assert np.allclose(winding[radius[clear] > 1.2], 0.0, atol=1e-2)


def test_winding_numbers_stay_right_away_from_a_hole() -> None:
    vertices, faces = icosphere(3, radius=1.0)
    centroids = vertices[faces].mean(axis=1)
    with_hole = faces[centroids[:, 2] < 0.8]  # a cap of about 0.6 radius cut off the top
    assert not is_watertight(with_hole)
    rng = np.random.default_rng(2)
    points = rng.uniform(-1.5, 1.5, size=(4000, 3))
    radius = np.linalg.norm(points, axis=1)
    away = (points[:, 2] < 0.3) & (np.abs(radius - 1.0) > 0.05)
    winding = winding_numbers(vertices, with_hole, points[away])
    assert np.array_equal(winding > 0.5, radius[away] < 1.0)
    # A closed-mesh test (ray parity) would fail here; the winding number only drops by the hole's solid angle.
    inside = radius[away] < 1.0
    assert winding[inside].min() > 0.8 and winding[~inside].max() < 0.2


def test_sdf_samples_on_a_sphere_match_the_distance_to_it() -> None:
    radius, offset = 2.0, np.array([3.0, -1.0, 0.5])
    vertices, faces = icosphere(4, radius=radius)
    geometry = world_geometry(vertices, faces, _translation(offset), "Sphere")
    config = ShapeSampleConfig(surface_points=2000, uniform_points=3000, near_surface_points=3000)

    samples = sample_shape(geometry, config, "Sphere")

    norm = samples.normalization
    assert np.allclose(norm.center, offset, atol=1e-12)
    assert norm.scale == pytest.approx(radius * 1.1)  # the padded box's cube is [-1, 1]^3
    assert samples.points is not None and samples.sdf is not None and samples.occupancy is not None
    assert len(samples.points) == 6000 and samples.uniform_count == 3000
    assert np.all(np.abs(samples.points[:3000]) <= 1.0)
    unit_radius = radius / norm.scale
    analytic = np.linalg.norm(samples.points, axis=1) - unit_radius
    # The mesh lies up to the chords' sagitta (~1e-3 of the radius at 5120 faces) inside the sphere.
    assert np.max(np.abs(samples.sdf - analytic)) < 2e-3
    assert np.array_equal(samples.occupancy, samples.sdf < 0)
    near = samples.points[3000:]
    assert np.median(np.abs(np.linalg.norm(near, axis=1) - unit_radius)) < 0.05, "near-surface points hug the surface"
    # Surface points lie on the mesh with outward normals, and go back to world space exactly.
    surface_world = norm.to_world(samples.surface_points.astype(np.float64))
    assert np.allclose(np.linalg.norm(surface_world - offset, axis=1), radius, atol=2e-3 * radius + 1e-5)
    assert samples.surface_normals is not None
    assert np.all(np.einsum("ij,ij->i", samples.surface_normals, samples.surface_points) > 0)
    world_points = np.random.default_rng(0).normal(size=(10, 3)) * 5
    assert np.allclose(norm.to_world(norm.to_unit(world_points)), world_points, rtol=0, atol=1e-12)
    matrix = norm.unit_to_world_matrix()
    assert np.allclose(samples.points @ matrix[:3, :3].T + matrix[:3, 3], norm.to_world(samples.points), atol=1e-9)


def test_normalisation_maps_the_padded_box_to_the_cube() -> None:
    norm = ShapeNormalization.from_box((0.0, -2.0, 1.0), (4.0, 0.0, 2.0), padding=0.5)
    # Longest side 4 along x, padded by half: a cube of side 6 around the centre (2, -1, 1.5).
    assert norm.center == (2.0, -1.0, 1.5) and norm.scale == 3.0
    assert np.allclose(norm.to_unit([[0.0, -1.0, 1.5], [5.0, 2.0, 4.5]]), [[-2 / 3, 0, 0], [1, 1, 1]])
    with pytest.raises(ShapeError, match="'Dot' has no extent"):
        ShapeNormalization.from_box((1.0, 1.0, 1.0), (1.0, 1.0, 1.0), name="Dot")


def _translation(offset: np.ndarray) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, 3] = offset
    return matrix


def test_world_geometry_applies_the_matrix_drops_unused_vertices_and_keeps_mirrored_faces_outward() -> None:
    vertices, faces = icosphere(1)
    extra = np.vstack([vertices, [[9.0, 9.0, 9.0]]])  # a loose vertex no triangle uses
    mirror = np.diag([-2.0, 1.0, 0.5, 1.0])
    mirror[:3, 3] = (1.0, 2.0, 3.0)

    geometry = world_geometry(extra, faces, mirror, "Mirrored")

    assert len(geometry.vertices) == len(vertices)
    assert np.allclose(np.sort(geometry.vertices, axis=0), np.sort(vertices * (-2.0, 1.0, 0.5) + (1, 2, 3), axis=0))
    assert geometry.faces is not None and geometry.normals is not None
    corners = geometry.vertices[geometry.faces] - (1.0, 2.0, 3.0)
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    assert np.all(np.einsum("ij,ij->i", face_normals, corners.mean(axis=1)) > 0), "mirroring turned faces inwards"
    assert np.all(np.einsum("ij,ij->i", geometry.normals, geometry.vertices - (1.0, 2.0, 3.0)) > 0)

    points = world_geometry(vertices, None, np.eye(4), "Cloud")
    assert points.is_point_cloud and points.normals is None


def test_world_geometry_names_the_object_with_bad_vertices() -> None:
    with pytest.raises(ShapeError, match=r"object 'Empty Mesh' has no vertices"):
        world_geometry(np.zeros((0, 3)), None, np.eye(4), "Empty Mesh")
    broken = np.array([[0.0, 0.0, 0.0], [1.0, float("nan"), 0.0], [0.0, 1.0, 0.0]])
    with pytest.raises(ShapeError, match=r"object 'Broken': vertex 1 is not finite"):
        world_geometry(broken, np.array([[0, 1, 2]]), np.eye(4), "Broken")
    with pytest.raises(ShapeError, match=r"object 'Flat' is scaled to zero"):
        world_geometry(np.eye(3), np.array([[0, 1, 2]]), np.diag([1.0, 0.0, 1.0, 1.0]), "Flat")


def _two_shapes() -> list[tuple[str, ShapeGeometry]]:
    vertices, faces = icosphere(1)
    return [
        ("Ball", world_geometry(vertices, faces, np.eye(4), "Ball")),
        ("Scan/points", world_geometry(vertices[:30], None, np.eye(4), "Scan/points")),
    ]


def test_a_dataset_round_trips_and_its_samples_are_cached(tmp_path: Path) -> None:
    out_dir = tmp_path / "shapes"
    path = write_shape_dataset(out_dir, _two_shapes(), collection="Things")

    dataset = read_shape_dataset(path)
    assert dataset.collection == "Things"
    ball, scan = dataset.shapes
    assert (ball.name, ball.file, ball.watertight, ball.has_normals, ball.point_cloud) == (
        "Ball",
        "Ball.npz",
        True,
        True,
        False,
    )
    assert (scan.file, scan.point_cloud, scan.has_normals, scan.face_count) == ("Scan_points.npz", True, False, 0)
    assert np.allclose(ball.box_min, -1.0) and np.allclose(ball.box_max, 1.0)
    geometry = dataset.geometry(ball)
    assert geometry.vertices.dtype == np.float64 and geometry.faces is not None and geometry.faces.shape == (80, 3)
    assert dataset.geometry(scan).faces is None

    config = ShapeSampleConfig(surface_points=100, uniform_points=50, near_surface_points=50)
    first = shape_samples(dataset, ball, config)
    (cached,) = (out_dir / CACHE_FOLDER).iterdir()
    again = shape_samples(dataset, ball, config)
    assert np.array_equal(first.points, again.points) and np.array_equal(first.sdf, again.sdf)
    assert again.normalization == first.normalization and again.uniform_count == 50
    shape_samples(dataset, ball, ShapeSampleConfig(surface_points=100, uniform_points=60, near_surface_points=50))
    assert len(list((out_dir / CACHE_FOLDER).iterdir())) == 2, "other settings are another cache file"
    points = shape_samples(dataset, scan, config)
    assert points.points is None and points.surface_normals is None and points.surface_points.shape == (30, 3)
    # One normalisation for the collection: the scan's points keep their place relative to the ball.
    shared = collection_normalization(dataset)
    assert shared.center == pytest.approx(first.normalization.center) and shared.scale >= first.normalization.scale
    in_shared = shape_samples(dataset, scan, config, shared)
    assert in_shared.normalization == shared
    assert np.allclose(shared.to_world(in_shared.surface_points), dataset.geometry(scan).vertices, atol=1e-6)
    assert cached.is_file()
    # Re-exporting over a dataset replaces it (the cache included); a file of the user's stops that.
    write_shape_dataset(out_dir, _two_shapes()[:1], overwrite=True)
    assert sorted(p.name for p in out_dir.iterdir()) == ["Ball.npz", SHAPES_NAME]
    (out_dir / "notes.txt").write_text("mine")
    with pytest.raises(ShapeError, match="notes.txt"):
        write_shape_dataset(out_dir, _two_shapes(), overwrite=True)
    assert (out_dir / "notes.txt").read_text() == "mine" and not (out_dir / "Scan_points.npz").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shapes"], "a half-built dataset was left behind"


def test_existing_folders_are_not_replaced_without_overwrite(tmp_path: Path) -> None:
    write_shape_dataset(tmp_path / "data", _two_shapes())
    with pytest.raises(ShapeError, match="already holds a shape dataset"):
        write_shape_dataset(tmp_path / "data", _two_shapes())
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").write_bytes(b"")
    with pytest.raises(ShapeError, match="no shapes.json"):
        write_shape_dataset(tmp_path / "photos", _two_shapes(), overwrite=True)
    with pytest.raises(ShapeError, match="no shapes to export"):
        write_shape_dataset(tmp_path / "new", [])
    assert not (tmp_path / "new").exists()


def test_reading_names_the_file_and_key_at_fault(tmp_path: Path) -> None:
    path = write_shape_dataset(tmp_path / "data", _two_shapes())
    document = json.loads(path.read_text())

    def broken(change) -> str:  # type: ignore[no-untyped-def]
        copy = json.loads(json.dumps(document))
        change(copy)
        path.write_text(json.dumps(copy))
        with pytest.raises(ShapeError) as error:
            dataset = read_shape_dataset(tmp_path / "data")
            dataset.geometry(dataset.shapes[0])
        return str(error.value)

    assert "key 'format'" in broken(lambda d: d.update(format="other"))
    assert "shapes[0]: key 'box.min'" in broken(lambda d: d["shapes"][0]["box"].update(min=[0, 0]))
    assert "shapes[1]: key 'watertight' is missing" in broken(lambda d: d["shapes"][1].pop("watertight"))
    assert "inside the dataset folder" in broken(lambda d: d["shapes"][0].update(file="../x.npz"))
    assert "Ball.npz: holds 42 vertices but shapes.json says 7" in broken(
        lambda d: d["shapes"][0].update(vertex_count=7)
    )
    path.write_text(json.dumps(document))
    np.savez(tmp_path / "data" / "Ball.npz", vertices=np.zeros((4, 2)))
    with pytest.raises(ShapeError, match=r"Ball.npz: key 'vertices' must be \(n, 3\) floats"):
        read_shape_dataset(tmp_path / "data").geometry(read_shape_dataset(tmp_path / "data").shapes[0])
    with pytest.raises(ShapeError, match="no shapes.json"):
        read_shape_dataset(tmp_path)


def test_a_damaged_cache_is_made_again_and_a_damaged_shape_file_is_named(tmp_path: Path) -> None:
    dataset = read_shape_dataset(write_shape_dataset(tmp_path / "data", _two_shapes()))
    ball = dataset.shapes[0]
    config = ShapeSampleConfig(surface_points=20, uniform_points=20, near_surface_points=20)
    first = shape_samples(dataset, ball, config)
    (cached,) = (tmp_path / "data" / CACHE_FOLDER).iterdir()
    cached.write_bytes(b"half a file")
    again = shape_samples(dataset, ball, config)
    assert np.array_equal(first.points, again.points) and cached.stat().st_size > 100
    (tmp_path / "data" / "Ball.npz").write_bytes(b"not a zip")
    with pytest.raises(ShapeError, match=r"Ball.npz: cannot read it as .npz"):
        dataset.geometry(ball)
