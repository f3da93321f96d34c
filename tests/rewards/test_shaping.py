from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

from roboreward.rewards import (
    PotentialShaping,
    RewardBatch,
    RewardConfig,
    RewardModel,
    VecPotentialShaping,
    clipped_process_reward,
    delta_process_reward,
    gated_accumulation,
    sigmoid_centred_reward,
)
from roboreward.rewards.shaping import shaping_term
from roboreward.rewards.wrappers import RenderInInfo

# ============================================================================ exact tabular MDPs
LEFT, STAY, RIGHT = 0, 1, 2


def value_iteration(P: np.ndarray, R: np.ndarray, gamma: float, terminal: np.ndarray, tol: float = 1e-13) -> np.ndarray:
    """Optimal ``Q[s, a]`` of an episodic MDP: ``P[s, a, s']``, ``R[s, a, s']``, no value after a terminal ``s'``.

    Iterates the Bellman optimality operator (a γ-contraction) to a fixed point at machine precision,
    then checks it exactly: the greedy policy's value, solved as a linear system, must equal ``max_a Q``.
    """
    cont = (~terminal).astype(float)  # bootstrap only through non-terminal states
    expected_r = (P * R).sum(-1)
    V = np.zeros(len(P))
    for _ in range(100_000):
        Q = expected_r + gamma * P @ (cont * V)
        Q[terminal] = 0.0
        V_new = Q.max(1)
        if np.abs(V_new - V).max() < tol:
            break
        V = V_new
    else:
        raise AssertionError("value iteration did not converge")
    pi = Q.argmax(1)
    P_pi, r_pi = P[np.arange(len(P)), pi], expected_r[np.arange(len(P)), pi]
    V_pi = np.linalg.solve(np.eye(len(P)) - gamma * P_pi * cont[None, :], np.where(terminal, 0.0, r_pi))
    np.testing.assert_allclose(V_pi, Q.max(1), atol=1e-9)
    return Q


def optimal_actions(Q: np.ndarray, terminal: np.ndarray, tol: float = 1e-9) -> list[frozenset]:
    """The set of optimal actions of each non-terminal state (sets, so ties compare fairly)."""
    return [frozenset(np.flatnonzero(Q[s] >= Q[s].max() - tol)) for s in np.flatnonzero(~terminal)]


def corridor(n: int = 7, slip: float = 0.0):
    """A 1-D corridor ``0 .. n-1``: 0 is a pit (terminal, reward −1 on entering), ``n-1`` the goal (terminal,
    +1), ``1 .. n-2`` the corridor. Actions left / stay / right; a move fails (the agent stays) with
    probability ``slip``. Episodes start in the middle."""
    P, R = np.zeros((n, 3, n)), np.zeros((n, 3, n))
    terminal = np.zeros(n, dtype=bool)
    terminal[[0, n - 1]] = True
    for s in range(1, n - 1):
        for a, step in ((LEFT, -1), (STAY, 0), (RIGHT, 1)):
            P[s, a, s + step] += 1.0 - slip
            P[s, a, s] += slip
    for s in (0, n - 1):
        P[s, :, s] = 1.0  # absorbing; never bootstrapped through
    R[:, :, n - 1], R[:, :, 0] = 1.0, -1.0
    progress = np.arange(n) / (n - 1)  # a perfect progress estimator: 0 in the pit, 1 at the goal
    progress[0] = 0.0
    return P, R, terminal, progress, n // 2


def random_mdp(seed: int, n_states: int = 9, n_actions: int = 4):
    """A random stochastic MDP with two absorbing terminal states."""
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.full(n_states, 0.3), size=(n_states, n_actions))
    R = rng.normal(size=(n_states, n_actions, n_states))
    terminal = np.zeros(n_states, dtype=bool)
    terminal[-2:] = True
    for s in np.flatnonzero(terminal):
        P[s] = 0.0
        P[s, :, s] = 1.0
    return P, R, terminal


