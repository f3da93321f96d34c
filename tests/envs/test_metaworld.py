import gymnasium as gym
import numpy as np
import pytest

from roboreward.envs import ENV_IDS, METAWORLD_ENV_IDS

REACH, PUSH = "roboreward/MetaWorld-Reach-v3", "roboreward/MetaWorld-Push-v3"


def test_the_six_tasks_are_registered():
    assert set(METAWORLD_ENV_IDS) <= set(ENV_IDS)  # so tests/envs/test_envs.py checks them like every env
    tasks = {gym.spec(env_id).kwargs["task"] for env_id in METAWORLD_ENV_IDS}
    assert tasks == {"reach-v3", "push-v3", "door-open-v3", "drawer-open-v3", "button-press-v3", "pick-place-v3"}


@pytest.mark.parametrize("env_id", METAWORLD_ENV_IDS)
def test_step_info_carries_metaworld_diagnostics(env_id):
    env = gym.make(env_id)
    _, reset_info = env.reset(seed=1)
    assert reset_info == {}
    _, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert info["is_success"] == bool(info["success"]) and reward == info["reward_task"]
    assert isinstance(reward, float) and 0.0 <= reward <= 10.0
    assert terminated is False and truncated is False
    env.close()


@pytest.mark.parametrize("env_id", METAWORLD_ENV_IDS)
def test_seeded_reset_is_deterministic_whatever_ran_before(env_id):
    a, b = gym.make(env_id).unwrapped, gym.make(env_id).unwrapped
    np.random.seed(0)
    obs_a, _ = a.reset(seed=3)
    qpos_a = a.data.qpos.copy()
    # b plays another episode first and has another global NumPy state: neither may matter.
    np.random.seed(1)
    b.reset(seed=11)
    for _ in range(10):
        b.step(b.action_space.sample())
    global_state = np.random.get_state()[1].copy()
    obs_b, _ = b.reset(seed=3)
    assert np.array_equal(np.random.get_state()[1], global_state), "reset must not draw from NumPy's global RNG"
    assert np.array_equal(obs_a, obs_b) and np.array_equal(qpos_a, b.data.qpos)
    # An unseeded reset continues the seeded stream, the same way in both.
    assert np.array_equal(a.reset()[0], b.reset()[0])
    # Another seed moves the goal (last 3 entries) or the object (entries 4-6).
    obs_c, _ = a.reset(seed=4)
    assert not np.allclose(np.r_[obs_c[4:7], obs_c[-3:]], np.r_[obs_a[4:7], obs_a[-3:]])
    a.close()
    b.close()


def test_episodes_truncate_at_200_steps_and_never_terminate():
    env = gym.make(REACH)
    env.reset(seed=0)
    env.action_space.seed(0)
    for t in range(1, 201):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert not terminated and truncated == (t == 200)
    env.close()


def test_render_size_camera_and_errors():
    env = gym.make(REACH, render_mode="rgb_array", width=48, height=32, camera="topview")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (32, 48, 3) and frame.dtype == np.uint8
    env.close()
    default = gym.make(REACH, render_mode="rgb_array", camera=None)  # what make_env passes when unset
    default.reset(seed=0)
    assert default.render().shape == (64, 64, 3)
    with pytest.raises(ValueError, match=r"camera 'nope' is not in the Meta-World model; choose one of \[.*'corner3'"):
        gym.make(REACH, render_mode="rgb_array", camera="nope")
    with pytest.raises(ValueError, match="camera 'nope' is not in the Meta-World model"):
        default.unwrapped.render_cameras(["corner", "nope"])
    default.close()
    with pytest.raises(ValueError, match="multisample=3 is not allowed"):
        gym.make(REACH, render_mode="rgb_array", multisample=3)
    with pytest.raises(ValueError, match="not a Meta-World v3 task"):
        gym.make(REACH, task="reach-v2")
    no_render = gym.make(REACH)
    no_render.reset(seed=0)
    with pytest.raises(RuntimeError, match="render_mode='rgb_array'"):
        no_render.unwrapped.render()


def test_render_cameras_gives_one_distinct_frame_per_camera_and_leaves_the_state_alone():
    env = gym.make(PUSH, render_mode="rgb_array").unwrapped
    env.reset(seed=2)
    qpos = env.data.qpos.copy()
    cameras = ["corner", "corner2", "corner3", "topview", "behindGripper"]
    frames = env.render_cameras(cameras)
    assert list(frames) == cameras
    assert all(f.shape == (64, 64, 3) and f.dtype == np.uint8 for f in frames.values())
    for i, first in enumerate(cameras):
        for second in cameras[i + 1 :]:
            assert not np.array_equal(frames[first], frames[second]), (first, second)
    assert np.array_equal(frames["corner3"], env.render())  # the default camera
    assert np.array_equal(env.data.qpos, qpos)
    env.close()


def test_corner_cameras_are_upright():
    env = gym.make(REACH).unwrapped
    env.reset(seed=0)
    for camera in ("corner", "corner2", "corner3", "corner4"):
        up = env.data.cam(camera).xmat.reshape(3, 3)[:, 1]  # image 'up' in world coordinates
        assert up[2] > 0, camera
    env.close()


@pytest.mark.parametrize("env_id", [REACH, PUSH])
def test_scripted_expert_succeeds(env_id):
    env = gym.make(env_id).unwrapped
    for seed in (0, 1, 2):
        obs, _ = env.reset(seed=seed)
        for _ in range(150):
            action = env.scripted_action(obs)
            assert action in env.action_space
            obs, _, _, _, info = env.step(action)
            if info["is_success"]:
                break
        assert info["is_success"], f"{env_id}: the scripted expert failed for seed {seed}"
    env.close()


def test_sparse_reward_is_the_success_flag_and_dense_the_shaped_reward():
    dense, sparse = gym.make(REACH).unwrapped, gym.make(REACH, reward="sparse").unwrapped
    rewards = {"dense": [], "sparse": []}
    for name, env in (("dense", dense), ("sparse", sparse)):
        obs, _ = env.reset(seed=3)
        for _ in range(60):  # the scripted expert reaches the goal, so both rewards see success and failure
            obs, reward, _, _, info = env.step(env.scripted_action(obs))
            assert reward == info["reward_task"]
            rewards[name].append((reward, info["success"]))
    assert [s for _, s in rewards["dense"]] == [s for _, s in rewards["sparse"]]  # same seed, same episode
    assert all(r == s for r, s in rewards["sparse"]) and {r for r, _ in rewards["sparse"]} == {0.0, 1.0}
    assert len({r for r, _ in rewards["dense"]}) > 10
    with pytest.raises(Exception, match="choose dense .* or sparse"):
        gym.make(REACH, reward="binary")
