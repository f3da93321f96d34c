"""The reward model in one Ray actor that scores the frames of every env (``reward.server: ray``).

A big reward model (CLIP ViT-L-14, a process reward model) wants one GPU scoring large batches, while
the envs that feed it want many CPUs — the asynchronous reward server of ONI. :class:`RewardServer` is
that actor: it builds the model from the reward section (on the GPU Ray gives it, when the cluster has
one), takes scoring requests from the learner, and runs the model on ``reward.batch_size`` frames at a
time, drawn from a queue of all requests in arrival order (a call may span two requests, and requests
that arrive while the model runs join the next call). Its model calls run in a thread, so requests keep
arriving while it computes.

Frames reach it as :class:`~roboreward.distributed.vec_env.FrameRef` s — references to frames a rollout
actor left in Ray's object store — which it fetches itself: pixels go from the rollout actors' nodes to
the server's without passing through the learner. Plain arrays work too (envs that run in the learner).

The learner talks to it through :class:`RemoteRewardModel`, a :class:`~roboreward.rewards.base.RewardModel`
like any other, so the reward wrappers, shaping and post-processing are the same with or without a
server. A server that dies is restarted by Ray (``ray.max_restarts``) and the requests it was scoring are
sent again (the frames are still in the object store), so no transition goes without its reward.
"""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import ray

from roboreward.distributed.cluster import cluster_gpus, connect
from roboreward.distributed.vec_env import FrameRef
from roboreward.experiment import RayConfig
from roboreward.rewards.base import (
    RewardBatch,
    RewardConfig,
    RewardModel,
    make_reward_model,
    observation_at,
    stack_observations,
)
from roboreward.rewards.diagnostics.episodes import model_cameras


@dataclass
class _Request:
    batch: RewardBatch
    rewards: np.ndarray
    left: int
    future: asyncio.Future


class RewardServer:
    """The actor (see the module docstring); ``config`` is the reward section whose model it builds and runs."""

    def __init__(self, config: RewardConfig):
        model = make_reward_model(config)
        if model is None:
            raise ValueError("the reward server needs a reward model, not type: env")
        self.model = model
        self.batch_size = config.batch_size
        self.calls: list[int] = []  # frames per model call, for the batching figures
        self._rows: deque[tuple[_Request, int]] = deque()
        self._drainer: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1)  # one model call at a time, off the event loop

    def describe(self) -> dict[str, Any]:
        """What the learner's wrappers ask of a model: its name, whether it reads frames, its cameras."""
        return {"name": self.model.name, "requires_frames": self.model.requires_frames,
                "required_cameras": model_cameras(self.model)}

    def check_ready(self) -> None:
        self.model.check_ready()

    def stats(self) -> dict[str, Any]:
        """Frames per model call so far (:meth:`reset_stats` starts counting again)."""
        return {"calls": len(self.calls), "frames": int(sum(self.calls)), "frames_per_call": list(self.calls)}

    def reset_stats(self) -> None:
        self.calls = []

    async def score(self, frames: Any, observations: np.ndarray | None, goal_frames: Any) -> np.ndarray:
        """The model's rewards of one request; frames and goal frames are arrays or lists of FrameRefs."""
        batch = RewardBatch(frames=await _fetch(frames), observations=observations, goal_frames=await _fetch(goal_frames))
        n = len(batch)
        request = _Request(batch, np.zeros(n, dtype=np.float32), n, asyncio.get_running_loop().create_future())
        self._rows.extend((request, row) for row in range(n))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await request.future

    async def _drain(self) -> None:
        """Score queued rows ``batch_size`` at a time until the queue is empty."""
        loop = asyncio.get_running_loop()
        while self._rows:
            size = len(self._rows) if self.batch_size is None else min(self.batch_size, len(self._rows))
            rows = [self._rows.popleft() for _ in range(size)]
            try:  # a batch that cannot be assembled or scored fails its requests (in the learner), never hangs them
                rewards = await loop.run_in_executor(self._executor, self.model, _rows_batch(rows))
            except Exception as e:  # noqa: BLE001 - handed to every request in the call, raised in the learner
                failed = {id(request): request for request, _ in rows}
                self._rows = deque(item for item in self._rows if id(item[0]) not in failed)
                for request in failed.values():
                    if not request.future.done():
                        request.future.set_exception(e)
                continue
            self.calls.append(size)
            for (request, row), reward in zip(rows, rewards):
                request.rewards[row] = reward
                request.left -= 1
                if request.left == 0 and not request.future.done():
                    request.future.set_result(request.rewards)


