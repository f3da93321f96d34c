"""roboreward/CrowdNav-v0: the gymnasium and SB3 contracts, determinism, sensing, kinematics, rewards, metrics."""

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import roboreward.envs  # noqa: F401  (registers the ids)
from roboreward.envs.crowd.config import CrowdNavConfig
from roboreward.envs.crowd.env import CrowdNavBatch, CrowdNavEnv, CrowdNavVecEnv
from roboreward.envs.crowd.rewards import CrowdReward
from roboreward.envs.crowd.sim import COLLISION_HUMAN, NONE, SUCCESS, StepResult
from roboreward.errors import ConfigError
from roboreward.experiment import EnvConfig

SCENARIOS = ["circle_crossing", "square_crossing", "corridor", "doorway", "room"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_gymnasium_and_sb3_env_checkers_pass(scenario):
    env = gym.make("roboreward/CrowdNav-v0", scenario=scenario, render_mode="rgb_array")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SB3 suggests flattening the [H, 5] people array; MultiInputPolicy does
        gym_check_env(env.unwrapped, skip_render_check=False)
        sb3_check_env(env.unwrapped)
    obs, _ = env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8 and frame.std() > 0
    assert frame.flags.writeable  # videos write text onto frames


def rollout(env: CrowdNavEnv, actions: np.ndarray, seed: int):
    """Observations, rewards and ends of a single env under fixed actions, resetting (unseeded) when it ends."""
    obs, _ = env.reset(seed=seed)
    out = []
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append((obs, r, term, trunc))
        if term or trunc:
            obs, _ = env.reset()
            out[-1] = (*out[-1], obs)
    return out


def test_seeded_episodes_repeat_exactly():
    actions = np.random.default_rng(0).uniform(-1, 1, (120, 2))
    a = rollout(CrowdNavEnv(scenario="room"), actions, seed=5)
    b = rollout(CrowdNavEnv(scenario="room"), actions, seed=5)
    c = rollout(CrowdNavEnv(scenario="room"), actions, seed=6)
    for x, y in zip(a, b):
        for k in x[0]:
            np.testing.assert_array_equal(x[0][k], y[0][k])
        assert x[1:4] == y[1:4]
    assert not np.array_equal(a[0][0]["humans"], c[0][0]["humans"])


@pytest.mark.parametrize("scenario", ["room", "circle_crossing"])
def test_env_i_of_the_batched_vec_env_is_the_single_env_seeded_seed_plus_i(scenario):
    """SubprocVecEnv's semantics: auto-reset, terminal_observation, TimeLimit.truncated, seeds seed + i."""
    n, steps, seed = 3, 150, 11
    actions = np.random.default_rng(1).uniform(-1, 1, (steps, n, 2))
    kwargs = {"scenario": scenario, "time_limit": 10.0}
    venv = CrowdNavVecEnv(n, **kwargs)
    venv.seed(seed)
    first = venv.reset()
    singles = [rollout(CrowdNavEnv(**kwargs), actions[:, i], seed + i) for i in range(n)]
    for i in range(n):
        start, _ = CrowdNavEnv(**kwargs).reset(seed=seed + i)
        for k in first:
            np.testing.assert_array_equal(first[k][i], start[k])
    ends = 0
    for t in range(steps):
        obs, rewards, dones, infos = venv.step(actions[t])
        for i in range(n):
            single = singles[i][t]
            assert rewards[i] == pytest.approx(single[1], abs=1e-6)
            assert dones[i] == (single[2] or single[3])
            if dones[i]:
                ends += 1
                assert infos[i]["TimeLimit.truncated"] == (single[3] and not single[2])
                for k in obs:
                    np.testing.assert_array_equal(infos[i]["terminal_observation"][k], single[0][k])
                    np.testing.assert_array_equal(obs[k][i], single[4][k])
            else:
                for k in obs:
                    np.testing.assert_array_equal(obs[k][i], single[0][k])
    assert ends >= n  # episodes did end (collisions or the 10 s limit) and restarted


def test_rendering_never_changes_the_simulation():
    actions = np.random.default_rng(2).uniform(-1, 1, (60, 2, 2))
    runs = []
    for frames in (False, True):
        venv = CrowdNavVecEnv(2, render_mode="rgb_array" if frames else None, frames_in_info=frames, scenario="room",
                              sensing={"position_noise": 0.05, "dropout": 0.1})
        venv.seed(3)
        obs = [venv.reset()]
        for a in actions:
            o, r, d, infos = venv.step(a)
            obs.append(o)
            assert ("frame" in infos[0]) == frames
            if frames:
                venv.get_images()  # extra renders between steps
        runs.append(obs)
    for x, y in zip(*runs):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])


