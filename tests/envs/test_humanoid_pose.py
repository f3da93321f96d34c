"""The VLM-RM humanoid: hand-written pose checks, episode end, the camera, and the pose configs."""

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import roboreward.envs  # noqa: F401  (registers the ids)
from roboreward.envs.humanoid_pose import POSE_TASKS, HumanoidPoseEnv, lowest_point
from roboreward.experiment import load_experiment
from roboreward.rewards.clip import ClipRewardConfig

ENV_ID = "roboreward/HumanoidPose-v0"
CONFIGS = Path(__file__).resolve().parents[2] / "configs"

# Hand-built poses, one per task: joint angles in degrees (others 0, the standing reference pose)
# and the torso's orientation (w, x, y, z); set_pose lowers each onto the floor. Found by searching
# the joint ranges for poses that pass with a margin; each also looks like its name when rendered.
UPRIGHT = (1.0, 0.0, 0.0, 0.0)
POSES: dict[str, tuple[dict[str, float], tuple[float, float, float, float]]] = {
    "standing_up": ({}, UPRIGHT),
    "arms_raised": (
        {"right_shoulder1": -85, "right_shoulder2": 18, "right_elbow": -90,
         "left_shoulder1": 85, "left_shoulder2": -18, "left_elbow": -90},
        UPRIGHT,
    ),
    # Shins back along the floor, thighs vertical: upright kneeling.
    "kneeling": ({"right_knee": -90, "left_knee": -90}, UPRIGHT),
    # Thighs forward and turned out, shins folded in, pelvis tilted back onto the buttocks.
    "lotus": (
        {"right_hip_x": -20, "right_hip_z": -60, "right_hip_y": -80, "right_knee": -160,
         "left_hip_x": -20, "left_hip_z": -60, "left_hip_y": -80, "left_knee": -160, "abdomen_y": -70},
        UPRIGHT,
    ),
    # The widest split the hips allow (right leg flexed 110 and turned out, left extended 20): a
    # diagonal split of ~167 degrees, the body rolled and pitched so both legs lie on the floor.
    "splits": (
        {"right_hip_x": -25, "right_hip_z": -60, "right_hip_y": -110, "right_knee": -2,
         "left_hip_x": -25, "left_hip_z": 30, "left_hip_y": 20, "left_knee": -2,
         "abdomen_y": -30, "abdomen_x": 25, "abdomen_z": -15},
        (0.933, 0.25, 0.25, -0.067),
    ),
    "hands_on_hips": (
        {"right_shoulder1": 44, "right_shoulder2": -77, "right_elbow": -12,
         "left_shoulder1": -44, "left_shoulder2": 77, "left_elbow": -12},
        UPRIGHT,
    ),
    # Right thigh forward and horizontal, shin hanging down: the right foot ~0.4 m up.
    "one_leg": ({"right_hip_y": -90, "right_knee": -90}, UPRIGHT),
    # Forearms crossing in front of the belly, the right one below the left.
    "arms_crossed": (
        {"right_shoulder1": 60, "right_shoulder2": 10, "right_elbow": -60,
         "left_shoulder1": -60, "left_shoulder2": -10, "left_elbow": -40},
        UPRIGHT,
    ),
}
STANDING_POSES = {"standing_up", "arms_raised", "hands_on_hips", "one_leg", "arms_crossed"}


@pytest.fixture(scope="module")
def env():
    env = HumanoidPoseEnv(render_mode="rgb_array", width=96, height=96)
    env.reset(seed=0)
    yield env
    env.close()


def passing(env) -> set[str]:
    return {name for name, task in POSE_TASKS.items() if task.check(env.model, env.data)[1]}


def test_every_task_has_a_hand_built_pose_and_a_documented_check():
    assert set(POSES) == set(POSE_TASKS)
    for task in POSE_TASKS.values():
        assert task.goal_prompts and task.baseline_prompts == ["a humanoid robot"]
        assert "humanoid robot" in task.goal_prompts[0]
        assert ">=" in task.description or "<=" in task.description  # thresholds are spelled out


@pytest.mark.parametrize("name", list(POSES))
def test_hand_built_pose_passes_its_check_and_no_other(env, name):
    joints, orientation = POSES[name]
    env.set_pose(joints, orientation)
    assert lowest_point(env.model, env.data) == pytest.approx(0.0, abs=1e-9)
    failed = [c for c in POSE_TASKS[name].explain(env.model, env.data) if not c.passed]
    assert not failed, failed
    assert POSE_TASKS[name].check(env.model, env.data) == (1.0, True)
    # Only standing poses also count as standing up; no other check accepts another task's pose.
    assert passing(env) == {name} | ({"standing_up"} if name in STANDING_POSES else set())


