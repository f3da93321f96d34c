"""Reward models that plug into any env, and the wrappers that apply them.

``make_reward_model(config)`` builds the model an experiment's ``reward:`` section names.
"""

from roboreward.rewards.base import EnvRewardConfig, RewardBatch, RewardConfig, RewardModel, make_reward_model
from roboreward.rewards.clip import ClipReward, ClipRewardConfig
from roboreward.rewards.goal_image import GoalImageReward, GoalImageRewardConfig

__all__ = [
    "ClipReward",
    "ClipRewardConfig",
    "EnvRewardConfig",
    "GoalImageReward",
    "GoalImageRewardConfig",
    "RewardBatch",
    "RewardConfig",
    "RewardModel",
    "make_reward_model",
]