def shaped(R: np.ndarray, phi: np.ndarray, terminal: np.ndarray, gamma: float) -> np.ndarray:
    """``R'[s, a, s'] = R + γΦ(s')·[s' not terminal] − Φ(s)``, with the module's own shaping term."""
    S = len(phi)
    F = shaping_term(phi[:, None, None], phi[None, None, :], np.broadcast_to(terminal[None, None, :], (S, 1, S)), gamma)
    return R + F


def reach_probability(P: np.ndarray, Q: np.ndarray, start: int, goal: int, horizon: int = 2000) -> float:
    pi = Q.argmax(1)
    P_pi = P[np.arange(len(P)), pi]
    return float(np.linalg.matrix_power(P_pi, horizon)[start, goal])


GAMMA = 0.95
MDPS = {
    "corridor": lambda: corridor()[:3],
    "slippery corridor": lambda: corridor(slip=0.25)[:3],
    "random mdp": lambda: random_mdp(0),
    "random mdp 2": lambda: random_mdp(1),
}


def test_shaping_term_formula():
    np.testing.assert_allclose(shaping_term(2.0, 3.0, False, 0.9), 0.9 * 3.0 - 2.0)
    np.testing.assert_allclose(shaping_term(2.0, 3.0, True, 0.9), -2.0)  # Φ(s') of a terminal state counts as 0
    terminated = np.array([False, True, False])
    np.testing.assert_allclose(shaping_term(np.ones(3), np.full(3, 5.0), terminated, 1.0), [4.0, -1.0, 4.0])


@pytest.mark.parametrize("mdp", MDPS)
@pytest.mark.parametrize("seed", range(5))
def test_potential_shaping_keeps_the_optimal_policy_and_shifts_q_by_phi(mdp, seed):
    P, R, terminal = MDPS[mdp]()
    phi = np.random.default_rng(100 + seed).normal(scale=5.0, size=len(P))  # arbitrary, large potentials
    phi[terminal] = 0.0

    Q = value_iteration(P, R, GAMMA, terminal)
    Q_shaped = value_iteration(P, shaped(R, phi, terminal, GAMMA), GAMMA, terminal)

    assert optimal_actions(Q_shaped, terminal) == optimal_actions(Q, terminal)
    live = ~terminal
    np.testing.assert_allclose(Q_shaped[live], Q[live] - phi[live, None], atol=1e-8)  # Q' = Q − Φ(s)


@pytest.mark.parametrize("slip", [0.0, 0.25])
def test_raw_progress_reward_falls_into_the_semantic_trap_but_progress_shaping_does_not(slip):
    P, R, terminal, progress, start = corridor(slip=slip)
    goal, near_goal = len(P) - 1, len(P) - 2

    Q_task = value_iteration(P, R, GAMMA, terminal)
    Q_shaped = value_iteration(P, shaped(R, progress, terminal, GAMMA), GAMMA, terminal)  # Dopamine-RL
    Q_naive = value_iteration(P, R + progress[None, None, :], GAMMA, terminal)  # r + Φ(s') as a reward

    # The task and the potential-shaped task: walk right into the goal from everywhere.
    assert all(acts == {RIGHT} for acts in optimal_actions(Q_task, terminal))
    assert optimal_actions(Q_shaped, terminal) == optimal_actions(Q_task, terminal)
    np.testing.assert_allclose(Q_shaped[~terminal], Q_task[~terminal] - progress[~terminal, None], atol=1e-8)
    assert reach_probability(P, Q_task, start, goal) == pytest.approx(1.0)

    # The raw progress reward: walk up to the goal, then hover next to it forever without finishing.
    assert optimal_actions(Q_naive, terminal) != optimal_actions(Q_task, terminal)
    assert Q_naive[near_goal].argmax() == STAY
    hover = progress[near_goal] / (1 - GAMMA)  # paid every step while hovering
    finish = R[near_goal, RIGHT, goal] + progress[goal]  # paid once, then the episode ends
    assert Q_naive[near_goal, STAY] == pytest.approx(hover) and hover > 5 * finish
    assert reach_probability(P, Q_naive, start, goal) == 0.0