def hand_built(n_humans: int = 0, **kwargs) -> CrowdNavBatch:
    """One env with the robot at the origin facing +x, its goal 3 m ahead, and ``n_humans`` people parked far off."""
    config = CrowdNavConfig.from_kwargs({"scenario": {"name": "circle_crossing", "n_humans": n_humans}, **kwargs})
    batch = CrowdNavBatch(config, 1)
    batch.reset(0, seed=0)
    sim = batch.sim
    sim.positions[0] = 0.0
    sim.velocities[0] = 0.0
    sim.positions[0, 1:, 0] = 50.0 + np.arange(n_humans)  # out of the way until a test places them
    sim.goals[0, 1:] = sim.positions[0, 1:]
    sim.goals[0, 0] = [3.0, 0.0]
    sim.heading[0] = 0.0
    batch.reward.reset(0, 3.0)
    batch.metrics.reset(0, sim)
    return batch


def test_a_straight_run_to_the_goal_succeeds_with_the_expected_metrics():
    batch = hand_built()
    for step in range(1, 20):
        rewards, terminated, truncated, infos = batch.step(np.array([[1.0, 0.0]]))
        if terminated[0]:
            break
    # 0.25 m per step: at 2.75 m after 11 steps the robot is within its 0.3 m radius of the goal.
    assert step == 11 and infos[0]["event"] == "success" and infos[0]["is_success"]
    m = infos[0]["metrics"]
    assert m["success"] == 1 and m["collision_human"] == 0 and m["timeout"] == 0
    assert m["nav_time"] == pytest.approx(2.75) and m["path_length"] == pytest.approx(2.75)
    assert m["spl"] == pytest.approx(2.7 / 2.75)  # the straight line less the goal radius, over the path
    assert m["min_separation"] == math.inf and m["intrusion_ratio"] == 0
    assert m["jerk"] == pytest.approx((1.0 / 0.25 + 1.0 / 0.25) / 0.25 / 11)  # one start: accel 4 m/s² appears and goes


def test_driving_into_a_person_is_a_collision_found_along_the_step():
    batch = hand_built(n_humans=1, humans={"react_to_robot": 0.0})
    sim = batch.sim
    sim.positions[0, 1] = sim.goals[0, 1] = [1.0, 0.0]
    sim.static[0, 1] = True  # a person standing 1 m ahead
    events = []
    for _ in range(3):
        rewards, terminated, _, infos = batch.step(np.array([[1.0, 0.0]]))
        events.append(infos[0]["event"])
        if terminated[0]:
            break
    # Contact at 0.4 m: during the second step (0.25 -> 0.5 m).
    assert events == ["", "collision_human"]
    assert infos[0]["reward_collision"] == -20.0 and infos[0]["metrics"]["collision_human"] == 1
    assert infos[0]["metrics"]["min_separation"] < 0


def test_walls_and_boxes_are_collisions_of_their_own_kind():
    config = CrowdNavConfig.from_kwargs({"scenario": {"name": "corridor", "n_humans": 0}})
    batch = CrowdNavBatch(config, 1)
    batch.reset(0, seed=0)
    batch.sim.positions[0, 0] = [0.0, 0.0]
    batch.sim.heading[0] = math.pi / 2  # facing the corridor's wall at y = +1.5
    for _ in range(10):
        _, terminated, _, infos = batch.step(np.array([[1.0, 0.0]]))
        if terminated[0]:
            break
    assert infos[0]["event"] == "collision_wall" and infos[0]["metrics"]["collision_wall"] == 1
    assert batch.sim.positions[0, 0, 1] > 1.5 - 0.3 - 1e-9

    room = CrowdNavBatch(CrowdNavConfig.from_kwargs({"scenario": {"name": "room", "n_humans": 0,
                                                                  "n_humans_jitter": 0, "n_static": 0,
                                                                  "n_static_jitter": 0}}), 1)
    room.reset(0, seed=0)
    box = room.sim.boxes[0, 0]
    room.sim.positions[0, 0] = [box[0] - 0.6, (box[1] + box[3]) / 2]
    room.sim.heading[0] = 0.0
    for _ in range(10):
        _, terminated, _, infos = room.step(np.array([[1.0, 0.0]]))
        if terminated[0]:
            break
    assert infos[0]["event"] == "collision_obstacle"


