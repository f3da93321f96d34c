"""Reward models that plug into any env, and the wrappers that apply them.

``make_reward_model(config)`` builds the model an experiment's ``reward:`` section names.
"""

import importlib

from roboreward.rewards.base import EnvRewardConfig, RewardBatch, RewardConfig, RewardModel, make_reward_model

# Everything else is imported on first use (PEP 562): the models pull in torch and open_clip, and the CLI's
# ROS 2 and teleop commands import this package without needing them.
_LAZY = {
    "ClipReward": "roboreward.rewards.clip",
    "ClipRewardConfig": "roboreward.rewards.clip",
    "GoalImageReward": "roboreward.rewards.goal_image",
    "GoalImageRewardConfig": "roboreward.rewards.goal_image",
    "PerceptualReward": "roboreward.rewards.perceptual",
    "PerceptualRewardConfig": "roboreward.rewards.perceptual",
    "ProgressReport": "roboreward.rewards.progress",
    "ProgressReward": "roboreward.rewards.progress",
    "ProgressRewardConfig": "roboreward.rewards.progress",
    "PotentialShaping": "roboreward.rewards.shaping",
    "VecPotentialShaping": "roboreward.rewards.shaping",
    "clipped_process_reward": "roboreward.rewards.shaping",
    "delta_process_reward": "roboreward.rewards.shaping",
    "gated_accumulation": "roboreward.rewards.shaping",
    "sigmoid_centred_reward": "roboreward.rewards.shaping",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ClipReward",
    "ClipRewardConfig",
    "EnvRewardConfig",
    "GoalImageReward",
    "GoalImageRewardConfig",
    "PerceptualReward",
    "PerceptualRewardConfig",
    "PotentialShaping",
    "ProgressReport",
    "ProgressReward",
    "ProgressRewardConfig",
    "RewardBatch",
    "RewardConfig",
    "RewardModel",
    "VecPotentialShaping",
    "clipped_process_reward",
    "delta_process_reward",
    "gated_accumulation",
    "make_reward_model",
    "sigmoid_centred_reward",
]
