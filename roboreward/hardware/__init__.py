"""The ROS 2 bridge (rclpy): robots as gymnasium envs, a deployment node with a safety layer, and
the MuJoCo simulation exposed as a ROS 2 robot. Not built yet: see the ROS 2 bridge issue.
"""
