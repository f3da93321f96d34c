"""HOMIE-style teleoperation cockpit: devices, robots, the live session, recording and replay.

One operator drives a robot with isomorphic exoskeleton arms, Hall-sensor gloves and a foot pedal,
each a microcontroller on a serial port. This package holds, bottom up:

- :mod:`~roboreward.teleop.protocol`: the one framed binary protocol all devices speak (byte table,
  CRC-16/CCITT-FALSE, reading dataclasses, ``encode_frame``).
- :mod:`~roboreward.teleop.parser`: the streaming parser (``feed(bytes) -> readings``) that
  resynchronises after any fault, counts each kind, and never raises or blocks.
- :mod:`~roboreward.teleop.devices`: LeRobot-style ``Teleoperator`` drivers (``ExoskeletonArm``,
  ``HallGlove``, ``Pedal``) reading the ports with pyserial in a thread; unplug noticed within
  100 ms, reconnect when the port returns.
- :mod:`~roboreward.teleop.calibration`: per-device calibration YAML, fits from short recordings,
  and the pedal's rate-limited mapping to walking commands.
- :mod:`~roboreward.teleop.simulated`: devices that speak the protocol on real ptys, with noise,
  dropouts, corruption and unplugging, for tests and demos without hardware.
- :mod:`~roboreward.teleop.cockpit`: the devices by name (``exo_left`` ... ``pedal``), the driver and
  the robot part each one is, and a simulated cockpit for any robot.
- :mod:`~roboreward.teleop.mjcf`: MJCF files and the joint and body names in them (shared below).
- :mod:`~roboreward.teleop.retarget`: glove channels -> joint targets of any dexterous hand (YAML maps).
- :mod:`~roboreward.teleop.robots`: the MuJoCo robots the cockpit drives (G1 with Dex3 hands and a
  pedal-driven base, Franka with its gripper).
- :mod:`~roboreward.teleop.calibrate`: the guided calibration behind ``roboreward teleop calibrate``.
- :mod:`~roboreward.teleop.sinks`: where commands go (``CommandSink``) and the ``sink:`` config
  section that picks one; :mod:`~roboreward.teleop.sim_sink` is the simulated robot (``sink: sim``),
  and :mod:`roboreward.hardware.teleop_sink` a ROS 2 robot (``sink: ros2``).
- :mod:`~roboreward.teleop.command_loop`: the command thread: each new reading becomes a robot
  command within a millisecond or so; the robot is held when a device is unplugged and resumes
  when it returns.
- :mod:`~roboreward.teleop.controls`: the pedal buttons and keys that start, save and discard episodes.
- :mod:`~roboreward.teleop.recorder`: episodes into a LeRobot v3 dataset with a per-episode teleop
  sidecar (every device reading, the interrupted flag); :mod:`~roboreward.teleop.recording_worker`
  is the thread that renders, encodes and saves them, and reports its progress.
- :mod:`~roboreward.teleop.dataset`: reads a recorded dataset back (``TeleopDataset``).
- :mod:`~roboreward.teleop.console`: the session's messages and its status line.
- :mod:`~roboreward.teleop.session`: the live session (``roboreward teleop run``) that runs these parts.
- :mod:`~roboreward.teleop.replay`: replays a recorded episode in simulation and reports tracking
  error (``roboreward teleop replay``).
- :mod:`~roboreward.teleop.cli`: the ``roboreward teleop`` commands.

Submodules are imported on demand; importing this package loads nothing heavy.
"""