def test_shaping_with_another_gamma_than_the_learner_can_change_the_optimal_policy():
    P, R, terminal, progress, _ = corridor()
    phi = 10.0 * progress
    Q_task = value_iteration(P, R, GAMMA, terminal)
    Q_wrong = value_iteration(P, shaped(R, phi, terminal, gamma=1.0), GAMMA, terminal)  # learner uses 0.95
    # (1 − 0.95)·Φ(s') is paid for standing in high-potential states: hovering wins again.
    assert optimal_actions(Q_wrong, terminal) != optimal_actions(Q_task, terminal)
    assert Q_wrong[len(P) - 2].argmax() == STAY


# ============================================================================ the env wrappers
@dataclass(kw_only=True)
class DistancePotentialConfig(RewardConfig):
    scale: float = 1.0


class DistancePotential(RewardModel):
    """Φ(s) = −scale·‖fingertip − target‖, read from ArmReach's observation; records each call's size."""

    name = "shaping_test_distance_potential"
    config_class = DistancePotentialConfig
    requires_frames = False

    def __init__(self, config=None):
        super().__init__(config or DistancePotentialConfig())
        self.calls: list[int] = []

    def compute(self, batch: RewardBatch) -> np.ndarray:
        self.calls.append(len(batch))
        return -self.config.scale * np.linalg.norm(batch.observations[:, 8:10], axis=1)


class GoalLikenessPotential(RewardModel):
    """Φ(s) = −mean |frame − goal frame| / 255: a toy goal-image progress model that reads frames."""

    name = "shaping_test_goal_likeness"
    config_class = DistancePotentialConfig

    def __init__(self, config=None):
        super().__init__(config or DistancePotentialConfig())
        self.calls: list[int] = []

    def compute(self, batch: RewardBatch) -> np.ndarray:
        self.calls.append(len(batch))
        assert batch.frames is not None and batch.goal_frames is not None
        diff = np.abs(batch.frames.astype(np.float32) - batch.goal_frames.astype(np.float32))
        return -diff.mean(axis=(1, 2, 3)) / 255.0


class TerminateAt(gym.Wrapper):
    """Terminate every episode at step ``at`` (None: never), to exercise terminal states."""

    def __init__(self, env, at):
        super().__init__(env)
        self.at, self.t = at, 0

    def reset(self, **kwargs):
        self.t = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        return obs, reward, terminated or self.t == self.at, truncated, info


MAX_STEPS = 10
TERMINATE_AT = [4, None, MAX_STEPS]  # terminates early; only truncated; terminated and truncated at once


def make(at, render=False, max_steps=MAX_STEPS):
    kwargs = dict(render_mode="rgb_array", width=32, height=32) if render else {}
    return TerminateAt(gym.make("roboreward/ArmReach-v0", max_episode_steps=max_steps, **kwargs), at)


def distance_phi(obs):
    return -float(np.linalg.norm(np.asarray(obs)[8:10]))


def test_vec_and_single_env_wrappers_agree_with_one_potential_call_per_step():
    gamma, n = 0.9, len(TERMINATE_AT)
    model = DistancePotential()
    venv = VecPotentialShaping(DummyVecEnv([lambda at=at: make(at) for at in TERMINATE_AT]), model, gamma=gamma)
    venv.seed(100)
    venv.reset()
    assert model.calls == [n]
    singles = [PotentialShaping(make(at), DistancePotential(), gamma=gamma) for at in TERMINATE_AT]
    prev_obs = []
    for i, env in enumerate(singles):
        obs, info = env.reset(seed=100 + i)
        assert info["potential"] == pytest.approx(venv.reset_infos[i]["potential"]) == pytest.approx(distance_phi(obs))
        prev_obs.append(obs)

    rng = np.random.default_rng(0)
    seen = {"terminated": 0, "truncated": 0}
    for step in range(25):  # crosses several terminations, truncations and auto-resets
        actions = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
        _, rewards, dones, infos = venv.step(actions)
        assert len(model.calls) == step + 2  # exactly one call per vector step
        for i, env in enumerate(singles):
            obs, r, term, trunc, info = env.step(actions[i])
            # The formula, from the observations alone.
            next_phi = 0.0 if term else distance_phi(obs)
            expected = gamma * next_phi - distance_phi(prev_obs[i])
            assert info["shaping"] == pytest.approx(expected, abs=1e-6)
            assert r == pytest.approx(info["unshaped_reward"] + expected, abs=1e-6)
            assert info["unshaped_reward"] == pytest.approx(info["reward_dist"] + info["reward_ctrl"])
            # The vector wrapper gives the same.
            assert rewards[i] == pytest.approx(r, abs=1e-5)
            for key in ("shaping", "potential", "unshaped_reward"):
                assert infos[i][key] == pytest.approx(info[key], abs=1e-6)
            assert dones[i] == (term or trunc)
            prev_obs[i] = obs
            if term or trunc:
                seen["terminated" if term else "truncated"] += 1
                assert info["potential"] == (0.0 if term else pytest.approx(distance_phi(obs)))
                assert info["potential"] != 0.0 or term  # truncation keeps Φ(s') (bootstrapped by SB3)
                prev_obs[i], reset_info = env.reset()
                assert venv.reset_infos[i]["potential"] == pytest.approx(reset_info["potential"])
        terminated = sum(1 for d, info in zip(dones, infos) if d and not info["TimeLimit.truncated"])
        assert model.calls[-1] == n - terminated + int(dones.sum())  # reached states + new first states
    assert seen["terminated"] >= 4 and seen["truncated"] >= 2
    venv.close()


