"""Training with stable-baselines3, checkpoints, and evaluation of trained runs.

``train(config)`` / ``resume(run_dir)`` in :mod:`roboreward.policies.train`,
``evaluate(run_dir)`` in :mod:`roboreward.policies.evaluate`.
"""