async def _fetch(frames: Any) -> np.ndarray | None:
    """Frames as one array: ``frames`` as it is, or each FrameRef's frame fetched from the object store."""
    if frames is None or isinstance(frames, np.ndarray):
        return frames
    refs = list({frame.ref: None for frame in frames if isinstance(frame, FrameRef)})
    payloads = dict(zip(refs, await asyncio.gather(*refs)))
    return np.stack([payloads[f.ref][f.slot] if isinstance(f, FrameRef) else f for f in frames])


def _rows_batch(rows: list[tuple[_Request, int]]) -> RewardBatch:
    def column(field: str):
        values = [getattr(request.batch, field) for request, _ in rows]
        if any(v is None for v in values):
            return None
        return stack_observations([observation_at(v, row) for v, (_, row) in zip(values, rows)])

    return RewardBatch(frames=column("frames"), observations=column("observations"), goal_frames=column("goal_frames"))


class RemoteRewardModel(RewardModel):
    """The learner's handle on a :class:`RewardServer`: a reward model whose ``compute`` is a request to it.

    Registered as ``ray_server`` only to be a RewardModel; configs choose it with ``reward.server: ray``.
    """

    name = "ray_server"
    config_class = RewardConfig
    fetches_frames = True

    def __init__(self, config: RewardConfig, ray_config: RayConfig):
        super().__init__(config)
        gpus = ray_config.server_gpus
        if gpus == "auto":
            gpus = 1.0 if cluster_gpus() > 0 else 0.0
        server_class = ray.remote(RewardServer).options(
            num_cpus=1, num_gpus=float(gpus), max_restarts=ray_config.max_restarts, max_task_retries=ray_config.max_restarts
        )
        self.server = server_class.remote(config)
        try:
            described = ray.get(self.server.describe.remote())
        except ray.exceptions.RayActorError as e:
            raise RuntimeError(f"the reward server could not build its {config.type_name} model: {e}") from e
        self.name = described["name"]
        self.requires_frames = described["requires_frames"]  # type: ignore[misc]
        self.required_cameras = described["required_cameras"]

    def check_ready(self) -> None:
        ray.get(self.server.check_ready.remote())

    def compute(self, batch: RewardBatch) -> np.ndarray:
        return ray.get(self._request(batch))

    def submit(self, batch: RewardBatch) -> Callable[[], np.ndarray]:
        """Send the request and return at once; the function waits for the server's answer."""
        ref = self._request(batch)
        return lambda: self._checked(ray.get(ref), len(batch))

    def _request(self, batch: RewardBatch) -> ray.ObjectRef:
        return self.server.score.remote(batch.frames, batch.observations, batch.goal_frames)

    def stats(self) -> dict[str, Any]:
        """The server's frames per model call (see :meth:`RewardServer.stats`)."""
        return ray.get(self.server.stats.remote())

    def reset_stats(self) -> None:
        ray.get(self.server.reset_stats.remote())

    def close(self) -> None:
        ray.kill(self.server, no_restart=True)


def serve(config: RewardConfig, ray_config: RayConfig) -> RemoteRewardModel:
    """Start the reward server of ``config`` on the cluster ``ray_config`` names; the learner's handle on it."""
    connect(ray_config, cpus_needed=1)
    return RemoteRewardModel(config, ray_config)
