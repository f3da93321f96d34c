"""The cockpit protocol and its streaming parser: CRC vectors, round trips, and a fuzz corpus."""

from __future__ import annotations

import math
import random
import struct
import time

import pytest

from roboreward.teleop import protocol
from roboreward.teleop.parser import StreamParser
from roboreward.teleop.protocol import (
    ArmReading,
    DeviceType,
    GloveReading,
    PedalReading,
    Side,
    crc16,
    crc16_ccitt_false_reference,
    decode_frame,
    encode_frame,
    encode_raw_frame,
    frame_size,
)

# --------------------------------------------------------------------------------------------
# CRC


def _crc16_bitwise(data: bytes) -> int:
    """A third, bit-at-a-time CRC-16/CCITT-FALSE, written from the definition."""
    crc = 0xFFFF
    for byte in data:
        for i in range(7, -1, -1):
            bit = (byte >> i) & 1
            top = (crc >> 15) & 1
            crc = (crc << 1) & 0xFFFF
            if top ^ bit:
                crc ^= 0x1021
    return crc


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"123456789", 0x29B1),  # the catalogue check value of CRC-16/CCITT-FALSE
        (b"", 0xFFFF),  # the initial value, untouched
        (b"A", 0xB915),
        (b"\x00", 0xE1F0),
        (b"\xff\xff", 0x0000),  # a message followed by its CRC (big-endian) gives 0; here the empty one's
    ],
)
def test_crc_vectors(data, expected):
    assert crc16(data) == expected
    assert crc16_ccitt_false_reference(data) == expected
    assert _crc16_bitwise(data) == expected


def test_crc_xmodem_variant_and_random_agreement():
    assert crc16(b"123456789", 0) == 0x31C3  # same polynomial, init 0: CRC-16/XMODEM
    assert crc16_ccitt_false_reference(b"123456789", 0) == 0x31C3
    rng = random.Random(7)
    for _ in range(300):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80)))
        assert crc16(data) == crc16_ccitt_false_reference(data) == _crc16_bitwise(data)
        assert crc16(data + crc16(data).to_bytes(2, "big")) == 0


