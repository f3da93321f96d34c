"""Simulated robots as gymnasium envs, registered under ``roboreward/<Task>-vN``.

Entry points are strings, so importing :mod:`roboreward` does not import MuJoCo or build models;
``gym.make`` does that on first use. A changed reward or observation is a new version id.

=============================  =================================================================
id                             what it is
=============================  =================================================================
``roboreward/ArmReach-v0``     planar two-link arm reaching a target (new goal every episode)
``roboreward/ArmReachFixed-v0``  the same with one fixed goal
``roboreward/HumanoidPose-v0``  MuJoCo humanoid outdoors; ``task=`` a pose (kneeling, lotus, ...) for VLM-RM
``roboreward/G1Loco-v0``       Unitree G1 learning HOMIE's body: walk, turn, squat under moving arms
``roboreward/CrowdNav-v0``     a mobile robot crossing a crowd among obstacles (:mod:`roboreward.envs.crowd`)
=============================  =================================================================

Envs with a batched simulator of their own (``BATCHED_ENVS``) also come as one SB3 VecEnv that steps every
env in one call: ``env.vectorization: batched`` in a config.

Meta-World v3 tasks (Sawyer arm; a new object/goal placement every episode; 200 steps; reward
is Meta-World's own, reported as the one term ``reward_task``), also listed in
``METAWORLD_ENV_IDS``; see :mod:`roboreward.envs.metaworld`.

==========================================  ======================================================
id                                          Meta-World task
==========================================  ======================================================
``roboreward/MetaWorld-Reach-v3``           ``reach-v3``: move the gripper to a goal point
``roboreward/MetaWorld-Push-v3``            ``push-v3``: push a puck to a goal on the table
``roboreward/MetaWorld-DoorOpen-v3``        ``door-open-v3``: pull a hinged door open
``roboreward/MetaWorld-DrawerOpen-v3``      ``drawer-open-v3``: pull a drawer open
``roboreward/MetaWorld-ButtonPress-v3``     ``button-press-v3``: press a button in horizontally
``roboreward/MetaWorld-PickPlace-v3``       ``pick-place-v3``: pick up a puck, place it at a goal
==========================================  ======================================================
"""

from __future__ import annotations

import gymnasium as gym

ENV_IDS: list[str] = []


# Env id -> its batched SB3 VecEnv (``env.vectorization: batched``).
BATCHED_ENVS: dict[str, str] = {"roboreward/CrowdNav-v0": "roboreward.envs.crowd.env:CrowdNavVecEnv"}


def _register(env_id: str, entry_point: str, max_episode_steps: int | None, **kwargs) -> None:
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=entry_point, max_episode_steps=max_episode_steps, kwargs=kwargs)
    ENV_IDS.append(env_id)


_register("roboreward/ArmReach-v0", "roboreward.envs.arm_reach:ArmReachEnv", 50, goal="random")
_register("roboreward/ArmReachFixed-v0", "roboreward.envs.arm_reach:ArmReachEnv", 50, goal="fixed")
# VLM-RM's humanoid: no task (stand) by default; configs pick a pose with env.kwargs.task.
_register("roboreward/HumanoidPose-v0", "roboreward.envs.humanoid_pose:HumanoidPoseEnv", 100)
_register("roboreward/G1Loco-v0", "roboreward.envs.g1_loco:G1LocoEnv", 1000)
# A robot file's robot (configs/robots) in MuJoCo, driven to its home pose; robot= picks it (franka, g1, diff_drive).
# Crowd navigation: the episode's time limit is the config's time_limit, kept by the env itself.
_register("roboreward/CrowdNav-v0", "roboreward.envs.crowd.env:CrowdNavEnv", None)
_register("roboreward/RobotSim-v0", "roboreward.hardware.env:RobotSimEnv", 100, robot="franka")

# Meta-World v3 tasks: 200-step episodes (why not Meta-World's 500: see roboreward.envs.metaworld).
METAWORLD_ENV_IDS: list[str] = []
for _name, _task in [
    ("Reach", "reach-v3"),
    ("Push", "push-v3"),
    ("DoorOpen", "door-open-v3"),
    ("DrawerOpen", "drawer-open-v3"),
    ("ButtonPress", "button-press-v3"),
    ("PickPlace", "pick-place-v3"),
]:
    _register(f"roboreward/MetaWorld-{_name}-v3", "roboreward.envs.metaworld:MetaWorldEnv", 200, task=_task)
    METAWORLD_ENV_IDS.append(f"roboreward/MetaWorld-{_name}-v3")

__all__ = ["BATCHED_ENVS", "ENV_IDS", "METAWORLD_ENV_IDS"]
