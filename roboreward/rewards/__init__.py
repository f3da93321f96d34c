"""Reward models that plug into any env, and the wrappers that apply them.

``make_reward_model(config)`` builds the model an experiment's ``reward:`` section names.
"""

from roboreward.rewards.base import EnvRewardConfig, RewardBatch, RewardConfig, RewardModel, make_reward_model
from roboreward.rewards.clip import ClipReward, ClipRewardConfig
from roboreward.rewards.goal_image import GoalImageReward, GoalImageRewardConfig
from roboreward.rewards.perceptual import PerceptualReward, PerceptualRewardConfig
from roboreward.rewards.progress import (
    MultiViewRender,
    ProgressReport,
    ProgressReward,
    ProgressRewardConfig,
    split_views,
    tile_views,
)
from roboreward.rewards.shaping import (
    PotentialShaping,
    VecPotentialShaping,
    clipped_process_reward,
    delta_process_reward,
    gated_accumulation,
    sigmoid_centred_reward,
)

__all__ = [
    "ClipReward",
    "ClipRewardConfig",
    "EnvRewardConfig",
    "GoalImageReward",
    "GoalImageRewardConfig",
    "MultiViewRender",
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
    "split_views",
    "tile_views",
]
