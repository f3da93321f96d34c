"""Glove retargeting: hand-computed linear and coupled maps, clamping, mirroring, errors, the shipped hands."""

from __future__ import annotations

import numpy as np
import pytest

from roboreward.config import from_dict
from roboreward.errors import ConfigError
from roboreward.teleop.retarget import (
    HandRetargeter,
    HandRetargetingConfig,
    hand_retargeting_names,
    load_hand_retargeting,
)


def make_config(**changes) -> HandRetargetingConfig:
    """Four channels, three joints listed out of dependency order (c follows b follows a)."""
    data = {
        "name": "toy",
        "n_channels": 4,
        "sides": {"left": {"prefix": "l_"}, "right": {"prefix": "r_", "mirrored": True}},
        "joints": [
            {"name": "c", "channels": [1], "gains": [-1.0], "coupled_to": "b", "ratio": 2.0},
            {"name": "a", "channels": [0, 2], "gains": [1.0, 0.5], "offset": 0.1, "mirror": True},
            {"name": "b", "coupled_to": "a", "ratio": 0.7, "mirror": True},
        ],
    }
    data.update(changes)
    return from_dict(HandRetargetingConfig, data)


WIDE = np.array([[-5.0, 5.0]] * 3)
X = np.array([0.2, 0.3, 0.4, 0.9])  # channel 3 is not used by any joint


def test_linear_map_with_coupling_matches_hand_computation():
    r = HandRetargeter(make_config(), WIDE, side="left")
    a = 0.1 + 1.0 * 0.2 + 0.5 * 0.4  # 0.5
    b = 0.7 * a  # 0.35
    c = -1.0 * 0.3 + 2.0 * b  # 0.4
    np.testing.assert_allclose(r(X), [c, a, b], atol=1e-12)
    assert r.joint_names == ["l_c", "l_a", "l_b"]
    np.testing.assert_allclose(r(np.zeros(4)), [2.0 * 0.7 * 0.1, 0.1, 0.7 * 0.1], atol=1e-12)


def test_clamping_and_coupled_joints_follow_the_clamped_target():
    limits = np.array([[-5.0, 5.0], [-1.0, 0.45], [-5.0, 5.0]])  # a's upper limit bites
    r = HandRetargeter(make_config(), limits, side="left")
    a = 0.45
    b = 0.7 * a
    c = -0.3 + 2.0 * b
    np.testing.assert_allclose(r(X), [c, a, b], atol=1e-12)
    # c clamps too
    r = HandRetargeter(make_config(), np.array([[-5.0, 0.2], [-5.0, 5.0], [-5.0, 5.0]]), side="left")
    assert r(X)[0] == pytest.approx(0.2)
    # channels outside 0..1 are clipped before mapping
    np.testing.assert_allclose(r(np.array([3.0, -1.0, 0.0, 0.0]))[1], 0.1 + 1.0)


def test_mirrored_side_negates_mirrored_joints_only():
    r = HandRetargeter(make_config(), WIDE, side="right")
    assert r.joint_names == ["r_c", "r_a", "r_b"]
    # a and b are mirrored joints: negated; c is not, and it follows b's canonical (unmirrored) value
    np.testing.assert_allclose(r(X), [0.4, -0.5, -0.35], atol=1e-12)
    # limits apply on the robot side: right a limited to [-0.45, 5] clamps -0.5
    r = HandRetargeter(make_config(), np.array([[-5.0, 5.0], [-0.45, 5.0], [-5.0, 5.0]]), side="right")
    np.testing.assert_allclose(r(X), [-0.3 + 2 * 0.7 * 0.45, -0.45, -0.7 * 0.45], atol=1e-12)


def test_inverted_channels_and_limits_by_name():
    cfg = make_config(inverted_channels=[1])
    limits = {"l_a": (-5.0, 5.0), "l_b": (-5.0, 5.0), "l_c": (-5.0, 5.0), "unrelated": (0.0, 1.0)}
    r = HandRetargeter(cfg, limits, side="left")
    np.testing.assert_allclose(r(X)[0], -(1 - 0.3) + 2.0 * 0.35, atol=1e-12)


def test_bad_inputs_are_rejected():
    r = HandRetargeter(make_config(), WIDE, side="left")
    with pytest.raises(ValueError, match="expects 4 glove channels"):
        r(np.zeros(15))
    with pytest.raises(ValueError, match="NaN"):
        r(np.array([0.1, np.nan, 0.0, 0.0]))
    with pytest.raises(ConfigError, match="pass side="):
        HandRetargeter(make_config(), WIDE)
    with pytest.raises(ConfigError, match="no 'up' side"):
        HandRetargeter(make_config(), WIDE, side="up")
    with pytest.raises(ValueError, match=r"shape \(3, 2\)"):
        HandRetargeter(make_config(), np.zeros((2, 2)), side="left")
    with pytest.raises(ConfigError, match="'l_b' is not in the robot's model"):
        HandRetargeter(make_config(), {"l_a": (0, 1), "l_c": (0, 1)}, side="left")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"joints": [{"name": "a", "channels": [0, 4], "gains": [1.0, 1.0]}]},
         r"joints\[0\]\.channels\[1\]: channel 4 is out of range; the glove has n_channels=4"),
        ({"joints": [{"name": "a", "coupled_to": "pip", "ratio": 0.7}]},
         r"joints\[0\]\.coupled_to: unknown joint 'pip'"),
        ({"joints": [{"name": "a", "coupled_to": "b", "ratio": 1.0}, {"name": "b", "coupled_to": "c", "ratio": 1.0},
                     {"name": "c", "coupled_to": "a", "ratio": 1.0}]},
         r"coupling cycle a -> b -> c -> a"),
        ({"joints": [{"name": "a", "coupled_to": "a", "ratio": 1.0}]}, r"cannot be coupled to itself"),
        ({"joints": [{"name": "a", "channels": [0, 1], "gains": [1.0]}]},
         r"joints\[0\]\.gains: 1 gains for 2 channels"),
        ({"joints": [{"name": "a", "channels": [0], "gains": [1.0]}, {"name": "a", "channels": [1], "gains": [1.0]}]},
         r"joints\[1\]\.name: 'a' is listed twice"),
        ({"joints": [{"name": "a", "ratio": 0.5}]}, r"joints\[0\]\.ratio: 0.5 is set but coupled_to is not"),
        ({"sides": {"middle": {"prefix": ""}}}, r"sides\.middle: unknown side"),
        ({"inverted_channels": [7]}, r"inverted_channels\[0\]: channel 7 is out of range"),
        ({"joints": [{"name": "a", "channel": [0]}]}, r"joints\[0\]\.channel: unknown key"),
    ],
)
def test_config_errors_name_the_field(change, message):
    with pytest.raises(ConfigError, match=message):
        make_config(**change)


