"""Every shape method trains 2 steps through the trainer on a tiny shape dataset, evaluates, resumes, and
its run extracts a closed mesh in the object's world space (one shape, a sample, a blend, a completion)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.data.shapes import is_watertight
from engine.fields.shape_model import sample_condition, shape_condition
from engine.mesh.io import read_ply
from engine.train.config import TrainConfig
from engine.train.trainer import Trainer
from tests.engine.shape_fixtures import write_ellipsoids

REPO = Path(__file__).resolve().parents[3]

SMALL_SAMPLES = {"surface_samples": 2000, "labelled_samples": 4000, "eval_resolution": 16}
TINY = {
    "igr": {**SMALL_SAMPLES, "hidden_width": 32, "hidden_layers": 3, "skip_layer": 2, "surface_batch": 256},
    "onet": {
        **SMALL_SAMPLES,
        "hidden_width": 32,
        "blocks": 2,
        "encoder_width": 16,
        "code_size": 16,
        "points_batch": 256,
    },
    "deepsdf": {**SMALL_SAMPLES, "hidden_width": 32, "hidden_layers": 3, "skip_layer": 2, "points_batch": 256},
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def one_blob(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ellipsoids(tmp_path_factory.mktemp("one") / "shapes", count=1)


@pytest.fixture(scope="module")
def three_blobs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ellipsoids(tmp_path_factory.mktemp("three") / "shapes", count=3)


def _train(dataset: Path, run: Path, method: str, steps: int = 2, **settings: object) -> tuple[Trainer, dict]:
    config = TrainConfig(
        method=method, steps=steps, warmup_steps=0, compile="off", log_every=1, settings={**TINY[method], **settings}
    )
    trainer = Trainer.create(dataset, run, config)
    return trainer, trainer.fit(progress=False)


@pytest.mark.parametrize("method", ["igr", "onet", "deepsdf"])
def test_each_shape_method_trains_two_steps_and_evaluates(one_blob: Path, tmp_path: Path, method: str) -> None:
    trainer, result = _train(one_blob, tmp_path / method, method)
    assert trainer.step == 2 and (tmp_path / method / "checkpoint.pt").is_file()
    (row,) = result["shapes"]
    assert row["shape"] == "Blob.000" and 0.0 <= row["iou"] <= 1.0
    records = [json.loads(line) for line in (tmp_path / method / "metrics.jsonl").read_text().splitlines()]
    assert [record["step"] for record in records if record["event"] == "train"] == [1, 2]
    assert records[-1]["event"] == "eval" and "iou" in records[-1]
    saved = json.loads((tmp_path / method / "config.json").read_text())
    assert saved["family"] == "shapes" and saved["data"]["shapes"] == ["Blob.000"]
    # the run resumes from its checkpoint and goes on
    config = TrainConfig(method=method, steps=3, warmup_steps=0, compile="off", settings=TINY[method])
    resumed = Trainer.create(one_blob, tmp_path / method, config)
    assert resumed.step == 2


def test_igr_refuses_a_collection_without_a_shape_named(three_blobs: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shape=NAME"):
        _train(three_blobs, tmp_path / "igr", "igr")
    _, result = _train(three_blobs, tmp_path / "igr-one", "igr", shape="Blob.002")
    assert [row["shape"] for row in result["shapes"]] == ["Blob.002"]


def _extract(run: Path, out: Path, *options: str) -> dict:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine",
            "extract",
            str(run),
            "--resolution",
            "16",
            "--out",
            str(out),
            "--json",
            "--device",
            "cpu",
            *options,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_a_trained_igr_run_extracts_a_closed_mesh_where_the_object_is(one_blob: Path, tmp_path: Path) -> None:
    _train(one_blob, tmp_path / "run", "igr", steps=40, surface_batch=512)
    _extract(tmp_path / "run", tmp_path / "mesh.ply")
    mesh = read_ply(tmp_path / "mesh.ply")
    assert is_watertight(mesh.faces)
    # the ellipsoid of radii (0.5, 0.4, 0.3) at (1, -0.5, 0.25): the mesh stands within the padded cube
    low, high = mesh.bounds()
    centre = 0.5 * (low + high)
    assert np.allclose(centre, [1.0, -0.5, 0.25], atol=0.15), centre


def test_collection_runs_extract_a_shape_a_sample_a_blend_and_a_completion(three_blobs: Path, tmp_path: Path) -> None:
    _train(three_blobs, tmp_path / "deepsdf", "deepsdf", steps=2, holdout_shapes=1)
    saved = json.loads((tmp_path / "deepsdf" / "config.json").read_text())
    assert saved["data"]["holdout"] == ["Blob.002"]
    for name, options in {
        "shape": ("--shape", "Blob.001"),
        "sample": ("--sample", "3"),
        "blend": ("--blend", "Blob.000", "Blob.001", "--t", "0.5"),
        "complete": ("--complete", str(three_blobs), "--shape", "Blob.002"),
    }.items():
        summary = _extract(tmp_path / "deepsdf", tmp_path / f"{name}.ply", *options)
        mesh = read_ply(tmp_path / f"{name}.ply")
        assert summary["face_count"] == mesh.n_faces > 0 and is_watertight(mesh.faces), name
    # a blend stands between its two shapes' cubes: Blob.000 at x = 1, Blob.001 at x = 3
    low, high = read_ply(tmp_path / "blend.ply").bounds()
    assert 0.5 < 0.5 * (low[0] + high[0]) < 3.5


def test_conditional_and_variational_onet_train_over_a_collection(three_blobs: Path, tmp_path: Path) -> None:
    trainer, result = _train(three_blobs, tmp_path / "conditional", "onet", holdout_shapes=1)
    assert trainer.model.conditional and result["held_out"] and [r["shape"] for r in result["shapes"]] == ["Blob.002"]
    trainer, result = _train(three_blobs, tmp_path / "variational", "onet", variational=True, encoder="none")
    assert "kl" in json.loads((tmp_path / "variational" / "metrics.jsonl").read_text().splitlines()[0])
    condition = sample_condition(trainer, 1)
    assert condition.code is not None and condition.code.shape == (trainer.config.settings.latent_size,)
    # conditional and variational: c through the cbatchnorm decoder's norms, z added to its first layer
    trainer, result = _train(
        three_blobs, tmp_path / "both", "onet", variational=True, encoder="pointnet", decoder="cbatchnorm"
    )
    assert trainer.model.conditional and trainer.model.latent_encoder is not None and result["iou"] is not None
    code = shape_condition(trainer, "Blob.001").code
    settings = trainer.config.settings
    assert code is not None and code.shape == (settings.code_size + settings.latent_size,)


def test_onet_auto_frequencies_are_four_for_one_shape_and_none_over_a_collection(
    one_blob: Path, three_blobs: Path, tmp_path: Path
) -> None:
    from engine.fields.onet import ConditionalBatchNormDecoder, OccupancyDecoder

    single, _ = _train(one_blob, tmp_path / "single", "onet", steps=1)
    assert single.model.frequencies == 4 and single.model.decoder.fc_points.in_features == 3 + 6 * 4
    collection, _ = _train(three_blobs, tmp_path / "collection", "onet", steps=1)
    assert collection.model.frequencies == 0 and isinstance(collection.model.decoder, OccupancyDecoder)
    # the setting stays -1 in config.json: a resumed run decides the same way
    saved = json.loads((tmp_path / "single" / "config.json").read_text())["config"]["settings"]
    assert saved["encoding_frequencies"] == -1 and saved["decoder"] == "additive"
    paper, _ = _train(three_blobs, tmp_path / "paper", "onet", steps=1, decoder="cbatchnorm")
    assert isinstance(paper.model.decoder, ConditionalBatchNormDecoder)
    with pytest.raises(ValueError, match="'decoder' must be one of cbatchnorm, additive, got 'cbn'"):
        _train(three_blobs, tmp_path / "bad", "onet", steps=1, decoder="cbn")


def test_onet_runs_saved_before_auto_frequencies_and_the_decoder_setting_load_as_trained(
    one_blob: Path, tmp_path: Path
) -> None:
    """A config.json of the previous version: encoding_frequencies 0 written out (every setting is), no
    decoder key. Its checkpoint loads (strictly) into plain p and the additive decoder."""
    run = tmp_path / "single"
    _train(one_blob, run, "onet", steps=1, encoding_frequencies=0)
    document = json.loads((run / "config.json").read_text())
    del document["config"]["settings"]["decoder"]
    (run / "config.json").write_text(json.dumps(document))
    reloaded = Trainer.from_run(run, device="cpu")
    assert reloaded.model.frequencies == 0 and reloaded.config.settings.decoder == "additive"
    assert reloaded.step == 1
