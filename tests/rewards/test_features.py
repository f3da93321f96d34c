"""The EfficientNet-Lite0 feature settings that the goal-image, perceptual and progress rewards share:
one set of fields, each reward's defaults, one set of bounds, and the YAML keys the shipped configs use."""

import dataclasses
from pathlib import Path

import pytest

import roboreward
from roboreward.config import from_dict, read_yaml, to_dict
from roboreward.errors import ConfigError
from roboreward.rewards import GoalImageRewardConfig, PerceptualRewardConfig, ProgressRewardConfig, RewardConfig
from roboreward.rewards.features import FeatureSettings

FIELDS = ["blocks", "grid", "input_size", "weights", "cache_size", "device"]
# type: (config class, its defaults of FIELDS)
REWARDS = {
    "goal_image": (GoalImageRewardConfig, (6, 4, None, "imagenet", 4096, "auto")),
    "perceptual": (PerceptualRewardConfig, (11, 2, None, "imagenet", 4096, "auto")),
    "progress": (ProgressRewardConfig, (11, 2, None, "imagenet", 4096, "auto")),
}


@pytest.mark.parametrize("reward_type", REWARDS)
def test_each_reward_inherits_the_feature_fields_with_its_own_defaults(reward_type):
    cls, defaults = REWARDS[reward_type]
    assert issubclass(cls, FeatureSettings) and [f.name for f in dataclasses.fields(FeatureSettings)] == FIELDS
    config = from_dict(RewardConfig, {"type": reward_type})
    assert type(config) is cls
    assert tuple(getattr(config, name) for name in FIELDS) == defaults
    assert set(FIELDS) <= set(to_dict(config))  # saved with the run, under the same keys
    chosen = {"blocks": 9, "grid": 3, "input_size": 96, "weights": "random", "cache_size": 0, "device": "cpu"}
    config = from_dict(RewardConfig, {"type": reward_type, **chosen})
    assert {name: getattr(config, name) for name in FIELDS} == chosen


@pytest.mark.parametrize("reward_type", REWARDS)
@pytest.mark.parametrize("key, value, message", [
    ("blocks", 17, "17 is too large; it must be <= 16"),
    ("blocks", 0, "0 is too small; it must be >= 1"),
    ("grid", 0, "0 is too small; it must be >= 1"),
    ("input_size", 8, "8 is too small; it must be >= 16"),
    ("cache_size", -1, "-1 is too small; it must be >= 0"),
    ("weights", "resnet", "choose one of ['imagenet', 'random']"),
])
def test_the_bounds_are_the_same_for_every_reward(reward_type, key, value, message):
    with pytest.raises(ConfigError) as e:
        from_dict(RewardConfig, {"type": reward_type, key: value})
    assert message in str(e.value)


def test_the_shipped_configs_keep_their_feature_keys_and_values():
    checked = 0
    for path in sorted((Path(roboreward.__file__).parent / "configs").glob("*.yaml")):
        data = read_yaml(path)
        sections = [data.get("reward"), (data.get("shaping") or {}).get("potential")]
        for section in sections:
            if not isinstance(section, dict) or section.get("type") not in REWARDS:
                continue
            written = to_dict(from_dict(RewardConfig, section))
            assert {k: written[k] for k in section} == section, path.name
            checked += any(k in section for k in FIELDS)
    assert checked >= 3  # arm_reach (goal image), perceptual_drawer_open, progress_drawer_open
