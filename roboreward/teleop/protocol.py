"""The cockpit's one serial protocol: framed binary readings from exoskeleton arms, gloves and pedals.

Every device (a microcontroller on a USB serial port) streams one frame per reading. All
multi-byte fields are little-endian.

Frame
-----

======  ======  ============  ===============================================================
offset  bytes   field         meaning
======  ======  ============  ===============================================================
0       2       sync          ``0xAA 0x55``: start of a frame
2       1       device type   ``0x01`` exoskeleton arm, ``0x02`` Hall glove, ``0x03`` pedal
3       1       length N      payload bytes (0..255); only the sizes listed below are valid
4       2       sequence      uint16, +1 per reading the device *produced*, wraps at 65536
6       N       payload       see the device tables below
6+N     2       CRC           CRC-16/CCITT-FALSE of bytes 2 .. 6+N-1 (type, length, sequence
                              and payload; not the sync). Poly 0x1021, init 0xFFFF, no
                              reflection, no final xor; check value 0x29B1 for ``b"123456789"``
======  ======  ============  ===============================================================

A frame is 8 + N bytes: 46 for a 7-joint arm, 48 for a 15-channel glove, 27 for a 4-axis pedal.

Payloads (every payload starts with the device's clock)
-------------------------------------------------------

Exoskeleton arm, type 0x01, N = 10 + 4·J with 1 <= J <= 24 joints (the cockpit's arms have 7)

======  ======  ===========  ===================================================================
offset  bytes   field        meaning
======  ======  ===========  ===================================================================
0       8       t_us         uint64, device clock in microseconds when the reading was taken
8       1       side         0 left, 1 right
9       1       J            number of joints
10      4·J     angles       float32 joint angles in radians, joint 0 (shoulder) first; raw
                             exoskeleton angles, before calibration; finite (no NaN, no ±inf)
======  ======  ===========  ===================================================================

Hall glove, type 0x02, N = 10 + 2·C with 1 <= C <= 32 channels (the cockpit's gloves have 15+)

======  ======  ===========  ===================================================================
0       8       t_us         uint64, device clock in microseconds
8       1       side         0 left, 1 right
9       1       C            number of Hall-sensor channels
10      2·C     channels     uint16 raw ADC readings (12-bit sensors use 0..4095)
======  ======  ===========  ===================================================================

Pedal, type 0x03, N = 11 + 2·A with 1 <= A <= 16 axes (the cockpit's pedal has 4)

======  ======  ===========  ===================================================================
0       8       t_us         uint64, device clock in microseconds
8       2       buttons      uint16 bitfield, bit i set = button i pressed
10      1       A            number of analog axes
11      2·A     axes         uint16 raw ADC readings
======  ======  ===========  ===================================================================

A CRC-valid frame whose payload contradicts itself (a count that does not match the length, a
side other than 0 or 1) or that carries a NaN or infinite angle is malformed: the decoder rejects
it like a corrupted frame (the parser counts it as ``bad_payload``), so no non-finite number ever
reaches calibration, retargeting or a robot command. Glove channels and pedal axes are ADC counts:
a count above the sensor's largest reading (``adc_max`` of the driver's config, 4095 for a 12-bit
ADC) cannot come from the sensor, and the driver drops that reading (its ``out_of_range`` count).

Each device type accepts only its own few lengths (24, 32 and 16 of the 256 byte values), so a
corrupted header is usually rejected at once instead of making the parser wait for a payload. The
sequence number lets the host count frames lost on the wire (see
:class:`roboreward.teleop.parser.StreamParser`). The simulated devices stamp ``t_us`` with the
host's ``CLOCK_MONOTONIC``, so ``t_received - t_device`` is the device-to-driver latency; real
devices have their own clock, and only differences between their timestamps are meaningful.
"""

from __future__ import annotations

import binascii
import enum
import math
import struct
from dataclasses import dataclass
from typing import ClassVar