def test_the_time_limit_truncates_and_is_not_terminal():
    batch = hand_built(time_limit=1.0)
    for _ in range(4):
        rewards, terminated, truncated, infos = batch.step(np.zeros((1, 2)))
    assert truncated[0] and not terminated[0] and infos[0]["metrics"]["timeout"] == 1
    assert not infos[0]["is_success"]


def test_robot_frame_conventions():
    """x along the heading, y to the robot's left, in every part of the observation."""
    batch = hand_built(n_humans=1)
    sim = batch.sim
    sim.heading[0] = math.pi / 2  # facing world +y: the robot's left is world -x
    sim.goals[0, 0] = [0.0, 3.0]
    sim.positions[0, 1] = [-2.0, 0.0]
    sim.velocities[0, 1] = [0.0, 1.0]
    obs = batch.observe()
    np.testing.assert_allclose(obs["robot"][0, :2], [3.0, 0.0], atol=1e-6)  # goal straight ahead
    np.testing.assert_allclose(obs["robot"][0, 4:6], [0.0, 1.0], atol=1e-6)  # cos, sin of the heading
    np.testing.assert_allclose(obs["humans"][0, 0, :2], [0.0, 2.0], atol=1e-6)  # the person on the left
    np.testing.assert_allclose(obs["humans"][0, 0, 2:4], [1.0, 0.0], atol=1e-6)  # walking the way it faces
    assert obs["lidar"].shape == (1, 180)


def test_people_are_seen_within_range_and_field_of_view_nearest_first():
    batch = hand_built(n_humans=4, sensing={"sensor_range": 5.0, "fov": math.pi})
    sim = batch.sim
    sim.positions[0, 1:] = [[3.0, 0.0], [1.5, 0.5], [8.0, 0.0], [-1.0, 0.0]]  # ahead, nearer ahead, far, behind
    obs = batch.observe()
    assert obs["humans_mask"][0].tolist() == [1, 1, 0, 0]
    np.testing.assert_allclose(obs["humans"][0, 0, :2], [1.5, 0.5], atol=1e-6)
    np.testing.assert_allclose(obs["humans"][0, 1, :2], [3.0, 0.0], atol=1e-6)
    assert (obs["humans"][0, 2:] == 0).all()


def test_people_behind_a_wall_are_hidden_with_occlusion():
    config = CrowdNavConfig.from_kwargs({"scenario": {"name": "doorway", "n_humans": 2},
                                         "sensing": {"occlusion": True}})
    batch = CrowdNavBatch(config, 1)
    batch.reset(0, seed=0)
    sim = batch.sim
    sim.positions[0, 0] = [-1.0, 0.2]
    sim.positions[0, 1:3] = [[1.0, 3.0], [1.0, 0.0]]  # behind the wall; in view through the door (|y| < 0.6)
    obs = batch.observe()
    assert obs["humans_mask"][0].sum() == 1
    np.testing.assert_allclose(np.linalg.norm(obs["humans"][0, 0, :2]), math.hypot(2.0, 0.2), atol=1e-5)


def test_kinematics():
    uni = hand_built(robot={"kinematics": "unicycle", "max_angular": 1.0})
    uni.step(np.array([[1.0, 1.0]]))
    assert uni.sim.heading[0] == pytest.approx(0.25)  # turns first, then moves along the new heading
    np.testing.assert_allclose(uni.sim.robot_position[0], 0.25 * np.array([math.cos(0.25), math.sin(0.25)]))

    diff = hand_built(robot="diff_drive")
    assert diff.config.robot.max_speed == 0.6 and diff.config.robot.max_angular == 2.0  # configs/robots/diff_drive.yaml
    diff.step(np.array([[1.0, 0.0]]))
    assert diff.sim.forward_speed[0] == pytest.approx(0.25)  # 1 m/s² for 0.25 s

    holo = hand_built()
    holo.step(np.array([[1.0, 1.0]]))  # clipped to the unit disc: 1 m/s along the diagonal
    np.testing.assert_allclose(holo.sim.robot_velocity[0], [math.sqrt(0.5), math.sqrt(0.5)])


def step_result(event, before, after, closest, speed=0.0, angular=0.0):
    n = len(event)
    return StepResult(np.array(event), np.array(before, float), np.array(after, float), np.array(closest, float),
                      np.full(n, speed), np.full(n, angular), np.zeros(n, bool))


