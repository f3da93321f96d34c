"""Put a :class:`RewardModel` in place of an env's reward, for one env or a vectorised set.

The env's own reward is never lost: it stays in ``info["true_reward"]`` (and the episode's sum in
``info["true_episode"]``), so every run can be scored against the ground truth it replaces.

The vectorised path has two halves, because SB3's vector envs reset finished envs *inside*
``step``: by the time the vector wrapper sees a step, a finished env already shows its next episode.

1. :class:`RenderInInfo` runs inside each env (and so inside each subprocess) and renders the frame
   of the state just reached into ``info["frame"]`` — before any auto-reset — and, at reset, the
   goal image of a goal-conditioned env into ``info["goal_frame"]``.
2. :class:`VecLearnedReward` gathers those frames from all envs and scores them with **one** batched
   call per step.

Example::

    model = make_reward_model(GoalImageRewardConfig())
    make = lambda: RenderInInfo(gym.make("roboreward/ArmReach-v0", render_mode="rgb_array"))
    venv = VecLearnedReward(DummyVecEnv([make] * 4), model)   # 4 frames scored per call

Both wrappers also apply the reward config's optional smoothing and normalisation
(:mod:`roboreward.rewards.postprocess`) and keep the model's own output in
``info["learned_reward_raw"]``. :class:`VecLearnedReward` over a ``SubprocVecEnv`` or a ``RayVecEnv``
can pipeline: score the frames of the envs that have finished their step while the others still step
and render.
"""

from __future__ import annotations

from multiprocessing.connection import wait as wait_for_connections
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import SubprocVecEnv, VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.subproc_vec_env import _stack_obs

from roboreward.errors import ConfigError
from roboreward.rewards.base import RewardBatch, RewardModel, observation_at, stack_frames, stack_observations
from roboreward.rewards.postprocess import RewardPostprocessor

FRAME_KEY = "frame"
GOAL_FRAME_KEY = "goal_frame"


def _put(info: dict[str, Any], key: str, value: Any) -> None:
    if key in info:
        raise KeyError(f"info already has a {key!r} entry; refusing to overwrite it (wrap the env only once)")
    info[key] = value


def _subproc_arrivals(venv: SubprocVecEnv):
    """A ``SubprocVecEnv``'s step answers in the order its workers send them: ``([env index], [answer])``."""
    pending = {remote: i for i, remote in enumerate(venv.remotes)}
    while pending:
        for remote in wait_for_connections(list(pending)):  # blocks until at least one worker answers
            i = pending.pop(remote)
            yield [i], [remote.recv()]
    venv.waiting = False


class EpisodeFeed:
    """Hands a model that learns from the agent (``refit_every`` in its config, e.g. the progress reward) what it
    scored in each of the agent's episodes, with the episode's success and each scored state's own success flag
    (``info["is_success"]`` of the step that reached it), and tells it to refit every ``refit_every`` env steps.
    Inactive (every method returns at once) for any other model.
    """

    def __init__(self, model: Any, n_envs: int) -> None:
        every = int(getattr(getattr(model, "config", None), "refit_every", 0) or 0)
        self.model = model if every and hasattr(model, "add_episode") else None
        self.every = every
        self.n_envs = n_envs
        self._inputs: list[list[np.ndarray]] = [[] for _ in range(n_envs)]
        self._succeeded: list[list[bool]] = [[] for _ in range(n_envs)]
        self._steps = 0

    def scored(self, envs: Any, batch: RewardBatch, first: int = 0, infos: Any = None) -> None:
        """The model scored ``batch``: its row ``first + k`` is a state of env ``envs[k]``'s current episode, reached
        by the step whose info is ``infos[envs[k]]`` (None: a first state, not a success)."""
        if self.model is None:
            return
        rows = self.model.episode_inputs(batch)
        for k, i in enumerate(envs):
            self._inputs[i].append(rows[first + k])
            self._succeeded[i].append(infos is not None and bool(infos[i].get("is_success", False)))

    def ended(self, i: int, info: dict[str, Any]) -> None:
        """Env ``i``'s episode ended (``info``: its last step's, with ``is_success``)."""
        if self.model is None:
            return
        if self._inputs[i]:
            self.model.add_episode(np.stack(self._inputs[i]), bool(info.get("is_success", False)),
                                   step_success=np.array(self._succeeded[i]))
        self._inputs[i] = []
        self._succeeded[i] = []

    def restarted(self) -> None:
        """Every env was reset: the episodes in flight end unfinished, and are no episodes to learn from."""
        self._inputs = [[] for _ in range(self.n_envs)]
        self._succeeded = [[] for _ in range(self.n_envs)]

    def stepped(self) -> None:
        """One step of every env was taken: refit when ``refit_every`` env steps have passed since the last."""
        if self.model is None:
            return
        self._steps += self.n_envs
        if self._steps >= self.every:
            self._steps -= self.every
            self.model.refit()


