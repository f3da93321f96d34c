"""A stable-baselines3 ``VecEnv`` whose envs live in Ray actors (``env.backend: ray``).

Each rollout actor builds ``envs_per_actor`` envs from their factories and steps (and renders) them one
after another; the actors run in parallel wherever Ray places them. The learner sees the same vector env
as ``SubprocVecEnv``: a finished env is reset inside ``step`` with its last observation in
``info["terminal_observation"]``, ``info["TimeLimit.truncated"]`` says whether it was cut off by a time
limit, ``reset_infos`` hold each env's newest reset info, and ``seed(s)`` resets env ``i`` with
``s + i`` — so a seeded rollout gives the same observations, rewards and dones through either.

**Frames apart** (``frame_keys`` given, as with ``reward.server: ray``): the actor moves the frames
(``info["frame"]``, the goal image) out of the infos into a second return value, which stays in Ray's
object store on the actor's node; the infos hold :class:`FrameRef` s in their place, and the reward
server fetches the frames straight from the actor's node. The learner never receives a pixel.

**An actor that dies** (its machine lost, the process killed) is restarted by Ray, up to
``max_restarts`` times; its envs are built again and reset (with fresh seeds derived from the vector's
seed), and the episodes they were running end at that step as truncated: ``done`` with
``info["TimeLimit.truncated"] = True``, the env's reward 0, the last observation received as the terminal
one (and its frame, so a learned reward scores that state again), ``info["env_lost"] = True``. :attr:`RayVecEnv.lost_episodes` counts them and
:attr:`RayVecEnv.actor_restarts` the restarts; training goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import ray
from ray.exceptions import ActorUnavailableError, RayActorError
from stable_baselines3.common.env_util import is_wrapped
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn
from stable_baselines3.common.vec_env.subproc_vec_env import _stack_obs

ENV_LOST_KEY = "env_lost"
# Seeds of the envs of a restarted actor: base seed + env index + this stride x the actor's restarts, so a
# restarted env does not replay the episode it lost.
RESTART_SEED_STRIDE = 7_919
# How long a restarting actor is waited for (Ray restarts it on another node when its own is gone).
RESTART_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class FrameRef:
    """A frame left in the object store: item ``slot`` of the frames an actor returned for one call."""

    ref: ray.ObjectRef
    slot: int


@dataclass(frozen=True)
class _Slot:
    """What an actor puts in an info in place of a frame moved out: its index in the call's frames."""

    slot: int


def _infos(results: list[tuple]) -> list[dict]:
    """The info dicts of an actor's answer: ``(obs, info)`` per env for a reset, ``(obs, reward, done, info,
    reset_info)`` for a step (reset_info None when the env did not reset)."""
    infos = []
    for result in results:
        infos.extend(x for x in (result[1:] if len(result) == 2 else result[3:]) if x is not None)
    return infos