@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_shaping_telescopes_over_each_episode(gamma):
    venv = VecPotentialShaping(
        DummyVecEnv([lambda at=at: make(at) for at in TERMINATE_AT]), DistancePotential(), gamma=gamma
    )
    venv.seed(7)
    venv.reset()
    n = venv.num_envs
    phi0 = np.array([info["potential"] for info in venv.reset_infos])
    discounted_shaping, t = np.zeros(n), np.zeros(n, dtype=int)
    rng = np.random.default_rng(1)
    episodes = 0
    for _ in range(2 * MAX_STEPS):
        _, rewards, dones, infos = venv.step(rng.uniform(-1, 1, size=(n, 2)).astype(np.float32))
        for i, info in enumerate(infos):
            discounted_shaping[i] += gamma ** t[i] * info["shaping"]
            t[i] += 1
            assert rewards[i] == pytest.approx(info["unshaped_reward"] + info["shaping"], abs=1e-5)
            if dones[i]:
                terminal = not info["TimeLimit.truncated"]
                phi_T = 0.0 if terminal else distance_phi(info["terminal_observation"])
                # Σ_t γ^t F_t = γ^T Φ(s_T)·[s_T not terminal] − Φ(s_0)
                assert discounted_shaping[i] == pytest.approx(gamma ** t[i] * phi_T - phi0[i], abs=1e-5)
                assert terminal == (TERMINATE_AT[i] is not None)  # at == MAX_STEPS: terminal wins
                episodes += 1
                discounted_shaping[i], t[i] = 0.0, 0
                phi0[i] = venv.reset_infos[i]["potential"]
    assert episodes == 5 + 2 + 2


def test_frame_potential_reuses_render_in_info_frames_and_goal_images():
    ats = [3, None]  # with episodes of 4 steps: env 0 terminates, env 1 is truncated
    model = GoalLikenessPotential()
    venv = VecPotentialShaping(
        DummyVecEnv([lambda at=at: RenderInInfo(make(at, render=True, max_steps=4)) for at in ats]), model, gamma=0.95
    )
    assert venv.requires_frames
    venv.seed(3)
    venv.reset()
    assert all("frame" not in info and "goal_frame" not in info for info in venv.reset_infos)
    singles = [PotentialShaping(make(at, render=True, max_steps=4), GoalLikenessPotential(), gamma=0.95) for at in ats]
    for i, env in enumerate(singles):
        env.reset(seed=3 + i)
    rng = np.random.default_rng(2)
    for step in range(9):  # env 0 terminates at steps 3, 6, 9; env 1 is truncated at 4 and 8
        actions = rng.uniform(-1, 1, size=(2, 2)).astype(np.float32)
        _, rewards, dones, infos = venv.step(actions)
        assert len(model.calls) == step + 2
        assert all("frame" not in info for info in infos)
        for i, env in enumerate(singles):
            _, r, term, trunc, info = env.step(actions[i])
            assert "frame" in info  # the single env's RenderInInfo, added by PotentialShaping
            assert rewards[i] == pytest.approx(r, abs=1e-5)
            assert infos[i]["potential"] == pytest.approx(info["potential"], abs=1e-6)
            if trunc and not term:  # the last state of an episode is scored against that episode's goal
                assert info["potential"] != 0.0
            if term or trunc:
                _, reset_info = env.reset()
                # The new episode's first state is scored against the new episode's goal image.
                assert venv.reset_infos[i]["potential"] == pytest.approx(reset_info["potential"], abs=1e-6)
    venv.close()


