"""Export a run's deterministic policy to ONNX, and run either form behind one small interface.

Deploying on a robot wants a policy that is small, fast and free of the training stack: ``roboreward
export RUN_DIR`` writes

- ``RUN_DIR/export/policy.onnx``: observation ``float32 [B, n]`` -> action ``float32 [B, m]``, the whole of
  ``model.predict(obs, deterministic=True)``: SB3's observation preprocessing, the actor network, and
  the last step of ``predict`` (SAC's tanh squashing and rescaling to the action bounds, PPO's clipping
  to them). roboreward trains without observation normalisation (no ``VecNormalize``), so there is
  none to fold in.
- ``RUN_DIR/export/policy.json``: the observation and action spaces, the robot and its joint order
  (from ``env.kwargs.robot``, when the run trained on a robot), the SHA-256 of the model it came from,
  and the largest difference to SB3 measured at export (it must be below ``PARITY_TOL``).

Both files are written to ``*.tmp`` and renamed, JSON last: a kill never leaves a half-written pair.

A :class:`PolicyRunner` maps one observation to one action; :class:`SB3PolicyRunner` (loads the run
without unpickling, as evaluation does) and :class:`OnnxPolicyRunner` (onnxruntime, one thread, its
input buffer preallocated: tens of microseconds for an MLP) implement it::

    runner = load_policy("runs/franka_reach-20261201-101500", backend="onnx")
    action = runner(observation)            # float32 [m]
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import yaml
from gymnasium import spaces

from roboreward.errors import CheckpointError, ConfigError, RoborewardError
from roboreward.io import atomic_write, sha256_file
from roboreward.policies.acting import Actor

EXPORT_DIR = "export"
ONNX_FILE = "policy.onnx"
META_FILE = "policy.json"
FORMAT = "roboreward-policy-v1"
INPUT_NAME = "observation"
OUTPUT_NAME = "action"
OPSET = 17
PARITY_TOL = 1e-4  # largest |onnx - sb3| allowed at export (float32 arithmetic in a different order)
PARITY_SAMPLES = 256

Backend = Literal["auto", "onnx", "sb3"]


@runtime_checkable
class PolicyRunner(Protocol):
    """One observation in, one action out, deterministic; spaces and joint order say what it fits."""

    observation_space: spaces.Box
    action_space: spaces.Box
    joint_names: list[str] | None  # the robot joint order the policy was trained with, if known
    robot: str | None

    def __call__(self, observation: np.ndarray) -> np.ndarray: ...


# --------------------------------------------------------------------------------------------
# Loading the SB3 policy of a run


def load_run_model(run_dir: Path, checkpoint: str | None = None, flat: bool = True):
    """``(config, model, model_path)`` of a run: the model rebuilt from config.yaml, its weights read without pickle.

    ``flat`` refuses policies whose observation is not one vector (what export and a robot file's mapping take);
    the crowd controller (:mod:`roboreward.hardware.crowd`) builds its Dict observations itself.
    """
    from roboreward.policies.checkpoints import load_weights
    from roboreward.policies.evaluate import find_model
    from roboreward.policies.train import build_algorithm, load_run_config

    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    model_path = find_model(run_dir, checkpoint, config.eval.policy)
    model = build_algorithm(config)
    load_weights(model, model_path)
    model.policy.set_training_mode(False)
    if flat:
        _check_spaces(model.observation_space, model.action_space, run_dir)
    return config, model, model_path


def _check_spaces(obs_space: Any, action_space: Any, where: Any) -> None:
    if not isinstance(obs_space, spaces.Box) or len(obs_space.shape) != 1:
        raise ConfigError(
            f"{where}: the policy's observation space is {obs_space}; export and deploy support flat Box "
            "observations (a robot's joint state vector) only"
        )
    if not isinstance(action_space, spaces.Box) or len(action_space.shape) != 1:
        raise ConfigError(f"{where}: the policy's action space is {action_space}; export and deploy need a flat Box")


def _robot_joint_names(config: Any) -> tuple[str | None, list[str] | None]:
    """The robot a run trained on (``env.kwargs.robot``) and its joint order, or (None, None)."""
    robot = config.env.kwargs.get("robot")
    if robot is None:
        return None, None
    from roboreward.hardware.robot import load_robot_config

    return str(robot), list(load_robot_config(robot).joint_names)


def _current_model(run_dir: Path) -> Path | None:
    """The model ``find_model`` would pick (the best on validation under ``eval.policy: best``, else the final one,
    else the newest complete checkpoint), without importing SB3: deploying an export should not pay for loading the
    training stack."""
    if _eval_policy(run_dir) == "best":
        best = run_dir / "best" / "model.zip"
        return best if best.is_file() else None
    final = run_dir / "model.zip"
    if final.is_file():
        return final
    done = [
        p for p in (run_dir / "checkpoints").glob("step_*")
        if not p.name.endswith(".tmp") and (p / "state.json").is_file()
    ]
    return max(done, key=lambda p: int(p.name.split("_")[1])) / "model.zip" if done else None


def _eval_policy(run_dir: Path) -> str:
    """The run's ``eval.policy`` (``final`` or ``best``), read from its config.yaml without building the config."""
    path = run_dir / "config.yaml"
    config = yaml.safe_load(path.read_text()) if path.is_file() else None
    policy = (config.get("eval") or {}).get("policy") if isinstance(config, dict) else None
    return policy or "final"


class SB3PolicyRunner:
    """A run's SB3 policy: ``model.predict(obs, deterministic=True)`` for one observation."""

    def __init__(self, model: Any, *, robot: str | None = None, joint_names: list[str] | None = None,
                 source: Path | None = None) -> None:
        self.model = model
        self.observation_space = model.observation_space
        self.action_space = model.action_space
        self.robot = robot
        self.joint_names = joint_names
        self.source = source
        self._actor = Actor(model, deterministic=True)

    @classmethod
    def from_run(cls, run_dir: str | Path, checkpoint: str | None = None) -> SB3PolicyRunner:
        config, model, model_path = load_run_model(Path(run_dir), checkpoint)
        robot, joints = _robot_joint_names(config)
        return cls(model, robot=robot, joint_names=joints, source=model_path)

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        return np.asarray(self._actor(observation), dtype=np.float32)

    def reset(self) -> None:
        """A new episode starts (a recurrent policy forgets the last one)."""
        self._actor.reset()


# --------------------------------------------------------------------------------------------
# ONNX


def _deterministic_module(policy: Any):
    """A torch module computing ``policy.predict(obs, deterministic=True)`` from a float32 batch, traceable."""
    import torch

    class DeterministicPolicy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.policy = policy
            space = policy.action_space
            self.register_buffer("low", torch.as_tensor(space.low, dtype=torch.float32))
            self.register_buffer("high", torch.as_tensor(space.high, dtype=torch.float32))
            self.squash = bool(policy.squash_output)

        def forward(self, observation: torch.Tensor) -> torch.Tensor:
            # _predict includes preprocess_obs (the features extractor applies it) and the actor.
            actions = self.policy._predict(observation, deterministic=True).reshape(observation.shape[0], -1)
            if self.squash:  # BasePolicy.unscale_action: [-1, 1] -> [low, high]
                return self.low + 0.5 * (actions + 1.0) * (self.high - self.low)
            return torch.maximum(torch.minimum(actions, self.high), self.low)  # predict's np.clip

    return DeterministicPolicy().eval()


def _space_to_json(space: spaces.Box) -> dict[str, Any]:
    def bounds(values: np.ndarray) -> list[float | None]:
        return [float(v) if np.isfinite(v) else None for v in values.astype(np.float64)]  # JSON has no inf

    return {"shape": list(space.shape), "dtype": str(space.dtype), "low": bounds(space.low), "high": bounds(space.high)}


def _space_from_json(data: dict[str, Any]) -> spaces.Box:
    low = np.array([-np.inf if v is None else v for v in data["low"]], dtype=np.float64)
    high = np.array([np.inf if v is None else v for v in data["high"]], dtype=np.float64)
    return spaces.Box(low=low.astype(data["dtype"]), high=high.astype(data["dtype"]), dtype=data["dtype"])


def _sample_observations(space: spaces.Box, n: int, seed: int = 0) -> np.ndarray:
    """Observations spread over the space: uniform where bounded, wide normal where not."""
    rng = np.random.default_rng(seed)
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    bounded_ = np.isfinite(low) & np.isfinite(high)
    out = rng.normal(0.0, 3.0, size=(n, *space.shape))
    uniform = rng.uniform(np.where(bounded_, low, 0.0), np.where(bounded_, high, 1.0), size=(n, *space.shape))
    out = np.where(bounded_, uniform, out)
    out = np.clip(out, low, high)
    return out.astype(np.float32)


def export_policy(run_dir: str | Path, checkpoint: str | None = None, out_dir: str | Path | None = None) -> Path:
    """Write ``policy.onnx`` and ``policy.json`` for a run (into ``RUN_DIR/export`` by default); returns the ONNX path.

    The export is checked against SB3 on ``PARITY_SAMPLES`` observations before anything is written.
    """
    import io

    import torch

    run_dir = Path(run_dir)
    config, model, model_path = load_run_model(run_dir, checkpoint)
    robot, joints = _robot_joint_names(config)
    module = _deterministic_module(model.policy)
    example = torch.zeros((1, *model.observation_space.shape), dtype=torch.float32)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript-based exporter: the torch.export one needs onnxscript, which is not pinned.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (example,), buffer, dynamo=False, opset_version=OPSET, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME], dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    onnx_bytes = buffer.getvalue()

    observations = _sample_observations(model.observation_space, PARITY_SAMPLES)
    expected, _ = model.predict(observations, deterministic=True)
    session = onnx_session(onnx_bytes)
    got = session.run([OUTPUT_NAME], {INPUT_NAME: observations})[0]
    diff = float(np.max(np.abs(got - expected)))
    if not diff <= PARITY_TOL:
        raise RoborewardError(
            f"the ONNX export differs from SB3's predict by {diff:.3g} (> {PARITY_TOL}); the policy has a part the "
            "exporter does not reproduce. Deploy with --policy sb3 instead, and report the run's algo and policy."
        )

    meta = {
        "format": FORMAT,
        "onnx": ONNX_FILE,
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "opset": OPSET,
        "algo": config.algo.name,
        "env_id": config.env.id,
        "robot": robot,
        "joint_names": joints,
        "observation_space": _space_to_json(model.observation_space),
        "action_space": _space_to_json(model.action_space),
        "source_model": str(model_path.relative_to(run_dir) if model_path.is_relative_to(run_dir) else model_path),
        "source_sha256": sha256_file(model_path),
        "parity_max_abs_diff": diff,
        "parity_samples": PARITY_SAMPLES,
    }
    out = Path(out_dir) if out_dir is not None else run_dir / EXPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / ONNX_FILE, onnx_bytes)
    atomic_write(out / META_FILE, (json.dumps(meta, indent=2) + "\n").encode())
    return out / ONNX_FILE