@pytest.mark.parametrize("name", [n for n, (_, q) in POSES.items() if q == UPRIGHT and n != "standing_up"])
def test_scores_are_dense_halfway_to_a_pose_scores_in_between(env, name):
    joints, _ = POSES[name]
    scores = []
    for fraction in (0.0, 0.5, 1.0):  # 0: the reference pose (knees at 0, just past their -2 degree limit)
        env.set_pose({joint: fraction * angle for joint, angle in joints.items()} if fraction else {})
        scores.append(POSE_TASKS[name].check(env.model, env.data)[0])
    assert 0.0 <= scores[0] < scores[1] < scores[2] == 1.0


def test_default_standing_pose_passes_standing_up_only(env):
    env.reset(seed=0)  # torso at 1.4 m, feet just above the floor
    assert passing(env) == {"standing_up"}
    env.set_pose({})  # the same pose, feet on the floor
    assert passing(env) == {"standing_up"}
    for name, task in POSE_TASKS.items():
        score, success = task.check(env.model, env.data)
        assert 0.0 <= score <= 1.0 and (score == 1.0) == success, name


def test_lying_down_is_no_pose():
    env = HumanoidPoseEnv()
    env.set_pose({}, orientation=(np.cos(np.pi / 4), 0.0, np.sin(np.pi / 4), 0.0))  # face down, on the hands
    assert env.data.qpos[2] < 0.5 and passing(env) == set()


def test_reward_is_the_pose_score_plus_control_cost_and_success_is_the_check():
    env = gym.make(ENV_ID, task="standing_up")
    env.reset(seed=0)
    action = np.full(17, 0.2, dtype=np.float32)
    _, reward, terminated, truncated, info = env.step(action)
    assert info["reward_pose"] == pytest.approx(info["pose_score"]) and info["reward_pose"] == 1.0
    assert info["reward_ctrl"] == pytest.approx(-0.05 * 17 * 0.2**2)
    assert reward == pytest.approx(info["reward_pose"] + info["reward_ctrl"])
    assert info["is_success"] is True and not terminated and not truncated
    env.close()

    env = gym.make(ENV_ID, task="kneeling")
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.zeros(17, dtype=np.float32))
    assert info["is_success"] is False and 0.0 < info["reward_pose"] < 1.0
    assert reward == pytest.approx(info["reward_pose"]) and info["reward_ctrl"] == 0.0
    env.close()


def test_without_a_task_the_reward_is_standing_and_there_is_no_success():
    env = gym.make(ENV_ID)
    _, info = env.reset(seed=0)
    assert info["is_success"] is False
    _, reward, _, _, info = env.step(np.zeros(17, dtype=np.float32))
    assert set(k for k in info if k.startswith("reward_")) == {"reward_standing", "reward_ctrl"}
    assert info["reward_standing"] == 1.0 == reward and info["is_success"] is False
    env.close()


def test_unknown_task_and_impossible_poses_are_refused():
    with pytest.raises(ValueError, match="task='sitting' is not a pose task; choose one of"):
        HumanoidPoseEnv(task="sitting")
    with pytest.raises(ValueError, match=r"joint 'right_knee' at 30 degrees is outside its range \[-160, -2\]"):
        HumanoidPoseEnv().set_pose({"right_knee": 30})


def test_fixed_length_never_terminates_and_the_other_mode_ends_when_the_torso_drops():
    zero = np.zeros(17, dtype=np.float32)
    fixed = gym.make(ENV_ID, task="kneeling")  # the registered default: fixed_length=True
    fixed.reset(seed=0)
    for step in range(1, 101):
        _, _, terminated, truncated, info = fixed.step(zero)
        assert not terminated
    assert truncated and step == 100 and info["torso_height"] < 0.5  # fell over, and the episode ran on

    falling = gym.make(ENV_ID, task="kneeling", fixed_length=False)
    falling.reset(seed=0)
    for step in range(1, 101):
        _, _, terminated, truncated, info = falling.step(zero)
        if terminated:
            break
    assert terminated and not truncated and step < 100 and info["torso_height"] <= 1.0
    fixed.close()
    falling.close()


