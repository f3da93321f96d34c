"""Behaviour cloning from demonstrations: a policy's starting point, and a leash while RL improves it.

A handful of demonstrations says *what* to do twice over: a learned reward model reads the task from
their frames, and their actions show *how*. Reinforcement learning from scratch on a dense learned
reward spends most of its budget rediscovering the motions the demos already contain (SAC on
Meta-World's drawer-open learns nothing in 40k steps, even on the task's own reward). So when an
experiment has a ``bc`` section (``bc.demos`` set; SAC only), training goes:

1. **Pretrain** the actor on the demos' ``(observation, action)`` pairs: the tanh-squashed mean
   regresses the action (MSE), plus a small negative log-likelihood term that keeps the policy's
   standard deviation meaningful for SAC's entropy term. The result is saved as ``bc_policy.zip``
   in the run, so ``roboreward eval RUN --checkpoint bc_policy.zip`` measures the starting policy
   alone — what the learned reward must add to.
2. **Seed the replay buffer** with the demos' transitions (``demos_in_buffer``), rewarded by the
   *experiment's* reward model on the demos' own frames (or states) — never by the env's task reward unless
   the experiment trains on it (``reward.type: env``). With ``algo.relabel_rewards`` they are rewarded, and
   shaped, afresh each time they are replayed (:mod:`roboreward.policies.relabel`). With ``demo_fraction``
   they stay in a buffer of their own and every batch draws that share from them (RLPD's symmetric
   sampling, Ball et al., 2023): a few hundred demo transitions would otherwise be a vanishing share of a
   replay that grows by thousands.
3. **Train the critic alone** for ``critic_warmup`` gradient steps: a fresh critic's gradients would
   otherwise pull the pretrained actor anywhere in its first updates (the collapse seen without it).
4. **SAC with a BC term** (:class:`BCRegularisedSAC`, SAC's version of Fujimoto & Gu's TD3+BC, 2021):
   the actor minimises ``(α·log π(a|s) − Q(s, a)) / mean|Q| + weight · ‖tanh μ(s_demo) − a_demo‖²``.
   Dividing by ``mean|Q|`` makes ``weight`` independent of the reward's scale; ``weight: 0`` is plain
   SAC after pretraining. With ``anneal_steps`` the weight falls linearly to 0 over that many env steps:
   a few demos hold RL near them while the critic is young, then stop holding it to their mistakes.

The demos are a LeRobot v3 dataset (``roboreward demos record`` writes one) whose ``observation.state``
is the env's observation and whose ``action`` is the env's action. Their frames must come from the
cameras and at the size the env renders for the reward model (``env.render``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3 import SAC
from stable_baselines3.common.utils import polyak_update
from tqdm.auto import tqdm

from roboreward.errors import ConfigError
from roboreward.experiment import BehaviourCloningConfig, EnvConfig
from roboreward.policies.relabel import concatenate
from roboreward.rewards.base import RewardBatch, RewardModel

BC_POLICY = "bc_policy.zip"  # the pretrained starting policy, in the run folder


@dataclass
class Demonstrations:
    """Transitions ``(s_t, a_t, s_{t+1})`` of the demos, with ``s_{t+1}``'s frame for reward labelling.

    A demo of ``T`` recorded steps gives ``T − 1`` transitions (the state after the last step is not
    recorded). ``pairs_*`` hold every ``(s_t, a_t)`` of the demos, for cloning.
    """

    observations: np.ndarray  # float32 [N, obs_dim]
    actions: np.ndarray  # float32 [N, act_dim]
    next_observations: np.ndarray  # float32 [N, obs_dim]
    next_frames: np.ndarray | None  # uint8 [N, H, V·W, 3] (views side by side), or None without cameras
    env_rewards: np.ndarray  # float32 [N]: the reward the env gave when the demo was recorded
    pairs_observations: np.ndarray
    pairs_actions: np.ndarray
    episodes: list[int]
    # How the env the demos were recorded in differs from the training env (None: the same, or not known):
    # ``env_rewards`` are then another env's rewards.
    recorded_in_other_env: str | None = None

    def __len__(self) -> int:
        return len(self.actions)


def load_demonstrations(config: BehaviourCloningConfig, env: EnvConfig) -> Demonstrations:
    """Read ``config.demos``' episodes (every successful one when ``config.episodes`` is empty)."""
    from roboreward.datasets.lerobot_v3 import DatasetReader
    from roboreward.envs.views import tile_views

    path = Path(config.demos or "")
    if not (path / "meta" / "info.json").is_file():
        cameras = f"--cameras {' '.join(_cameras(env))} " if _cameras(env) else ""
        raise ConfigError(
            f"bc.demos: {str(path)!r} is not a demonstration dataset (no meta/info.json); record one with "
            f"`roboreward demos record TASK --episodes 5 {cameras}--size {env.render.width} --out {path}` "
            "(`make demo` records the default job's)"
        )
    reader = DatasetReader(path)
    episodes = list(config.episodes) or [e.index for e in reader.episodes if e.success]
    if not episodes:
        raise ConfigError(f"bc.demos: {path} holds no successful episode to learn from; list bc.episodes explicitly")
    unknown = [i for i in episodes if not 0 <= i < reader.num_episodes]
    if unknown:
        raise ConfigError(f"bc.episodes: {unknown} not in {path} (episodes 0..{reader.num_episodes - 1})")
    cameras = _cameras(env)
    missing = [c for c in cameras if c not in reader.cameras]
    if missing:
        raise ConfigError(
            f"bc.demos: {path} has no frames from camera(s) {missing} that env.render uses; it has {reader.cameras}. "
            "Record the demos with the env's cameras, or render the env with the demos' ones"
        )
    obs, act, nxt, frames, rewards, pair_obs, pair_act = [], [], [], [], [], [], []
    for index in episodes:
        ep = reader.episode(index)
        state = np.asarray(ep.state, np.float32)
        action = np.asarray(ep.action, np.float32)
        pair_obs.append(state)
        pair_act.append(action)
        obs.append(state[:-1])
        act.append(action[:-1])
        nxt.append(state[1:])
        rewards.append(np.asarray(ep.reward, np.float32)[:-1])
        if cameras:
            views = [reader.frames(index, c)[1:] for c in cameras]
            size = views[0].shape[1:3]
            if size != (env.render.height, env.render.width):
                raise ConfigError(
                    f"bc.demos: frames of {path} are {size[1]}x{size[0]} but the env renders "
                    f"{env.render.width}x{env.render.height}; set env.render.width/height to the demos' size"
                )
            frames.append(tile_views(views) if len(views) > 1 else views[0])
    return Demonstrations(
        recorded_in_other_env=_recorded_in_other_env(path, env),
        observations=np.concatenate(obs),
        actions=np.concatenate(act),
        next_observations=np.concatenate(nxt),
        next_frames=np.concatenate(frames) if frames else None,
        env_rewards=np.concatenate(rewards),
        pairs_observations=np.concatenate(pair_obs),
        pairs_actions=np.concatenate(pair_act),
        episodes=episodes,
    )


