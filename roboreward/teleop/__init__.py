"""HOMIE-style teleoperation cockpit: exoskeleton, glove and pedal drivers, calibration,
retargeting, and recording demonstrations. Not built yet: see the teleoperation issue.
"""
