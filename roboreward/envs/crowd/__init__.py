"""Crowd navigation: the simulator's parts, batched over envs and agents (numba kernels, numpy arrays).

- :mod:`~roboreward.envs.crowd.orca` — ORCA (optimal reciprocal collision avoidance), the algorithm and
  parameters of the RVO2 library, among other people and static obstacles (boxes, walls, a room), for
  every agent of every env in one call.
"""