CASES = dict(event=[SUCCESS, COLLISION_HUMAN, NONE, NONE], before=[0.5, 3.0, 5.0, 5.0], after=[0.2, 3.0, 4.75, 4.75],
             closest=[np.inf, -0.1, 0.1, np.inf])


def test_crowdnav_pp_reward_is_an_exclusive_chain_that_pays_progress_late():
    config = CrowdNavConfig.from_kwargs({"reward": "crowdnav_pp"})
    reward = CrowdReward(config, 4)
    for b, d in enumerate(CASES["before"]):
        reward.reset(b, d)
    terms = reward(step_result(**CASES))
    assert terms["success"].tolist() == [10, 0, 0, 0] and terms["collision"].tolist() == [0, -20, 0, 0]
    assert terms["discomfort"][2] == pytest.approx((0.1 - 0.25) * 10 * 0.25) and terms["progress"][2] == 0
    assert terms["progress"][3] == pytest.approx(2 * 0.25)
    # Env 2 leaves the discomfort zone: the 0.25 m gained while in it are paid now, with this step's.
    again = reward(step_result([NONE] * 4, [4.75] * 4, [4.5] * 4, [np.inf] * 4))
    assert again["progress"][2] == pytest.approx(2 * 0.5) and again["progress"][3] == pytest.approx(2 * 0.25)


def test_height_reward_clips_progress_and_adds_unicycle_terms():
    config = CrowdNavConfig.from_kwargs({"reward": "height", "robot": {"kinematics": "unicycle", "max_speed": 0.5},
                                         "time_step": 0.1})
    reward = CrowdReward(config, 4)
    terms = reward(step_result(**{**CASES, "after": [0.2, 3.0, 4.75, 4.0]}, speed=-0.2, angular=1.0))
    assert terms["success"][0] == 20
    assert terms["progress"][3] == pytest.approx(2 * 0.5 * 0.1)  # 2 m/m × 1 m, clipped to ±2·v_max·dt
    np.testing.assert_allclose(terms["spin"], -0.05)
    np.testing.assert_allclose(terms["backing"], -0.02)
    assert (terms["time"] == -0.025).all()


def test_corrected_reward_adds_its_terms_and_shapes_progress_exactly():
    config = CrowdNavConfig.from_kwargs({"reward": {"preset": "corrected", "gamma": 0.9}})
    terms = CrowdReward(config, 4)(step_result(**CASES))
    # Discomfort and progress together; progress = γΦ(s') − Φ(s), Φ = −2·d, Φ = 0 at a terminal state.
    assert terms["discomfort"][2] == pytest.approx(-0.375)
    assert terms["progress"][2] == pytest.approx(0.9 * -2 * 4.75 + 2 * 5.0)
    assert terms["progress"][0] == pytest.approx(2 * 0.5)  # success: terminal, Φ(s') = 0
    assert terms["discomfort"][1] == 0  # a collision is not also discomfort
    np.testing.assert_allclose(terms["time"], -1.0 * 0.25)  # every step costs its time


def test_corrected_progress_telescopes_over_an_episode():
    """Σ_t γ^t F_t = γ^T Φ(s_T)·[not terminated] − Φ(s_0): no policy can gain from the shaping itself."""
    gamma = 0.95
    env = CrowdNavEnv(scenario="room", reward={"preset": "corrected", "gamma": gamma}, time_limit=15.0)
    env.reset(seed=4)
    start = env.batch.sim.goal_distance()[0]
    rng = np.random.default_rng(0)
    total, t = 0.0, 0
    while True:
        _, _, terminated, truncated, info = env.step(rng.uniform(-1, 1, 2))
        total += gamma ** t * info["reward_progress"]
        t += 1
        if terminated or truncated:
            break
    end = 0.0 if terminated else -2.0 * env.batch.sim.goal_distance()[0]
    assert total == pytest.approx(gamma ** t * end + 2.0 * start, abs=1e-9)


def test_reward_terms_sum_to_the_reward():
    env = CrowdNavEnv(scenario="room", reward="crowdnav_pp", robot="unicycle")
    env.reset(seed=0)
    for _ in range(30):
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert reward == pytest.approx(sum(v for k, v in info.items() if k.startswith("reward_")), abs=1e-5)
        if terminated or truncated:
            break


