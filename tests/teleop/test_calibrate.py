"""The guided calibration against simulated devices on real ptys: it recovers the devices' offsets, signs and ranges."""

from __future__ import annotations

import math

import numpy as np
import pytest

from roboreward.teleop.calibrate import ARM_REFERENCE_POSES, CalibrationAborted, run_guided_calibration
from roboreward.teleop.calibration import (
    ArmCalibration,
    CalibrationError,
    GloveCalibration,
    PedalCalibration,
    load_calibration,
)
from roboreward.teleop.devices import ExoskeletonArmConfig, HallGloveConfig, PedalConfig
from roboreward.teleop.simulated import SimulatedExoskeletonArm, SimulatedGlove, SimulatedPedal

FAST = {"seconds": 0.4, "settle_s": 0.15}


class Operator:
    """A scripted operator: on each prompt it puts the simulated device into the pose the step's tag asks for."""

    def __init__(self, poses: dict[str, object], answer: str = ""):
        self.poses = poses
        self.answer = answer
        self.current = None
        self.prompts: list[str] = []
        self.printed: list[str] = []

    def prompt(self, text: str) -> str:
        self.prompts.append(text)
        tag = text[1:text.index("]")]
        self.current = self.poses[tag]
        return self.answer

    def motion(self, t: float) -> np.ndarray:
        pose = self.current if self.current is not None else next(iter(self.poses.values()))
        return pose(t) if callable(pose) else np.asarray(pose, dtype=np.float64)


def sweep(lo, hi, hz=4.0):
    """Values that go back and forth between lo and hi (arrays) at ``hz``, phase-shifted per channel."""
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    phase = np.linspace(0, math.pi, len(lo))

    def f(t):
        return lo + (hi - lo) * 0.5 * (1 + np.sin(2 * math.pi * hz * t + phase))

    return f


def test_arm_calibration_recovers_offsets_signs_and_writes_limits(tmp_path):
    side = "right"
    offset = np.array([0.3, -1.2, 0.05, 2.0, -0.4, 0.9, -2.5])  # raw angle at the robot's zero
    sign = np.array([1, -1, 1, 1, -1, -1, 1])
    ref = np.array(ARM_REFERENCE_POSES[side])
    operator = Operator({"zero": offset, "reference": offset + sign * ref})
    limits = [(-3.0, 2.6), (-2.2, 1.5), (-2.6, 2.6), (-1.0, 2.0), (-1.9, 1.9), (-1.6, 1.6), (-1.6, 1.6)]
    out = tmp_path / "exo_right.yaml"
    with SimulatedExoskeletonArm(side=side, rate_hz=200, noise=0.002, seed=3, motion=operator.motion) as sim:
        cal = run_guided_calibration(
            ExoskeletonArmConfig(port=sim.port, side=side), out, prompt=operator.prompt,
            print_fn=operator.printed.append, joint_limits=limits, **FAST,
        )
    assert [p[1:p.index("]")] for p in operator.prompts] == ["zero", "reference"]
    assert isinstance(cal, ArmCalibration) and cal.side == side
    np.testing.assert_allclose([j.offset for j in cal.joints], offset, atol=0.003)  # noise 0.002, median of ~80
    assert [j.sign for j in cal.joints] == sign.tolist()
    assert [(j.lower, j.upper) for j in cal.joints] == limits
    assert load_calibration(out) == cal
    # the calibration maps the reference pose's raw angles back to the reference pose
    np.testing.assert_allclose(cal.apply(offset + sign * ref), ref, atol=0.003)
    assert any("Saved to" in line for line in operator.printed)


def test_glove_calibration_recovers_each_channels_range_from_raw_readings(tmp_path):
    rng = np.random.default_rng(1)
    lo = rng.uniform(300, 1500, 15).round()
    hi = lo + rng.uniform(1000, 2500, 15).round()
    operator = Operator({"open-close": sweep(lo, hi)})
    out = tmp_path / "glove_left.yaml"
    with SimulatedGlove(side="left", rate_hz=250, noise=4.0, seed=2, motion=operator.motion) as sim:
        # the config names the file being written (it does not exist yet): calibrating ignores it
        config = HallGloveConfig(port=sim.port, side="left", calibration=str(out))
        cal = run_guided_calibration(config, out, prompt=operator.prompt, print_fn=operator.printed.append,
                                     seconds=1.0, settle_s=0.1)  # 4 open-close cycles
    assert isinstance(cal, GloveCalibration)
    tol = 0.015 * (hi - lo) + 12  # the 1st/99th percentiles of a sweep, plus noise
    np.testing.assert_allclose([c.min for c in cal.channels], lo, atol=tol.max())
    np.testing.assert_allclose([c.max for c in cal.channels], hi, atol=tol.max())
    assert load_calibration(out, GloveCalibration) == cal


