"""Real-time settings of a control process on Linux: SCHED_FIFO priority and tight timer slack.

At 500 Hz a loop has 2 ms a period. At normal priority any other process can hold a CPU when the loop's timer
fires, and Linux lets a sleep end up to 50 us late by default (its timer slack); a robot computer runs its
control processes with SCHED_FIFO for the first and asks for ~1 us slack for the second. Both are
best-effort here: where the kernel refuses (no CAP_SYS_NICE, not Linux), the caller gets the reason, says so
and runs on at normal priority - the robot must still be driven, only with more jitter.
"""

from __future__ import annotations

import ctypes
import os

PR_SET_TIMERSLACK = 29  # prctl option (linux/prctl.h)


def tight_timer_slack(nanoseconds: int = 1000) -> None:
    """Let the calling thread's sleeps end within ~``nanoseconds`` of their deadline (Linux's default slack is
    50 us, a fortieth of a 500 Hz period); a no-op where ``prctl`` is not available."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_TIMERSLACK, ctypes.c_ulong(nanoseconds), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def set_fifo_priority(priority: int, thread_id: int = 0) -> str | None:
    """SCHED_FIFO at ``priority`` (1-99) for one thread (0: the calling one). Returns why not, or None."""
    try:
        os.sched_setscheduler(thread_id, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError) as e:
        return f"real-time priority refused ({e}); running at normal priority"
    return None


def set_fifo_priority_for_process(priority: int) -> str | None:
    """SCHED_FIFO for every thread of this process that exists now, e.g. DDS's receive threads, which hand each
    message to the node and otherwise wait behind every other process. Threads started later inherit it from
    the thread that starts them (see :func:`set_normal_priority`). Returns why not (the first refusal), or None."""
    try:
        threads = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        threads = [0]
    refusals = [r for r in (set_fifo_priority(priority, tid) for tid in threads) if r is not None]
    return refusals[0] if refusals else None


def set_normal_priority() -> None:
    """Back to the normal scheduler for the calling thread, e.g. a worker started by a SCHED_FIFO thread that
    must not compete with it (lowering needs no privilege); a no-op where the call is not available."""
    try:
        if os.sched_getscheduler(0) != os.SCHED_OTHER:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (OSError, AttributeError):
        pass