def test_wrappers_check_their_arguments_and_never_overwrite_info():
    with pytest.raises(ValueError, match=r"gamma=1.5 must lie in \(0, 1\]"):
        PotentialShaping(make(None), DistancePotential(), gamma=1.5)
    with pytest.raises(ValueError, match="model.gamma"):
        VecPotentialShaping(DummyVecEnv([lambda: make(None)]), DistancePotential(), gamma=0.0)

    venv = VecPotentialShaping(DummyVecEnv([lambda: make(None)]), GoalLikenessPotential(), gamma=0.9)
    with pytest.raises(RuntimeError, match="wrap each env in RenderInInfo"):
        venv.reset()

    bad = PotentialShaping(make(None), lambda batch: np.zeros(2), gamma=0.9)
    with pytest.raises(RuntimeError, match=r"returned shape \(2,\) for 1 states"):
        bad.reset(seed=0)

    inner = PotentialShaping(make(None), DistancePotential(), gamma=0.9)
    twice = PotentialShaping(inner, DistancePotential(), gamma=0.9)
    with pytest.raises(KeyError, match="refusing to overwrite"):
        twice.reset(seed=0)
    with pytest.raises(RuntimeError, match="reset"):
        PotentialShaping(make(None), DistancePotential(), gamma=0.9).step(np.zeros(2, dtype=np.float32))

    # A plain function works as a potential and lands in the same info keys; other key names can be chosen.
    env = PotentialShaping(make(None), lambda b: np.ones(len(b)), gamma=0.5, shaping_key="F", potential_key="phi")
    env.reset(seed=0)
    _, r, _, _, info = env.step(np.zeros(2, dtype=np.float32))
    assert info["F"] == pytest.approx(0.5 * 1.0 - 1.0) and info["phi"] == 1.0
    assert r == pytest.approx(info["unshaped_reward"] - 0.5)


# ============================================================================ bounded variants
def test_clipped_process_reward_formula_and_bounded_returns():
    r = np.array([0.7, 0.2, 0.4, 0.8])
    np.testing.assert_allclose(clipped_process_reward(r, 0.5), [0.0, -0.3, -0.1, 0.0])
    np.testing.assert_allclose(clipped_process_reward(r), np.minimum(r - 0.525, 0.0))  # centred on the mean
    # Vectorised over a batch, with one centre per sequence.
    batch = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]])
    centres = np.array([[2.0], [1.0]])
    np.testing.assert_allclose(clipped_process_reward(batch, centres), [[-1.0, 0.0, 0.0], [-1.0, -1.0, 0.0]])

    # Adversarial: repeat a high-reward step forever. The raw return grows without bound; Clip's stays at 0.
    for length in (10, 1_000, 100_000):
        hacked = np.full(length, 0.9)
        assert hacked.sum() == pytest.approx(0.9 * length)
        assert clipped_process_reward(hacked, centre=0.5).sum() == 0.0
    noisy = np.random.default_rng(0).uniform(0, 1, size=(64, 500))
    assert (clipped_process_reward(noisy, 0.5).sum(-1) <= 0.0).all()


