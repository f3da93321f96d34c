"""The safety layer on its own (pure numpy): limits, per-step change, NaN holds, watchdog, e-stop latch."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from roboreward.config import ConfigError, from_dict
from roboreward.hardware.safety import EStop, SafetyConfig, SafetyLayer, Watchdog

LOWER = np.array([-1.0, -2.0, 0.0])
UPPER = np.array([1.0, 2.0, 0.5])
VEL = np.array([1.0, 2.0, 0.5])
PERIOD = 0.01
NAMES = ["shoulder", "elbow", "slide"]


def layer(mode="position", **config) -> SafetyLayer:
    return SafetyLayer(mode=mode, lower=LOWER, upper=UPPER, velocity_limit=VEL, period_s=PERIOD,
                       effort_limit=[10.0, 5.0, 1.0], joint_names=NAMES, config=SafetyConfig(**config))


def test_random_commands_never_leave_limits_or_step_bound():
    rng = np.random.default_rng(0)
    safety = layer()
    position = np.zeros(3) + [0.0, 0.0, 0.25]
    previous = None
    for _ in range(2000):
        raw = rng.normal(0, 5, size=3)
        if rng.random() < 0.1:
            raw[rng.integers(3)] = rng.choice([np.nan, np.inf, -np.inf])
        out = safety.filter(raw, position)
        assert np.isfinite(out).all()
        assert (out >= LOWER).all() and (out <= UPPER).all()
        reference = previous if previous is not None else position
        assert (np.abs(out - reference) <= VEL * PERIOD + 1e-12).all()
        previous = out
    counters = safety.counters
    assert counters.commands == 2000
    assert 150 < counters.nonfinite < 250
    assert counters.holds == counters.nonfinite
    assert counters.step_limited > 1000
    assert counters.per_joint["step"].shape == (3,)


def test_ramp_to_far_target_at_velocity_limit_then_clamped_at_limit():
    safety = layer()
    position = np.array([0.0, 0.0, 0.0])
    outs = [safety.filter([5.0, 0.0, 0.0], position) for _ in range(150)]
    # 1 rad/s at 100 Hz: 0.01 per step, reaching the upper limit 1.0 after 100 steps and staying there.
    assert outs[0][0] == pytest.approx(0.01)
    assert outs[49][0] == pytest.approx(0.50)
    assert outs[-1][0] == pytest.approx(1.0)
    assert safety.counters.position_limited > 0 and safety.counters.per_joint["position"][0] > 0


def test_max_step_and_velocity_scale_tighten_the_per_step_limit():
    safety = layer(max_step=0.004, velocity_scale=0.5)
    out = safety.filter([1.0, 1.0, 0.5], np.zeros(3))
    # joint 0: min(1 * 0.5 * 0.01, 0.004) = 0.004; joint 2: 0.5 * 0.5 * 0.01 = 0.0025
    np.testing.assert_allclose(out, [0.004, 0.004, 0.0025])


def test_position_margin_keeps_commands_inside():
    safety = layer(position_margin=0.1)
    safety.filter([0.95, 0.0, 0.25], np.array([0.95, 0.0, 0.25]))
    out = safety.filter([0.95, 0.0, 0.25], None)
    assert out[0] == pytest.approx(0.9)
    with pytest.raises(ConfigError, match="position_margin.*slide"):
        layer(position_margin=0.3)


def test_nan_holds_last_command_and_before_any_command_the_measured_position():
    safety = layer()
    measured = np.array([0.3, -0.2, 0.1])
    held = safety.filter([np.nan, 0, 0], measured)
    np.testing.assert_allclose(held, measured)
    out = safety.filter([0.31, -0.2, 0.1], measured)
    np.testing.assert_allclose(out, [0.31, -0.2, 0.1])
    held = safety.filter([0.0, np.inf, 0.0], measured + 0.05)
    np.testing.assert_allclose(held, out)  # the last command, not the new measurement
    assert safety.counters.nonfinite == 2 and safety.counters.holds == 2
    fresh = layer()
    with pytest.raises(ValueError, match="nothing to hold"):
        fresh.hold(None)


def test_velocity_mode_clamps_speed_and_stops_at_position_limits():
    safety = layer(mode="velocity")
    out = safety.filter([5.0, -5.0, 0.1], np.array([0.0, 0.0, 0.25]))
    np.testing.assert_allclose(out, [1.0, -2.0, 0.1])
    assert safety.counters.velocity_limited == 1
    # Joint 0 is 0.005 below its upper limit: at most 0.5 rad/s for one 10 ms period.
    out = safety.filter([1.0, 0.0, 0.0], np.array([0.995, 0.0, 0.25]))
    assert out[0] == pytest.approx(0.5)
    # Outside its range, a joint may still move back in but not further out.
    out = safety.filter([0.5, 0.0, -0.5], np.array([1.2, 0.0, -0.1]))
    assert out[0] == 0.0 and out[2] == pytest.approx(0.0)
    out = safety.filter([-0.5, 0.0, 0.3], np.array([1.2, 0.0, -0.1]))
    assert out[0] == pytest.approx(-0.5) and out[2] == pytest.approx(0.3)
    np.testing.assert_array_equal(safety.filter([np.nan] * 3, None), np.zeros(3))


def test_velocity_mode_max_step_limits_acceleration_and_continuous_joints_work():
    safety = SafetyLayer(mode="velocity", lower=[-np.inf, -np.inf], upper=[np.inf, np.inf], velocity_limit=[10, 10],
                         period_s=0.02, config=SafetyConfig(max_step=0.5))
    outs = [safety.filter([4.0, -4.0], [1e6, -1e6]) for _ in range(10)]
    np.testing.assert_allclose(outs[0], [4.0, -4.0])  # no previous command: nothing to ramp from
    safety.hold()
    ramp = [safety.filter([4.0, -4.0], [0.0, 0.0])[0] for _ in range(10)]
    np.testing.assert_allclose(ramp[:8], np.arange(1, 9) * 0.5)
    assert ramp[-1] == pytest.approx(4.0)


def test_torque_mode_clamps_effort():
    safety = layer(mode="torque")
    np.testing.assert_allclose(safety.filter([100.0, -100.0, 0.5]), [10.0, -5.0, 0.5])
    with pytest.raises(ValueError, match="effort limits"):
        SafetyLayer(mode="torque", lower=LOWER, upper=UPPER, velocity_limit=VEL, period_s=PERIOD)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "effort"}, "control mode 'effort'"),
        ({"upper": [1.0, 2.0]}, "upper has shape"),
        ({"lower": [2.0, -2.0, 0.0]}, "shoulder.*lower position limit above upper"),
        ({"velocity_limit": [1.0, 0.0, 1.0]}, "velocity limits"),
        ({"period_s": 0.0}, "period_s"),
    ],
)
def test_bad_limits_are_refused_with_the_problem_named(kwargs, message):
    args = dict(mode="position", lower=LOWER, upper=UPPER, velocity_limit=VEL, period_s=PERIOD, joint_names=NAMES)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        SafetyLayer(**args)


def test_wrong_command_size_is_refused():
    with pytest.raises(ValueError, match="3 joints"):
        layer().filter([0.0, 0.0], np.zeros(3))


def test_safety_config_from_yaml_values_checks_bounds():
    cfg = from_dict(SafetyConfig, {"max_step": 0.01, "on_stale": "stop"})
    assert cfg.max_step == 0.01 and cfg.on_stale == "stop"
    with pytest.raises(ConfigError, match="velocity_scale: 1.5 is too large"):
        from_dict(SafetyConfig, {"velocity_scale": 1.5})
    with pytest.raises(ConfigError, match="on_stale: 'brake' is not allowed"):
        from_dict(SafetyConfig, {"on_stale": "brake"})


def test_watchdog_goes_stale_after_n_periods_and_counts_trips():
    now = [0.0]
    dog = Watchdog(period_s=0.002, stale_after_periods=5, clock=lambda: now[0])
    assert dog.stale()  # never fed
    dog.feed()
    now[0] = 0.0099
    assert not dog.stale()
    now[0] = 0.0101
    assert dog.stale() and dog.trips == 1 and dog.stale_since == pytest.approx(0.0101)
    now[0] = 0.02
    assert dog.stale() and dog.trips == 1
    dog.feed()
    assert not dog.stale() and dog.stale_since is None
    now[0] = 0.05
    assert dog.stale() and dog.trips == 2
    with pytest.raises(ValueError, match="stale_after_periods"):
        Watchdog(0.002, 0)
    assert Watchdog(0.01, 2.5).timeout_s == pytest.approx(0.025)


def test_estop_latches_until_reset_even_across_threads():
    estop = EStop()
    assert not estop.engaged and not estop.reset()
    threads = [threading.Thread(target=estop.trigger, args=(f"t{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert estop.engaged and estop.triggers == 1 and estop.reason.startswith("t")
    assert not estop.trigger("again") and estop.engaged
    assert estop.reset() and not estop.engaged and estop.resets == 1


def test_filter_action_holds_on_nonfinite_actions_before_mapping_them():
    safety = layer()
    mapped = []

    def to_command(action):
        mapped.append(action)
        return action * 10.0

    measured = np.array([0.2, 0.1, 0.3])
    held = safety.filter_action([np.nan, 0.0, 0.0], to_command, measured)
    np.testing.assert_allclose(held, measured)
    assert mapped == [] and safety.counters.nonfinite == 1
    out = safety.filter_action([0.021, 0.01, 0.03], to_command, measured)
    np.testing.assert_allclose(out, [0.21, 0.1, 0.3])
    assert len(mapped) == 1 and safety.counters.commands == 2


def test_from_robot_uses_the_robot_description(repo_root):
    from roboreward.hardware.robot import load_robot_config

    franka = load_robot_config("franka")
    safety = SafetyLayer.from_robot(franka, SafetyConfig(max_step=0.01))
    assert safety.joint_names == franka.joint_names and safety.period_s == pytest.approx(1 / franka.control.rate_hz)
    np.testing.assert_allclose(safety.max_delta, np.minimum(franka.velocity_limit / franka.control.rate_hz, 0.01))
    base = SafetyLayer.from_robot(load_robot_config("diff_drive"))
    assert base.joint_names == ["linear_x", "angular_z"] and base.mode == "velocity"
    np.testing.assert_allclose(base.filter([5.0, -5.0]), [0.6, -2.0])