SYNC = b"\xaa\x55"
HEADER_SIZE = 6  # sync, type, length, sequence
CRC_SIZE = 2
FRAME_OVERHEAD = HEADER_SIZE + CRC_SIZE
MAX_PAYLOAD = 255

MAX_JOINTS = 24
MAX_CHANNELS = 32
MAX_AXES = 16


class DeviceType(enum.IntEnum):
    """The device-type byte of a frame."""

    EXOSKELETON_ARM = 0x01
    GLOVE = 0x02
    PEDAL = 0x03


class Side(enum.IntEnum):
    """Which arm or hand a reading belongs to."""

    LEFT = 0
    RIGHT = 1

    @classmethod
    def parse(cls, value: str | int | Side) -> Side:
        if isinstance(value, str):
            try:
                return cls[value.upper()]
            except KeyError:
                raise ValueError(f"side must be 'left' or 'right', got {value!r}") from None
        return cls(value)


# --------------------------------------------------------------------------------------------
# CRC-16/CCITT-FALSE


def _make_crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _make_crc_table()


def crc16_ccitt_false_reference(data: bytes | bytearray | memoryview, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, MSB first, no final xor), table-driven.

    The readable reference a microcontroller firmware would port; :func:`crc16` computes the same
    value in C (``binascii.crc_hqx`` is this CRC with a caller-chosen initial value).
    """
    table = _CRC_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
    return crc


def crc16(data: bytes | bytearray | memoryview, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE of ``data``, fast (C). Equal to :func:`crc16_ccitt_false_reference`."""
    return binascii.crc_hqx(data, crc)


# --------------------------------------------------------------------------------------------
# Readings


@dataclass(frozen=True, slots=True)
class Reading:
    """One decoded frame.

    :param seq: the frame's sequence number (uint16).
    :param t_device: the device's timestamp in seconds (``t_us / 1e6``).
    :param t_received: host ``time.monotonic()`` when the bytes that completed the frame were read.
    """

    seq: int
    t_device: float
    t_received: float

    device_type: ClassVar[DeviceType]

    @property
    def t_device_us(self) -> int:
        return round(self.t_device * 1e6)

    @property
    def stream_key(self) -> tuple[int, int]:
        """Identifies one device's stream on a port: (device type, side); sequence numbers run per key."""
        return (int(self.device_type), int(getattr(self, "side", 0)))


@dataclass(frozen=True, slots=True)
class ArmReading(Reading):
    """Raw exoskeleton joint angles (radians), joint 0 first."""

    side: Side
    angles: tuple[float, ...]

    device_type: ClassVar[DeviceType] = DeviceType.EXOSKELETON_ARM


@dataclass(frozen=True, slots=True)
class GloveReading(Reading):
    """Raw Hall-sensor readings (ADC counts), channel 0 first."""

    side: Side
    channels: tuple[int, ...]

    device_type: ClassVar[DeviceType] = DeviceType.GLOVE


@dataclass(frozen=True, slots=True)
class PedalReading(Reading):
    """Raw pedal axes (ADC counts) and the buttons bitfield."""

    axes: tuple[int, ...]
    buttons: int

    device_type: ClassVar[DeviceType] = DeviceType.PEDAL

    def pressed(self, button: int) -> bool:
        return bool(self.buttons >> button & 1)


# --------------------------------------------------------------------------------------------
# Payload layouts


class _Layout:
    """How one device type's payload is laid out: valid lengths, encoder and decoder."""

    def __init__(self, device_type: DeviceType, fixed: int, item: str, max_items: int):
        self.device_type = device_type
        self.fixed = fixed  # bytes before the items
        self.item = item  # struct code of one item
        self.item_size = struct.calcsize("<" + item)
        self.max_items = max_items
        self.lengths = frozenset(fixed + self.item_size * n for n in range(1, max_items + 1))
        self._structs: dict[int, struct.Struct] = {}

    def items_struct(self, n: int) -> struct.Struct:
        s = self._structs.get(n)
        if s is None:
            s = self._structs[n] = struct.Struct(f"<{n}{self.item}")
        return s

    def length(self, n: int) -> int:
        if not 1 <= n <= self.max_items:
            raise ValueError(f"{self.device_type.name.lower()} frames carry 1..{self.max_items} values, got {n}")
        return self.fixed + self.item_size * n