def test_pedal_calibration_recovers_travel_center_and_dead_zones(tmp_path):
    rest = np.array([40.0, 70.0, 2050.0, 25.0])  # axis 2 is the self-centring turn rocker
    top = np.array([3900.0, 3700.0, 3950.0, 4000.0])
    bottom = np.array([40.0, 70.0, 150.0, 25.0])

    def press(i):
        lo, hi = rest.copy(), rest.copy()
        lo[i], hi[i] = bottom[i], top[i]
        return sweep(lo, hi)

    poses = {"rest": rest, **{f"axis {i}": press(i) for i in range(4)}}
    operator = Operator(poses)
    out = tmp_path / "pedal.yaml"
    with SimulatedPedal(rate_hz=250, noise=3.0, seed=4, motion=operator.motion) as sim:
        cal = run_guided_calibration(PedalConfig(port=sim.port), out, prompt=operator.prompt,
                                     print_fn=operator.printed.append, seconds=0.6, settle_s=0.1)
    assert [p[1:p.index("]")] for p in operator.prompts] == ["rest", "axis 0", "axis 1", "axis 2", "axis 3"]
    assert isinstance(cal, PedalCalibration)
    assert [a.centered for a in cal.axes] == [False, False, True, False]
    for i, axis in enumerate(cal.axes):
        travel = top[i] - bottom[i]
        assert axis.max == pytest.approx(top[i], abs=0.01 * travel + 10), i
        assert axis.min == pytest.approx(bottom[i], abs=0.01 * travel + 10), i
        assert 0.03 <= axis.dead_zone < 0.06, i  # 4 sigma of the rest noise (3 counts) is < 3 % of the travel
    assert cal.axes[2].center == pytest.approx(rest[2], abs=3)
    # resting feet read 0, a full press reads 1, the rocker's ends read -1 and 1
    np.testing.assert_allclose(cal.apply(rest + 5), 0.0)
    np.testing.assert_allclose(cal.apply(top), [1.0, 1.0, 1.0, 1.0], atol=0.02)
    assert cal.apply(bottom)[2] == pytest.approx(-1.0, abs=0.02)
    assert load_calibration(out) == cal


def test_quitting_saves_nothing(tmp_path):
    operator = Operator({"open-close": sweep(np.full(15, 500), np.full(15, 3000))}, answer="q")
    out = tmp_path / "glove.yaml"
    with SimulatedGlove(side="right", rate_hz=200, motion=operator.motion) as sim:
        with pytest.raises(CalibrationAborted, match="nothing was saved"):
            run_guided_calibration(HallGloveConfig(port=sim.port, side="right"), out, prompt=operator.prompt,
                                   print_fn=operator.printed.append, **FAST)
    assert not out.exists()


def test_a_rejected_recording_is_explained_and_retried_then_fails(tmp_path):
    lo, hi = np.full(15, 500.0), np.full(15, 3000.0)
    hi[[3, 9]] = lo[[3, 9]] + 20  # two sensors that barely move (a loose magnet)
    operator = Operator({"open-close": sweep(lo, hi)})
    out = tmp_path / "glove.yaml"
    with SimulatedGlove(side="left", rate_hz=200, noise=2.0, motion=operator.motion) as sim:
        with pytest.raises(CalibrationError, match=r"glove channels \[3, 9\] moved less than"):
            run_guided_calibration(HallGloveConfig(port=sim.port, side="left"), out, prompt=operator.prompt,
                                   print_fn=operator.printed.append, attempts=2, **FAST)
    assert len(operator.prompts) == 2  # asked again once
    assert any("cannot be used" in line for line in operator.printed)
    assert not out.exists()


def test_arm_zero_pose_must_be_held_still(tmp_path):
    offset = np.zeros(7)
    wobble = sweep(offset - 0.2, offset + 0.2)  # the operator keeps moving
    operator = Operator({"zero": wobble, "reference": offset + np.array(ARM_REFERENCE_POSES["left"])})
    with SimulatedExoskeletonArm(side="left", rate_hz=200, motion=operator.motion) as sim:
        with pytest.raises(CalibrationError, match=r"moved .* while the zero pose should be held still"):
            run_guided_calibration(ExoskeletonArmConfig(port=sim.port, side="left"), tmp_path / "a.yaml",
                                   prompt=operator.prompt, print_fn=operator.printed.append, attempts=1, **FAST)
