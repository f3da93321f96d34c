"""The ROS 2 bridge (rclpy): policies trained in MuJoCo run on robots that speak ROS 2.

A robot is a YAML file in ``configs/robots/`` (:mod:`~roboreward.hardware.robot`): joints and their
limits, the control mode and rate, the state and command topics with message types and QoS, and the
mapping between those messages and a policy's observation and ``[-1, 1]`` action. Everything else
reads that one file, so the two ends of a topic cannot disagree:

- :mod:`~roboreward.hardware.ros` — the topics as publishers/subscriptions; messages to and from
  :class:`~roboreward.hardware.robot.RobotState` (reordered by joint *name*), freshness, drops,
  :class:`~roboreward.hardware.ros.StaleStateError`; :func:`~roboreward.hardware.ros.ros_environment`
  keeps DDS discovery on this machine unless told ``subnet``.
- :mod:`~roboreward.hardware.env` — :class:`~roboreward.hardware.env.RosRobotEnv`, a gymnasium env over
  the topics that never steps on old data, and ``roboreward/RobotSim-v0``, the same mapping in MuJoCo.
- :mod:`~roboreward.hardware.sim` / :mod:`~roboreward.hardware.sim_robot` — the MuJoCo stand-in
  (Franka, Unitree G1, a differential-drive base) and ``roboreward sim-robot``, which publishes it as a
  ROS 2 robot so that everything here is tested between real processes without hardware.
- ``roboreward deploy`` (with its safety layer), ``export`` and ``record`` build on these modules;
  :mod:`~roboreward.hardware.locomotion` lets deploy run a walking policy that takes ``/cmd_vel`` and the
  teleop session's joint targets, and :mod:`~roboreward.hardware.teleop_sink` is the session's ROS 2 side.
- :mod:`~roboreward.hardware.crowd` — crowd navigation's topics (``/scan``, ``/people``, ``/goal_pose``) and
  frames, and the deploy controller that drives a base with a ``roboreward/CrowdNav-v0`` policy;
  :mod:`~roboreward.hardware.crowd_sim_robot` is ``sim-robot diff_drive --crowd``, the crowd behind them.

Importing this package imports neither rclpy nor MuJoCo; the modules above do.
"""
