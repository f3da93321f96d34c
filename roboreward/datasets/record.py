"""Record a scripted expert into a LeRobot v3.0 dataset, one episode per rollout.

Reward models learned from demonstrations need demonstrations; Meta-World ships a hand-written
expert for every task (:meth:`roboreward.envs.metaworld.MetaWorldEnv.scripted_action`), and the crowd
env's expert is ORCA as the robot (:meth:`roboreward.envs.crowd.env.CrowdNavEnv.scripted_action`), so
recording needs no person and no trained policy. Each step stores the observation (the state vector —
Meta-World's 39 values, the crowd env's flattened observation — and one frame per camera, rendered
*before* acting), the expert's action, and what the step returned (``next.reward``, ``next.success``,
``next.done``). An env with an expert defines ``scripted_action``, ``cameras`` and ``render_cameras``;
one whose observation is not already a state vector also ``demo_layout()`` and ``demo_state(obs)``.

The env the demos were recorded in — its id and the keyword arguments it was made with — is kept in
``meta/recorded_env.json``: ``next.reward`` is that env's reward, so a training run that replays the demos
with its env's own reward checks that it is the same env (:func:`recorded_env`), and appending episodes
recorded in another env to a dataset is refused.

Episodes are seeded by their index in the dataset (episode ``i`` resets with ``seed + i``), so
re-running into the same folder resumes the sequence instead of repeating rollouts, and a kill
mid-recording loses at most the episode in progress (see :mod:`roboreward.datasets.lerobot_v3`).

Example::

    roboreward demos record reach --episodes 20 --cameras corner3 topview --out demos/reach
    roboreward demos record crowd --env scenario.name=room --episodes 50 --out demos/crowd-room
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym

import roboreward.envs  # noqa: F401  (registers the ids)
from roboreward.datasets.lerobot_v3 import DatasetError, DatasetWriter
from roboreward.envs import METAWORLD_ENV_IDS

ROBOT_TYPE = "sawyer"

# What each task asks for, in words a language-conditioned reward model (or a person) can read.
TASK_TEXT: dict[str, str] = {
    "reach-v3": "reach the red goal with the gripper",
    "push-v3": "push the puck to the goal",
    "door-open-v3": "pull the door open",
    "drawer-open-v3": "pull the drawer open",
    "button-press-v3": "press the button",
    "pick-place-v3": "pick up the puck and place it at the goal",
}

# Meta-World's 39-d observation (see roboreward.envs.metaworld): hand, gripper, two objects, the same
# 18 values one step earlier, and the goal.
_CURRENT = ["hand_x", "hand_y", "hand_z", "gripper_open"] + [
    f"obj{i}_{c}" for i in (1, 2) for c in ("x", "y", "z", "qw", "qx", "qy", "qz")
]
STATE_NAMES: list[str] = _CURRENT + [f"prev_{name}" for name in _CURRENT] + ["goal_x", "goal_y", "goal_z"]
ACTION_NAMES: list[str] = ["dx", "dy", "dz", "gripper"]


def metaworld_tasks() -> dict[str, str]:
    """Short task name (``reach``, ``door-open``, ...) -> registered env id, for the CLI and errors."""
    return {gym.spec(env_id).kwargs["task"].removesuffix("-v3"): env_id for env_id in METAWORLD_ENV_IDS}


CROWD_ENV_ID = "roboreward/CrowdNav-v0"


def resolve_env_id(task: str) -> str:
    """``reach`` or ``reach-v3`` or ``roboreward/MetaWorld-Reach-v3`` -> the registered env id; ``crowd`` -> the
    crowd-navigation env."""
    tasks = metaworld_tasks()
    if task in METAWORLD_ENV_IDS:
        return task
    if task in ("crowd", CROWD_ENV_ID):
        return CROWD_ENV_ID
    name = task.removesuffix("-v3")
    if name in tasks:
        return tasks[name]
    raise DatasetError(
        f"{task!r} is not a task with a scripted expert; choose one of {sorted(tasks)} or crowd "
        f"(or an env id: {[*METAWORLD_ENV_IDS, CROWD_ENV_ID]})"
    )


RECORDED_ENV_PATH = "meta/recorded_env.json"


def recorded_env(root: str | Path) -> dict[str, Any] | None:
    """``{"env_id": ..., "kwargs": {...}}`` of the env a dataset's demos were recorded in; None when the
    dataset does not say (recorded by teleoperation, or by another tool)."""
    path = Path(root) / RECORDED_ENV_PATH
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path} is not readable JSON ({e}); delete it if the demos' env is unknown") from e
    if not isinstance(record, dict) or not isinstance(record.get("env_id"), str) or not isinstance(
            record.get("kwargs"), dict):
        raise DatasetError(f"{path} must hold {{\"env_id\": str, \"kwargs\": {{...}}}}; it holds {record!r}")
    return record


def env_record(env_id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """An env as :func:`recorded_env` gives it (kwargs as JSON reads them back: tuples become lists), so that
    two records compare equal exactly when the envs are made alike."""
    return {"env_id": env_id, "kwargs": json.loads(json.dumps(kwargs))}


def _note_recorded_env(root: Path, env_id: str, kwargs: dict[str, Any]) -> None:
    """Write the env into a new dataset, or check that an existing dataset was recorded in the same one."""
    record = env_record(env_id, kwargs)
    before = recorded_env(root)
    if before is not None:
        if before != record:
            raise DatasetError(
                f"{root} holds demos recorded in {before['env_id']} with {before['kwargs']}; these would be "
                f"recorded in {env_id} with {record['kwargs']}, whose rewards and states differ. Record into a "
                "new folder (--out), or with the same --env settings"
            )
        return
    path = root / RECORDED_ENV_PATH
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)  # whole or absent, whatever kills the recording


@dataclass(frozen=True)
class RecordSummary:
    """What one :func:`record_scripted_demos` call added."""

    out_dir: Path
    env_id: str
    task: str
    episodes: list[int]  # indices in the dataset of the episodes recorded now
    successes: int
    frames: int
    total_episodes: int  # in the dataset afterwards, earlier recordings included

    @property
    def success_rate(self) -> float:
        return self.successes / len(self.episodes) if self.episodes else 0.0


def record_scripted_demos(
    env_id: str,
    out_dir: str | Path,
    episodes: int,
    cameras: Sequence[str] | None = None,
    width: int = 96,
    height: int = 96,
    seed: int = 0,
    *,
    max_steps: int | None = None,
    task: str | None = None,
    env_kwargs: dict | None = None,
    progress: bool = True,
) -> RecordSummary:
    """Roll out the scripted expert ``episodes`` times and append each rollout as an episode.

    :param env_id: a Meta-World env id or short name (``reach``, ``push``, ``door-open``, ...), or ``crowd``.
    :param out_dir: the dataset folder; created if new, appended to if it holds a dataset recorded
        with the same cameras and frame size.
    :param episodes: rollouts to record now.
    :param cameras: cameras to render every step (Meta-World: ``corner3``, ``topview``, ...; crowd:
        ``topdown``); default: the env's first.
    :param env_kwargs: the env's configuration (the crowd env's scenario, robot, people, ...).
    :param width: frame width in pixels (even: H.264 needs it).
    :param height: frame height in pixels (even).
    :param seed: episode ``i`` of the dataset resets with ``seed + i``.
    :param max_steps: cut episodes after this many steps (default: the env's limit, 200); the last
        recorded step then has ``next.done`` set.
    :param task: the episode's task text (default: :data:`TASK_TEXT` for the task).
    :param progress: show a tqdm bar over episodes.
    :returns: what was recorded; ``success`` of an episode is Meta-World's success at any step.
    """
    from tqdm.auto import tqdm

    env_id = resolve_env_id(env_id)
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise DatasetError(f"episodes={episodes!r} must be a positive integer")
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
        raise DatasetError(f"max_steps={max_steps!r} must be a positive integer (or None for the env's limit)")
    env = gym.make(env_id, width=width, height=height, **(env_kwargs or {}))
    try:
        mw = env.unwrapped
        cameras = list(cameras) if cameras is not None else [list(mw.cameras)[0]]
        unknown = [c for c in cameras if c not in mw.cameras]
        if unknown:
            raise DatasetError(f"camera {unknown[0]!r} is not one of {env_id}'s cameras; choose from {list(mw.cameras)}")
        layout = mw.demo_layout() if hasattr(mw, "demo_layout") else {
            "state_names": STATE_NAMES, "action_names": ACTION_NAMES, "robot_type": ROBOT_TYPE,
            "task_text": TASK_TEXT.get(mw.task, mw.task.removesuffix("-v3").replace("-", " "))}
        state_of = mw.demo_state if hasattr(mw, "demo_state") else (lambda obs: obs)
        task_text = task if task is not None else layout["task_text"]
        limit = (env.spec.max_episode_steps if env.spec is not None else None) or getattr(mw, "max_steps", None)
        steps = min(n for n in (max_steps, limit) if n is not None)  # every expert env has a limit
        writer = DatasetWriter.open_or_create(
            out_dir,
            fps=int(env.metadata["render_fps"]),
            cameras=cameras,
            image_size=(height, width),
            state_names=layout["state_names"],
            action_names=layout["action_names"],
            robot_type=layout["robot_type"],
        )
        try:
            _note_recorded_env(Path(out_dir), env_id, env_kwargs or {})
        except BaseException:
            writer.finalize()
            raise
        recorded: list[int] = []
        successes = frames = 0
        name = getattr(mw, "task", env_id)
        bar = tqdm(total=episodes, desc=f"record {name}", unit="episode", dynamic_ncols=True, disable=not progress)
        with writer, bar:
            for _ in range(episodes):
                obs, _ = env.reset(seed=seed + writer.num_episodes)
                success = False  # Meta-World's measure: success at any step (it can be lost again)
                for t in range(steps):
                    images = mw.render_cameras(cameras)
                    action = mw.scripted_action(obs)
                    next_obs, reward, terminated, truncated, info = env.step(action)
                    done = bool(terminated or truncated or t == steps - 1)
                    writer.add_frame(
                        state=state_of(obs), action=action, images=images, reward=reward, success=info["is_success"],
                        done=done,
                    )
                    obs = next_obs
                    success |= bool(info["is_success"])
                    if done:
                        break
                length = writer.frames_in_episode
                recorded.append(writer.save_episode(task=task_text, success=success))
                successes += int(success)
                frames += length
                bar.update(1)
                bar.set_postfix(success=f"{successes}/{len(recorded)}", episodes=writer.num_episodes)
            total = writer.num_episodes
    finally:
        env.close()
    return RecordSummary(
        out_dir=Path(out_dir), env_id=env_id, task=task_text, episodes=recorded, successes=successes,
        frames=frames, total_episodes=total,
    )