_ARM_HEAD = struct.Struct("<QBB")  # t_us, side, joints
_GLOVE_HEAD = struct.Struct("<QBB")  # t_us, side, channels
_PEDAL_HEAD = struct.Struct("<QHB")  # t_us, buttons, axes
# The device types whose payload head is (t_us, side, n): its struct and the reading it decodes to.
_SIDED: dict[int, tuple[struct.Struct, type[ArmReading] | type[GloveReading]]] = {
    DeviceType.EXOSKELETON_ARM: (_ARM_HEAD, ArmReading),
    DeviceType.GLOVE: (_GLOVE_HEAD, GloveReading),
}
_HEADER = struct.Struct("<2sBBH")  # sync, type, length, seq
_CRC = struct.Struct("<H")

LAYOUTS: dict[int, _Layout] = {
    DeviceType.EXOSKELETON_ARM: _Layout(DeviceType.EXOSKELETON_ARM, 10, "f", MAX_JOINTS),
    DeviceType.GLOVE: _Layout(DeviceType.GLOVE, 10, "H", MAX_CHANNELS),
    DeviceType.PEDAL: _Layout(DeviceType.PEDAL, 11, "H", MAX_AXES),
}


def frame_size(device_type: DeviceType | int, n_values: int) -> int:
    """Bytes on the wire for one frame with ``n_values`` joints / channels / axes."""
    return FRAME_OVERHEAD + LAYOUTS[int(device_type)].length(n_values)


def _t_us(t_device: float) -> int:
    t = round(t_device * 1e6)
    if not 0 <= t < 1 << 64:
        raise ValueError(f"t_device must be a non-negative time in seconds, got {t_device!r}")
    return t


def encode_payload(reading: Reading) -> bytes:
    """The payload bytes of ``reading`` (see the module docstring).

    Values are not checked against their range: a NaN angle or an out-of-range count encodes, so a
    simulated device can send the faults the decoder and the drivers must reject.
    """
    # Every payload is a head (t_us, then the side or the buttons, then the count n) and n items.
    if isinstance(reading, ArmReading):
        head, tag, items = _ARM_HEAD, int(reading.side), reading.angles
    elif isinstance(reading, GloveReading):
        head, tag, items = _GLOVE_HEAD, int(reading.side), reading.channels
    elif isinstance(reading, PedalReading):
        head, tag, items = _PEDAL_HEAD, reading.buttons, reading.axes
    else:
        raise TypeError(f"cannot encode {type(reading).__name__}; expected an ArmReading, GloveReading or PedalReading")
    layout = LAYOUTS[reading.device_type]
    n = len(items)
    layout.length(n)
    return head.pack(_t_us(reading.t_device), tag, n) + layout.items_struct(n).pack(*items)