class EnvGroup:
    """The envs of one rollout actor (the class Ray runs as the actor)."""

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], frame_keys: Sequence[str] | None):
        self.envs = [fn() for fn in env_fns]
        self.frame_keys = tuple(frame_keys) if frame_keys is not None else None
        # False in an actor Ray has just restarted: a step call that reaches it before a reset has no episode
        # to continue, and answers None so the learner treats the old episodes as lost.
        self.has_episodes = False

    def spaces(self) -> tuple[gym.Space, gym.Space]:
        return self.envs[0].observation_space, self.envs[0].action_space

    def reset(self, seeds: Sequence[int | None], options: Sequence[dict]) -> list[tuple[Any, dict]]:
        self.has_episodes = True
        return [env.reset(seed=seed, **({"options": opts} if opts else {})) for env, seed, opts in zip(self.envs, seeds, options)]

    @ray.method(num_returns=2)
    def reset_frames_apart(self, seeds: Sequence[int | None], options: Sequence[dict]) -> tuple[list, list[np.ndarray]]:
        return self._frames_apart(self.reset(seeds, options))

    def step(self, actions: np.ndarray) -> list[tuple[Any, float, bool, dict, dict | None]] | None:
        """Step each env; a finished one is reset, as SubprocVecEnv's worker does. The reset info is sent only
        when there is a new one (None otherwise: the learner keeps the last). None: restarted, nothing to step."""
        if not self.has_episodes:
            return None
        results = []
        for env, action in zip(self.envs, actions):
            obs, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            info["TimeLimit.truncated"] = truncated and not terminated
            reset_info = None
            if done:
                info["terminal_observation"] = obs
                obs, reset_info = env.reset()
            results.append((obs, reward, done, info, reset_info))
        return results

    @ray.method(num_returns=2)
    def step_frames_apart(self, actions: np.ndarray) -> tuple[list | None, list[np.ndarray]]:
        results = self.step(actions)
        return (None, []) if results is None else self._frames_apart(results)

    def _frames_apart(self, results: list[tuple]) -> tuple[list, list[np.ndarray]]:
        """Move every frame out of the results' info dicts into one list (a frame that two keys share, once)."""
        assert self.frame_keys is not None
        frames: list[np.ndarray] = []
        slots: dict[int, int] = {}
        for info in _infos(results):
            for key in self.frame_keys:
                if isinstance(info.get(key), np.ndarray):
                    frame = info[key]
                    if id(frame) not in slots:
                        slots[id(frame)] = len(frames)
                        frames.append(frame)
                    info[key] = _Slot(slots[id(frame)])
        return results, frames

    def render(self) -> list[np.ndarray | None]:
        return [env.render() for env in self.envs]

    def env_method(self, local: Sequence[int], name: str, args: tuple, kwargs: dict) -> list[Any]:
        return [self.envs[j].get_wrapper_attr(name)(*args, **kwargs) for j in local]

    def get_attr(self, local: Sequence[int], name: str) -> list[Any]:
        return [self.envs[j].get_wrapper_attr(name) for j in local]

    def has_attr(self, name: str) -> bool:
        try:
            for env in self.envs:
                env.get_wrapper_attr(name)
        except AttributeError:
            return False
        return True

    def set_attr(self, local: Sequence[int], name: str, value: Any) -> list[None]:
        return [setattr(self.envs[j], name, value) for j in local]

    def is_wrapped(self, local: Sequence[int], wrapper_class: type[gym.Wrapper]) -> list[bool]:
        return [is_wrapped(self.envs[j], wrapper_class) for j in local]

    def close(self) -> None:
        for env in self.envs:
            env.close()