def _recorded_in_other_env(path: Path, env: EnvConfig) -> str | None:
    from roboreward.datasets.record import env_record, recorded_env

    record, training = recorded_env(path), env_record(env.id, env.kwargs)
    if record is None or record == training:
        return None
    return (f"{path} was recorded in {record['env_id']} with {record['kwargs'] or 'its defaults'}, "
            f"the experiment trains in {env.id} with {training['kwargs'] or 'its defaults'}")


def _cameras(env: EnvConfig) -> list[str]:
    if env.render.cameras:
        return list(env.render.cameras)
    return [env.render.camera] if env.render.camera else []


def pretrain_actor(model: SAC, demos: Demonstrations, config: BehaviourCloningConfig, seed: int = 0,
                   progress: bool = True) -> dict[str, float]:
    """Fit SAC's actor to the demos' actions; returns the final epoch's mean losses."""
    actor = model.actor
    device = model.device
    observations = torch.as_tensor(demos.pairs_observations, device=device)
    actions = torch.as_tensor(demos.pairs_actions, device=device)
    low = torch.as_tensor(model.action_space.low, device=device)
    high = torch.as_tensor(model.action_space.high, device=device)
    targets = (2 * (actions - low) / (high - low) - 1).clamp(-1, 1)  # SB3 actors act in [-1, 1]
    squashed = targets.clamp(-0.995, 0.995)  # the likelihood of ±1 under tanh is 0
    optimiser = torch.optim.Adam(actor.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(seed)
    actor.set_training_mode(True)
    losses: dict[str, float] = {}
    for _ in tqdm(range(config.epochs), desc="behaviour cloning", unit="epoch", dynamic_ncols=True, disable=not progress):
        order = torch.randperm(len(observations), generator=generator).to(device)
        totals = np.zeros(2)
        for start in range(0, len(order), config.batch_size):
            batch = order[start:start + config.batch_size]
            mse, nll = _bc_losses(actor, observations[batch], targets[batch], squashed[batch])
            loss = mse + config.likelihood_weight * nll
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            totals += (mse.item() * len(batch), nll.item() * len(batch))
        losses = {"mse": totals[0] / len(order), "nll": totals[1] / len(order)}
    actor.set_training_mode(False)
    return losses


def _bc_losses(actor: Any, observations: torch.Tensor, targets: torch.Tensor, squashed: torch.Tensor):
    mean, log_std, _ = actor.get_action_dist_params(observations)
    mse = ((torch.tanh(mean) - targets) ** 2).sum(dim=1).mean()
    distribution = actor.action_dist.proba_distribution(mean, log_std)
    nll = -distribution.log_prob(squashed).mean()
    return mse, nll


def demo_rewards(demos: Demonstrations, reward_model: RewardModel | None, chunk: int = 512) -> np.ndarray:
    """What the experiment's reward says of each demo transition: the model on the next frame, or the
    env's recorded reward when the experiment trains on the env's own reward (``reward_model`` None) — the
    reward the env gave when the demos were recorded, so record them with the training env's settings
    (``roboreward demos record ... --env reward=sparse`` for a sparse Meta-World reward); demos that say
    they were recorded in another env are refused."""
    if reward_model is None:
        if demos.recorded_in_other_env is not None:
            raise ConfigError(
                f"bc.demos_in_buffer: the demos' rewards are another env's: {demos.recorded_in_other_env}. Record "
                "the demos with the training env's settings (`roboreward demos record TASK --env KEY=VALUE ...`), "
                "or set bc.demos_in_buffer: false"
            )
        return demos.env_rewards
    if reward_model.requires_frames and demos.next_frames is None:
        raise ConfigError("bc.demos_in_buffer: the reward model needs frames; set env.render.camera(s) to the demos' cameras")
    parts = []
    for start in range(0, len(demos), chunk):
        sl = slice(start, start + chunk)
        frames = None if demos.next_frames is None else demos.next_frames[sl]
        batch = RewardBatch(frames=frames, observations=demos.next_observations[sl])
        parts.append(np.asarray(reward_model(batch), np.float32))
    return np.concatenate(parts)


def add_to_replay_buffer(model: SAC, demos: Demonstrations, rewards: np.ndarray, buffer: Any = None) -> int:
    """Put the demo transitions into ``buffer`` (default: ``model``'s replay buffer); not terminal: demos end
    at the time limit."""
    buffer = model.replay_buffer if buffer is None else buffer
    n_envs = buffer.n_envs
    usable = len(demos) - len(demos) % n_envs  # the buffer stores rows of n_envs transitions
    scaled = model.policy.scale_action(demos.actions)
    for start in range(0, usable, n_envs):
        sl = slice(start, start + n_envs)
        buffer.add(
            demos.observations[sl], demos.next_observations[sl], scaled[sl], rewards[sl],
            np.zeros(n_envs, dtype=np.float32), [{} for _ in range(n_envs)],
        )
    return usable


class BCRegularisedSAC(SAC):
    """SAC whose actor is also pulled towards demonstrated actions (see the module docstring, step 4).

    Call :meth:`set_demonstrations` before ``learn``. The critic and entropy updates are SAC's; the
    actor waits ``critic_warmup`` gradient steps, then minimises the normalised SAC loss plus
    :meth:`current_bc_weight` times the squared error to the demos' actions. Saved models load as plain SAC.
    """

    def __init__(self, *args: Any, bc_weight: float = 10.0, bc_anneal_steps: int = 0, critic_warmup: int = 1000,
                 demo_fraction: float = 0.0, **kwargs: Any):
        self.bc_weight = bc_weight
        self.bc_anneal_steps = bc_anneal_steps
        self.critic_warmup = critic_warmup
        self.demo_fraction = demo_fraction
        self.demo_buffer: Any = None
        self._demo_observations: torch.Tensor | None = None
        self._demo_actions: torch.Tensor | None = None
        super().__init__(*args, **kwargs)

    def set_demonstrations(self, demos: Demonstrations) -> None:
        self._demo_observations = torch.as_tensor(demos.pairs_observations, device=self.device)
        self._demo_actions = torch.as_tensor(self.policy.scale_action(demos.pairs_actions), device=self.device).clamp(-1, 1)

    def set_demo_buffer(self, demos: Demonstrations, rewards: np.ndarray) -> None:
        """Keep the demo transitions in a replay buffer of their own, of the main buffer's class (relabelled alike
        when it is relabelled), from which every batch draws ``demo_fraction`` of its samples."""
        main = self.replay_buffer
        buffer = type(main)(len(demos), self.observation_space, self.action_space, device=self.device, n_envs=1)
        if hasattr(main, "relabeller"):
            buffer.relabeller = main.relabeller
        add_to_replay_buffer(self, demos, rewards, buffer)
        self.demo_buffer = buffer

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_demo_observations", "_demo_actions", "demo_buffer"]

    def _replay_batch(self, batch_size: int) -> Any:
        """A batch of the agent's replay, ``demo_fraction`` of it drawn from the demos (when they are kept apart)."""
        if self.demo_buffer is None or self.demo_fraction <= 0:
            return self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
        n_demo = max(1, round(batch_size * self.demo_fraction))
        parts = [self.demo_buffer.sample(n_demo, env=self._vec_normalize_env),
                 self.replay_buffer.sample(batch_size - n_demo, env=self._vec_normalize_env)]
        return type(parts[0])(*(concatenate(a, b) for a, b in zip(*parts)))

    def current_bc_weight(self) -> float:
        """``bc_weight``, falling linearly to 0 over the first ``bc_anneal_steps`` env steps (constant if 0)."""
        if not self.bc_anneal_steps:
            return self.bc_weight
        return self.bc_weight * max(0.0, 1.0 - self.num_timesteps / self.bc_anneal_steps)

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        if self._demo_observations is None:
            raise RuntimeError("BCRegularisedSAC.train: call set_demonstrations(demos) before learn()")
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)
        bc_weight = self.current_bc_weight()
        self.logger.record("train/bc_weight", bc_weight)
        logs: dict[str, list[float]] = {"critic_loss": [], "actor_loss": [], "bc_loss": [], "ent_coef": []}
        for _ in range(gradient_steps):
            data = self._replay_batch(batch_size)
            actions_pi, log_prob = self.actor.action_log_prob(data.observations)
            log_prob = log_prob.reshape(-1, 1)
            if self.ent_coef_optimizer is not None:
                ent_coef = torch.exp(self.log_ent_coef.detach())
                ent_loss = -(self.log_ent_coef * (log_prob + self.target_entropy).detach()).mean()
                self.ent_coef_optimizer.zero_grad()
                ent_loss.backward()
                self.ent_coef_optimizer.step()
            else:
                ent_coef = self.ent_coef_tensor
            logs["ent_coef"].append(ent_coef.item())

            with torch.no_grad():
                next_actions, next_log_prob = self.actor.action_log_prob(data.next_observations)
                next_q = torch.cat(self.critic_target(data.next_observations, next_actions), dim=1)
                next_q = torch.min(next_q, dim=1, keepdim=True)[0] - ent_coef * next_log_prob.reshape(-1, 1)
                target_q = data.rewards + (1 - data.dones) * self.gamma * next_q
            current_q = self.critic(data.observations, data.actions)
            critic_loss = 0.5 * sum(F.mse_loss(q, target_q) for q in current_q)
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            self.critic.optimizer.step()
            logs["critic_loss"].append(critic_loss.item())

            if self._n_updates >= self.critic_warmup:
                q_pi = torch.min(torch.cat(self.critic(data.observations, actions_pi), dim=1), dim=1, keepdim=True)[0]
                actor_loss = (ent_coef * log_prob - q_pi).mean() / (q_pi.abs().mean().detach() + 1e-6)
                if bc_weight > 0:
                    idx = torch.randint(len(self._demo_observations), (batch_size,), device=self.device)
                    mean, _, _ = self.actor.get_action_dist_params(self._demo_observations[idx])
                    bc_loss = ((torch.tanh(mean) - self._demo_actions[idx]) ** 2).sum(dim=1).mean()
                    actor_loss = actor_loss + bc_weight * bc_loss
                    logs["bc_loss"].append(bc_loss.item())
                self.actor.optimizer.zero_grad()
                actor_loss.backward()
                self.actor.optimizer.step()
                logs["actor_loss"].append(actor_loss.item())

            if self._n_updates % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)
            self._n_updates += 1

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        for key, values in logs.items():
            if values:
                self.logger.record(f"train/{key}", float(np.mean(values)))


