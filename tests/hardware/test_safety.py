"""The safety layer on its own (pure numpy): limits, per-step change, NaN holds, watchdog, e-stop latch."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from roboreward.config import from_dict
from roboreward.errors import ConfigError
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


# --------------------------------------------------------------------------------------------- settings
PATHOLOGICAL = [np.nan, np.inf, -np.inf, 0.0, -1.0, -1e-12, 1e308, -1e308, 1e-300]


@pytest.mark.parametrize(
    "config, message",
    [
        ({"position_margin": np.nan}, "safety.position_margin: nan is not a finite number"),
        ({"max_step": np.nan}, "safety.max_step: nan is not a finite number"),
        ({"max_step": np.inf}, "safety.max_step: inf is not a finite number"),
        ({"max_step": 0.0}, "safety.max_step: 0.0 is too small"),
        ({"velocity_scale": np.nan}, "safety.velocity_scale: nan is not a finite number"),
        ({"velocity_scale": -0.5}, "safety.velocity_scale: -0.5 is too small"),
        ({"position_margin": -0.1}, "safety.position_margin: -0.1 is too small"),
        ({"on_stale": "brake"}, "safety.on_stale: 'brake' is not allowed"),
    ],
)
def test_non_finite_or_out_of_range_settings_are_refused_when_built(config, message):
    with pytest.raises(ConfigError, match=message):
        SafetyConfig(**config)
    cfg = SafetyConfig()
    for key, value in config.items():  # changed after it was built: the layer checks again
        setattr(cfg, key, value)
    with pytest.raises(ConfigError, match=message):
        SafetyLayer(mode="position", lower=LOWER, upper=UPPER, velocity_limit=VEL, period_s=PERIOD, config=cfg)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lower": [np.inf, -2.0, 0.0], "upper": [np.inf, 2.0, 0.5]}, "leaves no position to hold"),
        ({"velocity_limit": [1.0, np.nan, 1.0]}, "velocity limits"),
        ({"velocity_limit": [1.0, np.inf, 1.0]}, "velocity limits"),
        ({"period_s": np.nan}, "period_s"),
        ({"period_s": 1e9}, "period_s"),
        ({"mode": "torque", "effort_limit": [1.0, np.inf, 1.0]}, "effort limits"),
        ({"velocity_limit": [1e308, 1.0, 1.0], "period_s": 10.0}, "per-step limit"),
    ],
)
def test_non_finite_robot_limits_are_refused(kwargs, message):
    args = dict(mode="position", lower=LOWER, upper=UPPER, velocity_limit=VEL, period_s=PERIOD, joint_names=NAMES)
    args.update(kwargs)
    with pytest.raises((ConfigError, ValueError), match=message):
        SafetyLayer(**args)


def test_the_first_position_command_needs_a_measured_position():
    safety = layer()
    assert not safety.can_hold(None) and not safety.can_hold([np.nan, 0.0, 0.1])
    with pytest.raises(ValueError, match="needs a finite measured position"):
        safety.filter([0.5, 0.0, 0.1], [np.nan, 0.0, 0.1])
    assert safety.last_command is None  # nothing went out
    out = safety.filter([0.5, 0.0, 0.1], [0.0, 0.0, 0.1])
    assert out[0] == pytest.approx(0.01) and safety.can_hold(None)
    assert layer(mode="velocity").can_hold(None)


def test_a_robot_measured_outside_the_margin_is_commanded_from_inside_it():
    safety = layer(position_margin=0.1)
    out = safety.filter([0.95, 0.0, 0.25], [0.97, 0.0, 0.25])
    assert out[0] == pytest.approx(0.9)  # the nearest safe point: commands never leave [lower + m, upper - m]


def test_the_final_check_holds_whatever_the_clamps_did():
    """Break the layer's internals after it was built: the last check still refuses to let the command out."""
    safety = layer()
    measured = np.array([0.0, 0.0, 0.25])
    first = safety.filter([0.005, 0.0, 0.25], measured)
    safety.safe_upper = np.array([np.inf, np.inf, np.inf])  # a bug that loses the position limits...
    safety.max_delta = np.array([10.0, 10.0, 10.0])  # ...and the step limit
    out = safety.filter([5.0, 5.0, 5.0], measured)
    np.testing.assert_array_equal(out, first)  # held at the last good command
    assert safety.counters.rejected == 1 and safety.counters.holds == 1


