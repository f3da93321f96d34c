"""roboreward: robot reinforcement learning with learned rewards.

Say what a robot should do — a goal image, a few demonstrations, a sentence — train the policy in
MuJoCo with stable-baselines3, and deploy it. Importing the package registers its envs.
"""

__version__ = "0.1.0"

import roboreward.envs  # noqa: E402,F401  (registers roboreward/... env ids)
