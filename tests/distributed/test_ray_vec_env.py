"""RayVecEnv on a three-node Ray cluster: SubprocVecEnv's semantics, frames apart, actors killed and restarted."""

import os

import gymnasium as gym
import numpy as np
import pytest
import ray
from stable_baselines3.common.vec_env import SubprocVecEnv

from roboreward.distributed.vec_env import ENV_LOST_KEY, FrameRef, RayVecEnv
from roboreward.envs.make import make_env, make_vec_env, ray_vec_env
from roboreward.experiment import EnvConfig, RayConfig
from roboreward.rewards.wrappers import FRAME_KEY, GOAL_FRAME_KEY, RenderInInfo

N_ENVS = 5  # two actors of two envs and one of one: groups of unequal size


def _rendered(rank: int):
    def make():
        return RenderInInfo(make_env(EnvConfig(), render=True))

    return make


def _rollout(venv, steps: int, seed: int = 11):
    """A seeded rollout with seeded random actions: everything the learner receives, per step."""
    venv.seed(seed)
    rng = np.random.default_rng(seed)
    trace = [(venv.reset(), [dict(info) for info in venv.reset_infos])]
    for _ in range(steps):
        actions = rng.uniform(-1, 1, size=(venv.num_envs, *venv.action_space.shape)).astype(np.float32)
        obs, rewards, dones, infos = venv.step(actions)
        trace.append((obs, rewards, dones, infos, [dict(info) for info in venv.reset_infos]))
    return trace


def _crash(actor) -> None:
    """End the actor's process as a crash would (not a polite kill), and wait until it is gone."""
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(actor.__ray_call__.remote(lambda self: os._exit(1)))


def _same_info(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for key in a:
        if isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        else:
            assert a[key] == b[key], key


def test_a_seeded_rollout_matches_subproc_vec_env_exactly(ray_cluster):
    fns = [_rendered(i) for i in range(N_ENVS)]
    subproc = SubprocVecEnv(fns, start_method="forkserver")
    remote = RayVecEnv(fns, envs_per_actor=2)
    try:
        assert remote.observation_space == subproc.observation_space and remote.action_space == subproc.action_space
        expected, got = _rollout(subproc, 120), _rollout(remote, 120)  # ArmReach episodes are 50 steps: 2 resets each
    finally:
        subproc.close()
        remote.close()
    np.testing.assert_array_equal(expected[0][0], got[0][0])
    for a, b in zip(expected[0][1], got[0][1]):
        _same_info(a, b)
    finished = 0
    for (obs_a, rew_a, done_a, infos_a, resets_a), (obs_b, rew_b, done_b, infos_b, resets_b) in zip(expected[1:], got[1:]):
        np.testing.assert_array_equal(obs_a, obs_b)
        np.testing.assert_array_equal(rew_a, rew_b)
        np.testing.assert_array_equal(done_a, done_b)
        for a, b in zip(infos_a, infos_b):
            _same_info(a, b)  # frames, terminal observations, TimeLimit.truncated
        for i in np.flatnonzero(done_a):
            _same_info(resets_a[i], resets_b[i])  # the new episode's reset info, goal image included
        finished += int(done_a.sum())
    assert finished == 2 * N_ENVS


def test_actors_spread_over_the_cluster_and_answer_the_vec_env_interface(ray_cluster):
    venv = ray_vec_env([_rendered(i) for i in range(4)], RayConfig(envs_per_actor=1))
    try:
        nodes = ray.get([actor.__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id())
                         for actor in venv.actors])
        assert len(set(nodes)) >= 2  # SPREAD: not all on one node
        assert venv.get_attr("render_mode") == ["rgb_array"] * 4
        assert venv.env_method("get_wrapper_attr", "_max_episode_steps", indices=[3, 1]) == [50, 50]
        venv.set_attr("marker", 7, indices=[2])
        assert venv.get_attr("marker", indices=[2]) == [7]
        assert venv.env_is_wrapped(RenderInInfo) == [True] * 4
        venv.reset()
        images = venv.get_images()
        assert len(images) == 4 and images[0].shape == (64, 64, 3)
    finally:
        venv.close()


