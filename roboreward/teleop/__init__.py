"""HOMIE-style teleoperation cockpit: the device layer.

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

Not built yet (see the teleoperation issue): glove retargeting to dexterous hands, the live session
driving a robot, and recording demonstrations. Submodules are imported on demand; importing this
package loads nothing heavy.
"""