def encode_raw_frame(device_type: int, seq: int, payload: bytes) -> bytes:
    """Wrap any payload in a frame (header + CRC). No checks on the payload: tests use it to craft faults."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload is {len(payload)} bytes; a frame carries at most {MAX_PAYLOAD}")
    body = _HEADER.pack(SYNC, device_type & 0xFF, len(payload), seq & 0xFFFF) + payload
    return body + _CRC.pack(crc16(body[2:]))


def encode_frame(reading: Reading, seq: int | None = None) -> bytes:
    """The frame for ``reading`` (its ``seq`` unless ``seq`` is given); ``t_received`` is not sent."""
    return encode_raw_frame(reading.device_type, reading.seq if seq is None else seq, encode_payload(reading))


def decode_payload(device_type: int, payload: bytes | bytearray | memoryview, offset: int, length: int, seq: int,
                   t_received: float) -> Reading | None:
    """Decode a payload whose CRC already checked out; None if it is malformed (count mismatch, bad side,
    a NaN or infinite angle)."""
    if device_type in _SIDED:  # arm and glove: one layout, items of their own type
        head, reading_class = _SIDED[device_type]
        t_us, side, n = head.unpack_from(payload, offset)
        layout = LAYOUTS[device_type]
        if side > 1 or n == 0 or length != layout.fixed + layout.item_size * n:
            return None
        items = layout.items_struct(n).unpack_from(payload, offset + layout.fixed)
        # The sum of at most 24 float32 values cannot overflow a float64, so it is finite exactly when
        # every angle is: one C-level pass instead of a test per angle (NaN fails every < and >).
        if device_type == DeviceType.EXOSKELETON_ARM and not math.isfinite(sum(items)):
            return None
        return reading_class(seq, t_us * 1e-6, t_received, _SIDES[side], items)
    if device_type == DeviceType.PEDAL:
        t_us, buttons, n = _PEDAL_HEAD.unpack_from(payload, offset)
        layout = LAYOUTS[device_type]
        if n == 0 or length != layout.fixed + layout.item_size * n:
            return None
        axes = layout.items_struct(n).unpack_from(payload, offset + layout.fixed)
        return PedalReading(seq, t_us * 1e-6, t_received, axes, buttons)
    return None


_SIDES = (Side.LEFT, Side.RIGHT)


def decode_frame(frame: bytes, t_received: float = 0.0) -> Reading:
    """Decode exactly one complete frame, raising ``ValueError`` on any fault (for tests and tools).

    Streams go through :class:`roboreward.teleop.parser.StreamParser`, which never raises.
    """
    if len(frame) < FRAME_OVERHEAD or frame[:2] != SYNC:
        raise ValueError("not a frame: it must start with the sync bytes AA 55 and be at least 8 bytes long")
    _, device_type, length, seq = _HEADER.unpack_from(frame, 0)
    if device_type not in LAYOUTS:
        raise ValueError(f"unknown device type 0x{device_type:02x}")
    if length not in LAYOUTS[device_type].lengths or len(frame) != FRAME_OVERHEAD + length:
        raise ValueError(f"bad length {length} for a {DeviceType(device_type).name} frame of {len(frame)} bytes")
    (crc,) = _CRC.unpack_from(frame, HEADER_SIZE + length)
    if crc16(frame[2 : HEADER_SIZE + length]) != crc:
        raise ValueError("CRC mismatch")
    reading = decode_payload(device_type, frame, HEADER_SIZE, length, seq, t_received)
    if reading is None:
        raise ValueError(f"malformed payload: {_payload_fault(device_type, frame, length)}")
    return reading


def _payload_fault(device_type: int, frame: bytes, length: int) -> str:
    """What is wrong with a CRC-valid payload that :func:`decode_payload` rejected, in words."""
    layout = LAYOUTS[device_type]
    if device_type == DeviceType.PEDAL:
        _, _, n = _PEDAL_HEAD.unpack_from(frame, HEADER_SIZE)
        side = 0
    else:
        _, side, n = _SIDED[device_type][0].unpack_from(frame, HEADER_SIZE)
    if side > 1:
        return f"side byte {side}; it must be 0 (left) or 1 (right)"
    if n == 0 or length != layout.fixed + layout.item_size * n:
        return f"it announces {n} values but its length {length} holds {(length - layout.fixed) / layout.item_size:g}"
    items = layout.items_struct(n).unpack_from(frame, HEADER_SIZE + layout.fixed)
    bad = [(i, x) for i, x in enumerate(items) if not math.isfinite(x)]
    return f"joint angle {bad[0][0]} is {bad[0][1]}; angles must be finite" if bad else "unknown fault"


__all__ = [
    "ArmReading",
    "DeviceType",
    "GloveReading",
    "LAYOUTS",
    "PedalReading",
    "Reading",
    "SYNC",
    "Side",
    "crc16",
    "crc16_ccitt_false_reference",
    "decode_frame",
    "encode_frame",
    "encode_payload",
    "encode_raw_frame",
    "frame_size",
]
