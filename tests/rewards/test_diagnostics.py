"""Reward diagnostics: episode scores, rollout specs, and `roboreward rewards evaluate` end to end on a
Meta-World dataset recorded here (real MuJoCo, real EfficientNet-Lite0 features)."""

import json
from dataclasses import dataclass

import numpy as np
import pytest

from roboreward.errors import ConfigError
from roboreward.rewards.base import RewardConfig, RewardModel
from roboreward.rewards.diagnostics.episodes import episode_score, parse_rollouts


# ---------------------------------------------------------------------------- episodes
def test_episode_scores():
    r = np.array([0.0, 3.0, 1.0])
    assert (episode_score(r, "max"), episode_score(r, "final")) == (3.0, 1.0)
    assert episode_score(r, "mean") == pytest.approx(4 / 3)
    with pytest.raises(ValueError, match="choose one of"):
        episode_score(r, "median")


def test_parse_rollouts(tmp_path):
    assert parse_rollouts("random:7") == ("random", 7)
    assert parse_rollouts("none") is None and parse_rollouts(None) is None
    assert parse_rollouts(str(tmp_path)) == ("dataset", str(tmp_path))
    with pytest.raises(ValueError, match="random:N"):
        parse_rollouts("random:0")
    with pytest.raises(ConfigError, match="neither random:N nor a dataset"):
        parse_rollouts(str(tmp_path / "missing"))


# ---------------------------------------------------------------------------- end to end
STEPS = 60


@pytest.fixture(scope="module")
def reach_demos(tmp_path_factory):
    from roboreward.datasets.record import record_scripted_demos

    out = tmp_path_factory.mktemp("diagnostics") / "reach"
    summary = record_scripted_demos(
        "reach", out, episodes=3, cameras=["corner3", "topview"], width=64, height=64, max_steps=STEPS, progress=False
    )
    assert summary.successes == 3
    return out


def write_config(path, reward: dict) -> None:
    import yaml

    config = {
        "name": "reach_reward_eval",
        "runs_dir": str(path.parent / "runs"),
        "env": {"id": "roboreward/MetaWorld-Reach-v3", "n_envs": 1,
                "render": {"width": 64, "height": 64, "camera": "corner3"}},
        "reward": reward,
        "eval": {"video_size": 128},
    }
    path.write_text(yaml.safe_dump(config))