def body_mask(env) -> np.ndarray:
    """Pixels where the body is: the frame against the same frame with the body's geoms invisible."""
    frame = env.render()
    rgba = env.model.geom_rgba.copy()
    env.model.geom_rgba[env.model.geom_bodyid > 0, 3] = 0.0
    try:
        background = env.render()
    finally:
        env.model.geom_rgba[:] = rgba
    return np.abs(frame.astype(int) - background.astype(int)).max(axis=2) > 30


def assert_whole_body_in_view(mask: np.ndarray, min_pixels: int) -> None:
    ys, xs = np.nonzero(mask)
    assert len(ys) >= min_pixels
    h, w = mask.shape
    assert ys.min() > 0 and xs.min() > 0 and ys.max() < h - 1 and xs.max() < w - 1  # nothing cut off


def test_frame_shows_the_whole_body_in_a_sky_and_grass_scene(env):
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (96, 96, 3) and frame.dtype == np.uint8
    mask = body_mask(env)
    assert_whole_body_in_view(mask, min_pixels=150)
    top, bottom = frame[:10][~mask[:10]].mean(axis=0), frame[-10:][~mask[-10:]].mean(axis=0)
    assert top[2] > top[0] + 30  # blue sky above
    assert bottom[1] > bottom[0] + 30 and bottom[1] > bottom[2] + 30  # green grass below
    body = frame[mask].mean(axis=0)
    assert body.min() > 100 and np.ptp(body) < 40  # a light grey body, unlike sky and grass


@pytest.mark.parametrize("name", ["arms_raised", "splits", "lotus"])
def test_camera_frames_the_whole_body_in_tall_and_low_poses(env, name):
    env.set_pose(*POSES[name])
    assert_whole_body_in_view(body_mask(env), min_pixels=100)


@pytest.mark.parametrize("yaw", [0.0, 90.0])
def test_camera_keeps_a_body_lying_flat_in_view(env, yaw):
    # face down along x (across the view), then turned to lie along y (towards/away from the camera)
    half = np.radians(yaw) / 2
    face_down = np.array([np.cos(np.pi / 4), 0.0, np.sin(np.pi / 4), 0.0])
    turn = np.array([np.cos(half), 0.0, 0.0, np.sin(half)])
    w1, v1, w2, v2 = turn[0], turn[1:], face_down[0], face_down[1:]
    quat = np.concatenate([[w1 * w2 - v1 @ v2], w1 * v2 + w2 * v1 + np.cross(v1, v2)])
    env.set_pose({}, orientation=quat, xy=(3.0, -2.0))
    assert env.data.qpos[2] < 0.5
    assert_whole_body_in_view(body_mask(env), min_pixels=60)


def test_camera_follows_the_body_when_it_falls():
    env = HumanoidPoseEnv(render_mode="rgb_array", width=96, height=96)
    env.reset(seed=1)
    standing = body_mask(env)
    for _ in range(100):
        env.step(np.zeros(17, dtype=np.float32))
    assert env.data.qpos[2] < 0.3  # fallen
    fallen = body_mask(env)
    assert_whole_body_in_view(fallen, min_pixels=60)
    # The camera tracks the centre of mass down, so the fallen body is still near the frame's middle.
    assert abs(np.nonzero(fallen)[0].mean() - 48) < 20 and abs(np.nonzero(standing)[0].mean() - 48) < 20
    env.close()


@pytest.mark.parametrize("name", list(POSE_TASKS))
def test_config_prompts_are_the_tasks(name):
    cfg = load_experiment(CONFIGS / f"humanoid_{name}.yaml")
    assert cfg.env.id == ENV_ID and cfg.env.kwargs == {"task": name}
    assert (cfg.env.render.width, cfg.env.render.height, cfg.env.render.camera) == (224, 224, None)
    assert isinstance(cfg.reward, ClipRewardConfig) and cfg.reward.model == "ViT-B-32"
    assert cfg.reward.goal_prompts == POSE_TASKS[name].goal_prompts
    assert cfg.reward.baseline_prompts == POSE_TASKS[name].baseline_prompts
    assert cfg.algo.name == "sac"


def test_every_humanoid_config_is_a_task():
    assert {p.stem.removeprefix("humanoid_") for p in CONFIGS.glob("humanoid_*.yaml")} == set(POSE_TASKS)