class RenderInInfo(gym.Wrapper):
    """Render each reached state into ``info["frame"]`` and, at reset, the goal into ``info["goal_frame"]``.

    The goal is rendered only for envs that define ``render_goal()`` (goal-conditioned envs).
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        if env.render_mode != "rgb_array":
            raise ValueError(f"{env.spec.id if env.spec else env}: make the env with render_mode='rgb_array' to render frames")
        self._has_goal = callable(getattr(env.unwrapped, "render_goal", None))

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        _put(info, FRAME_KEY, self.env.render())
        if self._has_goal:
            _put(info, GOAL_FRAME_KEY, self.env.unwrapped.render_goal())
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        _put(info, FRAME_KEY, self.env.render())
        return obs, reward, terminated, truncated, info


class LearnedReward(gym.Wrapper):
    """Replace one env's reward by a reward model's; keep the env's in ``info["true_reward"]``.

    ``info["learned_reward"]`` is the reward returned, after the config's smoothing and
    normalisation if any; ``info["learned_reward_raw"]`` the model's own output.
    """

    def __init__(self, env: gym.Env, model: RewardModel):
        model.check_ready()
        super().__init__(RenderInInfo(env) if model.requires_frames else env)
        self.model = model
        self.postprocess = RewardPostprocessor.from_config(getattr(model, "config", None), n_envs=1)
        self._goal_frame: np.ndarray | None = None

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._goal_frame = info.get(GOAL_FRAME_KEY)
        if self.postprocess is not None:
            self.postprocess.reset()
        return obs, info

    def step(self, action):
        obs, true_reward, terminated, truncated, info = self.env.step(action)
        frame = info.get(FRAME_KEY)
        batch = RewardBatch(
            frames=None if frame is None else frame[None],
            observations=stack_observations([obs]),
            goal_frames=None if self._goal_frame is None else self._goal_frame[None],
        )
        raw = self.model(batch)
        processed = raw if self.postprocess is None else self.postprocess(raw, np.array([terminated or truncated]))
        reward = float(processed[0])
        _put(info, "true_reward", float(true_reward))
        _put(info, "learned_reward", reward)
        _put(info, "learned_reward_raw", float(raw[0]))
        return obs, reward, terminated, truncated, info


class VecLearnedReward(VecEnvWrapper):
    """Score all envs of a vector env with one reward-model call per step.

    Envs must be wrapped in :class:`RenderInInfo` when the model reads frames. Adds to each info
    ``true_reward`` (the env's reward for this step) and, at an episode's end, ``true_episode``:
    ``{"r": true return, "l": length}``. Frames are removed from the infos once scored, so they are
    not carried into callbacks and buffers.

    With ``model=None`` the env's reward passes through unchanged but the same info keys are added,
    so training on the true reward is logged and evaluated exactly like training on a learned one.
    With a model, ``info["learned_reward_raw"]`` holds its output, and the reward returned is that
    output after the smoothing and normalisation its config asks for (see
    :mod:`roboreward.rewards.postprocess`; this wrapper owns their per-env state).

    **Pipeline** (``pipeline=True``, or ``None`` to take the model config's ``pipeline`` field; needs
    ``venv`` to be a ``SubprocVecEnv`` or a :class:`~roboreward.distributed.vec_env.RayVecEnv`):
    ``step_async`` sends the actions to all workers (processes or Ray actors) as usual, but instead of
    waiting for every worker, the wait takes their answers in the order they come, and as soon as a
    group of at least ``n_envs / pipeline_groups`` frames has arrived it submits them for scoring — one
    batched call for all that have arrived — while the other workers are still stepping and rendering;
    the last group is whatever remains. A model in this process scores a group before the next answers
    are taken; a model in a reward server (``reward.server: ray``) scores it while they are. So the reward model's time
    hides behind the slower workers' rendering, and a step takes about ``max(render, reward)`` rather
    than ``render + reward`` when the two run on separate hardware (a GPU for the model, CPU cores
    for the workers) or there are idle cores. On a CPU that both already fill, there is nothing to
    overlap, and smaller batches cost the model more per frame: measure with
    ``benchmarks/clip_reward.py``. More groups overlap more but batch less (``pipeline_groups =
    n_envs``: score every frame as it arrives). The rewards are the same as without the pipeline (same
    frames, same observations; smoothing and normalisation run on the whole step, in env order) as
    long as the model scores each frame independently of its batch — true of every roboreward model,
    up to float rounding.
    """

    def __init__(
        self, venv: VecEnv, model: RewardModel | None, pipeline: bool | None = None, pipeline_groups: int = 2
    ):
        if model is not None:
            model.check_ready()
        super().__init__(venv)
        self.model = model
        config = getattr(model, "config", None)
        self.postprocess = None if model is None else RewardPostprocessor.from_config(config, self.num_envs)
        if pipeline is None:
            pipeline = bool(getattr(config, "pipeline", False))
        if pipeline and model is not None and not (isinstance(venv, SubprocVecEnv) or hasattr(venv, "answers_as_they_arrive")):
            raise ConfigError(
                f"the reward pipeline overlaps scoring with the envs' steps in worker processes, but the vector env is "
                f"a {type(venv).__name__}; set env.vectorization: subproc or env.backend: ray, or reward.pipeline: false"
            )
        if pipeline_groups < 1:
            raise ValueError(f"pipeline_groups={pipeline_groups} must be >= 1")
        self.pipeline = bool(pipeline) and model is not None
        self.pipeline_groups = pipeline_groups
        self.reward_calls: list[int] = []  # batch size of each model call of the last step (how the pipeline grouped)
        self.feed = EpisodeFeed(model, self.num_envs)  # the agent's episodes, for a model that refits on them
        self._goal_frames: list[np.ndarray | None] = [None] * self.num_envs
        self._true_returns = np.zeros(self.num_envs)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)

    def reset(self):
        obs = self.venv.reset()
        self.feed.restarted()
        for i, info in enumerate(self.venv.reset_infos):
            self._take_reset_info(i, info)
        self._true_returns[:] = 0.0
        self._lengths[:] = 0
        if self.postprocess is not None:
            self.postprocess.reset()
        self.reset_infos = self.venv.reset_infos  # a wrapper above (shaping) reads and annotates these
        return obs

    def step_wait(self):
        self.reward_calls = []
        if self.pipeline:
            obs, true_rewards, dones, infos, raw = self._step_wait_pipelined()
        else:
            obs, true_rewards, dones, infos = self.venv.step_wait()
            frames = [info.pop(FRAME_KEY, None) for info in infos]
            raw = None if self.model is None else self._score(range(self.num_envs), obs, frames, dones, infos)
        if raw is None:
            rewards = true_rewards
        else:
            rewards = raw if self.postprocess is None else self.postprocess(raw, dones)
            for i, info in enumerate(infos):
                _put(info, "learned_reward_raw", float(raw[i]))

        self._true_returns += true_rewards
        self._lengths += 1
        for i, (info, done) in enumerate(zip(infos, dones)):
            _put(info, "true_reward", float(true_rewards[i]))
            if done:
                _put(info, "true_episode", {"r": float(self._true_returns[i]), "l": int(self._lengths[i])})
                self._true_returns[i] = 0.0
                self._lengths[i] = 0
                self._take_reset_info(i, self.venv.reset_infos[i])
                self.feed.ended(i, info)
        self.feed.stepped()
        self.reset_infos = self.venv.reset_infos
        return obs, rewards, dones, infos

    def _score(self, envs, obs, frames: list, dones, infos) -> np.ndarray:
        """Raw model rewards of ``envs`` (indices); ``obs``, ``frames``, ``dones``, ``infos`` are indexed by env."""
        assert self.model is not None
        return self.model(self._batch(envs, obs, frames, dones, infos))

    def _batch(self, envs, obs, frames: list, dones, infos) -> RewardBatch:
        """What the model scores for ``envs`` (see :meth:`_score`)."""
        assert self.model is not None
        envs = list(envs)
        # A finished env's obs is already its next episode's first; score the state it ended in.
        observations = stack_observations(
            [infos[i]["terminal_observation"] if dones[i] else observation_at(obs, i) for i in envs])
        if self.model.requires_frames and any(frames[i] is None for i in envs):
            raise RuntimeError("the reward model reads frames but the envs render none: wrap each env in RenderInInfo")
        goals = [self._goal_frames[i] for i in envs]
        self.reward_calls.append(len(envs))
        batch = RewardBatch(
            frames=stack_frames([frames[i] for i in envs]) if self.model.requires_frames else None,
            observations=observations,
            goal_frames=stack_frames(goals) if all(g is not None for g in goals) else None,  # type: ignore[arg-type]
        )
        self.feed.scored(envs, batch, infos=infos)
        return batch

    def _step_wait_pipelined(self):
        """``step_wait``, scoring each group of envs' frames as soon as they have arrived.

        A group's score is submitted (:meth:`RewardModel.submit`) and the next answers are taken while it is
        computed — at once for a model in this process, in parallel for one in a reward server.
        """
        venv = self.venv
        n = self.num_envs
        results: list[Any] = [None] * n
        frames: list[np.ndarray | None] = [None] * n
        min_group = -(-n // self.pipeline_groups)
        group: list[int] = []
        scoring: list[tuple[list[int], Any]] = []
        arrived = 0
        arrivals = venv.answers_as_they_arrive() if hasattr(venv, "answers_as_they_arrive") else _subproc_arrivals(venv)
        for envs, answers in arrivals:
            for i, result in zip(envs, answers):  # (obs, reward, done, info, reset_info), as SubprocVecEnv's worker sends
                results[i] = result
                frames[i] = result[3].pop(FRAME_KEY, None)
            group.extend(envs)
            arrived += len(envs)
            if len(group) >= min_group or arrived == n:
                group.sort()
                obs = [None if r is None else r[0] for r in results]  # by env index, like a VecEnv's batch
                dones = {i: results[i][2] for i in group}
                infos = {i: results[i][3] for i in group}
                scoring.append((group, self.model.submit(self._batch(group, obs, frames, dones, infos))))
                group = []
        raw = np.zeros(n, dtype=np.float32)
        for envs, rewards in scoring:
            raw[envs] = rewards()
        obs, true_rewards, dones, infos, reset_infos = zip(*results, strict=True)
        if isinstance(venv, SubprocVecEnv):
            venv.reset_infos = list(reset_infos)
        return _stack_obs(obs, venv.observation_space), np.stack(true_rewards), np.stack(dones), infos, raw

    def _take_reset_info(self, i: int, info: dict[str, Any]) -> None:
        info.pop(FRAME_KEY, None)
        self._goal_frames[i] = info.pop(GOAL_FRAME_KEY, None)