def test_frames_apart_leave_only_references_in_the_learner(ray_cluster):
    venv = ray_vec_env([_rendered(i) for i in range(3)], RayConfig(envs_per_actor=2), frames_apart=True)
    inline = ray_vec_env([_rendered(i) for i in range(3)], RayConfig(envs_per_actor=2))
    try:
        venv.seed(5)
        inline.seed(5)
        venv.reset()
        inline.reset()
        goal = venv.reset_infos[0][GOAL_FRAME_KEY]
        assert isinstance(goal, FrameRef)
        np.testing.assert_array_equal(ray.get(goal.ref)[goal.slot], inline.reset_infos[0][GOAL_FRAME_KEY])
        actions = np.zeros((3, *venv.action_space.shape), dtype=np.float32)
        _, _, _, infos = venv.step(actions)
        _, _, _, inline_infos = inline.step(actions)
        for info, expected in zip(infos, inline_infos):
            frame = info[FRAME_KEY]
            assert isinstance(frame, FrameRef)
            np.testing.assert_array_equal(ray.get(frame.ref)[frame.slot], expected[FRAME_KEY])
    finally:
        venv.close()
        inline.close()


def test_a_killed_actor_is_restarted_and_its_episodes_end_truncated(ray_cluster):
    venv = make_vec_env(EnvConfig(n_envs=4, backend="ray"), None, seed=3, ray=RayConfig(envs_per_actor=2, max_restarts=2))
    try:
        obs = venv.reset()
        actions = np.zeros((4, *venv.action_space.shape), dtype=np.float32)
        obs, _, _, _ = venv.step(actions)
        _crash(venv.unwrapped.actors[1])  # envs 2 and 3
        new_obs, rewards, dones, infos = venv.step(actions)
        assert dones.tolist() == [False, False, True, True]
        for i in (2, 3):
            assert infos[i][ENV_LOST_KEY] and infos[i]["TimeLimit.truncated"]
            np.testing.assert_array_equal(infos[i]["terminal_observation"], obs[i])  # the last state received
            assert rewards[i] == 0.0 and "episode" in infos[i]  # VecMonitor closed the episode
        assert venv.unwrapped.lost_episodes == 2 and venv.unwrapped.actor_restarts == [0, 1]
        for _ in range(60):  # training goes on: every env steps, and the restarted ones finish episodes
            _, _, dones, infos = venv.step(actions)
            assert not any(ENV_LOST_KEY in info for info in infos)
    finally:
        venv.close()


def _crashes_when_flagged(flag):
    """An env factory whose env ends its process in the middle of a step while the file ``flag`` exists."""
    def make():
        class CrashWhenFlagged(gym.Wrapper):  # defined here so that Ray ships it to the actor by value
            def step(self, action):
                if flag.exists():
                    os._exit(1)
                return self.env.step(action)

        return CrashWhenFlagged(make_env(EnvConfig(), render=False))

    return make


def test_an_actor_that_crashes_during_a_step_loses_that_step_only(ray_cluster, tmp_path):
    flag = tmp_path / "crash"
    venv = RayVecEnv([_crashes_when_flagged(flag), _crashes_when_flagged(tmp_path / "never")], max_restarts=2)
    try:
        venv.seed(3)
        obs = venv.reset()
        actions = np.zeros((2, *venv.action_space.shape), dtype=np.float32)
        flag.touch()
        _, rewards, dones, infos = venv.step(actions)
        flag.unlink()
        assert dones.tolist() == [True, False] and infos[0][ENV_LOST_KEY] and ENV_LOST_KEY not in infos[1]
        np.testing.assert_array_equal(infos[0]["terminal_observation"], obs[0])
        assert rewards[0] == 0.0 and venv.actor_restarts == [1, 0] and venv.lost_episodes == 1
        for _ in range(5):
            _, _, dones, infos = venv.step(actions)
            assert not any(ENV_LOST_KEY in info for info in infos) and not dones.any()
    finally:
        venv.close()


def test_an_actor_that_dies_past_its_restarts_stops_with_the_reason(ray_cluster):
    venv = RayVecEnv([_rendered(0)], max_restarts=0)
    try:
        venv.reset()
        _crash(venv.actors[0])
        with pytest.raises(RuntimeError, match=r"(?s)could not be restarted.*ray.max_restarts=0.*--resume"):
            venv.step(np.zeros((1, *venv.action_space.shape), dtype=np.float32))
    finally:
        venv.close()
