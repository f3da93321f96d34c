"""ONNX export of a run's deterministic policy: parity with SB3's predict, metadata, staleness, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from roboreward.cli import main
from roboreward.config import apply_override, from_dict
from roboreward.errors import CheckpointError
from roboreward.experiment import ExperimentConfig
from roboreward.policies.export import (
    OnnxPolicyRunner,
    PolicyRunner,
    SB3PolicyRunner,
    _sample_observations,
    export_policy,
    load_policy,
)
from roboreward.policies.train import train

ALGO_OVERRIDES = {
    "ppo": ["algo.hyperparams.n_steps=64", "algo.hyperparams.batch_size=64", "algo.hyperparams.n_epochs=2"],
    "sac": ["algo.hyperparams.learning_starts=64", "algo.hyperparams.buffer_size=500", "algo.hyperparams.batch_size=32",
            "algo.hyperparams.gradient_steps=1"],
}


def tiny_run(tmp_path_factory, algo: str, *more: str):
    data: dict = {}
    overrides = ["reward.type=env", f"algo.name={algo}", "env.n_envs=1", "train.total_timesteps=128",
                 "train.progress_bar=false", "algo.net_arch=[32, 32]", *ALGO_OVERRIDES[algo], *more]
    for o in overrides:
        apply_override(data, o)
    return train(from_dict(ExperimentConfig, data), tmp_path_factory.mktemp(algo) / "run")


@pytest.fixture(scope="module", params=["ppo", "sac"])
def run_dir(request, tmp_path_factory):
    return tiny_run(tmp_path_factory, request.param)


def test_onnx_matches_sb3_predict_deterministic(run_dir):
    path = export_policy(run_dir)
    assert path == run_dir / "export" / "policy.onnx"
    onnx_runner, sb3_runner = OnnxPolicyRunner(path), SB3PolicyRunner.from_run(run_dir)
    assert isinstance(onnx_runner, PolicyRunner) and isinstance(sb3_runner, PolicyRunner)
    space = sb3_runner.observation_space
    observations = _sample_observations(space, 300, seed=7)
    # Well outside anything trained on, too: PPO's clipping and SAC's squashing must both be in the graph.
    observations[:50] *= 100.0
    got = np.stack([onnx_runner(o) for o in observations])
    expected = np.stack([sb3_runner(o) for o in observations])
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    low, high = sb3_runner.action_space.low, sb3_runner.action_space.high
    assert (got >= low - 1e-6).all() and (got <= high + 1e-6).all()  # SAC's rescaling rounds by an ulp
    assert got.std(axis=0).min() > 1e-4  # the outputs depend on the input: no constant graph


def test_metadata_describes_spaces_and_source(run_dir):
    export_policy(run_dir)
    meta = json.loads((run_dir / "export" / "policy.json").read_text())
    runner = SB3PolicyRunner.from_run(run_dir)
    assert meta["format"] == "roboreward-policy-v1"
    assert meta["observation_space"]["shape"] == list(runner.observation_space.shape)
    assert meta["action_space"]["low"] == runner.action_space.low.tolist()
    assert meta["robot"] is None and meta["joint_names"] is None  # ArmReach is not a robot description
    assert meta["source_model"] == "model.zip" and len(meta["source_sha256"]) == 64
    assert meta["parity_max_abs_diff"] < 1e-4
    assert not list((run_dir / "export").glob("*.tmp"))


def test_auto_uses_an_up_to_date_export_and_refuses_a_stale_one(tmp_path_factory):
    run_dir = tiny_run(tmp_path_factory, "ppo")
    assert isinstance(load_policy(run_dir), SB3PolicyRunner)  # nothing exported yet
    with pytest.raises(CheckpointError, match="roboreward export"):
        load_policy(run_dir, backend="onnx")
    export_policy(run_dir)
    assert isinstance(load_policy(run_dir), OnnxPolicyRunner)
    assert isinstance(load_policy(run_dir, backend="sb3"), SB3PolicyRunner)
    assert isinstance(load_policy(run_dir / "export"), OnnxPolicyRunner)  # an export folder on its own

    # The model changes after the export (trained further): auto falls back, onnx says to export again.
    runner = SB3PolicyRunner.from_run(run_dir)
    with torch.no_grad():
        for p in runner.model.policy.parameters():
            p.add_(0.1)
    runner.model.save(run_dir / "model.zip")
    assert isinstance(load_policy(run_dir), SB3PolicyRunner)
    with pytest.raises(ValueError, match="export .* again"):
        load_policy(run_dir, backend="onnx")


def test_a_run_scored_on_its_best_policy_exports_and_deploys_that_policy(tmp_path_factory):
    run_dir = tiny_run(tmp_path_factory, "sac", "train.validate_every=64", "train.validate_episodes=1",
                       "eval.policy=best")
    export_policy(run_dir)
    meta = json.loads((run_dir / "export" / "policy.json").read_text())
    assert meta["source_model"] == "best/model.zip"
    assert isinstance(load_policy(run_dir), OnnxPolicyRunner)  # the export is up to date with the best policy
    (run_dir / "best" / "model.zip").write_bytes((run_dir / "model.zip").read_bytes())  # another best since
    with pytest.raises(ValueError, match="export .* again"):
        load_policy(run_dir, backend="onnx")


def test_onnx_runner_checks_its_input_and_files(run_dir, tmp_path):
    export_policy(run_dir)
    runner = OnnxPolicyRunner(run_dir / "export")
    with pytest.raises(ValueError, match="shape"):
        runner(np.zeros(runner.observation_space.shape[0] + 1, dtype=np.float32))
    with pytest.raises(CheckpointError, match="roboreward export"):
        OnnxPolicyRunner(tmp_path)
    (tmp_path / "policy.onnx").write_bytes(b"")
    (tmp_path / "policy.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not a roboreward-policy-v1"):
        OnnxPolicyRunner(tmp_path)


def test_cli_export_writes_files_and_reports_bad_folders(run_dir, tmp_path, capsys):
    out = tmp_path / "exported"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    assert (out / "policy.onnx").is_file() and (out / "policy.json").is_file()
    assert main(["export", str(tmp_path / "missing")]) == 2
    assert "is not a run folder" in capsys.readouterr().err


def test_damaged_exports_and_models_are_named_one_line_errors(run_dir, tmp_path, capsys):
    """A garbled policy.json or policy.onnx, or a cut-off model.zip: one line naming the file, never a traceback."""
    import shutil

    export = tmp_path / "export"
    cases = [
        ("policy.json", b"{not json", "policy.json is not valid JSON"),
        ("policy.json", json.dumps({"format": "roboreward-policy-v1"}).encode(), "observation or action space is missing"),
        ("policy.onnx", b"\x08\x01garbage", "policy.onnx cannot be loaded by onnxruntime"),
    ]
    for name, content, message in cases:
        export_policy(run_dir, out_dir=export)
        (export / name).write_bytes(content)
        assert main(["deploy", str(export), "--robot", "franka", "--duration", "1"]) == 2
        err = capsys.readouterr().err
        assert message in err and str(export) in err and "Traceback" not in err, err

    broken = tmp_path / "broken_run"
    shutil.copytree(run_dir, broken)
    model = broken / "model.zip"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    for command in (["eval", str(broken), "--episodes", "1", "--no-video"], ["export", str(broken)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert f"{model}: model.zip" in err and "Traceback" not in err, err