class RayVecEnv(VecEnv):
    """``n`` envs in ``ceil(n / envs_per_actor)`` Ray actors; see the module docstring.

    :param env_fns: one factory per env (as for ``SubprocVecEnv``); each is pickled to its actor.
    :param envs_per_actor: envs stepped one after another by each actor.
    :param cpus_per_actor: logical CPUs Ray reserves per actor (fractions share a core).
    :param max_restarts: restarts of each actor before a death stops training.
    :param frame_keys: info keys whose frames stay in the object store (:class:`FrameRef` s in the infos);
        None keeps frames in the infos.
    :param state_frame_keys: of ``frame_keys``, those holding the frame of the state reached (not a goal
        image): a lost step's info repeats the env's last ones, so a reward can still score it.
    """

    def __init__(
        self,
        env_fns: Sequence[Callable[[], gym.Env]],
        *,
        envs_per_actor: int = 1,
        cpus_per_actor: float = 1.0,
        max_restarts: int = 3,
        frame_keys: Sequence[str] | None = None,
        state_frame_keys: Sequence[str] = (),
    ):
        if envs_per_actor < 1:
            raise ValueError(f"envs_per_actor={envs_per_actor} must be >= 1")
        n = len(env_fns)
        self.groups = [list(range(start, min(start + envs_per_actor, n))) for start in range(0, n, envs_per_actor)]
        self.max_restarts = max_restarts
        self.frames_apart = frame_keys is not None
        self.state_frame_keys = tuple(state_frame_keys)
        actor_class = ray.remote(EnvGroup).options(
            num_cpus=cpus_per_actor, max_restarts=max_restarts, max_task_retries=0, scheduling_strategy="SPREAD"
        )
        self.actors = [actor_class.remote([env_fns[i] for i in group], frame_keys) for group in self.groups]
        self.actor_restarts = [0] * len(self.actors)
        self.lost_episodes = 0
        self.closed = False
        self.waiting = False
        self._pending: list[Any] = []
        self._base_seed: int | None = None
        observation_space, action_space = self._get(0, self.actors[0].spaces.remote())
        self._last_obs: list[Any] = [None] * n
        self._last_frames: list[dict[str, Any]] = [{} for _ in range(n)]
        super().__init__(n, observation_space, action_space)

    # --- stepping -------------------------------------------------------------------------------------------

    def reset(self) -> VecEnvObs:
        results: list[Any] = [None] * self.num_envs
        calls = [self._reset_call(k, [self._seeds[i] for i in group], [self._options[i] for i in group])
                 for k, group in enumerate(self.groups)]
        for k, answers in enumerate(self._gather(calls)):
            if answers is None:
                answers = self._restart(k)
            for i, (obs, reset_info) in zip(self.groups[k], answers):
                results[i] = (obs, reset_info)
        obs, self.reset_infos = (list(x) for x in zip(*results, strict=True))
        for i in range(self.num_envs):
            self._remember(i, obs[i], self.reset_infos[i])
        self._reset_seeds()
        self._reset_options()
        return _stack_obs(obs, self.observation_space)

    def step_async(self, actions: np.ndarray) -> None:
        method = "step_frames_apart" if self.frames_apart else "step"
        self._pending = [getattr(actor, method).remote(actions[group]) for actor, group in zip(self.actors, self.groups)]
        self.waiting = True

    def step_wait(self) -> VecEnvStepReturn:
        results: list[Any] = [None] * self.num_envs
        for k, answers in enumerate(self._gather(self._pending)):
            for i, result in zip(self.groups[k], self._take(k, answers)):
                results[i] = result
        self.waiting = False
        self._pending = []
        obs, rewards, dones, infos, _ = zip(*results, strict=True)
        return _stack_obs(obs, self.observation_space), np.stack(rewards), np.stack(dones), list(infos)

    def answers_as_they_arrive(self) -> Iterator[tuple[list[int], list[tuple]]]:
        """The step in flight, actor by actor in the order they answer: ``(env indices, [(obs, reward, done,
        info, reset_info)])`` per actor, so a caller can use the first answers (score their frames) while the
        other actors still step. Use instead of :meth:`step_wait`; the vector env's state (reset infos) is
        updated as each answer is yielded."""
        waiting = {self._results(call): k for k, call in enumerate(self._pending)}
        while waiting:
            ready, _ = ray.wait(list(waiting), num_returns=1)
            k = waiting.pop(ready[0])
            try:
                answers = self._answers(self._pending[k])
            except RayActorError:
                answers = None
            yield self.groups[k], self._take(k, answers)
        self.waiting = False
        self._pending = []

    def _take(self, k: int, answers: list | None) -> list[tuple]:
        """Actor ``k``'s step answers (its lost episodes if it died) recorded as the envs' newest state."""
        if answers is None:  # died during the step, or before it (restarted without episodes)
            answers = self._lose_episodes(k)
        for i, (obs, _, _, info, reset_info) in zip(self.groups[k], answers):
            if reset_info is not None:
                self.reset_infos[i] = reset_info
            self._remember(i, obs, info)
        return answers

    def _gather(self, calls: list[Any]) -> list[list | None]:
        """Every actor's answer (None for an actor that died): one wait for all, then each alone if one failed."""
        try:
            answers = ray.get([self._results(call) for call in calls])
        except RayActorError:
            answers = []
            for call in calls:
                try:
                    answers.append(ray.get(self._results(call)))
                except RayActorError:
                    answers.append(None)
        return [self._frame_refs(answer, call) for answer, call in zip(answers, calls)]

    def _answers(self, call: Any) -> list | None:
        """One actor's answer to a step or reset call (raises RayActorError if it died)."""
        return self._frame_refs(ray.get(self._results(call)), call)

    def _results(self, call: Any) -> Any:
        """The reference to a call's step or reset results (a frames-apart call also returns its frames)."""
        return call[0] if self.frames_apart else call

    def _frame_refs(self, answer: list | None, call: Any) -> list | None:
        """A frames-apart answer with FrameRefs to the call's frames where the actor left slots."""
        if self.frames_apart and answer is not None:
            for info in _infos(answer):
                for key, value in info.items():
                    if isinstance(value, _Slot):
                        info[key] = FrameRef(call[1], value.slot)
        return answer

    def _reset_call(self, k: int, seeds: list[int | None], options: list[dict]) -> Any:
        actor = self.actors[k]
        return actor.reset_frames_apart.remote(seeds, options) if self.frames_apart else actor.reset.remote(seeds, options)

    def _remember(self, i: int, obs: Any, info: dict) -> None:
        """Env ``i``'s newest observation and state frames: what a lost step reports."""
        self._last_obs[i] = obs
        self._last_frames[i] = {key: info[key] for key in self.state_frame_keys if key in info}

    # --- faults ---------------------------------------------------------------------------------------------

    def _restart(self, k: int) -> list[tuple[Any, dict]]:
        """Actor ``k`` died: wait for Ray to restart it and reset its envs with fresh seeds."""
        self.actor_restarts[k] += 1
        group = self.groups[k]
        seeds = [None if self._base_seed is None else self._base_seed + i + RESTART_SEED_STRIDE * self.actor_restarts[k]
                 for i in group]
        deadline = time.monotonic() + RESTART_TIMEOUT_S
        while True:
            try:
                answers = self._answers(self._reset_call(k, seeds, [{} for _ in group]))
                assert answers is not None
                return answers
            except RayActorError as e:
                # Unavailable: still restarting. Died: dead for good once past its restarts, else Ray restarts it.
                gone = not isinstance(e, ActorUnavailableError) and self.actor_restarts[k] > self.max_restarts
                if gone or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"rollout actor {k} (envs {group[0]}-{group[-1]}) died and could not be restarted after "
                        f"{self.actor_restarts[k]} deaths (ray.max_restarts={self.max_restarts}): {e}; see the Ray "
                        "logs (/tmp/ray/session_latest/logs) for why it died, and resume with "
                        "`roboreward train --resume RUN_DIR`"
                    ) from e
                time.sleep(0.2)

    def _lose_episodes(self, k: int) -> list[tuple[Any, float, bool, dict, dict]]:
        """The step answer of a dead actor's envs: each episode ends truncated at its last known state."""
        answers = []
        for i, (obs, reset_info) in zip(self.groups[k], self._restart(k)):
            info = {"TimeLimit.truncated": True, "terminal_observation": self._last_obs[i], ENV_LOST_KEY: True,
                    **self._last_frames[i]}
            answers.append((obs, 0.0, True, info, reset_info))
            self.lost_episodes += 1
        return answers

    # --- the rest of the VecEnv interface ---------------------------------------------------------------------

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        seeds = super().seed(seed)
        self._base_seed = self._seeds[0]
        return seeds

    def close(self) -> None:
        if self.closed:
            return
        try:
            ray.get([actor.close.remote() for actor in self.actors], timeout=30)
        except Exception:  # noqa: BLE001 - an actor already gone has nothing left to close
            pass
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.closed = True

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [image for images in ray.get([actor.render.remote() for actor in self.actors]) for image in images]

    def has_attr(self, attr_name: str) -> bool:
        return all(ray.get([actor.has_attr.remote(attr_name) for actor in self.actors]))

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return self._per_env(indices, lambda actor, local: actor.get_attr.remote(local, attr_name))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        self._per_env(indices, lambda actor, local: actor.set_attr.remote(local, attr_name, value))

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        return self._per_env(indices, lambda actor, local: actor.env_method.remote(local, method_name, method_args, method_kwargs))

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return self._per_env(indices, lambda actor, local: actor.is_wrapped.remote(local, wrapper_class))

    def _per_env(self, indices: VecEnvIndices, call: Callable[[Any, list[int]], Any]) -> list[Any]:
        """``call(actor, local indices)`` on each actor holding one of ``indices``, which answers one item per
        index in the order given; the answers in the order asked."""
        wanted = list(self._get_indices(indices))
        actor_of = {i: k for k, group in enumerate(self.groups) for i in group}
        by_actor: dict[int, list[int]] = {}
        for i in wanted:
            by_actor.setdefault(actor_of[i], []).append(self.groups[actor_of[i]].index(i))
        answers = ray.get([call(self.actors[k], local) for k, local in by_actor.items()])
        items = {k: iter(answer) for k, answer in zip(by_actor, answers)}
        return [next(items[actor_of[i]]) for i in wanted]

    def _get(self, k: int, ref: Any) -> Any:
        try:
            return ray.get(ref)
        except RayActorError as e:
            raise RuntimeError(f"rollout actor {k} failed while building its envs: {e}") from e