def test_property_no_setting_lets_a_non_finite_or_out_of_limit_command_out():
    """10,000 randomised settings (NaN, +-inf, zero, negative and huge values among them) x randomised policy
    outputs and measured states: each setting is refused when the layer is built, or every command it lets out
    is finite, inside the position (velocity, effort) limits less the margin, and within the per-step limit."""
    rng = np.random.default_rng(20261205)
    built = refused = checked = 0

    def maybe(value, p=0.06):
        return float(rng.choice(PATHOLOGICAL)) if rng.random() < p else value

    for _ in range(10_000):
        n = int(rng.integers(1, 5))
        mode = str(rng.choice(["position", "velocity", "torque"]))
        lower = rng.uniform(-3.0, 0.0, n)
        upper = lower + rng.uniform(0.01, 4.0, n)
        continuous = rng.random(n) < 0.15
        lower[continuous], upper[continuous] = -np.inf, np.inf
        lower = np.array([maybe(v, 0.03) for v in lower])
        upper = np.array([maybe(v, 0.03) for v in upper])
        velocity = np.array([maybe(v, 0.03) for v in rng.uniform(0.1, 5.0, n)])
        effort = np.array([maybe(v, 0.03) for v in rng.uniform(1.0, 100.0, n)])
        period = maybe(float(rng.uniform(0.001, 0.05)))
        settings = {
            "velocity_scale": maybe(float(rng.uniform(0.05, 1.0))),
            "max_step": None if rng.random() < 0.5 else maybe(float(rng.uniform(0.001, 0.5))),
            "position_margin": maybe(float(rng.uniform(0.0, 0.2))),
        }
        try:
            safety = SafetyLayer(mode=mode, lower=lower, upper=upper, velocity_limit=velocity, period_s=period,
                                 effort_limit=effort, config=SafetyConfig(**settings))
        except (ConfigError, ValueError):
            refused += 1
            continue
        built += 1
        margin = settings["position_margin"]
        safe_lo, safe_hi = lower + margin, upper - margin
        speed = velocity * settings["velocity_scale"]
        step = speed * period if mode == "position" else np.full(n, np.inf)
        if settings["max_step"] is not None:
            step = np.minimum(step, settings["max_step"])
        tol = 1e-9 * (1 + np.nanmax(np.abs(np.where(np.isfinite([safe_lo, safe_hi, speed, effort]),
                                                    [safe_lo, safe_hi, speed, effort], 0.0)), axis=0))
        lo, hi = np.clip(lower, -10.0, 10.0), np.clip(upper, -10.0, 10.0)
        state = rng.uniform(lo - 0.3, np.maximum(hi, lo) + 0.3)  # inside the range, or a little outside it
        previous = None
        for _ in range(15):
            state = state + rng.normal(0, 0.05, n)
            measured = state.copy()
            if rng.random() < 0.1:
                measured[rng.integers(n)] = float(rng.choice([np.nan, np.inf, -np.inf]))
            raw = rng.normal(0, 3.0, n) * float(rng.choice([1.0, 1.0, 1e6]))
            if rng.random() < 0.15:
                raw[rng.integers(n)] = float(rng.choice(PATHOLOGICAL))
            try:
                given = None if rng.random() < 0.1 else measured
                out = safety.filter(raw, given)
            except ValueError:  # position mode, no command yet and no finite measurement: nothing was sent
                assert mode == "position" and previous is None
                continue
            checked += 1
            assert out.shape == (n,) and np.isfinite(out).all(), (settings, out)
            good = given is not None and np.isfinite(given).all()
            if mode == "position":
                assert (out >= safe_lo - tol).all() and (out <= safe_hi + tol).all(), (settings, out)
                reference = previous if previous is not None else np.clip(measured, safe_lo, safe_hi)
                assert (np.abs(out - reference) <= step + tol).all(), (settings, out, reference)
            else:
                limit = speed if mode == "velocity" else effort
                assert (np.abs(out) <= limit + tol).all(), (settings, out)
                stopping = not out.any()  # the hold command (zeros) may always go out
                if previous is not None and not stopping:
                    assert (np.abs(out - previous) <= step + tol).all(), (settings, out, previous)
                if mode == "velocity" and good:
                    inside = (measured >= safe_lo) & (measured <= safe_hi)
                    after = measured + out * safety.period_s
                    assert (after[inside] >= safe_lo[inside] - tol[inside]).all()
                    assert (after[inside] <= safe_hi[inside] + tol[inside]).all()
            previous = out
    assert built + refused == 10_000
    assert built > 2_500 and refused > 2_500, (built, refused)  # both sides of the property are exercised
    assert checked > 30_000