def onnx_session(model: bytes | str | Path, fix: str = "is it an ONNX file?"):
    """An onnxruntime session for a small policy network (an exported policy, a locomotion policy).

    One thread, run in the caller's thread: for a small MLP, thread hand-offs cost more than the maths.
    A file onnxruntime cannot load is a :class:`CheckpointError` that names it and ends with ``fix``.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: its warnings are about graph optimisations
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's error types (InvalidProtobuf, Fail, ...) share no useful base
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        name = "the exported graph" if isinstance(model, bytes) else str(model)
        raise CheckpointError(f"{name} cannot be loaded by onnxruntime ({first}); {fix}") from None


class OnnxPolicyRunner:
    """An exported policy run with onnxruntime; reads ``policy.json`` beside the ``.onnx`` file."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        onnx_path = path / ONNX_FILE if path.is_dir() else path
        meta_path = onnx_path.with_name(META_FILE)
        if not onnx_path.is_file() or not meta_path.is_file():
            raise CheckpointError(
                f"no exported policy at {onnx_path} (with {META_FILE} beside it); run `roboreward export RUN_DIR` first"
            )
        again = "export the run again (`roboreward export RUN_DIR`)"
        try:
            meta = json.loads(meta_path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{meta_path} is not valid JSON ({e}); {again}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise CheckpointError(f"{meta_path} is not a {FORMAT} file (format {found!r}); {again}")
        try:
            self.observation_space = _space_from_json(meta["observation_space"])
            self.action_space = _space_from_json(meta["action_space"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{meta_path}: its observation or action space is missing or damaged ({e!r}); {again}") from None
        self.meta = meta
        self.path = onnx_path
        self.robot = meta.get("robot")
        self.joint_names = meta.get("joint_names")
        self._session = onnx_session(onnx_path, again)
        self._input_name = meta.get("input", INPUT_NAME)
        self._output_names = [meta.get("output", OUTPUT_NAME)]
        self._input = np.zeros((1, *self.observation_space.shape), dtype=np.float32)

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        obs = np.asarray(observation)
        if obs.shape != self.observation_space.shape:
            raise ValueError(f"observation has shape {obs.shape}; this policy takes {self.observation_space.shape}")
        self._input[0] = obs
        return self._session.run(self._output_names, {self._input_name: self._input})[0][0]


def load_policy(run_dir: str | Path, backend: Backend = "auto", checkpoint: str | None = None) -> PolicyRunner:
    """The policy of a run: ``onnx`` (its export), ``sb3`` (its model.zip), or ``auto`` (the export when it is
    up to date with the model, else SB3).

    A run folder's export must match its model (SHA-256): a policy trained further after the export
    is not silently deployed in its old form.
    """
    run_dir = Path(run_dir)
    if backend not in ("auto", "onnx", "sb3"):
        raise ConfigError(f"policy backend {backend!r} is unknown; choose auto, onnx or sb3")
    onnx_path = run_dir / EXPORT_DIR / ONNX_FILE
    if run_dir.suffix == ".onnx" or (run_dir / ONNX_FILE).is_file():
        if backend == "sb3":
            raise ValueError(f"{run_dir} is an exported policy, not a run folder; use --policy onnx or auto")
        return OnnxPolicyRunner(run_dir)
    if backend == "sb3":
        return SB3PolicyRunner.from_run(run_dir, checkpoint)
    if backend == "auto" and (checkpoint is not None or not onnx_path.is_file()):
        return SB3PolicyRunner.from_run(run_dir, checkpoint)
    runner = OnnxPolicyRunner(onnx_path)
    model_path = _current_model(run_dir) if checkpoint is None else None
    if model_path is None:
        from roboreward.policies.evaluate import find_model

        model_path = find_model(run_dir, checkpoint, _eval_policy(run_dir))
    if runner.meta.get("source_sha256") != sha256_file(model_path):
        if backend == "onnx":
            raise ValueError(
                f"{onnx_path} was exported from another model than {model_path} (it changed since); "
                f"run `roboreward export {run_dir}` again"
            )
        return SB3PolicyRunner.from_run(run_dir, checkpoint)
    return runner


__all__ = [
    "OnnxPolicyRunner",
    "PolicyRunner",
    "SB3PolicyRunner",
    "export_policy",
    "load_policy",
    "load_run_model",
]
