"""Crowd navigation: a robot crossing among people and obstacles, simulated for many envs at once.

``gym.make("roboreward/CrowdNav-v0", scenario="room")`` is one world; ``CrowdNavVecEnv(64, scenario="room")``
(``env.vectorization: batched`` in a config) steps 64 in one call. The parts, top-down:

- :mod:`~roboreward.envs.crowd.config` — the typed configuration (scenario, robot, people, sensing, reward).
- :mod:`~roboreward.envs.crowd.env` — the gymnasium env and the batched SB3 VecEnv; the observation layout.
- :mod:`~roboreward.envs.crowd.sim` — the simulator: kinematics, people, contacts, arrivals, in arrays over envs.
- :mod:`~roboreward.envs.crowd.scenarios` — where episodes start: circle and square crossing, corridor,
  doorway, HEIGHT's room with boxes.
- :mod:`~roboreward.envs.crowd.rewards` — the hand-written rewards (CrowdNav++, HEIGHT, corrected).
- :mod:`~roboreward.envs.crowd.metrics` — success, collisions by kind, time, path, SPL, intrusions, jerk.
- :mod:`~roboreward.envs.crowd.orca` — ORCA (the RVO2 library's algorithm) for every person of every env in
  one compiled call; :mod:`~roboreward.envs.crowd.lidar` — lidar and line of sight, the same way;
  :mod:`~roboreward.envs.crowd.sensors` — the robot-frame observation kernel;
  :mod:`~roboreward.envs.crowd.render` — the top-down picture.
"""
