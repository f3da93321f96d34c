"""Reward diagnostics: how well a learned reward tracks task progress, before any policy is trained on it.

Training a policy is the expensive way to find out that a reward is wrong. These diagnostics score a
:class:`~roboreward.rewards.base.RewardModel` (any of them: it is only called on batches) on held-out
demonstrations and on random or failed rollouts, and compare it with what is known to be true. Run it
with ``roboreward rewards evaluate`` (:mod:`roboreward.rewards.cli`) or
:func:`~roboreward.rewards.diagnostics.evaluation.evaluate_reward_model`.

## What is scored

Every episode is a sequence of states ``s_0 .. s_{L-1}``, each with a frame (and an observation). The
learned reward of state ``s_t`` is the model's output on its frame, ``r̂_t`` — the reward the wrappers
give for *reaching* ``s_t``. The model's raw output is used: the wrappers' optional smoothing and
normalisation (:mod:`roboreward.rewards.postprocess`) are left out, as they belong to a training run.

- **Demos** (``--demos DATASET``): dataset episodes, frame ``t`` = state ``s_t`` (rendered before
  acting). By default only *held-out* episodes: when the reward config learns from the same dataset
  (a ``demos`` field, with ``episodes``; ``[]`` = its successful episodes), those are left out.
- **Rollouts** (``--rollouts``): ``random:N`` runs N episodes of uniform random actions in the
  config's env, rendered with the config's render options, reset with seeds ``seed + 2_000_000 + i``
  (never a demo's seed); or a dataset path (e.g. failed demonstrations), read like the demos.

## True progress

- **Demos:** on a *successful* demo, normalised time ``t / (L - 1)`` — an expert that succeeds makes
  progress at every step. Where the dataset stores the env's reward (``next.reward``), also the env's
  true dense reward (see below).
- **Rollouts:** the env's own dense reward, never normalised time (a random arm makes no steady
  progress): for ``random:N`` the reward the env returns from ``step`` (for Meta-World its own shaped
  reward, also ``info["reward_task"]``); for a dataset its ``next.reward`` column. The reward of the
  step that *reached* ``s_t`` is paired with ``r̂_t``; ``s_0`` has none.
- **Success labels:** the episode's ``success`` in a dataset, and for random rollouts
  ``info["is_success"]`` at any step (Meta-World's convention, as ``roboreward demos record``).

## Metrics

- **Spearman correlation** per episode between ``r̂`` and true progress, then mean ± std over
  episodes (episodes where it is undefined — a constant sequence — are counted apart):
  ``spearman.demos_time`` (successful demos vs normalised time), ``spearman.demos_true_reward`` and
  ``spearman.rollouts_true_reward`` (vs the env's dense reward). Ties get their average rank.
- **VOC** (value-order correlation, GVL / Robo-Dopamine): the Spearman correlation between predicted
  values and chronological order on successful demos, with GVL's protocol: the demo's frames are
  shuffled before the model scores them and the values put back in time order, so a model cannot
  lean on the order it was shown. For a model that scores each frame on its own (every built-in
  one) VOC equals ``spearman.demos_time``; a difference means the model looks across its batch.
- **Success vs failure** over all episodes (demos and rollouts): each episode gets a score from its
  learned rewards — ``max`` (default: the best state reached, which matches success-at-any-step
  labels), ``final`` (the last state) or ``mean``. **ROC-AUC** needs no threshold: the chance that a
  successful episode outscores a failed one (ties count half). **Accuracy** is cross-validated:
  episodes are split into ``k = min(5, successes, failures)`` stratified folds, a threshold is fitted
  on ``k - 1`` folds (the midpoint between scores with the best accuracy there; score ≥ threshold
  means success) and tested on the held-out fold; accuracy is the fraction of episodes classified
  right when held out. It needs at least two episodes of each class.
- **STARC distance** (Skalse et al., 2023) between the learned reward ``R_L`` and the true reward
  ``R_T`` on sampled transitions ``(s, a, s')`` of the episodes (at most ``starc_transitions``): EPIC
  canonicalisation, normalisation, then half the L2 distance, in ``[0, 1]`` — 0 for a positive
  rescaling or potential reshaping of the same reward, 1 for its negation
  (:mod:`~roboreward.rewards.diagnostics.starc` has the formulas). Both rewards are treated as
  functions of the state reached, so the distance equals ``sqrt((1 − ρ) / 2)`` with ``ρ`` the Pearson
  correlation of the two rewards over the sampled transitions. Reported for demos, rollouts and both
  together, with ``γ`` from the config (``algo.hyperparams.gamma``).

## Outputs (``out_dir``)

- ``metrics.json``: the metrics above, what was evaluated, and one row per episode;
- ``reward_vs_progress.png``: per episode, the learned reward against true progress (demos blue,
  rollouts red), and all episodes overlaid against normalised time;
- ``rewards.mp4``: the first episodes of each kind, each frame enlarged with a live curve of the
  learned reward and true progress so far and the current values written on it.

Example::

    from roboreward.rewards.diagnostics.evaluation import evaluate_reward_model

    model = make_reward_model(config.reward)
    result = evaluate_reward_model(model, "demos/reach", rollouts="random:10", env_config=config.env,
                                   out_dir="runs/reach/reward_eval", gamma=0.95)
    print(result.table())

## Modules

- :mod:`~roboreward.rewards.diagnostics.episodes`: what is kept of an evaluated episode, dataset
  episodes and random rollouts;
- :mod:`~roboreward.rewards.diagnostics.evaluation`: ``evaluate_reward_model``, the summaries and
  ``metrics.json``;
- :mod:`~roboreward.rewards.diagnostics.starc`: EPIC canonicalisation and the STARC distance;
- :mod:`~roboreward.rewards.diagnostics.plots`: the figure and the video;
- ranks, correlations and success detection: :mod:`roboreward.rewards.metrics`, shared with the
  progress reward's report and policy evaluation.
"""