def test_crc_detects_every_single_and_double_bit_error_in_a_frame():
    body = encode_frame(_arm(3))[2:-2]
    good = crc16(body)
    bits = len(body) * 8
    for i in range(bits):
        flipped = bytearray(body)
        flipped[i // 8] ^= 1 << (i % 8)
        assert crc16(flipped) != good
        for j in range(i + 1, min(bits, i + 17)):  # bursts up to 16 bits are always caught
            twice = bytearray(flipped)
            twice[j // 8] ^= 1 << (j % 8)
            assert crc16(twice) != good


# --------------------------------------------------------------------------------------------
# Frames


def _arm(seq: int, side: Side = Side.LEFT, n: int = 7, t: float = 12.5) -> ArmReading:
    return ArmReading(seq, t, 0.0, side, tuple(0.25 * i - 0.75 for i in range(n)))  # exact in float32


def _glove(seq: int, side: Side = Side.RIGHT, n: int = 15, t: float = 12.5) -> GloveReading:
    return GloveReading(seq, t, 0.0, side, tuple((97 * i) % 4096 for i in range(n)))


def _pedal(seq: int, n: int = 4, t: float = 12.5, buttons: int = 0b1010) -> PedalReading:
    return PedalReading(seq, t, 0.0, tuple(1000 * i for i in range(n)), buttons)


def test_frame_sizes_match_the_documented_table():
    assert frame_size(DeviceType.EXOSKELETON_ARM, 7) == len(encode_frame(_arm(0))) == 46
    assert frame_size(DeviceType.GLOVE, 15) == len(encode_frame(_glove(0))) == 48
    assert frame_size(DeviceType.PEDAL, 4) == len(encode_frame(_pedal(0))) == 27
    doc = protocol.__doc__
    for text in ("0xAA 0x55", "CRC-16/CCITT-FALSE", "46 for a 7-joint arm", "48 for a 15-channel glove", "27 for"):
        assert text in doc


def test_frame_layout_bytes():
    frame = encode_frame(_pedal(0x1234, n=3, t=1.000002, buttons=0x8001))
    assert frame[:2] == b"\xaa\x55"
    assert frame[2] == DeviceType.PEDAL
    assert frame[3] == len(frame) - 8 == 11 + 2 * 3
    assert struct.unpack_from("<H", frame, 4)[0] == 0x1234
    assert struct.unpack_from("<QHB", frame, 6) == (1_000_002, 0x8001, 3)
    assert struct.unpack_from("<3H", frame, 17) == (0, 1000, 2000)
    assert struct.unpack_from("<H", frame, len(frame) - 2)[0] == crc16(frame[2:-2])


@pytest.mark.parametrize(
    "reading",
    [
        _arm(0),
        _arm(65535, Side.RIGHT, n=24, t=0.0),
        ArmReading(7, 3600.123456, 0.0, Side.LEFT, (3.140000104904175, -1e-3, 1e30, -0.0, 0.5, 0.5, 2.0)),
        _glove(1),
        GloveReading(2, 99.0, 0.0, Side.LEFT, (0, 65535) + (4095,) * 30),
        _pedal(3),
        PedalReading(4, 1.5, 0.0, (65535,), 0xFFFF),
        _pedal(5, n=16, buttons=0),
    ],
)
def test_encode_decode_round_trip(reading):
    frame = encode_frame(reading)
    decoded = decode_frame(frame, t_received=reading.t_received)
    if isinstance(reading, ArmReading):  # angles travel as float32
        as_f32 = struct.Struct(f"<{len(reading.angles)}f")
        assert decoded.angles == as_f32.unpack(as_f32.pack(*reading.angles))
        assert decoded.side == reading.side
    else:
        assert decoded == reading
    assert decoded.seq == reading.seq and decoded.t_device_us == reading.t_device_us
    assert type(decoded) is type(reading)
    (only,) = StreamParser().feed(frame, reading.t_received)
    assert only == decoded


def test_encode_rejects_what_the_protocol_cannot_carry():
    with pytest.raises(ValueError, match="1..24"):
        encode_frame(_arm(0, n=25))
    with pytest.raises(ValueError, match="1..32"):
        encode_frame(_glove(0, n=0))
    with pytest.raises(struct.error):
        encode_frame(GloveReading(0, 1.0, 0.0, Side.LEFT, (70000,)))
    with pytest.raises(ValueError, match="non-negative"):
        encode_frame(_pedal(0, t=-1.0))
    with pytest.raises(ValueError, match="at most 255"):
        encode_raw_frame(1, 0, bytes(256))


def test_decode_frame_names_each_fault():
    frame = bytearray(encode_frame(_arm(1)))
    bad_crc = bytearray(frame)
    bad_crc[10] ^= 0x10
    with pytest.raises(ValueError, match="CRC"):
        decode_frame(bytes(bad_crc))
    with pytest.raises(ValueError, match="unknown device type"):
        decode_frame(bytes(frame[:2] + b"\x07" + frame[3:]))
    with pytest.raises(ValueError, match="bad length"):
        decode_frame(bytes(frame[:-1]))
    with pytest.raises(ValueError, match="sync"):
        decode_frame(b"\x00" * 50)
    # a CRC-valid frame whose joint count contradicts its length
    payload = struct.pack("<QBB", 1, 0, 6) + bytes(28)
    with pytest.raises(ValueError, match="malformed payload: it announces 6 values but its length 38 holds 7"):
        decode_frame(encode_raw_frame(DeviceType.EXOSKELETON_ARM, 0, payload))
    with pytest.raises(ValueError, match="malformed payload: side byte 2"):
        decode_frame(encode_raw_frame(DeviceType.GLOVE, 0, struct.pack("<QBB", 1, 2, 1) + bytes(2)))


F32_MAX = struct.unpack("<f", b"\xff\xff\x7f\x7f")[0]


@pytest.mark.parametrize("bad, shown", [(math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf"), (-math.nan, "nan")])
def test_a_non_finite_angle_makes_a_crc_valid_frame_malformed(bad, shown):
    angles = (0.1, bad, 0.3, 0.0, 0.0, 0.0, 0.0)
    frame = encode_frame(ArmReading(5, 1.0, 0.0, Side.LEFT, angles))
    assert crc16(frame[2:-2]) == struct.unpack_from("<H", frame, len(frame) - 2)[0]  # intact on the wire
    with pytest.raises(ValueError, match=f"malformed payload: joint angle 1 is {shown}; angles must be finite"):
        decode_frame(frame)
    # In a stream it is rejected like a corrupted frame, and the frames around it come through.
    p = StreamParser()
    got = p.feed(encode_frame(_arm(4)) + frame + encode_frame(_arm(6)), 0.0)
    assert [r.seq for r in got] == [4, 6]
    assert p.stats.bad_payload == 1 and p.stats.rejected_frames == 1
    assert p.stats.sequence_gaps == 1 and p.stats.dropped_frames == 1  # its number is missing, as for a lost frame
    assert _balanced(p)


def test_finite_extremes_pass_and_any_non_finite_angle_of_24_is_caught():
    # The decoder sums the angles to test them all at once: 24 float32 maxima must not overflow that sum.
    for angles in ((F32_MAX,) * 24, (-F32_MAX,) * 24, (F32_MAX, -F32_MAX) * 12, (0.0,) * 24):
        (r,) = StreamParser().feed(encode_frame(ArmReading(1, 1.0, 0.0, Side.RIGHT, angles)), 0.0)
        assert r.angles == angles
    for i in range(24):
        for bad in (math.nan, math.inf, -math.inf):
            angles = [F32_MAX if k % 2 else -F32_MAX for k in range(24)]
            angles[i] = bad
            p = StreamParser()
            assert p.feed(encode_frame(ArmReading(1, 1.0, 0.0, Side.RIGHT, tuple(angles))), 0.0) == []
            assert p.stats.bad_payload == 1
    # +inf and -inf together would cancel in a careless check; they are caught.
    p = StreamParser()
    assert p.feed(encode_frame(ArmReading(1, 1.0, 0.0, Side.LEFT, (math.inf, -math.inf) + (0.0,) * 5)), 0.0) == []
    assert p.stats.bad_payload == 1


# --------------------------------------------------------------------------------------------
# Parser basics


def _stream(n: int = 300) -> tuple[bytes, list]:
    readings = []
    for i in range(n):
        readings += [_arm(i, t=i * 0.005), _glove(i, t=i * 0.005), _pedal(i, t=i * 0.005)]
    return b"".join(encode_frame(r) for r in readings), readings


def _key(r):
    return (type(r).__name__, r.seq, r.t_device_us)


def test_parser_same_result_however_the_stream_is_cut():
    data, readings = _stream(100)
    whole = StreamParser().feed(data, 0.0)
    assert [_key(r) for r in whole] == [_key(r) for r in readings]
    one = StreamParser()
    by_byte = [r for i in range(len(data)) for r in one.feed(data[i : i + 1], 0.0)]
    assert [_key(r) for r in by_byte] == [_key(r) for r in readings]
    rng = random.Random(3)
    for _ in range(20):
        p = StreamParser()
        got, i = [], 0
        while i < len(data):
            k = rng.randint(1, 120)
            got += p.feed(data[i : i + k], 0.0)
            i += k
        assert [_key(r) for r in got] == [_key(r) for r in readings]
        assert p.stats.frames == len(readings) and p.stats.garbage_bytes == 0 and p.buffered == 0
        assert p.stats.rejected_frames == p.stats.dropped_frames == 0


def test_parser_sequence_tracking_per_stream():
    p = StreamParser()
    seqs = [65533, 65534, 65535, 0, 1, 4, 5, 5, 6, 100, 101, 7]  # wrap, gap of 2, duplicate, gap of 93, reset
    p.feed(b"".join(encode_frame(_arm(s)) for s in seqs), 0.0)
    # a second device on the same stream has its own numbering (and a gap of 1)
    p.feed(b"".join(encode_frame(_glove(s)) for s in (10, 11, 13)), 0.0)
    s = p.stats
    assert (s.sequence_gaps, s.dropped_frames, s.duplicates, s.sequence_resets) == (3, 2 + 93 + 1, 1, 1)
    p.reset_sequences()
    p.feed(encode_frame(_arm(0)), 0.0)  # after a reopen the device may have rebooted: no gap counted
    assert p.stats.sequence_resets == 1 and p.stats.dropped_frames == 96


def test_parser_stamps_receive_time():
    frame = encode_frame(_arm(0))
    (r,) = StreamParser().feed(frame, t_received=42.0)
    assert r.t_received == 42.0
    before = time.monotonic()
    (r,) = StreamParser().feed(frame)
    assert before <= r.t_received <= time.monotonic()


def test_parser_is_fast():
    """Three 200 Hz devices need 600 frames/s; demand 10x that in CPU time, fed frame by frame."""
    data, readings = _stream(1000)
    frames = [encode_frame(r) for r in readings]
    p = StreamParser()
    start = time.process_time()
    n = sum(len(p.feed(f, 0.0)) for f in frames)
    cpu = max(time.process_time() - start, 1e-9)
    assert n == len(frames)
    assert n / cpu > 6000, f"parser ran at {n / cpu:.0f} frames per CPU second"


# --------------------------------------------------------------------------------------------
# Fuzz


def _balanced(p: StreamParser) -> bool:
    s = p.stats
    return s.bytes_in == s.frame_bytes + s.garbage_bytes + p.buffered


def _feed_chunked(p: StreamParser, data: bytes, rng: random.Random, max_chunk: int = 300) -> list:
    out, i = [], 0
    while i < len(data):
        k = rng.randint(1, max_chunk)
        out += p.feed(data[i : i + k], 0.0)
        i += k
    return out


def test_fuzz_random_bytes_never_raise():
    rng = random.Random(1234)
    total = StreamParser()
    for case in range(2000):
        n = rng.choice((1, 2, 5, 8, 30, 100, 600))
        if case % 4 == 0:  # make sync pairs and valid headers common, not one in 65536
            data = bytearray(rng.choice((0xAA, 0x55, 1, 2, 3, 38, 40, 19)) for _ in range(n))
        else:
            data = bytearray(rng.randrange(256) for _ in range(n))
        p = StreamParser()
        readings = _feed_chunked(p, bytes(data), rng, 40)
        assert _balanced(p)
        for r in readings:  # anything accepted must be a genuine frame of the input
            assert encode_frame(r) in data
        total.feed(bytes(data), 0.0)
    assert _balanced(total)
    assert total.stats.unknown_type > 0 and total.stats.bad_length > 0 and total.stats.bad_crc > 0


def test_fuzz_every_single_bit_flip_is_rejected_and_the_next_frame_recovered():
    cases = 0
    for make in (_arm, _glove, _pedal):
        frame = encode_frame(make(5))
        # enough followers to complete any length a flipped length byte may claim (<= 263 bytes)
        followers = b"".join(encode_frame(make(s)) for s in range(6, 16))
        for bit in range(len(frame) * 8):
            bad = bytearray(frame)
            bad[bit // 8] ^= 1 << (bit % 8)
            p = StreamParser()
            got = p.feed(bytes(bad) + followers, 0.0)
            assert [r.seq for r in got] == list(range(6, 16)), f"flip of bit {bit} of a {make.__name__} frame"
            s = p.stats
            # a flip in the sync bytes hides the frame (its bytes are skipped); any other flip is one fault
            assert s.rejected_frames == (0 if bit < 16 else 1)
            assert s.garbage_bytes == len(frame) and _balanced(p) and p.buffered == 0
            cases += 1
    assert cases > 900


def _clean(frame: bytes | bytearray) -> bool:
    """No sync pattern inside (after the first byte): rejected bytes cannot fake a frame start."""
    return frame.find(protocol.SYNC, 1) < 0


def _planted_corpus(seed: int, n_items: int):
    """A stream of valid frames and planted faults, with the exact counters the parser must report."""
    rng = random.Random(seed)
    makers = {"arm": lambda s, t: _arm(s, Side.LEFT, t=t), "glove": lambda s, t: _glove(s, Side.RIGHT, t=t),
              "pedal": lambda s, t: _pedal(s, t=t)}
    next_seq = {k: 65500 + 7 * i for i, k in enumerate(makers)}  # wraps through 65535 -> 0
    delivered: dict[str, list[int]] = {k: [] for k in makers}
    expect = {"bad_crc": 0, "bad_length": 0, "unknown_type": 0, "garbage_bytes": 0}
    out = bytearray()
    expected_readings = []
    kinds = ["ok"] * 5 + ["garbage", "bit_flip", "truncate", "bad_type", "bad_length", "dropout"]
    force_ok = False
    for i in range(n_items):
        kind = "ok" if force_ok or i >= n_items - 10 else rng.choice(kinds)
        force_ok = False
        if kind == "garbage":
            junk = bytes(rng.choice([b for b in range(256) if b != 0xAA]) for _ in range(rng.randint(1, 40)))
            out += junk
            expect["garbage_bytes"] += len(junk)
            continue
        stream = rng.choice(list(makers))
        seq = next_seq[stream]
        next_seq[stream] = (seq + 1) & 0xFFFF
        t = i * 1e-3 + rng.random() * 1e-4
        frame = bytearray(encode_frame(makers[stream](seq, t)))
        if kind == "ok":
            out += frame
            delivered[stream].append(seq)
            expected_readings.append((stream, seq))
            continue
        if kind == "dropout":
            continue
        if kind == "bit_flip":
            while True:
                bad = bytearray(frame)
                bit = rng.randrange(32, len(frame) * 8)  # sequence, payload or CRC
                bad[bit // 8] ^= 1 << (bit % 8)
                if _clean(bad):
                    break
            expect["bad_crc"] += 1
        elif kind == "bad_type":
            bad = bytearray(frame)
            bad[2] = rng.choice([b for b in range(256) if b not in (1, 2, 3, 0xAA)])
            expect["unknown_type"] += 1
        elif kind == "bad_length":
            bad = bytearray(frame)
            valid = protocol.LAYOUTS[frame[2]].lengths
            bad[3] = rng.choice([b for b in range(256) if b not in valid and b != 0xAA])
            expect["bad_length"] += 1
        else:  # truncate: always followed by a valid frame, so what the parser sees is determined
            k = rng.randrange(1, len(frame))
            bad = frame[:k]
            force_ok = True
            if k == 2:
                expect["unknown_type"] += 1  # the next frame's 0xAA reads as the device type
            elif k == 3:
                expect["bad_length"] += 1  # ... or as the length (170: valid for no device)
            elif k >= 4:
                expect["bad_crc"] += 1  # the next frame's bytes complete the payload; the CRC fails
        if not _clean(bad):
            return None  # rare: a sync pattern inside a rejected frame; the caller picks another seed
        out += bad
        expect["garbage_bytes"] += len(bad)
    gaps = dropped = 0
    for seqs in delivered.values():
        for a, b in zip(seqs, seqs[1:]):
            step = (b - a) & 0xFFFF
            if step > 1:
                gaps += 1
                dropped += step - 1
    expect["sequence_gaps"] = gaps
    expect["dropped_frames"] = dropped
    expect["frames"] = len(expected_readings)
    return bytes(out), expected_readings, expect


def test_fuzz_planted_faults_are_counted_exactly():
    stream_names = {ArmReading: "arm", GloveReading: "glove", PedalReading: "pedal"}
    corpora = 0
    for seed in range(40):
        built = _planted_corpus(seed, 400)
        if built is None:
            continue
        data, expected_readings, expect = built
        rng = random.Random(seed)
        for way in ("whole", "chunks", "bytes") if corpora < 3 else ("chunks",):
            p = StreamParser()
            if way == "whole":
                got = p.feed(data, 0.0)
            elif way == "bytes":
                got = [r for i in range(len(data)) for r in p.feed(data[i : i + 1], 0.0)]
            else:
                got = _feed_chunked(p, data, rng)
            assert [(stream_names[type(r)], r.seq) for r in got] == expected_readings, f"seed {seed}, {way}"
            s = p.stats
            actual = {k: getattr(s, k) for k in expect}
            assert actual == expect, f"seed {seed}, fed {way}"
            assert s.bad_payload == s.duplicates == s.sequence_resets == 0
            assert p.buffered == 0 and _balanced(p)
        corpora += 1
    assert corpora >= 30  # 30+ corpora x 400 items: thousands of planted cases


def test_fuzz_valid_frames_among_random_garbage_are_all_recovered():
    rng = random.Random(99)
    data = bytearray()
    expected = []
    for i in range(3000):
        if rng.random() < 0.5:
            data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        if rng.random() < 0.1:  # a fake frame start with a valid header and a wrong CRC
            data += encode_raw_frame(DeviceType.GLOVE, i, bytes(40))[:-2] + b"\x00\x00"
        r = (_arm, _glove, _pedal)[i % 3](i & 0xFFFF, t=i * 1e-3)
        data += encode_frame(r)
        expected.append(_key(r))
    p = StreamParser()
    got = _feed_chunked(p, bytes(data), rng, 200)
    assert [_key(r) for r in got] == expected
    assert p.stats.bad_crc >= 250 and p.stats.garbage_bytes > 40_000
    assert _balanced(p)