def start_from_demonstrations(
    model: BCRegularisedSAC,
    demos: Demonstrations,
    config: Any,
    reward_model: RewardModel | None,
    run_dir: Path,
    progress: bool = True,
) -> dict[str, float]:
    """Steps 1 and 2 of the module docstring for a fresh run: pretrain, save ``bc_policy.zip``, seed the buffer.

    ``config`` is the :class:`~roboreward.experiment.ExperimentConfig`; returns what was done, for the log.
    """
    bc = config.bc
    if bc.demos_in_buffer:
        if config.shaping.potential is not None and not config.algo.relabel_rewards:
            raise ConfigError(
                "bc.demos_in_buffer: demo transitions need the shaped reward, which is computed for them only when "
                "replayed rewards are relabelled; set algo.relabel_rewards: true (state-reading models), "
                "bc.demos_in_buffer: false, or drop the shaping section"
            )
        if getattr(config.reward, "normalize", False):
            raise ConfigError(
                "bc.demos_in_buffer: demo transitions cannot carry the running normalisation of reward.normalize; "
                "set one of them to false"
            )
    summary: dict[str, float] = {"demo_episodes": len(demos.episodes), "demo_pairs": len(demos.pairs_actions)}
    if bc.epochs > 0:
        losses = pretrain_actor(model, demos, bc, seed=config.seed, progress=progress)
        summary.update({f"bc_{k}": round(float(v), 5) for k, v in losses.items()})
    tmp = run_dir / (BC_POLICY + ".tmp.zip")
    model.save(tmp)
    tmp.replace(run_dir / BC_POLICY)
    if bc.demos_in_buffer:
        rewards = demo_rewards(demos, reward_model)
        if bc.demo_fraction > 0:
            model.set_demo_buffer(demos, rewards)
            summary["demo_transitions_apart"] = len(demos)
        else:
            summary["demo_transitions_in_buffer"] = add_to_replay_buffer(model, demos, rewards)
        summary["demo_reward_mean"] = round(float(rewards.mean()), 4)
    return summary