def test_delta_process_reward_formula_and_telescoping():
    r = np.array([0.7, 0.2, 0.4, 0.8])
    np.testing.assert_allclose(delta_process_reward(r), [0.5, -0.2, -0.4, 0.0])
    np.testing.assert_allclose(delta_process_reward(r, keep_last=True), [0.5, -0.2, -0.4, 0.8])

    rng = np.random.default_rng(1)
    seqs = rng.uniform(0, 1, size=(32, 200))
    d = delta_process_reward(seqs)
    assert d.shape == seqs.shape
    # The return from every step k telescopes to r_k − r_last (or r_k with keep_last).
    to_go = np.cumsum(d[:, ::-1], axis=1)[:, ::-1]
    np.testing.assert_allclose(to_go, seqs - seqs[:, -1:], atol=1e-9)
    to_go_kept = np.cumsum(delta_process_reward(seqs, keep_last=True)[:, ::-1], axis=1)[:, ::-1]
    np.testing.assert_allclose(to_go_kept, seqs, atol=1e-9)

    # Adversarial: repeating a high-reward step forever earns nothing; any return stays within r's range.
    for length in (10, 100_000):
        assert delta_process_reward(np.full(length, 0.9)).sum() == 0.0
    assert np.abs(delta_process_reward(rng.uniform(0, 1, size=(16, 10_000))).sum(-1)).max() <= 1.0
    assert delta_process_reward([3.0]).tolist() == [0.0]
    with pytest.raises(ValueError, match="last axis"):
        delta_process_reward(2.0)


def test_sigmoid_centred_reward_is_centred_monotonic_bounded_and_saturating():
    assert sigmoid_centred_reward(1.3, 1.3) == 0.5
    np.testing.assert_allclose(sigmoid_centred_reward([0.0, 2.0], 1.0), [1 / (1 + np.e), 1 / (1 + np.exp(-1))])
    x = np.linspace(-50, 50, 2001)
    y = sigmoid_centred_reward(x, 0.0)
    assert (np.diff(y) >= 0).all() and (np.diff(y)[np.abs(x[:-1]) < 30] > 0).all()  # monotonic
    assert (y >= 0).all() and (y <= 1).all()
    slope = np.diff(y) / np.diff(x)
    assert slope.max() == pytest.approx(0.25, abs=1e-3)  # steepest at r = r_ref
    assert slope[x[:-1] > 5].max() < 0.01  # saturated: pushing the reward higher stops paying
    with np.errstate(over="raise"):  # no overflow for huge rewards
        np.testing.assert_allclose(sigmoid_centred_reward([-1e6, 1e6], 0.0), [0.0, 1.0])
    # PAR with several references averages the sigmoids; the repeated-high-reward return grows at most 1 per step.
    refs = np.array([0.0, 1.0, 2.0])
    assert sigmoid_centred_reward(np.array([1.0])[..., None], refs).mean(-1)[0] == pytest.approx(
        np.mean([1 / (1 + np.exp(-1)), 0.5, 1 / (1 + np.e)])
    )
    assert sigmoid_centred_reward(np.full(1000, 1e9), 0.0).sum() <= 1000


def test_gated_accumulation_keeps_immediate_rewards_only_above_the_threshold():
    immediate = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [1.0, 1.0, 1.0]])
    outcome = np.array([1.0, 0.0, 0.5])  # one long-term reward per sequence
    gated = gated_accumulation(immediate, outcome, threshold=0.5)
    np.testing.assert_allclose(gated, [[0.1, 0.2, 0.3], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])  # ≥ threshold passes
    np.testing.assert_allclose(gated.sum(-1), [0.6, 0.0, 3.0])
    # A per-step long-term reward gates step by step: accumulate only while it clears the threshold.
    per_step = np.array([[0.9, 0.6, 0.2], [0.0, 0.7, 0.7], [0.5, 0.4, 0.5]])
    np.testing.assert_allclose(
        gated_accumulation(immediate, per_step, 0.5), [[0.1, 0.2, 0.0], [0.0, 0.5, 0.6], [1.0, 0.0, 1.0]]
    )
    # Farming dense rewards without the outcome earns nothing, however long.
    assert gated_accumulation(np.full((1, 100_000), 1.0), np.array([0.0]), 0.5).sum() == 0.0
    with pytest.raises(ValueError, match="per sequence"):
        gated_accumulation(immediate, np.zeros(5), 0.5)