def test_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "hand.yaml"
    bad.write_text("name: x\nsides: {right: {}}\njoints:\n  - {name: j, channels: [20], gains: [1.0]}\n")
    with pytest.raises(ConfigError, match=r"hand\.yaml: joints\[0\]\.channels\[0\]: channel 20 is out of range"):
        load_hand_retargeting(bad)
    with pytest.raises(ConfigError, match=r"unknown hand 'g1_hnd' \(did you mean 'g1_hand'\?\)"):
        load_hand_retargeting("g1_hnd")
    assert {"g1_hand", "shadow_hand"} <= set(hand_retargeting_names())


def ends(r: HandRetargeter, joints: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    idx = [r.joint_names.index(j) for j in joints]
    q_open, q_closed = r(np.zeros(r.n_channels)), r(np.ones(r.n_channels))
    return q_open[idx], q_closed[idx], r.lower[idx], r.upper[idx]


def assert_spans_range(r: HandRetargeter, joints: list[str]) -> None:
    q_open, q_closed, lo, hi = ends(r, joints)
    for j, o, c, a, b in zip(joints, q_open, q_closed, lo, hi):
        assert {round(o, 5), round(c, 5)} == {round(a, 5), round(b, 5)}, (j, o, c, a, b)


G1_JOINTS = ["thumb_0_joint", "thumb_1_joint", "thumb_2_joint", "index_0_joint", "index_1_joint",
             "middle_0_joint", "middle_1_joint"]


def test_g1_hand_loads_against_its_mjcf_and_spans_each_joint():
    config = load_hand_retargeting("g1_hand")
    left = HandRetargeter(config, side="left")  # limits read from the G1 MJCF
    right = HandRetargeter(config, side="right")
    assert left.joint_names == [f"left_hand_{j}" for j in G1_JOINTS]
    assert right.joint_names == [f"right_hand_{j}" for j in G1_JOINTS]
    assert_spans_range(left, left.joint_names)
    assert_spans_range(right, right.joint_names)
    # open: fingers straight (index/middle at 0); closed: flexed; the right hand mirrors the left
    o, c = left(np.zeros(15)), left(np.ones(15))
    np.testing.assert_allclose(o[3:7], 0.0, atol=1e-9)
    np.testing.assert_allclose(c[3:7], [-1.5708, -1.74533, -1.5708, -1.74533], atol=1e-4)
    x = np.random.default_rng(0).uniform(0, 1, 15)
    np.testing.assert_allclose(right(x)[1:], -left(x)[1:], atol=1e-9)  # z-axis joints flip
    np.testing.assert_allclose(right(x)[0], left(x)[0], atol=1e-9)  # thumb_0 (y axis) does not
    # the middle finger follows middle, ring and little (weights 0.5, 0.25, 0.25 of its range)
    x = np.zeros(15)
    x[[7, 10, 13]] = [1.0, 0.0, 0.0]
    assert left(x)[5] == pytest.approx(-0.7854)
    assert left(x)[6] == pytest.approx(-0.7854 * 1.11112, abs=1e-6)


def test_shadow_hand_loads_against_its_mjcf_and_spans_the_flexion_joints():
    config = load_hand_retargeting("shadow_hand")
    r = HandRetargeter(config)  # one side only: right
    assert r.side == "right" and len(r.joint_names) == 22 and r.joint_names[0] == "robot0:FFJ3"
    flexion = [f"robot0:{f}J{k}" for f in ("FF", "MF", "RF", "LF") for k in (2, 1, 0)]
    flexion += ["robot0:LFJ4", "robot0:THJ4", "robot0:THJ3", "robot0:THJ2", "robot0:THJ1", "robot0:THJ0"]
    assert_spans_range(r, flexion)
    q_open, q_closed, _, _ = ends(r, [f"robot0:{f}J1" for f in ("FF", "MF", "RF", "LF")])
    np.testing.assert_allclose(q_open, 0.0, atol=1e-9)
    np.testing.assert_allclose(q_closed, 1.571, atol=1e-6)
    # DIP follows PIP with the model's tendon ratio until it reaches its limit
    x = np.zeros(15)
    x[5] = 0.5
    q = r(x)
    assert q[r.joint_names.index("robot0:FFJ0")] == pytest.approx(1.1418 * 0.5 * 1.571)
    # spread channels stay inside their joints' limits
    assert np.all(r(np.full(15, 0.5)) >= r.lower) and np.all(r(np.full(15, 0.5)) <= r.upper)
