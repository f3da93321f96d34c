"""Shared by the benchmark scripts: one line saying which CPU a figure was measured on.

The CPU differs between machines and sessions (AVX2-only one day, AVX512/VNNI/AMX the next), and
figures are only comparable on one; every script prints this beside its numbers.
"""

from __future__ import annotations

import os
import platform

# The instruction-set extensions that change how fast numpy, onnxruntime, torch and MuJoCo run.
_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")


def describe_machine() -> str:
    """``AMD EPYC 7B13, 2 CPUs, avx2, load average 0.31``: the CPU model, count, features and load now."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass  # not Linux: the platform's name only
    features = ", ".join(f for f in _FEATURES if f in flags) or "no AVX2"
    return f"{name}, {os.cpu_count()} CPUs, {features}, load average {os.getloadavg()[0]:.2f}"
