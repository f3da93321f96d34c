"""Drivers against simulated devices on real ptys; calibration files and fits; the pedal mapping."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import yaml

from roboreward.config import from_dict
from roboreward.errors import ConfigError
from roboreward.teleop.calibration import (
    ArmCalibration,
    CalibrationError,
    ChannelCalibration,
    GloveCalibration,
    JointCalibration,
    PedalAxisCalibration,
    PedalCalibration,
    PedalMapper,
    PedalMappingConfig,
    calibrate_arm_from_samples,
    calibrate_glove_from_samples,
    calibrate_pedal_from_samples,
    load_calibration,
    save_calibration,
)
from roboreward.teleop.devices import (
    DeviceAlreadyConnectedError,
    DeviceNotConnectedError,
    ExoskeletonArm,
    ExoskeletonArmConfig,
    HallGlove,
    HallGloveConfig,
    Pedal,
    PedalConfig,
    TeleoperatorConfig,
    make_teleoperator,
)
from roboreward.teleop.protocol import ArmReading, GloveReading, PedalReading
from roboreward.teleop.simulated import FaultConfig, SimulatedExoskeletonArm, SimulatedGlove, SimulatedPedal


def wait_until(predicate, timeout: float = 5.0, poll: float = 0.001) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return predicate()


@pytest.fixture
def started():
    """Start simulated devices and stop them (and any driver left connected) after the test."""
    sims, drivers = [], []

    def start(sim, driver_config=None):
        sims.append(sim.start())
        return sim

    start.drivers = drivers
    yield start
    for d in drivers:
        if d._thread is not None:
            d.disconnect()
    for sim in sims:
        sim.stop()


def _freeze(sim):
    """Stop a device sending, so get_action() and latest_reading see the same last reading."""
    sim.unplug(mode="silent")
    time.sleep(0.05)


def _connect(started, driver):
    started.drivers.append(driver)
    driver.connect()
    return driver


# --------------------------------------------------------------------------------------------
# Configs and the interface


def test_configs_are_registered_and_features_readable_while_disconnected():
    cfg = from_dict(TeleoperatorConfig, {"type": "hall_glove", "port": "/dev/ttyACM1", "side": "right"})
    assert isinstance(cfg, HallGloveConfig) and cfg.n_channels == 15
    glove = make_teleoperator(cfg)
    assert isinstance(glove, HallGlove) and not glove.is_connected
    assert list(glove.action_features) == [f"channel_{i}" for i in range(15)]
    arm = make_teleoperator(ExoskeletonArmConfig(port="/dev/null", joint_names=list("abcdefg")))
    assert list(arm.action_features) == [f"{c}.pos" for c in "abcdefg"]
    pedal = Pedal(PedalConfig(port="/dev/null"))
    assert pedal.action_features == {"axis_0": float, "axis_1": float, "axis_2": float, "axis_3": float,
                                     "button_0": bool, "button_1": bool, "button_2": bool, "button_3": bool}
    assert pedal.feedback_features == {}
    with pytest.raises(DeviceNotConnectedError):
        pedal.get_action()
    with pytest.raises(DeviceNotConnectedError):
        pedal.disconnect()
    with pytest.raises(ConfigError, match="stale_after_s"):
        from_dict(TeleoperatorConfig, {"type": "pedal", "port": "x", "stale_after_s": 5})
    with pytest.raises(ConfigError, match="unknown TeleoperatorConfig type"):
        from_dict(TeleoperatorConfig, {"type": "keyboard"})
    with pytest.raises(ConfigError, match="port is empty"):
        Pedal(PedalConfig())
    with pytest.raises(ConfigError, match="joint_names"):
        ExoskeletonArmConfig(port="x", joint_names=["a"])


# --------------------------------------------------------------------------------------------
# Simulated devices -> drivers


def test_arm_readings_match_the_scripted_motion(started):
    sim = started(SimulatedExoskeletonArm(side="right", rate_hz=250, noise=0.002, seed=4))
    arm = _connect(started, ExoskeletonArm(ExoskeletonArmConfig(port=sim.port, side="right")))
    assert arm.is_connected
    assert wait_until(lambda: arm.readings >= 150)
    readings = arm.drain()
    assert len(readings) >= 150 and all(isinstance(r, ArmReading) for r in readings)
    errors = np.array([np.array(r.angles) - sim.truth_for(r).values for r in readings])
    assert np.abs(errors).max() < 6 * 0.002 + 1e-6  # noise only: nothing lost or mixed up
    assert 0.001 < errors.std() < 0.003
    truth_motion = sim.motion(readings[-1].t_device)  # the script itself, not just the record
    np.testing.assert_allclose(sim.truth_for(readings[-1]).values, truth_motion)
    assert np.ptp(np.array([r.angles for r in readings]), axis=0).min() > 0.05  # it really moves
    seqs = [r.seq for r in readings]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:]))
    _freeze(sim)
    action = arm.get_action()
    latest = arm.latest_reading
    assert list(action) == list(arm.action_features)
    np.testing.assert_allclose(list(action.values()), latest.angles)  # identity calibration
    s = arm.parser.stats
    assert s.rejected_frames == s.garbage_bytes == s.dropped_frames == 0
    assert all(0 <= r.t_received - r.t_device < 0.5 for r in readings)


def test_glove_and_pedal_readings_match_the_scripted_motion(started):
    glove_sim = started(SimulatedGlove(side="left", n_channels=20, rate_hz=250, noise=3.0, seed=5))
    pedal_sim = started(SimulatedPedal(rate_hz=250, noise=3.0, seed=6))
    glove = _connect(started, HallGlove(HallGloveConfig(port=glove_sim.port, side="left", n_channels=20)))
    pedal = _connect(started, Pedal(PedalConfig(port=pedal_sim.port)))
    assert wait_until(lambda: glove.readings >= 150 and pedal.readings >= 150)
    for r in glove.drain():
        assert isinstance(r, GloveReading) and len(r.channels) == 20
        assert np.abs(np.array(r.channels) - glove_sim.truth_for(r).values).max() <= 6 * 3.0 + 0.5
    pedal_readings = pedal.drain()
    buttons_seen = set()
    for r in pedal_readings:
        truth = pedal_sim.truth_for(r)
        assert isinstance(r, PedalReading)
        assert np.abs(np.array(r.axes) - np.clip(truth.values, 0, 4095)).max() <= 6 * 3.0 + 0.5
        assert r.buttons == truth.buttons
        buttons_seen.add(r.buttons)
    _freeze(pedal_sim)
    action = pedal.get_action()
    latest = pedal.latest_reading
    assert action["button_1"] == latest.pressed(1) and isinstance(action["button_1"], bool)
    np.testing.assert_allclose([action[f"axis_{i}"] for i in range(4)], np.array(latest.axes) / 4095)
    assert 0.0 <= min(glove.get_action().values()) and max(glove.get_action().values()) <= 1.0


def test_three_devices_at_once_at_200_hz_each(started):
    sims = [
        started(SimulatedExoskeletonArm(side="left", rate_hz=300, noise=0.001, seed=1)),
        started(SimulatedGlove(side="right", rate_hz=300, noise=2.0, seed=2)),
        started(SimulatedPedal(rate_hz=300, noise=2.0, seed=3)),
    ]
    drivers = [
        _connect(started, ExoskeletonArm(ExoskeletonArmConfig(port=sims[0].port, side="left"))),
        _connect(started, HallGlove(HallGloveConfig(port=sims[1].port, side="right"))),
        _connect(started, Pedal(PedalConfig(port=sims[2].port))),
    ]
    time.sleep(0.2)
    for d in drivers:
        d.drain()
    start = time.monotonic()
    time.sleep(1.5)
    counts = [len(d.drain()) for d in drivers]
    elapsed = time.monotonic() - start
    rates = [c / elapsed for c in counts]
    assert min(rates) >= 200, f"rates {rates} Hz"
    for d, sim in zip(drivers, sims):
        assert wait_until(lambda d=d: d.is_connected, 2.0) and d.parser.stats.rejected_frames == 0
        assert sim.truth_for(d.latest_reading) is not None


def test_unplug_is_detected_within_100_ms_and_the_driver_recovers(started):
    sim = started(SimulatedExoskeletonArm(side="left", rate_hz=200, noise=0.001, seed=7))
    arm = _connect(started, ExoskeletonArm(ExoskeletonArmConfig(port=sim.port)))
    for attempt in range(1, 4):
        assert wait_until(lambda: arm.is_connected, 2.0)
        t0 = time.monotonic()
        sim.unplug()  # the pty closes and the path disappears
        assert wait_until(lambda: not arm.is_connected, 1.0)
        polled = time.monotonic() - t0
        # when is_connected turned False, by the driver's own clock (immune to this thread being descheduled)
        detected = arm.disconnected_since - t0
        assert detected < 0.100, f"unplug noticed after {detected * 1e3:.1f} ms (polled: {polled * 1e3:.1f} ms)"
        assert wait_until(lambda n=attempt: arm.unplugs == n, 1.0)  # the read failed: an unplug, not silence
        time.sleep(0.1)  # the driver keeps trying to reopen the missing path meanwhile
        assert not arm.is_connected and "could not open" in arm.last_error
        before = arm.readings
        sim.replug()  # same path, a new pty, a rebooted device
        assert wait_until(lambda n=before: arm.is_connected and arm.readings > n + 20, 3.0)
        assert arm.reconnects == attempt
    latest = arm.latest_reading
    np.testing.assert_allclose(latest.angles, sim.truth_for(latest).values, atol=6 * 0.001 + 1e-6)
    s = arm.parser.stats
    assert s.sequence_resets == 0 and s.dropped_frames == 0  # sequences restart at 0 after a reopen


def test_a_silent_device_is_detected_within_100_ms(started):
    sim = started(SimulatedGlove(side="left", rate_hz=200, seed=8))
    glove = _connect(started, HallGlove(HallGloveConfig(port=sim.port)))
    assert wait_until(lambda: glove.readings > 20)
    t0 = time.monotonic()
    sim.unplug(mode="silent")  # port open, no bytes: a hung microcontroller
    assert wait_until(lambda: not glove.is_connected, 1.0)
    polled = time.monotonic() - t0
    detected = glove.disconnected_since - t0
    assert detected < 0.100, f"silence noticed after {detected * 1e3:.1f} ms (seen by polling after {polled * 1e3:.1f})"
    assert glove.last_reading_age >= glove.config.stale_after_s
    before = glove.readings
    sim.replug()
    assert wait_until(lambda: glove.is_connected and glove.readings > before + 10, 2.0)
    assert glove.unplugs == 0 and glove.reconnects == 0


def test_a_faulty_link_never_yields_a_corrupted_reading(started):
    faults = FaultConfig(dropout=0.03, bit_flip=0.05, garbage=0.05, truncate=0.03)
    sim = started(SimulatedExoskeletonArm(side="left", rate_hz=300, noise=0.001, faults=faults, seed=9))
    arm = _connect(started, ExoskeletonArm(ExoskeletonArmConfig(port=sim.port)))
    assert wait_until(lambda: arm.readings >= 400, 10.0)
    readings = arm.drain()
    for r in readings:
        np.testing.assert_allclose(r.angles, sim.truth_for(r).values, atol=6 * 0.001 + 1e-6)
    s = arm.parser.stats
    assert s.bad_crc > 0 and s.garbage_bytes > 0 and s.sequence_gaps > 0 and s.dropped_frames > 0
    assert s.frames == arm.readings
    lost = sim.stats.dropped + sim.stats.bit_flips + sim.stats.truncated
    assert s.dropped_frames <= lost + 5  # a frame both flipped and cut counts once here, twice in `lost`
    assert arm.readings >= 0.75 * sim.stats.produced - 50


def test_nan_and_infinite_angles_are_dropped_and_counted_like_corrupted_frames(started):
    pose = [0.1 * i - 0.3 for i in range(7)]
    sim = started(SimulatedExoskeletonArm(side="left", rate_hz=200, motion=lambda t: pose))
    arm = _connect(started, ExoskeletonArm(ExoskeletonArmConfig(port=sim.port, stale_after_s=0.1)))
    assert wait_until(lambda: arm.readings >= 10)
    sim.inject([math.nan] + pose[1:])  # CRC-valid frames: only their values are impossible
    sim.inject(pose[:3] + [math.inf] + pose[4:])
    sim.inject(pose[:6] + [-math.inf])
    assert wait_until(lambda: arm.parser.stats.bad_payload == 3 and arm.readings >= 30)
    assert arm.is_connected  # a few bad frames among good ones: the device is fine
    assert arm.rejected_frames == 3 and arm.status().parser["bad_payload"] == 3
    assert arm.parser.stats.dropped_frames == 3  # their sequence numbers are missing, as for lost frames
    readings = arm.drain()
    assert readings and all(np.isfinite(r.angles).all() for r in readings)

    # Nothing but bad frames for 0.3 s: the device counts as gone (the session holds the robot), then recovers.
    last = arm.latest_reading
    for _ in range(60):
        sim.inject([math.nan] * 7)
    assert wait_until(lambda: not arm.is_connected, 1.0)
    assert arm.latest_reading is last
    assert all(math.isfinite(v) for v in arm.get_action().values())  # still the last valid reading
    assert wait_until(lambda: arm.is_connected, 2.0)
    assert arm.parser.stats.bad_payload == 63 and arm.rejected_frames == 63
    _freeze(sim)
    np.testing.assert_allclose(list(arm.get_action().values()), pose, atol=1e-6)  # float32 on the wire


def test_glove_and_pedal_counts_above_the_adc_range_are_dropped_and_counted(started):
    glove_sim = started(SimulatedGlove(side="left", rate_hz=200, motion=lambda t: np.full(15, 2000.0)))
    pedal_sim = started(SimulatedPedal(rate_hz=200, motion=lambda t: (100, 200, 300, 400)))
    glove = _connect(started, HallGlove(HallGloveConfig(port=glove_sim.port)))
    pedal = _connect(started, Pedal(PedalConfig(port=pedal_sim.port)))
    glove_sim.inject([2000] * 14 + [4096])  # one count past a 12-bit ADC's 4095
    glove_sim.inject([65535] * 15)
    pedal_sim.inject([5000, 200, 300, 400])
    assert wait_until(lambda: glove.out_of_range == 2 and pedal.out_of_range == 1 and glove.readings > 20)
    assert glove.rejected_frames == 2 and glove.status().out_of_range == 2 and glove.parser.stats.rejected_frames == 0
    assert pedal.rejected_frames == 1
    assert all(max(r.channels) <= 4095 for r in glove.drain())
    assert all(max(r.axes) <= 4095 for r in pedal.drain())
    assert max(glove.get_action().values()) <= 1.0 and glove.is_connected and pedal.is_connected


def test_a_sensor_beyond_adc_max_fails_to_connect_naming_the_setting(started):
    sim = started(SimulatedGlove(side="left", rate_hz=200))
    for _ in range(1000):  # five seconds of 16-bit counts
        sim.inject([40000] * 15)
    glove = HallGlove(HallGloveConfig(port=sim.port, connect_timeout_s=0.3))
    with pytest.raises(DeviceNotConnectedError, match=r"above adc_max=4095 \(largest 40000\); set adc_max"):
        glove.connect()
    wide = _connect(started, HallGlove(HallGloveConfig(port=sim.port, adc_max=65535)))
    assert wide.latest_reading.channels == (40000,) * 15 and wide.out_of_range == 0


def test_simulated_device_inject_checks_its_values(tmp_path):
    with pytest.raises(ValueError, match="needs 15 values"):
        SimulatedGlove(link_path=tmp_path / "glove").inject([1, 2])
    pedal = SimulatedPedal(link_path=tmp_path / "pedal")
    with pytest.raises(ValueError, match=r"whole counts 0..65535 \(uint16\)"):
        pedal.inject([70000, 0, 0, 0])
    with pytest.raises(ValueError, match="whole counts"):
        pedal.inject([math.nan, 0, 0, 0])


def test_wrong_or_missing_device_fails_with_a_clear_message(started, tmp_path):
    sim = started(SimulatedExoskeletonArm(side="left", rate_hz=200))
    glove = HallGlove(HallGloveConfig(port=sim.port, connect_timeout_s=0.5))
    with pytest.raises(DeviceNotConnectedError, match="sends ArmReading frames"):
        glove.connect()
    right = ExoskeletonArm(ExoskeletonArmConfig(port=sim.port, side="right", connect_timeout_s=0.5))
    with pytest.raises(DeviceNotConnectedError, match=r"ArmReading frames \(left\)"):
        right.connect()
    missing = Pedal(PedalConfig(port=str(tmp_path / "nothing"), connect_timeout_s=0.3))
    with pytest.raises(DeviceNotConnectedError, match="could not open"):
        missing.connect()
    assert missing._thread is None  # a failed connect leaves nothing running


def test_connect_twice_and_context_manager(started):
    sim = started(SimulatedPedal(rate_hz=200))
    pedal = Pedal(PedalConfig(port=sim.port))
    with pedal as p:
        assert p is pedal and pedal.is_connected
        with pytest.raises(DeviceAlreadyConnectedError):
            pedal.connect()
    assert not pedal.is_connected and pedal._thread is None
    with pytest.raises(DeviceNotConnectedError):
        pedal.get_action()
    pedal.connect()  # reconnectable after a disconnect
    assert pedal.is_connected
    pedal.disconnect()


def test_realtime_reader_thread_works_granted_or_refused(started):
    sim = started(SimulatedGlove(side="left", rate_hz=200, seed=11))
    glove = _connect(started, HallGlove(HallGloveConfig(port=sim.port, realtime_priority=5)))
    assert wait_until(lambda: glove.readings > 20)
    assert glove.last_error is None or "real-time priority refused" in glove.last_error
    with pytest.raises(ConfigError, match="realtime_priority"):
        from_dict(HallGloveConfig, {"port": "x", "realtime_priority": 100})


def test_driver_applies_its_calibration_file(started, tmp_path):
    cal = ArmCalibration(
        side="left",
        joints=[JointCalibration(offset=0.1 * i, sign=(-1) ** i, lower=-0.4, upper=0.4) for i in range(7)],
    )
    path = tmp_path / "exo_left.yaml"
    save_calibration(cal, path)
    sim = started(SimulatedExoskeletonArm(side="left", rate_hz=200, seed=10))
    arm = _connect(started, ExoskeletonArm(ExoskeletonArmConfig(port=sim.port, calibration=str(path))))
    assert arm.calibration == cal
    latest = arm.latest_reading
    action = arm._to_action(latest)
    expected = np.clip(np.array([(-1) ** i * (latest.angles[i] - 0.1 * i) for i in range(7)]), -0.4, 0.4)
    np.testing.assert_allclose(list(action.values()), expected)
    save_calibration(GloveCalibration.identity(15), tmp_path / "glove.yaml")
    with pytest.raises(ConfigError, match="not an exoskeleton_arm calibration"):
        ExoskeletonArm(ExoskeletonArmConfig(port=sim.port, calibration=str(tmp_path / "glove.yaml")))
    with pytest.raises(ConfigError, match="calibrates a left arm with 7 joints"):
        ExoskeletonArm(ExoskeletonArmConfig(port=sim.port, side="right", calibration=str(path)))


def test_pedal_through_driver_calibration_and_mapping(started, tmp_path):
    # forward pedal pressed fully, backward and squat at rest, yaw rocker centred
    sim = started(SimulatedPedal(rate_hz=200, noise=2.0, motion=lambda t: (4000, 100, 2048, 100)))
    cal = PedalCalibration(axes=[
        PedalAxisCalibration(min=100, max=4000, dead_zone=0.05),
        PedalAxisCalibration(min=100, max=4000, dead_zone=0.05),
        PedalAxisCalibration(min=100, max=4000, centered=True, center=2048, dead_zone=0.05),
        PedalAxisCalibration(min=100, max=4000, dead_zone=0.05),
    ])
    save_calibration(cal, tmp_path / "pedal.yaml")
    pedal = _connect(started, Pedal(PedalConfig(port=sim.port, calibration=str(tmp_path / "pedal.yaml"))))
    mapper = PedalMapper()
    for _ in range(100):
        action = pedal.get_action()
        command = mapper.update([action[f"axis_{i}"] for i in range(4)], dt=0.01)
    assert action["axis_1"] == action["axis_2"] == action["axis_3"] == 0.0  # noise stays in the dead zones
    assert action["axis_0"] > 0.99
    assert command.vx == pytest.approx(0.8, abs=0.01) and command.yaw_rate == 0.0 and command.height == 0.74


# --------------------------------------------------------------------------------------------
# Calibration


def test_calibration_yaml_round_trip(tmp_path):
    cals = [
        ArmCalibration(side="right", joints=[JointCalibration(offset=0.25, sign=-1, lower=-1.5, upper=2.0)] * 7),
        GloveCalibration(side="left", channels=[ChannelCalibration(min=100.0 + i, max=3900.0 - i) for i in range(16)]),
        PedalCalibration(axes=[PedalAxisCalibration(min=80, max=3990, dead_zone=0.04),
                               PedalAxisCalibration(min=10, max=4000, centered=True, center=2050, dead_zone=0.1)]),
    ]
    for cal in cals:
        path = tmp_path / f"{cal.type_name}.yaml"
        save_calibration(cal, path)
        text = yaml.safe_load(path.read_text())
        assert text["type"] == cal.type_name
        back = load_calibration(path)
        assert back == cal and type(back) is type(cal)
        raw = np.linspace(0, 4000, len(getattr(cal, "joints", None) or getattr(cal, "channels", None) or cal.axes))
        np.testing.assert_array_equal(back.apply(raw), cal.apply(raw))
    with pytest.raises(ConfigError, match="expected 'pedal'"):
        load_calibration(tmp_path / "hall_glove.yaml", expected=PedalCalibration)
    (tmp_path / "bad.yaml").write_text("type: exoskeleton_arm\njoints:\n- {offset: 0.0, sign: 2}\n")
    with pytest.raises(ConfigError, match="sign"):
        load_calibration(tmp_path / "bad.yaml")
    (tmp_path / "bad2.yaml").write_text("type: hall_glove\nchannels:\n- {min: 10, max: 5}\n")
    with pytest.raises(ConfigError, match="max > min"):
        load_calibration(tmp_path / "bad2.yaml")


def test_arm_calibration_is_isomorphic_offset_sign_and_limits():
    cal = ArmCalibration(
        joints=[JointCalibration(offset=0.5, sign=1), JointCalibration(offset=-0.2, sign=-1, lower=-1, upper=0.3)]
    )
    np.testing.assert_allclose(cal.apply([0.5, -0.2]), [0.0, 0.0])
    np.testing.assert_allclose(cal.apply([1.0, -0.4]), [0.5, 0.2])
    np.testing.assert_allclose(cal.apply([1.0, -2.0]), [0.5, 0.3])  # clipped to the robot's limit
    with pytest.raises(ValueError, match="expected 2 joint angles"):
        cal.apply([0.0])


def test_calibrate_arm_from_a_held_zero_pose():
    rng = np.random.default_rng(0)
    true_offset = rng.uniform(-1, 1, 7)
    true_sign = np.array([1, -1, 1, 1, -1, 1, -1])
    robot_zero = np.array([0.0, 0.3, 0.0, -0.5, 0.0, 0.0, 0.1])
    raw_zero = true_offset + true_sign * robot_zero  # q = sign (raw - offset)  =>  raw = offset + sign q
    zero = raw_zero + rng.normal(0, 0.003, (400, 7))
    cal = calibrate_arm_from_samples(zero, side="left", robot_zero=robot_zero, signs=true_sign,
                                     limits=[(-2.0, 2.0)] * 7)
    np.testing.assert_allclose([j.offset for j in cal.joints], true_offset, atol=0.002)
    np.testing.assert_allclose(cal.apply(raw_zero), robot_zero, atol=0.002)
    assert [j.lower for j in cal.joints] == [-2.0] * 7
    # signs from a second held pose where the first four joints are bent
    robot_ref = robot_zero + np.array([0.8, -0.6, 0.5, 1.0, 0.0, 0.0, 0.0])
    ref = true_offset + true_sign * robot_ref + rng.normal(0, 0.003, (300, 7))
    cal2 = calibrate_arm_from_samples(zero, robot_zero=robot_zero, reference=(ref, robot_ref))
    assert [j.sign for j in cal2.joints][:4] == list(true_sign[:4])
    assert [j.sign for j in cal2.joints][4:] == [1, 1, 1]  # not moved: the default sign stays
    moving = zero.copy()
    moving[:, 2] += np.linspace(0, 0.3, len(moving))
    with pytest.raises(CalibrationError, match=r"joints \[2\] moved"):
        calibrate_arm_from_samples(moving)
    stuck = ref.copy()
    stuck[:, 1] = zero[:300, 1]
    with pytest.raises(CalibrationError, match="joint 1 barely moved"):
        calibrate_arm_from_samples(zero, robot_zero=robot_zero, reference=(stuck, robot_ref))


def test_calibrate_glove_from_an_open_close_recording():
    rng = np.random.default_rng(1)
    t = np.linspace(0, 6, 1200)[:, None]
    lo = rng.uniform(300, 1200, 16)
    hi = rng.uniform(2500, 3900, 16)
    phase = rng.uniform(0, 2 * np.pi, 16)
    samples = lo + (hi - lo) * 0.5 * (1 + np.sin(2 * np.pi * 0.5 * t + phase)) + rng.normal(0, 4, (1200, 16))
    samples[::200, 3] = 4095  # a few spikes (0.5%): the 1st/99th percentiles ignore them
    cal = calibrate_glove_from_samples(samples, side="right")
    mins = np.array([c.min for c in cal.channels])
    maxs = np.array([c.max for c in cal.channels])
    assert np.all(np.abs(mins - lo) < 0.03 * (hi - lo)) and np.all(np.abs(maxs - hi) < 0.03 * (hi - lo))
    x = cal.apply(samples[100])
    assert x.min() >= 0.0 and x.max() <= 1.0
    np.testing.assert_allclose(cal.apply(lo + 0.5 * (hi - lo)), 0.5, atol=0.03)
    samples[:, [4, 9]] = 2000 + rng.normal(0, 3, (1200, 2))
    with pytest.raises(CalibrationError, match=r"channels \[4, 9\] moved less"):
        calibrate_glove_from_samples(samples)


def test_calibrate_pedal_dead_zones_from_rest_and_press():
    rng = np.random.default_rng(2)
    rest_level = np.array([180.0, 220.0, 2048.0, 150.0])
    rest = rest_level + rng.normal(0, 4, (500, 4))
    ramp = np.linspace(0, 1, 600)[:, None]
    pressed = rest_level + ramp * (np.array([3950, 3900, 3800, 3990]) - rest_level)
    pressed[300:, 2] = 2048 - ramp[:300, 0] * (2048 - 250)  # rock the yaw rocker both ways
    cal = calibrate_pedal_from_samples(rest, pressed, centered=[False, False, True, False])
    assert [a.centered for a in cal.axes] == [False, False, True, False]
    assert all(0.03 <= a.dead_zone < 0.1 for a in cal.axes)
    out = np.array([cal.apply(r) for r in rest])
    assert np.all(out == 0.0)  # a resting foot commands exactly nothing
    np.testing.assert_allclose(cal.apply([3950, 3900, 3800, 3990]), [1, 1, 1, 1], atol=0.01)
    assert cal.apply([180, 220, 250, 150])[2] == pytest.approx(-1.0, abs=0.01)
    # just past the dead zone the command starts from 0, not from the dead zone's edge
    a0 = cal.axes[0]
    just = a0.min + (a0.dead_zone + 0.01) * (a0.max - a0.min)
    assert 0 < cal.apply([just, 0, 2048, 0])[0] < 0.02
    flat = pressed.copy()
    flat[:, 1] = rest_level[1]
    with pytest.raises(CalibrationError, match=r"axes \[1\] travelled less"):
        calibrate_pedal_from_samples(rest, flat, centered=[False, False, True, False])


# --------------------------------------------------------------------------------------------
# Pedal mapping


def test_pedal_mapping_targets():
    m = PedalMapper(PedalMappingConfig())
    assert m.target([0, 0, 0, 0]) == m.command  # at rest: stand still at stand height
    t = m.target([1.0, 0.0, -1.0, 1.0])
    assert t.vx == 0.8 and t.yaw_rate == -1.0 and t.height == pytest.approx(0.40)
    assert m.target([0.5, 1.0, 0.5, 0.5]).vx == pytest.approx(0.4 - 0.4)
    assert m.target([2.0, -1.0, 3.0, 0.0]).vx == 0.8  # out-of-range inputs are clipped
    with pytest.raises(ValueError, match="axis 3"):
        m.target([0.0, 0.0, 0.0])
    assert PedalMapper(PedalMappingConfig(yaw_axis=None, squat_axis=None)).target([0.0, 0.0, 1.0]).yaw_rate == 0.0
    with pytest.raises(ConfigError, match="min_height"):
        PedalMappingConfig(min_height=0.9)


def test_pedal_mapping_rate_limits():
    c = PedalMappingConfig(max_accel=1.0, max_yaw_accel=2.0, max_height_rate=0.2)
    m = PedalMapper(c)
    dt = 0.01
    previous = m.command
    history = []
    for _ in range(150):  # stomp: everything fully pressed at once
        cmd = m.update([1.0, 0.0, 1.0, 1.0], dt)
        assert abs(cmd.vx - previous.vx) <= c.max_accel * dt + 1e-12
        assert abs(cmd.yaw_rate - previous.yaw_rate) <= c.max_yaw_accel * dt + 1e-12
        assert abs(cmd.height - previous.height) <= c.max_height_rate * dt + 1e-12
        history.append(cmd)
        previous = cmd
    assert history[78].vx < 0.8 and history[80].vx == pytest.approx(0.8)  # 0.8 m/s at 1 m/s^2: 0.8 s
    assert history[48].yaw_rate < 1.0 and history[50].yaw_rate == pytest.approx(1.0)
    assert history[-1].height == pytest.approx(0.74 - 0.2 * 1.5)  # still squatting down at 0.2 m/s
    # the pedal goes away: ramp to a stop at the same limits, keeping the height
    height = m.command.height
    for _ in range(10):
        cmd = m.update(None, dt)
    assert cmd.vx == pytest.approx(0.8 - 0.1) and cmd.yaw_rate == pytest.approx(1.0 - 0.2) and cmd.height == height
    # a stalled loop (dt = 5 s) may not jump: it counts as max_dt
    m.reset()
    cmd = m.update([0.0, 1.0, 0.0, 0.0], 5.0)
    assert cmd.vx == pytest.approx(-c.max_accel * c.max_dt)
    assert m.update([0.0, 1.0, 0.0, 0.0], -1.0).vx == cmd.vx  # time never runs backwards


def test_simulated_device_api():
    sim = SimulatedGlove(side="right", n_channels=16, rate_hz=100, seed=3)
    assert sim.kind == "glove_right" and sim.port.endswith("glove_right")
    values = sim.motion(1.0)
    assert values.shape == (16,) and np.all((values > 0) & (values < 4095))
    with pytest.raises(ValueError, match="probability"):
        FaultConfig(bit_flip=1.5)
    with pytest.raises(ValueError, match="rate_hz"):
        SimulatedPedal(rate_hz=0)
    with pytest.raises(ValueError, match="mode"):
        sim.unplug(mode="yank")
    with sim:
        assert wait_until(lambda: sim.stats.produced > 5, 2.0)
        assert math.isclose(len(sim.truth), sim.stats.produced, abs_tol=1)
    assert not __import__("os").path.exists(sim.port)  # stop() removes the link