@pytest.mark.parametrize("kwargs, message", [
    ({"scenario": {"name": "room", "n_humans": -3}}, "scenario.n_humans: -3 is too small; it must be >= 0"),
    ({"scenario": "mall"}, "'mall' is not a scenario; choose one of"),
    ({"scenario": {"name": "room", "room_size": 4.0, "arena": 4.0, "n_humans": 40, "n_humans_jitter": 0}},
     "scenario.n_humans: 42 people of radius up to 0.3 m need .* at most half of it"),
    ({"scenario": {"name": "room", "room_size": 6.0, "arena": 6.0, "n_humans": 20, "n_humans_jitter": 0,
                   "n_obstacles": 30, "n_obstacles_jitter": 0, "obstacle_gap": 1.0, "goal_distance": [1, 4]}}, "do not fit in the 6.0 m room"),
    ({"scenario": {"name": "room", "room_size": 4.5, "arena": 4.5, "n_obstacles": 0, "n_obstacles_jitter": 0}}, "no robot start and goal 5.0-6.0 m apart fit"),
    ({"scenario": {"name": "corridor", "n_obstacles": 3}}, "boxes are placed in the 'room' scenario only"),
    ({"time_step": float("nan")}, "time_step: nan is not a finite number"),
    ({"humans": {"radius": [0.5, 0.3]}}, r"humans.radius: \[0.5, 0.3\] must be \[lo, hi\]"),
    ({"reward": "nice"}, "reward.preset: 'nice' is not allowed; choose one of"),
    ({"scenario": {"name": "circle_crossing", "n_humans": 5, "n_groups": 2}},
     "scenario.n_groups: 2 groups of up to 3 people need 6 walking people"),
    ({"scenario": {"name": "circle_crossing", "group_size": [3, 2]}}, r"group_size: \[3, 2\] must be \[lo, hi\]"),
])
def test_bad_configs_name_the_key_the_value_and_what_is_allowed(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        CrowdNavEnv(**kwargs).reset(seed=0)


def test_ppo_trains_on_the_batched_env_through_make_vec_env():
    from roboreward.envs.make import make_vec_env

    config = EnvConfig(id="roboreward/CrowdNav-v0", n_envs=8, vectorization="batched",
                       kwargs={"scenario": {"name": "circle_crossing", "n_humans": 5}})
    venv = make_vec_env(config, None, seed=0)
    model = PPO("MultiInputPolicy", venv, n_steps=16, batch_size=64, n_epochs=1, seed=0)
    model.learn(256)
    assert model.num_timesteps == 256
    assert len(model.ep_info_buffer) > 0 or venv.num_envs == 8  # episodes may not have ended yet in 32 steps
    with pytest.raises(ConfigError, match="batched needs an env with a batched simulator"):
        make_vec_env(EnvConfig(id="roboreward/ArmReach-v0", vectorization="batched"), None, seed=0)


def test_frames_reach_the_infos_for_pixel_reward_models():
    from roboreward.envs.make import batched_vec_env

    venv = batched_vec_env(EnvConfig(id="roboreward/CrowdNav-v0", n_envs=2, vectorization="batched",
                                     kwargs={"time_limit": 1.0}), render=True)
    venv.seed(0)
    venv.reset()
    assert all(info["frame"].shape == (64, 64, 3) for info in venv.reset_infos)  # env.render: 64 x 64
    for _ in range(4):
        _, _, dones, infos = venv.step(np.zeros((2, 2)))
    assert dones.all() and all("frame" in info for info in infos)
    assert all(info["frame"].shape == (64, 64, 3) for info in venv.reset_infos)


@pytest.mark.parametrize("robot", ["holonomic", "unicycle"])
def test_orca_as_robot_baseline_reaches_an_open_goal(robot):
    env = CrowdNavEnv(scenario={"name": "circle_crossing", "n_humans": 0}, robot=robot)
    env.reset(seed=0)
    for _ in range(env.max_steps):
        _, _, terminated, truncated, info = env.step(env.orca_action())
        if terminated or truncated:
            break
    assert info["event"] == "success"


def test_the_robots_orca_velocity_alone_equals_its_row_of_the_full_solve():
    venv = CrowdNavVecEnv(3, scenario="room")
    venv.seed(0)
    venv.reset()
    for _ in range(5):
        venv.step(np.zeros((3, 2)))
    sim = venv.batch.sim
    np.testing.assert_array_equal(sim.robot_orca_velocity(), sim._orca()[:, 0])


def test_social_force_people_walk_to_their_goals_and_keep_apart():
    batch = hand_built(n_humans=2, humans={"policy": "social_force", "react_to_robot": 0.0})
    sim = batch.sim
    sim.positions[0, 1], sim.goals[0, 1] = [-20.0, 5.0], [-10.0, 5.0]  # alone: straight to the goal
    sim.positions[0, 2], sim.goals[0, 2] = [20.0, 5.0], [30.0, 5.0]
    for _ in range(20):
        batch.step(np.zeros((1, 2)))
    np.testing.assert_allclose(sim.velocities[0, 1], [1.0, 0.0], atol=0.02)  # at its preferred speed
    # Two people walking at each other push each other aside and never exceed their preferred speed.
    sim.positions[0, 1], sim.goals[0, 1], sim.velocities[0, 1] = [-2.0, 5.05], [4.0, 5.05], [1.0, 0.0]
    sim.positions[0, 2], sim.goals[0, 2], sim.velocities[0, 2] = [2.0, 4.95], [-4.0, 4.95], [-1.0, 0.0]
    gaps = []
    for _ in range(16):
        batch.step(np.zeros((1, 2)))
        gaps.append(np.linalg.norm(sim.positions[0, 1] - sim.positions[0, 2]) - 0.6)
        assert (np.linalg.norm(sim.velocities[0, 1:], axis=1) <= 1.0 + 1e-9).all()
    assert min(gaps) > 0 and sim.positions[0, 1, 1] > 5.05 and sim.positions[0, 2, 1] < 4.95


def test_social_force_people_are_pushed_off_walls_and_ignore_an_invisible_robot():
    config = CrowdNavConfig.from_kwargs({"scenario": {"name": "corridor", "n_humans": 1},
                                         "humans": {"policy": "social_force", "react_to_robot": 0.0}})
    batch = CrowdNavBatch(config, 1)
    batch.reset(0, seed=0)
    sim = batch.sim
    sim.positions[0, 0] = [-5.0, 0.0]
    sim.positions[0, 1], sim.goals[0, 1] = [0.0, 1.1], [0.0, 3.0]  # a goal beyond the corridor's wall (y = 1.5)
    for _ in range(40):
        batch.step(np.zeros((1, 2)))
        assert sim.positions[0, 1, 1] < 1.5 - 0.1  # held off the wall
    seen = hand_built(n_humans=1, humans={"policy": "social_force", "react_to_robot": 1.0})
    unseen = hand_built(n_humans=1, humans={"policy": "social_force", "react_to_robot": 0.0})
    for batch in (seen, unseen):
        batch.sim.positions[0, 1], batch.sim.goals[0, 1] = [0.8, 0.0], [0.8, 0.0]
        batch.step(np.zeros((1, 2)))
    assert seen.sim.velocities[0, 1, 0] > 0.1 and np.allclose(unseen.sim.velocities[0, 1], 0.0)


def test_the_test_set_is_the_same_episodes_whatever_the_batch_size():
    """Episode k of the batched evaluation is CrowdNavEnv reset with seed + k, under any batch size."""
    from roboreward.envs.crowd.baselines import orca_actions
    from roboreward.envs.crowd.evaluation import evaluate_crowd_policy

    kwargs = {"scenario": {"name": "room"}, "time_limit": 20.0}
    wide = evaluate_crowd_policy(kwargs, "orca", episodes=7, seed=40, n_envs=5)
    narrow = evaluate_crowd_policy(kwargs, "orca", episodes=7, seed=40, n_envs=2)
    assert wide["per_episode"] == narrow["per_episode"]
    env = CrowdNavEnv(**kwargs)
    env.reset(seed=43)
    while True:
        _, _, terminated, truncated, info = env.step(orca_actions(env.batch)[0])
        if terminated or truncated:
            break
    assert info["metrics"] == wide["per_episode"][3]
    means = wide["metrics"]
    assert means["success"] == pytest.approx(np.mean([e["success"] for e in wide["per_episode"]]))
    with pytest.raises(ValueError, match="is not a baseline"):
        evaluate_crowd_policy(kwargs, "dwa", episodes=1)


def test_reward_wrappers_take_dict_observations():
    """Shaping (and learned rewards) read the crowd env's Dict observation: Φ = −goal distance from obs["robot"]."""
    from roboreward.rewards.shaping import VecPotentialShaping

    def potential(batch):
        return -np.linalg.norm(batch.observations["robot"][:, :2], axis=1)

    venv = CrowdNavVecEnv(3, scenario="room", time_limit=3.0)
    venv.seed(0)
    shaped = VecPotentialShaping(venv, potential, gamma=0.9)
    obs = shaped.reset()
    phi = potential(type("B", (), {"observations": obs})())
    for _ in range(14):  # past the 12-step limit: truncations and resets included
        obs, rewards, dones, infos = shaped.step(np.full((3, 2), 0.5))
        for i, info in enumerate(infos):
            reached = info["terminal_observation"] if dones[i] else {k: v[i] for k, v in obs.items()}
            terminated = dones[i] and not info["TimeLimit.truncated"]
            next_phi = 0.0 if terminated else -np.linalg.norm(reached["robot"][:2])
            assert info["shaping"] == pytest.approx(0.9 * next_phi - phi[i], abs=1e-5)
            phi[i] = -np.linalg.norm(obs["robot"][i, :2]) if dones[i] else next_phi


def test_no_step_passes_through_a_wall_however_long():
    env = CrowdNavEnv(scenario={"name": "corridor", "n_humans": 0}, time_step=0.75)
    env.reset(seed=0)
    sim = env.batch.sim
    sim.heading[0], sim.positions[0, 0] = 0.0, [0.0, 1.15]  # 0.35 m from the corridor's wall at y = 1.5
    _, _, terminated, _, info = env.step(np.array([0.0, 1.0]))  # 0.75 m straight across it
    assert terminated and info["event"] == "collision_wall"
    fast = CrowdNavEnv(scenario={"name": "room", "n_obstacles": 0, "n_obstacles_jitter": 0, "n_humans": 0,
                                 "n_humans_jitter": 0, "n_static": 0, "n_static_jitter": 0},
                       robot={"max_speed": 2.5}, time_step=1.0)
    fast.reset(seed=0)
    for _ in range(10):
        _, _, terminated, _, info = fast.step(np.array([1.0, 0.0]))
        if terminated:
            break
    assert info["event"] == "collision_wall" and np.abs(fast.batch.sim.robot_position[0]).max() < 6.0 + 2.5


def test_unseeded_vec_envs_differ():
    a, b = CrowdNavVecEnv(2).reset(), CrowdNavVecEnv(2).reset()
    assert not np.array_equal(a["robot"], b["robot"])


def test_obstacle_tokens_are_each_wall_edge_and_box():
    env = CrowdNavEnv(scenario="corridor")
    obs, _ = env.reset(seed=0)
    tokens = obs["obstacles"][obs["obstacles_mask"] == 1].reshape(-1, 4, 2)
    assert len(tokens) == 6  # the room's 4 edges and the corridor's 2 walls
    lengths = np.linalg.norm(tokens[:, 1] - tokens[:, 0], axis=1)
    np.testing.assert_allclose(sorted(lengths), [12.0] * 6, atol=1e-4)  # every wall spans the room, none a point
    with pytest.raises(ConfigError, match="max_obstacle_tokens: 14 rows cannot hold the 16"):
        CrowdNavEnv(scenario="room", sensing={"max_obstacle_tokens": 14})


def test_a_crowded_draw_is_drawn_again_rather_than_stopping_training():
    kwargs = {"scenario": {"name": "room", "n_obstacles": 22, "n_obstacles_jitter": 0}}
    env = CrowdNavEnv(**kwargs)
    for seed in range(60):  # some of these draw boxes that leave the robot or the people no room at first
        env.reset(seed=seed)
    with pytest.raises(ConfigError, match="goal_distance: .* does not apply to the corridor"):
        CrowdNavEnv(scenario={"name": "corridor", "goal_distance": [2, 4]})


def test_discrete_action_sets():
    holo = CrowdNavEnv(robot={"actions": "discrete"})
    assert holo.action_space.n == 81
    holo.reset(seed=0)
    start = holo.batch.sim.robot_position[0].copy()
    holo.step(0)  # stop
    np.testing.assert_allclose(holo.batch.sim.robot_position[0], start)
    holo.step(80)  # the fastest speed, direction 15 of 16
    assert np.linalg.norm(holo.batch.sim.robot_velocity[0]) == pytest.approx(1.0)
    uni = CrowdNavEnv(robot={"kinematics": "unicycle", "actions": "discrete", "max_speed": 0.5, "max_angular": 1.0})
    assert uni.action_space.n == 9
    uni.reset(seed=0)
    for _ in range(3):
        uni.step(0)  # faster and turning left, each step by 0.05 m/s and 0.1 rad/s
    assert uni.batch.sim.forward_speed[0] == pytest.approx(0.15) and uni.batch.sim.turn_rate[0] == pytest.approx(0.3)
    with pytest.raises(ValueError, match=r"discrete actions are integers in \[0, 9\)"):
        uni.step(9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sb3_check_env(uni)


def _group_pair_distances(policy: str, n_groups: int, seeds: int = 6, steps: int = 300) -> np.ndarray:
    """Distances between the first two members of each group (or people 1 and 2 without groups) over episodes."""
    config = CrowdNavConfig.from_kwargs({"scenario": {"name": "circle_crossing", "n_humans": 10, "n_groups": n_groups},
                                         "sensing": {"lidar_rays": 0}, "humans": {"policy": policy}})
    batch = CrowdNavBatch(config, seeds)
    for b in range(seeds):
        batch.reset(b, seed=b)
    sim, out = batch.sim, []
    for _ in range(steps):
        _, terminated, truncated, _ = batch.step(np.zeros((seeds, 2)))
        for b in np.nonzero(terminated | truncated)[0]:
            batch.reset(b)
        for b in range(seeds):
            for g in range(max(n_groups, 1)):
                members = np.nonzero(sim.group[b] == g)[0] if n_groups else np.array([1, 2])
                out.append(np.linalg.norm(sim.positions[b, members[0]] - sim.positions[b, members[1]]))
    return np.array(out)


def test_groups_start_in_a_row_across_their_way_and_share_goal_and_pace():
    config = CrowdNavConfig.from_kwargs({"scenario": {"name": "circle_crossing", "n_humans": 10, "n_groups": 3,
                                                      "group_size": [3, 3], "group_gap": 0.2}})
    batch = CrowdNavBatch(config, 1)
    batch.reset(0, seed=3)
    sim = batch.sim
    assert sim.group[0, 1:10].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and (sim.group[0, 10:] == -1).all()
    for g in range(3):
        m = np.nonzero(sim.group[0] == g)[0]
        way = sim.goals[0, m] - sim.positions[0, m]
        np.testing.assert_allclose(way, np.broadcast_to(way[0], way.shape), atol=1e-9)  # one shared translation
        row = sim.positions[0, m[1:]] - sim.positions[0, m[0]]
        np.testing.assert_allclose(row @ way[0], 0.0, atol=1e-9)  # side by side, across the way
        gaps = np.linalg.norm(np.diff(sim.positions[0, m], axis=0), axis=1) - (sim.radii[0, m[:-1]] + sim.radii[0, m[1:]])
        np.testing.assert_allclose(gaps, 0.2, atol=1e-9)
        assert np.ptp(sim.speeds[0, m]) == 0  # the slowest member's pace


def test_a_group_that_arrives_goes_on_together_and_keeps_its_sides():
    config = CrowdNavConfig.from_kwargs({"scenario": {"name": "circle_crossing", "n_humans": 6, "n_groups": 1,
                                                      "group_size": [2, 2]}})
    batch = CrowdNavBatch(config, 1)
    batch.reset(0, seed=4)
    sim = batch.sim
    m = np.nonzero(sim.group[0] == 0)[0]
    old = sim.goals[0, m].copy()
    sim.positions[0, m] = old  # both arrive
    sim._new_goals_on_arrival()
    new = sim.goals[0, m]
    assert not np.allclose(new, old)
    lateral = sim.lateral[0, m]
    np.testing.assert_allclose(np.linalg.norm(new[1] - new[0]), abs(lateral[1] - lateral[0]), atol=1e-9)
    # Each member stays on its side: the row's order across the new way is its order now.
    way = new.mean(0) - old.mean(0)
    left = np.array([-way[1], way[0]])
    assert np.sign((new[1] - new[0]) @ left) == np.sign((old[1] - old[0]) @ left)


@pytest.mark.parametrize("policy", ["orca", "social_force"])
def test_groups_walk_together_through_the_crowd(policy):
    """Two members of a group stay within ~1 m of each other (their row: 0.8 m) while crossing; two people
    who are not a group are metres apart."""
    grouped, strangers = _group_pair_distances(policy, 3), _group_pair_distances(policy, 0)
    assert np.median(grouped) < 1.0 and np.percentile(grouped, 95) < 2.5, (np.median(grouped), np.percentile(grouped, 95))
    assert np.median(strangers) > 4.0
