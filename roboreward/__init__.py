"""roboreward: robot reinforcement learning with learned rewards.

Say what a robot should do — a goal image, a few demonstrations, a sentence — train the policy in
MuJoCo with stable-baselines3, and deploy it. Importing the package registers its envs.
"""

__version__ = "0.1.0"

import os

# The crowd simulator's compiled kernels (numba) and torch each run an OpenMP thread pool on the same cores.
# OpenMP's default keeps idle threads spinning, so while one pool works the other's spinning threads take its
# cores: PPO on roboreward/CrowdNav-v0 ran 4.4x faster, and the env alone beside another busy process 3.8x
# faster, with passive waiting (docs/benchmarks.md). It takes effect only if set before torch or numba load
# their OpenMP runtime (importing roboreward first, as the CLI does); a value you set yourself wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import roboreward.envs  # noqa: E402,F401  (registers roboreward/... env ids)
