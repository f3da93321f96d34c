"""The schema of an experiment file: env, reward, algorithm, training and evaluation.

The defaults of :class:`ExperimentConfig` are the base every experiment file is laid over: SAC on
``roboreward/ArmReach-v0`` with the offline goal-image reward, a job that trains in minutes.
The shipped experiment ``arm_reach`` spells the same values out; a test keeps the two equal. Shipped
experiments live in ``roboreward/configs/`` and are picked by name (:func:`load_experiment`); the
embedded default job (``roboreward train`` with no file) is :data:`DEFAULT_JOB` among them.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from roboreward.config import bounded, from_dict, load_named
from roboreward.errors import ConfigError
from roboreward.rewards.base import RewardConfig
from roboreward.rewards.goal_image import GoalImageRewardConfig

# `roboreward train` with no file: Meta-World drawer-open learned from demonstrations only.
DEFAULT_JOB = "default_job"
# The longest training a config may ask for: far beyond any run (HEIGHT trains 2e8 steps), and a typo
# such as 1e30 stops at once instead of looking like a job that never ends.
MAX_TIMESTEPS = 10**11


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
    # dummy: envs in turn in this process; subproc: in parallel processes; batched: the env's own simulator
    # steps every env in one call (envs listed in roboreward.envs.BATCHED_ENVS, e.g. CrowdNav-v0)
    vectorization: Literal["dummy", "subproc", "batched"] = "dummy"
    # local: the envs run here, as `vectorization` says; ray: in Ray rollout actors (the `ray` section says
    # where and how many envs each), on this machine or a cluster (roboreward.distributed)
    backend: Literal["local", "ray"] = "local"
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
DEFAULT_HYPERPARAMS["recurrent_ppo"] = dict(DEFAULT_HYPERPARAMS["ppo"])


# Hyperparameters an experiment file may set, with the checks SB3 itself leaves to a crash (or to NaN losses)
# mid-training. Defaults are SB3's own; a test keeps these fields equal to the constructors' arguments.
# A rate is a number or ``lin_<number>``: linear decay from that number to 0 over training (rl-zoo's notation).
_SCHEDULE = re.compile(r"^lin_(.+)$")


def _check_rate(key: str, value: float | str) -> None:
    """A positive number, or ``lin_<positive number>``."""
    if isinstance(value, str):
        m = _SCHEDULE.match(value)
        try:
            start = float(m.group(1)) if m else math.nan
        except ValueError:
            start = math.nan
        if not (math.isfinite(start) and start > 0):
            raise ConfigError(
                f"{key}: {value!r} is not a rate; give a number > 0 (e.g. 3e-4) or lin_<number> for a linear decay "
                "to 0 over training (e.g. lin_1e-3)"
            )


def _check_entropy(key: str, value: float | str) -> None:
    """A number (bounds checked by the field), ``auto``, or ``auto_<positive number>`` (SAC's learned coefficient)."""
    if isinstance(value, str):
        m = re.match(r"^auto(?:_(.+))?$", value)
        ok = m is not None
        if m is not None and m.group(1) is not None:
            try:
                ok = math.isfinite(float(m.group(1))) and float(m.group(1)) > 0
            except ValueError:
                ok = False
        if not ok:
            raise ConfigError(
                f"{key}: {value!r} is not allowed; give a number >= 0, auto, or auto_<initial value> (e.g. auto_0.1)"
            )


def schedule(value: float | str) -> float | Callable[[float], float]:
    """What SB3 takes for a rate: the number itself, or for ``lin_X`` a function of the progress left (1 -> 0)."""
    if isinstance(value, str):
        start = float(_SCHEDULE.match(value).group(1))  # type: ignore[union-attr]  # checked when loaded
        return lambda progress_remaining: progress_remaining * start
    return value


@dataclass(kw_only=True)
class SACHyperparams:
    """``algo.hyperparams`` of SAC (stable-baselines3's ``SAC`` arguments that a config can hold)."""

    learning_rate: float | str = bounded(3e-4, "Adam step size, or lin_<number>", gt=0)
    buffer_size: int = bounded(1_000_000, "replay buffer capacity (transitions)", ge=1, le=10**9)
    learning_starts: int = bounded(100, "env steps of random actions before learning", ge=0)
    batch_size: int = bounded(256, "minibatch per gradient step", ge=1, le=10**6)
    tau: float = bounded(0.005, "soft target-network update coefficient", gt=0, le=1)
    gamma: float = bounded(0.99, "discount", gt=0, le=1)
    # An int (env steps), or [N, step] / [N, episode].
    train_freq: int | tuple[int, Literal["step", "episode"]] = bounded(1, "update the model every N steps", ge=1)
    gradient_steps: int = bounded(1, "gradient steps per update; -1 = as many as env steps collected", ge=-1)
    optimize_memory_usage: bool = False
    n_steps: int = bounded(1, "n-step returns", ge=1, le=1000)
    ent_coef: float | str = bounded("auto", "entropy coefficient: a number, auto or auto_<initial>", ge=0)
    target_update_interval: int = bounded(1, "gradient steps between target-network updates", ge=1)
    target_entropy: float | str = "auto"
    use_sde: bool = False
    sde_sample_freq: int = bounded(-1, "resample the gSDE noise every N steps; -1 = at rollout start", ge=-1)
    use_sde_at_warmup: bool = False
    stats_window_size: int = bounded(100, "episodes averaged in rollout/ logs", ge=1)

    def __post_init__(self) -> None:
        _check_rate("algo.hyperparams.learning_rate", self.learning_rate)
        _check_entropy("algo.hyperparams.ent_coef", self.ent_coef)
        if isinstance(self.target_entropy, str) and self.target_entropy != "auto":
            raise ConfigError(f"algo.hyperparams.target_entropy: {self.target_entropy!r} is not allowed; give a number or auto")
        if self.gradient_steps == 0:
            raise ConfigError("algo.hyperparams.gradient_steps: 0 never trains; give a number >= 1, or -1 for as many "
                              "as env steps collected")


@dataclass(kw_only=True)
class PPOHyperparams:
    """``algo.hyperparams`` of PPO (stable-baselines3's ``PPO`` arguments that a config can hold)."""

    learning_rate: float | str = bounded(3e-4, "Adam step size, or lin_<number>", gt=0)
    n_steps: int = bounded(2048, "env steps per env per rollout", ge=1, le=10**7)
    batch_size: int = bounded(64, "minibatch size", ge=1, le=10**7)
    n_epochs: int = bounded(10, "passes over each rollout", ge=1, le=10**4)
    gamma: float = bounded(0.99, "discount", gt=0, le=1)
    gae_lambda: float = bounded(0.95, "GAE lambda", ge=0, le=1)
    clip_range: float | str = bounded(0.2, "policy ratio clip, or lin_<number>", gt=0)
    clip_range_vf: float | str | None = bounded(None, "value clip; null = no clipping", gt=0)
    normalize_advantage: bool = True
    ent_coef: float = bounded(0.0, "entropy bonus", ge=0)
    vf_coef: float = bounded(0.5, "value loss weight", ge=0)
    max_grad_norm: float = bounded(0.5, "gradient clipping norm", gt=0)
    use_sde: bool = False
    sde_sample_freq: int = bounded(-1, "resample the gSDE noise every N steps; -1 = at rollout start", ge=-1)
    target_kl: float | None = bounded(None, "stop an update's epochs early past this KL; null = never", gt=0)
    stats_window_size: int = bounded(100, "episodes averaged in rollout/ logs", ge=1)

    def __post_init__(self) -> None:
        _check_rate("algo.hyperparams.learning_rate", self.learning_rate)
        _check_rate("algo.hyperparams.clip_range", self.clip_range)
        if self.clip_range_vf is not None:
            _check_rate("algo.hyperparams.clip_range_vf", self.clip_range_vf)
        if self.normalize_advantage and self.batch_size < 2:
            raise ConfigError("algo.hyperparams.batch_size: 1 cannot normalise advantages; use >= 2 or set "
                              "algo.hyperparams.normalize_advantage: false")


@dataclass(kw_only=True)
class RecurrentPPOHyperparams(PPOHyperparams):
    """``algo.hyperparams`` of sb3-contrib's ``RecurrentPPO``: PPO's, with its own rollout defaults."""

    n_steps: int = bounded(128, "env steps per env per rollout", ge=1, le=10**7)
    batch_size: int = bounded(128, "minibatch size", ge=1, le=10**7)


HYPERPARAMS: dict[str, type] = {"sac": SACHyperparams, "ppo": PPOHyperparams, "recurrent_ppo": RecurrentPPOHyperparams}


@dataclass(kw_only=True)
class AlgoConfig:
    # recurrent_ppo: sb3-contrib's RecurrentPPO, an LSTM between the features and the heads (policy MlpLstmPolicy,
    # or MultiInputLstmPolicy for Dict observations); its state is reset at each episode start.
    name: Literal["sac", "ppo", "recurrent_ppo"] = "sac"
    policy: str = "MlpPolicy"  # MultiInputPolicy for envs with Dict observations
    net_arch: list[int] = bounded([256, 256], "hidden layer sizes of actor and critic", ge=1, le=100_000)
    # A named features extractor in front of net_arch (roboreward.policies.FEATURE_EXTRACTORS, e.g.
    # crowd_attention for CrowdNav-v0), and its keyword arguments; null = SB3's default for the policy.
    features: str | None = None
    features_kwargs: dict[str, Any] = field(default_factory=dict)
    lstm_hidden_size: int = bounded(64, "recurrent_ppo: units of the LSTM (actor and critic each)", ge=1, le=4096)
    # sac: every replayed batch gets its reward from the reward and shaping models as they are now — needed when a
    # model refits while the policy trains (reward.refit_every); both must read states (roboreward.policies.relabel)
    relabel_rewards: bool = False
    # Keyword arguments of the SB3 algorithm's constructor, over DEFAULT_HYPERPARAMS[name], each checked for
    # type and range by SACHyperparams / PPOHyperparams.
    hyperparams: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from roboreward.policies import FEATURE_EXTRACTORS

        if self.features is not None and self.features not in FEATURE_EXTRACTORS:
            raise ConfigError(f"algo.features: {self.features!r} is not a features extractor; choose one of "
                              f"{sorted(FEATURE_EXTRACTORS)} or null")
        if self.relabel_rewards and self.name != "sac":
            raise ConfigError(f"algo.relabel_rewards relabels an off-policy replay buffer; {self.name} has none. "
                              "Use algo.name: sac or set algo.relabel_rewards: false")
        merged = {**DEFAULT_HYPERPARAMS[self.name], **self.hyperparams}
        schema = HYPERPARAMS[self.name]
        unknown = sorted(set(merged) - {f.name for f in dataclasses.fields(schema)})
        if unknown:
            raise ConfigError(
                f"algo.hyperparams.{unknown[0]}: not a {self.name.upper()} hyperparameter roboreward passes through; "
                f"allowed: {sorted(f.name for f in dataclasses.fields(schema))}"
            )
        checked = from_dict(schema, merged, "algo.hyperparams")
        # Keep what the file said, typed (3e-4 read as text becomes a number), so config.yaml records it.
        self.hyperparams = {key: getattr(checked, key) for key in merged}

    def algorithm_class(self):
        import stable_baselines3 as sb3

        if self.name == "recurrent_ppo":
            from sb3_contrib import RecurrentPPO

            return RecurrentPPO
        return {"sac": sb3.SAC, "ppo": sb3.PPO}[self.name]

    def policy_kwargs(self) -> dict[str, Any]:
        """The SB3 policy's keyword arguments: ``net_arch``, and the features extractor when one is named."""
        kwargs: dict[str, Any] = {"net_arch": list(self.net_arch)}
        if self.name == "recurrent_ppo":
            kwargs["lstm_hidden_size"] = self.lstm_hidden_size
        if self.features is not None:
            from roboreward.policies import features_extractor

            kwargs["features_extractor_class"] = features_extractor(self.features)
            kwargs["features_extractor_kwargs"] = dict(self.features_kwargs)
        return kwargs

    def sb3_kwargs(self) -> dict[str, Any]:
        """``hyperparams`` as the SB3 constructor takes them (``lin_X`` rates become schedules)."""
        rates = ("learning_rate", "clip_range", "clip_range_vf")
        return {key: schedule(value) if key in rates and value is not None else value
                for key, value in self.hyperparams.items()}


@dataclass(kw_only=True)
class TrainConfig:
    total_timesteps: int = bounded(30_000, "env steps over all parallel envs", ge=1, le=MAX_TIMESTEPS)
    checkpoint_every: int = bounded(5_000, "env steps between checkpoints", ge=1, le=MAX_TIMESTEPS)
    keep_checkpoints: int = bounded(2, "newest checkpoints kept on disk", ge=1, le=1000)
    # Every validate_every env steps the policy acts deterministically in validate_episodes episodes of seeds that
    # neither training nor `roboreward eval` uses; the best so far (success at the last step, then learned return)
    # is kept in RUN/best/ (SB3's EvalCallback). 0 = never.
    validate_every: int = bounded(0, "env steps between validations (0: never)", ge=0, le=MAX_TIMESTEPS)
    validate_episodes: int = bounded(20, "episodes per validation", ge=1, le=100_000)
    device: str = "auto"  # auto = CUDA when present
    torch_threads: int | None = bounded(None, "CPU threads for torch; null = torch's default", ge=1, le=1024)
    progress_bar: bool = True


@dataclass(kw_only=True)
class EvalConfig:
    episodes: int = bounded(20, "evaluation episodes", ge=1)
    # The policy `roboreward eval RUN` scores: the final model.zip, or the best on validation episodes
    # (RUN/best/, kept when train.validate_every is set).
    policy: Literal["final", "best"] = "final"
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
    gamma: float | str = bounded("auto", "auto = algo.hyperparams.gamma, the learner's discount", gt=0, le=1)

    def __post_init__(self) -> None:
        if isinstance(self.gamma, str) and self.gamma != "auto":
            raise ConfigError(f"shaping.gamma: {self.gamma!r} is not allowed; write auto (the algorithm's gamma)")
        if self.potential is not None and getattr(self.potential, "offset", 0.0):
            raise ConfigError(f"shaping.potential.offset: {self.potential.offset} turns progress into a cost, which is "  # type: ignore[attr-defined]
                              "for a reward; a potential must be the progress itself: leave offset 0")
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
    episodes: list[int] = bounded([], "episode indices of the demos to clone; [] = every successful one", ge=0)
    epochs: int = bounded(300, "passes over the demos' (observation, action) pairs when pretraining", ge=0)
    batch_size: int = bounded(256, "pretraining minibatch", ge=1)
    lr: float = bounded(1e-3, "pretraining learning rate (Adam)", gt=0)
    likelihood_weight: float = bounded(0.01, "weight of the log-likelihood term next to the action MSE", ge=0)
    weight: float = bounded(10.0, "BC term in SAC's actor loss (normalised by mean |Q|); 0 = pretraining only", ge=0)
    # Few demos clone a policy that is right in places and wrong in others: a constant BC term then holds RL to the
    # demos' mistakes too. Annealed, it steadies the early, untrained critic and lets go once the critic knows better.
    anneal_steps: int = bounded(0, "env steps over which the BC term falls linearly to 0; 0 = constant", ge=0)
    critic_warmup: int = bounded(1000, "gradient steps that train the critic alone before the actor moves", ge=0)
    demos_in_buffer: bool = True  # seed the replay buffer with the demos, rewarded by the experiment's reward
    # RLPD's symmetric sampling (Ball et al., 2023): the demos stay in a buffer of their own and every SAC batch
    # draws this share from them, so a few hundred demo transitions are not diluted by the agent's growing replay.
    demo_fraction: float = bounded(0.0, "share of each SAC batch drawn from the demos; 0 = demos are ordinary replay",
                                   ge=0, lt=1)

    def __post_init__(self) -> None:
        if self.demo_fraction > 0 and not self.demos_in_buffer:
            raise ConfigError("bc.demo_fraction draws from the demos in the replay buffer; "
                              "set bc.demos_in_buffer: true or bc.demo_fraction: 0")

    @property
    def enabled(self) -> bool:
        return self.demos is not None


@dataclass(kw_only=True)
class TeacherConfig:
    """Distil the env's teacher into the policy before PPO (see :mod:`roboreward.policies.distill`)."""

    enabled: bool = False
    iterations: int = bounded(8, "DAgger rounds", ge=1, le=1000)
    steps: int = bounded(8_000, "env steps per round, over all envs", ge=1)
    epochs: int = bounded(4, "passes over every label so far after each round", ge=1, le=1000)
    batch_size: int = bounded(512, "regression minibatch", ge=1)
    lr: float = bounded(1e-3, "Adam learning rate of the actor's regression", gt=0)
    log_std: float = bounded(-1.5, "the policy's log standard deviation after distillation", ge=-10, le=2)
    critic_epochs: int = bounded(20, "passes fitting the critic to the last round's returns", ge=0)



@dataclass(kw_only=True)
class SymmetryConfig:
    """A mirror-symmetry loss next to PPO's (see :mod:`roboreward.policies.symmetry`); off at weight 0."""

    weight: float = bounded(0.0, "weight of || mu(mirror(s)) - mirror(mu(s)) ||^2; 0 = off", ge=0)
    epochs: int = bounded(1, "passes of the symmetry loss over each rollout", ge=0, le=100)


@dataclass(kw_only=True)
class RayConfig:
    """The Ray cluster that ``env.backend: ray`` and ``reward.server: ray`` run on (see :mod:`roboreward.distributed`)."""

    # null: start Ray on this machine (127.0.0.1, no dashboard); auto: the cluster `ray start` runs here;
    # HOST:PORT: a cluster's head node (also --ray-address)
    address: str | None = None
    namespace: str = "roboreward"
    envs_per_actor: int = bounded(1, "envs each rollout actor steps and renders, one after another", ge=1, le=256)
    cpus_per_actor: float = bounded(1.0, "logical CPUs Ray reserves for each rollout actor", gt=0, le=1024)
    max_restarts: int = bounded(3, "restarts of each dead rollout actor or reward server before training stops",
                                ge=0, le=10**6)
    # GPUs reserved for the reward server: auto = 1 when the cluster has a GPU, else 0
    server_gpus: float | str = bounded("auto", "GPUs for the reward server actor, or auto", ge=0, le=64)

    def actors(self, n_envs: int) -> int:
        """Rollout actors for ``n_envs`` envs, ``envs_per_actor`` each (the last may hold fewer)."""
        return -(-n_envs // self.envs_per_actor)

    def __post_init__(self) -> None:
        if isinstance(self.server_gpus, str) and self.server_gpus != "auto":
            raise ConfigError(f"ray.server_gpus: {self.server_gpus!r} is not allowed; give a number >= 0 or auto")
        if self.address is not None and not self.address.strip():
            raise ConfigError("ray.address: empty; give auto, HOST:PORT, or null to start Ray on this machine")


@dataclass(kw_only=True)
class ExperimentConfig:
    name: str = "arm_reach_goal_image"
    seed: int = bounded(0, "seeds envs, networks and sampling", ge=0, le=2**32 - 1)
    runs_dir: str = "runs"
    env: EnvConfig = field(default_factory=EnvConfig)
    reward: RewardConfig = field(default_factory=GoalImageRewardConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    shaping: ShapingConfig = field(default_factory=ShapingConfig)
    bc: BehaviourCloningConfig = field(default_factory=BehaviourCloningConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    symmetry: SymmetryConfig = field(default_factory=SymmetryConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    def __post_init__(self) -> None:
        if self.algo.name == "recurrent_ppo" and "Lstm" not in self.algo.policy:
            raise ConfigError(f"algo.policy: {self.algo.policy} has no memory; recurrent_ppo takes MlpLstmPolicy, or "
                              "MultiInputLstmPolicy for Dict observations")
        if self.algo.name != "sac" and self.algo.hyperparams["n_steps"] * self.env.n_envs < 2:
            raise ConfigError("algo.hyperparams.n_steps: PPO needs a rollout of at least 2 steps (n_steps x env.n_envs); "
                              "raise n_steps or env.n_envs")
        if self.teacher.enabled and self.algo.name != "ppo":
            raise ConfigError(f"teacher: distillation starts PPO's Gaussian policy; set algo.name: ppo (got "
                              f"{self.algo.name}) or teacher.enabled: false")
        if self.symmetry.weight > 0 and self.algo.name != "ppo":
            raise ConfigError(f"symmetry: the mirror loss is built on PPO; set algo.name: ppo (got {self.algo.name}) "
                              "or symmetry.weight: 0")
        if self.bc.enabled and self.algo.name != "sac":
            raise ConfigError(f"bc: behaviour cloning is built on SAC; set algo.name: sac (got {self.algo.name}) or bc.demos: null")
        if self.eval.policy == "best" and not self.train.validate_every:
            raise ConfigError("eval.policy: best scores the policy that validation kept, but train.validate_every is 0 "
                              "(no validation); set train.validate_every (e.g. 5000) or eval.policy: final")
        gamma = self.shaping.gamma
        if self.shaping.potential is not None and gamma != "auto" and gamma != self.algo.hyperparams["gamma"]:
            raise ConfigError(
                f"shaping.gamma: {gamma} differs from the learner's discount algo.hyperparams.gamma="
                f"{self.algo.hyperparams['gamma']}; shaping with another gamma can change the optimal policy, "
                "so write shaping.gamma: auto"
            )
        self._crowd_reward_discount()

    def _crowd_reward_discount(self) -> None:
        """The crowd env's corrected reward shapes progress with the learner's ``γ``: fill it in, or refuse another."""
        if self.env.id != "roboreward/CrowdNav-v0":
            return
        reward = self.env.kwargs.get("reward")
        section = {"preset": reward} if isinstance(reward, str) else dict(reward or {})
        if section.get("preset", "corrected") != "corrected":
            return
        learner = self.algo.hyperparams["gamma"]
        if section.get("gamma") is None:
            self.env.kwargs["reward"] = {**section, "gamma": learner}
        elif section["gamma"] != learner:
            raise ConfigError(
                f"env.kwargs.reward.gamma: {section['gamma']} differs from the learner's discount algo.hyperparams.gamma="
                f"{learner}; the corrected crowd reward's progress term is potential shaping, policy-invariant only "
                f"with the learner's gamma: remove env.kwargs.reward.gamma (it is filled in) or set it to {learner}")

    @property
    def shaping_gamma(self) -> float:
        """The ``γ`` of the shaping term: the algorithm's discount."""
        return float(self.algo.hyperparams["gamma"])


def load_experiment(name_or_path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """An experiment: a shipped one by name (``arm_reach``, ``default_job``) or a YAML path, with overrides."""
    return load_named(name_or_path, "experiment", ExperimentConfig, overrides)
