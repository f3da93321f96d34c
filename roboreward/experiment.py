"""The schema of an experiment file: env, reward, algorithm, training and evaluation.

The defaults of :class:`ExperimentConfig` are the base every experiment file is laid over: SAC on
``roboreward/ArmReach-v0`` with the offline goal-image reward, a job that trains in minutes.
``configs/arm_reach.yaml`` spells the same values out; a test keeps the two equal. The embedded
default job (``roboreward train`` with no file) is :data:`DEFAULT_JOB`, a file inside the package.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from roboreward.config import ConfigError, bounded
from roboreward.rewards.base import RewardConfig
from roboreward.rewards.goal_image import GoalImageRewardConfig

# `roboreward train` with no file: Meta-World drawer-open learned from demonstrations only.
DEFAULT_JOB = Path(__file__).with_name("default_job.yaml")


@dataclass(kw_only=True)
class RenderConfig:
    """Frames the reward model sees. Shadows, reflections and MSAA cost most of the CPU render time."""

    width: int = bounded(64, "frame width in pixels", ge=8, le=4096)
    height: int = bounded(64, "frame height in pixels", ge=8, le=4096)
    camera: str | None = None  # a camera of the env's model; None = the env's own default camera
    # Several cameras side by side in every frame, [H, len(cameras)·W, 3] (replaces `camera`), for
    # multi-view reward models (progress); needs an env that renders several cameras (Meta-World).
    cameras: list[str] = field(default_factory=list)
    shadows: bool = False
    reflections: bool = False
    multisample: int = bounded(0, "MSAA samples", choices=(0, 2, 4, 8))


@dataclass(kw_only=True)
class EnvConfig:
    id: str = "roboreward/ArmReach-v0"
    n_envs: int = bounded(4, "parallel envs; the reward model scores all of them in one call", ge=1, le=256)
    vectorization: Literal["dummy", "subproc"] = "dummy"  # subproc renders in parallel processes
    kwargs: dict[str, Any] = field(default_factory=dict)  # passed to the env's constructor
    render: RenderConfig = field(default_factory=RenderConfig)


# Defaults tuned for short-horizon arm tasks (50-step episodes, hence gamma 0.95); a config's own
# hyperparams are laid over these, and the saved config.yaml records the merged result.
DEFAULT_HYPERPARAMS: dict[str, dict[str, Any]] = {
    "sac": {
        "learning_rate": 1e-3,
        "buffer_size": 100_000,
        "learning_starts": 1000,
        "batch_size": 256,
        "gamma": 0.95,
        "tau": 0.02,
        "train_freq": 1,
        "gradient_steps": 2,
    },
    "ppo": {
        "learning_rate": 3e-4,
        "n_steps": 256,
        "batch_size": 256,
        "n_epochs": 10,
        "gamma": 0.95,
        "gae_lambda": 0.95,
        "clip_range": 0.2,
    },
}


@dataclass(kw_only=True)
class AlgoConfig:
    name: Literal["sac", "ppo"] = "sac"
    policy: str = "MlpPolicy"
    net_arch: list[int] = bounded([256, 256], "hidden layer sizes of actor and critic")
    # Keyword arguments of the SB3 algorithm's constructor, over DEFAULT_HYPERPARAMS[name];
    # checked against the constructor's signature.
    hyperparams: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.hyperparams = {**DEFAULT_HYPERPARAMS[self.name], **self.hyperparams}
        allowed = set(inspect.signature(self.algorithm_class().__init__).parameters)
        reserved = {"self", "policy", "env", "seed", "device", "tensorboard_log", "verbose", "policy_kwargs", "_init_setup_model"}
        for key in self.hyperparams:
            if key in reserved or key not in allowed:
                raise ConfigError(
                    f"algo.hyperparams.{key}: not a {self.name.upper()} hyperparameter roboreward passes through; "
                    f"allowed: {sorted(allowed - reserved)}"
                )

    def algorithm_class(self):
        import stable_baselines3 as sb3

        return {"sac": sb3.SAC, "ppo": sb3.PPO}[self.name]


@dataclass(kw_only=True)
class TrainConfig:
    total_timesteps: int = bounded(30_000, "env steps over all parallel envs", ge=1)
    checkpoint_every: int = bounded(5_000, "env steps between checkpoints", ge=1)
    keep_checkpoints: int = bounded(2, "newest checkpoints kept on disk", ge=1)
    device: str = "auto"  # auto = CUDA when present
    torch_threads: int | None = bounded(None, "CPU threads for torch; null = torch's default", ge=1)
    progress_bar: bool = True


@dataclass(kw_only=True)
class EvalConfig:
    episodes: int = bounded(20, "evaluation episodes", ge=1)
    deterministic: bool = True
    video: bool = True
    video_episodes: int = bounded(3, "episodes recorded into the video", ge=0)
    video_size: int = bounded(256, "video frame side in pixels", ge=16, le=2048)
    fps: int = bounded(20, "video frame rate", ge=1, le=240)


@dataclass(kw_only=True)
class ShapingConfig:
    """Potential-based shaping of the training reward: ``r' = r + γΦ(s') − Φ(s)``, ``Φ(s') = 0`` when terminated.

    ``r`` is what the ``reward`` section gives — the env's own task reward (``type: env``) or a learned
    one — and ``Φ`` the reward model named here, typically ``type: progress``. ``γ`` is the discount of
    the algorithm that learns (``algo.hyperparams.gamma``): with any other value the shaping stops being
    policy-invariant (see :mod:`roboreward.rewards.shaping`), so ``gamma`` may only say ``auto`` or
    repeat that number. A ``potential`` equal to the ``reward`` section is built once and used for both.
    Shaping applies to training; evaluation reports the unshaped (learned and true) rewards.
    """

    potential: RewardConfig | None = None  # Φ: a reward section (e.g. type: progress); null = no shaping
    gamma: float | str = "auto"  # auto = algo.hyperparams.gamma, the learner's discount

    def __post_init__(self) -> None:
        if isinstance(self.gamma, str) and self.gamma != "auto":
            raise ConfigError(f"shaping.gamma: {self.gamma!r} is not allowed; write auto (the algorithm's gamma)")
        if self.potential is not None and self.potential.type_name == "env":  # type: ignore[attr-defined]
            raise ConfigError(
                "shaping.potential: type env is the env's reward, not a potential; name a reward model such as "
                "type: progress, or set shaping.potential: null"
            )


@dataclass(kw_only=True)
class BehaviourCloningConfig:
    """Start the policy from demonstrations and keep it near them while SAC improves it.

    Off unless ``demos`` names a dataset. The steps — pretraining, demos in the replay buffer, critic
    warm-up, SAC with a BC term in the actor's loss — are explained in :mod:`roboreward.policies.bc`.
    """

    demos: str | None = None  # a LeRobot v3 dataset (`roboreward demos record`); null = no behaviour cloning
    episodes: list[int] = field(default_factory=list)  # [] = every successful episode
    epochs: int = bounded(300, "passes over the demos' (observation, action) pairs when pretraining", ge=0)
    batch_size: int = bounded(256, "pretraining minibatch", ge=1)
    lr: float = bounded(1e-3, "pretraining learning rate (Adam)", gt=0)
    likelihood_weight: float = bounded(0.01, "weight of the log-likelihood term next to the action MSE", ge=0)
    weight: float = bounded(10.0, "BC term in SAC's actor loss (normalised by mean |Q|); 0 = pretraining only", ge=0)
    critic_warmup: int = bounded(1000, "gradient steps that train the critic alone before the actor moves", ge=0)
    demos_in_buffer: bool = True  # seed the replay buffer with the demos, rewarded by the experiment's reward

    @property
    def enabled(self) -> bool:
        return self.demos is not None


@dataclass(kw_only=True)
class ExperimentConfig:
    name: str = "arm_reach_goal_image"
    seed: int = bounded(0, "seeds envs, networks and sampling", ge=0)
    runs_dir: str = "runs"
    env: EnvConfig = field(default_factory=EnvConfig)
    reward: RewardConfig = field(default_factory=GoalImageRewardConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    shaping: ShapingConfig = field(default_factory=ShapingConfig)
    bc: BehaviourCloningConfig = field(default_factory=BehaviourCloningConfig)

    def __post_init__(self) -> None:
        if self.bc.enabled and self.algo.name != "sac":
            raise ConfigError(f"bc: behaviour cloning is built on SAC; set algo.name: sac (got {self.algo.name}) or bc.demos: null")
        gamma = self.shaping.gamma
        if self.shaping.potential is not None and gamma != "auto" and gamma != self.algo.hyperparams["gamma"]:
            raise ConfigError(
                f"shaping.gamma: {gamma} differs from the learner's discount algo.hyperparams.gamma="
                f"{self.algo.hyperparams['gamma']}; shaping with another gamma can change the optimal policy, "
                "so write shaping.gamma: auto"
            )

    @property
    def shaping_gamma(self) -> float:
        """The ``γ`` of the shaping term: the algorithm's discount."""
        return float(self.algo.hyperparams["gamma"])
