"""The crowd-navigation env's typed configuration: scenario, robot, people, sensing, reward.

``gym.make("roboreward/CrowdNav-v0", **kwargs)`` and the YAML ``env.kwargs`` take the same keys; each
section is a mapping of its own fields, and a scenario may be named by its name alone::

    gym.make("roboreward/CrowdNav-v0", scenario="room", robot={"kinematics": "unicycle"})

    env:
      id: roboreward/CrowdNav-v0
      kwargs:
        scenario: {name: circle_crossing, n_humans: 20}
        humans: {react_to_robot: 0.0}       # CrowdNav++'s invisible robot

Every number is checked (finite, in range) when the env is built, and a crowd that cannot fit its room stops
there; a layout whose draw leaves no room (boxes fell badly) is drawn again, and only a scenario that keeps
failing stops at a reset, with the key, the value and what to change.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from roboreward.config import bounded, from_dict
from roboreward.errors import ConfigError

SCENARIOS = ("circle_crossing", "square_crossing", "corridor", "doorway", "room")
Kinematics = Literal["holonomic", "unicycle", "diff_drive"]


@dataclass(frozen=True)
class ScenarioConfig:
    """Where the robot, the people and the obstacles start, and where they go.

    - ``circle_crossing``: people on a circle of ``circle_radius`` heading for the opposite point (CrowdNav,
      CrowdNav++).
    - ``square_crossing``: people start on one side of a ``square_width`` square and cross to the other.
    - ``corridor``: a ``corridor_width`` corridor along x; people walk both ways, the robot goes end to end.
    - ``doorway``: a wall across the room with a ``door_width`` gap; everyone has to pass the door.
    - ``room``: a walled ``room_size`` square room with ``n_obstacles`` boxes, people walking between free
      points and ``n_static`` people standing still (HEIGHT).

    ``n_groups`` of the walking people walk in groups of ``group_size`` (drawn per group): side by side across
    their way, ``group_gap`` apart, at the slowest member's speed, to one shared goal (each member keeps its place
    in the row), and on to a new shared goal when they arrive.

    Counts are drawn per episode from ``n ± jitter`` (uniformly). The robot starts and ends at random points
    of the ``arena`` ``goal_distance`` apart (CrowdNav++'s rule; in the corridor and doorway it goes from one
    side to the other). The crossings are open by default, the others walled (``walls``).
    """

    name: str = bounded("circle_crossing", "which scenario", choices=SCENARIOS)
    n_humans: int = bounded(20, "moving people", ge=0, le=200)
    n_humans_jitter: int = bounded(0, "moving people vary by up to this many per episode", ge=0, le=50)
    n_static: int = bounded(0, "people standing still", ge=0, le=50)
    n_static_jitter: int = bounded(0, "standing people vary by up to this many per episode", ge=0, le=50)
    n_groups: int = bounded(0, "groups among the walking people", ge=0, le=50)
    group_size: tuple[int, int] = bounded((2, 3), "people per group, drawn from [lo, hi]", ge=2, le=6)
    group_gap: float = bounded(0.2, "free space between neighbours in a group's row, m", ge=0, le=2)
    n_obstacles: int = bounded(0, "boxes (room scenario)", ge=0, le=50)
    n_obstacles_jitter: int = bounded(0, "boxes vary by up to this many per episode", ge=0, le=50)
    obstacle_size: tuple[float, float] = bounded((0.4, 1.6), "box side lengths drawn from [lo, hi] m", gt=0, le=5)
    obstacle_gap: float = bounded(1.0, "free space between boxes, m", ge=0, le=5)
    walls: bool | None = bounded(None, "a walled room around everything (default: yes, but for the crossings)")
    room_size: float = bounded(12.0, "side of the walled square room, m", ge=4, le=50)
    arena: float = bounded(12.0, "the robot starts and ends in this square, m", ge=2, le=50)
    goal_distance: tuple[float, float] = bounded((8.0, 30.0), "the robot's goal is [lo, hi] m from its start",
                                                 ge=0, le=60)
    circle_radius: float = bounded(6 * math.sqrt(2), "circle crossing: radius of the people's circle, m", gt=0, le=25)
    square_width: float = bounded(10.0, "square crossing: side of the square, m", gt=0, le=40)
    corridor_width: float = bounded(3.0, "corridor: width between its walls, m", gt=0, le=20)
    door_width: float = bounded(1.2, "doorway: width of the gap in the wall, m", gt=0, le=10)
    spawn_noise: float = bounded(1.0, "people's starts are moved by up to this much in x and y, m", ge=0, le=5)
    min_separation: float = bounded(0.25, "free space kept between any two bodies at the start, m", ge=0, le=2)
    new_goal_on_arrival: bool = bounded(True, "people who reach their goal get a new one")

    def __post_init__(self) -> None:
        if self.walls is None:
            object.__setattr__(self, "walls", self.name not in ("circle_crossing", "square_crossing"))
        for name in ("obstacle_size", "goal_distance", "group_size"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ConfigError(f"scenario.{name}: {[lo, hi]} must be [lo, hi] with lo <= hi")
        for count in ("n_humans", "n_static", "n_obstacles"):
            if getattr(self, count + "_jitter") > getattr(self, count):
                raise ConfigError(f"scenario.{count}_jitter: {getattr(self, count + '_jitter')} must be <= {count} "
                                  f"({getattr(self, count)})")
        if self.n_groups * self.group_size[1] > self.n_humans - self.n_humans_jitter:
            raise ConfigError(f"scenario.n_groups: {self.n_groups} groups of up to {self.group_size[1]} people need "
                              f"{self.n_groups * self.group_size[1]} walking people; an episode can have "
                              f"{self.n_humans - self.n_humans_jitter} (n_humans - n_humans_jitter): lower n_groups or "
                              f"group_size, or raise n_humans")
        if self.name in ("corridor", "doorway") and tuple(self.goal_distance) != (0.0, 60.0):
            raise ConfigError(f"scenario.goal_distance: {list(self.goal_distance)} does not apply to the {self.name}, "
                              f"whose robot goes from one side to the other; remove it")
        if self.name != "room" and self.n_obstacles:
            raise ConfigError(f"scenario.n_obstacles: {self.n_obstacles} boxes are placed in the 'room' scenario "
                              f"only; set scenario.name: room or n_obstacles: 0")
        if self.walls and self.arena > self.room_size:
            raise ConfigError(f"scenario.arena: {self.arena} m is larger than the walled room (room_size "
                              f"{self.room_size} m); keep arena <= room_size")
        if self.name == "corridor" and self.corridor_width > self.room_size - 1:
            raise ConfigError(f"scenario.corridor_width: {self.corridor_width} m must be < room_size - 1 "
                              f"({self.room_size - 1:g} m)")
        if self.name == "doorway" and self.door_width > self.room_size - 1:
            raise ConfigError(f"scenario.door_width: {self.door_width} m must be < room_size - 1 ({self.room_size - 1:g} m)")

    @property
    def max_humans(self) -> int:
        """The most people (moving and standing) an episode can have: the size of the padded arrays."""
        return self.n_humans + self.n_humans_jitter + self.n_static + self.n_static_jitter

    @property
    def max_obstacles(self) -> int:
        return self.n_obstacles + self.n_obstacles_jitter


# What each scenario changes from ScenarioConfig's defaults (which are CrowdNav++'s circle crossing).
SCENARIO_DEFAULTS: dict[str, dict[str, Any]] = {
    "circle_crossing": {},
    "square_crossing": {"n_humans": 10},
    "corridor": {"n_humans": 6, "goal_distance": (0.0, 60.0)},
    "doorway": {"n_humans": 6, "goal_distance": (0.0, 60.0)},
    # HEIGHT's room: 7 ± 2 walking, 1 ± 1 standing, 10 ± 2 boxes, the goal 5-6 m away.
    "room": {"n_humans": 7, "n_humans_jitter": 2, "n_static": 1, "n_static_jitter": 1, "n_obstacles": 10,
             "n_obstacles_jitter": 2, "arena": 8.0, "goal_distance": (5.0, 6.0), "spawn_noise": 2.0},
}


@dataclass(frozen=True)
class CrowdRobotConfig:
    """The robot's body and how actions move it.

    - ``holonomic``: action ``(vx, vy)`` in the robot's frame, scaled by ``max_speed`` and clipped to the
      unit disc; the heading stays as it started.
    - ``unicycle``: action ``(v, ω)``: forward speed ``v ∈ [-max_reverse, max_speed]`` and turn rate
      ``ω ∈ [-max_angular, max_angular]``; the heading turns first, then the robot moves along it.
    - ``diff_drive``: a unicycle whose speed and turn rate change at most ``max_accel`` /
      ``max_angular_accel`` per second; its speed limits default to ``configs/robots/diff_drive.yaml``'s base.

    Actions are ``[-1, 1]`` per dimension (SB3's convention); out-of-range actions are clipped. With
    ``actions: discrete`` the robot takes one of a fixed set instead: holonomic, CrowdNav's 81 (stop, or one of
    5 speeds, exponentially spaced up to ``max_speed``, in one of 16 directions); unicycle and diff-drive,
    HEIGHT's 9 (speed up, keep or slow down by 0.05 m/s, times turn faster left, keep or right by 0.1 rad/s).
    """

    kinematics: Kinematics = "holonomic"
    actions: Literal["continuous", "discrete"] = "continuous"
    radius: float = bounded(0.3, "m", gt=0, le=2)
    max_speed: float = bounded(1.0, "m/s (v_pref)", gt=0, le=5)
    max_reverse: float = bounded(0.0, "unicycle / diff_drive: the fastest backwards speed, m/s", ge=0, le=5)
    max_angular: float = bounded(1.0, "unicycle / diff_drive: rad/s", gt=0, le=10)
    max_accel: float = bounded(1.0, "diff_drive: m/s^2", gt=0, le=20)
    max_angular_accel: float = bounded(4.0, "diff_drive: rad/s^2", gt=0, le=50)


@dataclass(frozen=True)
class HumanConfig:
    """The people: their bodies, their speeds and how they move.

    ``react_to_robot`` is the probability that a person (drawn per person and episode) treats the robot as
    one more agent to avoid; 0.0 is CrowdNav++'s "invisible robot", where only the robot can avoid a collision.

    ``policy``: ``orca`` (RVO2's reciprocal collision avoidance) or ``social_force`` (Helbing & Molnár's model
    in CrowdNav's form: ``Δv = [k·(v_goal − v) + Σ A·exp((r_i + r_j − d_ij)/B)·n_ij + Σ A_w·exp((r_i − d_iw)/B_w)·n_iw]·dt``,
    a pull towards the goal at the preferred speed and exponential pushes away from other people and from walls
    and boxes, the speed capped at the preferred one).
    """

    policy: Literal["orca", "social_force"] = "orca"
    radius: tuple[float, float] = bounded((0.3, 0.3), "radius drawn from [lo, hi] m", gt=0, le=1)
    max_speed: tuple[float, float] = bounded((1.0, 1.0), "preferred speed drawn from [lo, hi] m/s", gt=0, le=3)
    react_to_robot: float = bounded(1.0, "probability that a person avoids the robot", ge=0, le=1)
    safety_space: float = bounded(0.1, "ORCA: added to every radius when choosing velocities (not for contact), m",
                                  ge=0, le=1)
    force_goal: float = bounded(1.0, "social force: k, 1/s, the pull towards the preferred velocity", gt=0, le=100)
    force_people: float = bounded(2.0, "social force: A, m/s², the push between people", ge=0, le=100)
    force_people_range: float = bounded(1.0, "social force: B, m, how far the push between people reaches", gt=0, le=10)
    force_walls: float = bounded(2.0, "social force: A_w, m/s², the push from walls and boxes", ge=0, le=100)
    force_walls_range: float = bounded(0.3, "social force: B_w, m", gt=0, le=10)
    neighbor_dist: float = bounded(10.0, "ORCA: m", gt=0, le=50)
    max_neighbors: int = bounded(10, "ORCA: nearest agents considered", ge=1, le=100)
    time_horizon: float = bounded(5.0, "ORCA: s", gt=0, le=30)
    time_horizon_obst: float = bounded(5.0, "ORCA: s", gt=0, le=30)

    def __post_init__(self) -> None:
        for name in ("radius", "max_speed"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ConfigError(f"humans.{name}: {[lo, hi]} must be [lo, hi] with lo <= hi")


@dataclass(frozen=True)
class SensingConfig:
    """What the robot perceives of the people and the obstacles."""

    max_humans: int | None = bounded(None, "rows of the padded people array (default: the scenario's most)", ge=1,
                                     le=256)
    sensor_range: float = bounded(5.0, "people beyond this distance are not seen, m", gt=0, le=100)
    fov: float = bounded(2 * math.pi, "field of view centred on the heading, rad", gt=0, le=2 * math.pi)
    occlusion: bool = bounded(False, "people behind obstacles or walls are not seen")
    position_noise: float = bounded(0.0, "standard deviation of the noise on people's positions, m", ge=0, le=1)
    dropout: float = bounded(0.0, "probability that a visible person is missed in a step", ge=0, le=1)
    lidar_rays: int = bounded(180, "lidar rays over lidar_fov (0: no lidar)", ge=0, le=4096)
    lidar_fov: float = bounded(2 * math.pi, "rad", gt=0, le=2 * math.pi)
    lidar_range: float = bounded(10.0, "m", gt=0, le=100)
    lidar_sees_humans: bool = bounded(False, "people block the lidar too (as on a real robot)")
    max_obstacle_tokens: int | None = bounded(None, "rows of the padded obstacle tokens (default: the scenario's most)",
                                              ge=1, le=512)


RewardPreset = Literal["crowdnav_pp", "height", "corrected"]

# Each preset's published coefficients, for the fields left null (``unicycle`` covers diff-drive robots too).
PRESET_COEFFICIENTS: dict[str, dict[str, dict[str, float]]] = {
    "crowdnav_pp": {"holonomic": {"success": 10.0, "progress_factor": 2.0, "spin_factor": 0.0, "time_factor": 0.0},
                    "unicycle": {"success": 10.0, "progress_factor": 3.0, "spin_factor": 4.5, "time_factor": 0.0}},
    "height": {"holonomic": {"success": 20.0, "progress_factor": 2.0, "spin_factor": 0.0, "time_factor": 0.0},
               "unicycle": {"success": 20.0, "progress_factor": 2.0, "spin_factor": 0.05, "time_factor": 0.25}},
    "corrected": {"holonomic": {"success": 10.0, "progress_factor": 2.0, "spin_factor": 0.0, "time_factor": 1.0},
                  "unicycle": {"success": 10.0, "progress_factor": 2.0, "spin_factor": 0.0, "time_factor": 1.0}},
}


@dataclass(frozen=True)
class CrowdRewardConfig:
    """The hand-written reward (see :mod:`roboreward.envs.crowd.rewards` for every term and its form per preset).

    Coefficients left null take the preset's published value for the robot's kinematics
    (:data:`PRESET_COEFFICIENTS`); :class:`CrowdNavConfig` fills them in, so a saved config shows the numbers used.
    """

    preset: RewardPreset = "corrected"
    success: float | None = bounded(None, "reward on reaching the goal (null: the preset's)", ge=0, le=1000)
    collision: float = bounded(-20.0, "reward on any collision (ends the episode)", ge=-1000, le=0)
    discomfort_dist: float = bounded(0.25, "closer than this (surface to surface, m) is discomfort", ge=0, le=5)
    discomfort_factor: float = bounded(10.0, "discomfort: factor × (distance − discomfort_dist) × time_step",
                                       ge=0, le=1000)
    progress_factor: float | None = bounded(None, "progress: factor × metres gained towards the goal (null: the "
                                            "preset's)", ge=0, le=100)
    spin_factor: float | None = bounded(None, "the turning penalty's factor (0: none; null: the preset's)", ge=0, le=100)
    time_factor: float | None = bounded(None, "the cost of each second on the way (null: the preset's)", ge=0, le=100)
    gamma: float = bounded(0.99, "corrected preset: the learner's discount for the progress shaping", gt=0, le=1)


@dataclass(frozen=True)
class CrowdNavConfig:
    """Everything ``roboreward/CrowdNav-v0`` takes."""

    scenario: ScenarioConfig = field(default_factory=ScenarioConfig)
    robot: CrowdRobotConfig = field(default_factory=CrowdRobotConfig)
    humans: HumanConfig = field(default_factory=HumanConfig)
    sensing: SensingConfig = field(default_factory=SensingConfig)
    reward: CrowdRewardConfig = field(default_factory=CrowdRewardConfig)
    time_step: float = bounded(0.25, "s per step", ge=0.01, le=1.0)
    time_limit: float = bounded(50.0, "s; an episode that runs this long is truncated (not terminal)", gt=0,
                                le=3600)
    goal_radius: float | None = bounded(None, "the robot has arrived within this distance of its goal, m "
                                        "(default: its radius)", gt=0, le=5)
    render_size: int = bounded(256, "side of the top-down RGB render, pixels", ge=32, le=2048)

    def __post_init__(self) -> None:
        r = self.reward
        published = PRESET_COEFFICIENTS[r.preset]["holonomic" if self.robot.kinematics == "holonomic" else "unicycle"]
        filled = {name: value for name, value in published.items() if getattr(r, name) is None}
        if filled:
            object.__setattr__(self, "reward", dataclasses.replace(r, **filled))
        s, people = self.scenario, self.humans
        if s.walls and s.max_humans:
            # Discs cannot cover more than ~90 % of a plane; rejection sampling stalls far earlier, near half.
            needed = s.max_humans * math.pi * (people.radius[1] + s.min_separation / 2) ** 2
            area = s.room_size ** 2
            if needed > 0.5 * area:
                raise ConfigError(
                    f"scenario.n_humans: {s.max_humans} people of radius up to {people.radius[1]} m need "
                    f"{needed:.0f} m² of the {area:.0f} m² room; at most half of it can be filled: lower n_humans / "
                    f"n_static or raise room_size")

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any] | None = None, key: str = "env.kwargs") -> CrowdNavConfig:
        """The config from gym.make's kwargs (a scenario, robot or reward preset may be given by name)."""
        data = dict(kwargs or {})
        if isinstance(data.get("scenario"), str):
            data["scenario"] = {"name": data["scenario"]}
        scenario = dict(data.get("scenario") or {})
        name = scenario.get("name", "circle_crossing")
        if name not in SCENARIOS:
            raise ConfigError(f"{key}.scenario.name: {name!r} is not a scenario; choose one of {list(SCENARIOS)}")
        data["scenario"] = {**SCENARIO_DEFAULTS[name], **scenario}
        if isinstance(data.get("reward"), str):
            data["reward"] = {"preset": data["reward"]}
        if isinstance(data.get("robot"), str):
            data["robot"] = {"kinematics": data["robot"]}
        robot = dict(data.get("robot") or {})
        if robot.get("kinematics") == "diff_drive":
            base = _diff_drive_base()
            robot.setdefault("max_speed", base.max_linear)
            robot.setdefault("max_angular", base.max_angular)
            data["robot"] = robot
        return from_dict(cls, data, key)

    @property
    def max_steps(self) -> int:
        return math.ceil(self.time_limit / self.time_step - 1e-9)


def _diff_drive_base():
    """The base section of ``configs/robots/diff_drive.yaml`` (its speed limits)."""
    from roboreward.hardware.robot import load_robot_config

    return load_robot_config("diff_drive").base