def test_cli_evaluates_goal_image_reward_on_demos_and_random_rollouts(reach_demos, tmp_path, capsys):
    import imageio.v2 as imageio

    from roboreward.cli import main
    from roboreward.datasets.lerobot_v3 import DatasetReader

    goal = tmp_path / "goal.npy"  # the goal: the last frames of demo 0; demos 1 and 2 are evaluated
    np.save(goal, DatasetReader(reach_demos).frames(0, "corner3"))
    config = tmp_path / "goal_image.yaml"
    write_config(config, {"type": "goal_image", "goal_source": "images", "goal_images": [str(goal)]})
    out = tmp_path / "eval"
    rc = main(["rewards", "evaluate", str(config), "algo.hyperparams.gamma=0.9", "--demos", str(reach_demos),
               "--episodes", "1", "2", "--rollouts", "random:2", "--max-steps", str(STEPS), "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "VOC (shuffled frames)" in printed and "ROC-AUC" in printed

    m = json.loads((out / "metrics.json").read_text())
    assert m["reward"] == "goal_image" and m["demos"]["episodes"] == [1, 2] and m["demos"]["held_out"] is None
    assert m["rollouts"]["source"] == "random:2" and m["rollouts"]["episodes"] == 2
    assert [(e["source"], e["length"]) for e in m["episodes"]] == [("demos", STEPS)] * 2 + [("rollouts", STEPS + 1)] * 2
    # the arm closing in on the goal pose looks more and more like the goal image
    assert m["voc"]["n"] == 2 and m["voc"]["mean"] > 0.7
    assert m["spearman"]["demos_time"]["mean"] == pytest.approx(m["voc"]["mean"])  # it scores frames one by one
    assert m["spearman"]["demos_true_reward"]["n"] == 2 and m["spearman"]["demos_true_reward"]["mean"] > 0.5
    assert m["spearman"]["rollouts_true_reward"]["n"] == 2
    s = m["success_detection"]
    successes = 2 + m["rollouts"]["successful"]
    assert (s["n_success"], s["n_failure"]) == (successes, 4 - successes)
    assert s["score"] == "max" and s["auc"] is not None and s["auc"] >= 0.75
    assert m["starc"]["gamma"] == 0.9
    assert m["starc"]["demos"]["transitions"] == 2 * (STEPS - 1) and m["starc"]["rollouts"]["transitions"] == 2 * STEPS
    assert m["starc"]["all"]["transitions"] == 2 * (STEPS - 1) + 2 * STEPS
    assert all(0.0 <= m["starc"][k]["distance"] <= 1.0 for k in ("all", "demos", "rollouts"))
    assert m["starc"]["demos"]["distance"] < 0.6  # tracks Meta-World's reward on the demos better than chance

    png = imageio.imread(out / "reward_vs_progress.png")
    assert png.shape[0] > 300 and png.shape[1] > 600 and png.std() > 20
    video = np.stack([frame for frame in imageio.get_reader(out / "rewards.mp4")])  # (list() trips on nframes=inf)
    assert video.shape == (2 * STEPS + 2 * (STEPS + 1), 128 + 48, 128, 3)
    assert np.abs(np.diff(video[:, :128].astype(np.int16), axis=0)).mean() > 0.5  # the arm moves
    assert np.abs(video[STEPS - 1, 128:].astype(int) - video[0, 128:].astype(int)).sum() > 0  # the curve grows


def test_cli_takes_a_run_folder_and_holds_out_the_demos_the_reward_learned_from(reach_demos, tmp_path, capsys):
    from roboreward.cli import main
    from roboreward.config import save_config
    from roboreward.experiment import load_experiment

    config = tmp_path / "perceptual.yaml"
    write_config(config, {"type": "perceptual", "demos": str(reach_demos), "camera": "corner3", "episodes": [0],
                          "steps": 3, "blocks": 6})  # 6 of EfficientNet's 16 blocks: a cheaper fit
    run = tmp_path / "runs" / "reach-20260101-000000"
    run.mkdir(parents=True)
    save_config(load_experiment(config), run / "config.yaml")
    # rollouts from a dataset: the same successful demos, so there are no failures to tell apart
    rc = main(["rewards", "evaluate", str(run), "--demos", str(reach_demos), "--rollouts", str(reach_demos),
               "--no-video"])
    assert rc == 0
    out = run / "reward_eval"
    m = json.loads((out / "metrics.json").read_text())
    assert m["demos"]["episodes"] == [1, 2] and m["demos"]["held_out"] is True  # episode 0 fitted the reward
    assert m["rollouts"]["source"] == str(reach_demos) and m["rollouts"]["episodes"] == 3
    assert m["spearman"]["rollouts_true_reward"]["n"] == 3 and m["voc"]["n"] == 2
    s = m["success_detection"]
    assert (s["n_success"], s["n_failure"], s["accuracy"], s["auc"]) == (5, 0, None, None)
    assert any("needs >= 2 successful and >= 2 failed" in n for n in m["notes"])
    assert (out / "reward_vs_progress.png").is_file() and not (out / "rewards.mp4").exists()
    assert "note: no success/failure accuracy" in capsys.readouterr().out

    rc = main(["rewards", "evaluate", str(run), "--demos", str(reach_demos), "--episodes", "0", "1",
               "--rollouts", "none", "--no-video", "--out", str(tmp_path / "overlap")])
    assert rc == 0
    m = json.loads((tmp_path / "overlap" / "metrics.json").read_text())
    assert m["demos"]["held_out"] is False
    assert any("[0] are ones the reward model learned from" in n for n in m["notes"])


def test_cli_errors_name_the_problem_and_the_fix(reach_demos, tmp_path, capsys):
    from roboreward.cli import main

    config = tmp_path / "goal_image.yaml"
    write_config(config, {"type": "goal_image", "goal_source": "images", "goal_images": [str(tmp_path / "g.npy")]})
    np.save(tmp_path / "g.npy", np.zeros((2, 64, 64, 3), dtype=np.uint8))
    env_config = tmp_path / "env.yaml"
    write_config(env_config, {"type": "env"})
    cases = [
        ([str(config), "--demos", str(tmp_path / "nope")], "is not a dataset folder; record one first"),
        ([str(config), "--demos", str(reach_demos), "--rollouts", "random:x"], "write random:N"),
        ([str(config), "--demos", str(reach_demos), "--camera", "gripperPOV"], "'gripperPOV' (--camera) is not in"),
        ([str(env_config), "--demos", str(reach_demos)], "needs no diagnostics"),
        ([str(config), "--demos", str(reach_demos), "--episodes", "1", "7"], "--episodes [7] are not in"),
        ([str(tmp_path), "--demos", str(reach_demos)], "without config.yaml"),
        ([str(tmp_path / "missing.yaml"), "--demos", str(reach_demos)], "neither an experiment YAML nor a run folder"),
    ]
    for args, message in cases:
        assert main(["rewards", "evaluate", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("roboreward rewards: error: ") and message in err, (args, err)
    for flag, value, message in (("--gamma", "1.5", "1.5 is too large; it must be <= 1"),
                                 ("--gamma", "nan", "nan is not a finite number"),
                                 ("--max-steps", "0", "0 is too small; it must be >= 1")):
        with pytest.raises(SystemExit) as e:  # argparse names the flag
            main(["rewards", "evaluate", str(config), "--demos", str(reach_demos), flag, value])
        assert e.value.code == 2 and f"argument {flag}: {message}" in capsys.readouterr().err


@RewardConfig.register_subclass("test_two_views")
@dataclass(kw_only=True)
class TwoViewsConfig(RewardConfig):
    pass


class TwoViews(RewardModel):
    """A multi-view model: top view's brightness minus the corner view's, from frames tiled [topview | corner3]."""

    name = "test_two_views"
    config_class = TwoViewsConfig
    required_cameras = ["topview", "corner3"]

    def __init__(self, config):
        super().__init__(config)
        self.shapes = set()

    def compute(self, batch):
        self.shapes.add(batch.frames.shape[1:])
        w = batch.frames.shape[2] // 2
        return batch.frames[:, :, :w].mean(axis=(1, 2, 3)) - batch.frames[:, :, w:].mean(axis=(1, 2, 3))


def test_a_multi_view_model_gets_its_cameras_side_by_side(reach_demos, tmp_path):
    import imageio.v2 as imageio

    from roboreward.datasets.lerobot_v3 import DatasetReader
    from roboreward.experiment import EnvConfig, RenderConfig
    from roboreward.rewards.diagnostics.evaluation import evaluate_reward_model

    model = TwoViews(TwoViewsConfig())
    env = EnvConfig(id="roboreward/MetaWorld-Reach-v3", n_envs=1, render=RenderConfig(camera="corner3"))
    result = evaluate_reward_model(model, reach_demos, episodes=[2], rollouts="random:1", env_config=env, max_steps=5,
                                   out_dir=tmp_path, video_episodes=1, video_size=64)
    assert model.shapes == {(64, 128, 3)}  # demos and rollouts alike
    reader = DatasetReader(reach_demos)
    top, corner = reader.frames(2, "topview").astype(float), reader.frames(2, "corner3").astype(float)
    expected = top.mean(axis=(1, 2, 3)) - corner.mean(axis=(1, 2, 3))
    demo, rollout = result.episodes
    np.testing.assert_allclose(demo.learned, expected, rtol=1e-5)
    assert (demo.source, len(demo), rollout.source, len(rollout)) == ("demos", STEPS, "rollouts", 6)
    video = np.stack([frame for frame in imageio.get_reader(tmp_path / "rewards.mp4")])
    assert video.shape == (STEPS + 6, 64 + 24, 128, 3)  # the tiled views keep their aspect ratio
