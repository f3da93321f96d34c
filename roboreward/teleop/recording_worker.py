"""The thread that renders, encodes and saves a session's recording, and how far it has got.

Recording renders camera frames, which on a CPU takes tens to hundreds of milliseconds a frame, and
encodes video; none of that may delay the command path or the simulation. So the session's main
thread only *submits* jobs (a frame to render and add, a save) to one :class:`RecordingWorker`
thread, which runs them in order; the recorder and the simulation's frame renderers live in it.

A CPU may render slower than the recorded fps, so the operator can end an episode whose frames are
still waiting. :class:`SaveProgress` keeps the account the status line shows: frames handed over,
frames done, and each ended episode (:class:`PendingSave`) with its frames, so that a save reads
``saving episode 3: 45/150 frames rendered, 7.1 frames/s, 15 s left``.
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from roboreward.errors import RoborewardError
from roboreward.teleop.console import format_duration


class RecordingWorker:
    """One thread that runs submitted functions in order: the recorder and the frame renderers live in it.

    The main loop only submits (never waits), so rendering, video encoding and saving never delay
    the simulation or the status of the devices. An exception stops the work and is re-raised by
    :meth:`check` in the main thread; :meth:`cancel` stops it on purpose. Either way the jobs still
    queued are dropped, except cleanup jobs (releasing what the thread made, e.g. GL contexts).
    """

    def __init__(self, name: str, nice: int = 0) -> None:
        self._queue: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self.cancelled = False
        self.nice = nice
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], Any], *, cleanup: bool = False) -> None:
        """Queue ``fn``; a ``cleanup`` job runs even after a failure or :meth:`cancel`."""
        if not cleanup:
            self.check()
        self._queue.put((fn, cleanup))

    def cancel(self) -> None:
        """Drop the jobs still queued (but cleanup jobs) and end the thread; the job running now finishes.

        Cleanup jobs submitted before this call still run, so submit them first.
        """
        self.cancelled = True
        self._queue.put(None)

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the thread to end (after :meth:`stop`); True if it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` in the worker after everything submitted before it; wait for and return its result."""
        box: list[Any] = []
        self.submit(lambda: box.append(fn()))
        self.flush()
        return box[0]

    def flush(self) -> None:
        self._queue.join()
        self.check()

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    def check(self) -> None:
        if isinstance(self.error, RoborewardError):  # it names the problem (a dataset, a disk) and the fix
            raise self.error
        if self.error is not None:
            raise RuntimeError(f"recording failed: {self.error!r}") from self.error

    def stop(self, on_wait: Callable[[], Any] | None = None, every_s: float = 0.25) -> None:
        """Finish everything submitted, then end the thread; ``on_wait()`` runs every ``every_s`` meanwhile."""
        self._queue.put(None)
        while not self.join(every_s):
            if on_wait is not None:
                on_wait()

    def _run(self) -> None:
        if self.nice:
            # Linux: nice is per thread, and threads (llvmpipe's rasterisers) and processes (ffmpeg)
            # started from here inherit it, so rendering yields the CPU to the devices' readers.
            with contextlib.suppress(OSError, AttributeError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                fn, cleanup = item
                if cleanup or (self.error is None and not self.cancelled):  # else drain without running
                    fn()
            except BaseException as e:  # noqa: BLE001 - re-raised in the main thread by check()
                if self.error is None:
                    self.error = e
            finally:
                self._queue.task_done()


@dataclass(frozen=True)
class PendingSave:
    """An episode the operator ended whose frames the worker has not all rendered and saved yet.

    ``first`` and ``last`` count frames handed to the worker (:attr:`SaveProgress.submitted`): the
    episode's frames are numbers ``first .. last - 1``, and the worker takes frames in order.
    """

    index: int
    first: int
    last: int

    @property
    def frames(self) -> int:
        return self.last - self.first


# Samples of the worker's progress older than this do not count towards its current rate.
_RATE_WINDOW_S = 5.0


class SaveProgress:
    """Frames handed to the worker, frames it has finished, and the saves waiting on them.

    The main thread counts the frames it submits (:meth:`frame_submitted`) and ends episodes
    (:meth:`episode_ended`); the worker counts the frames it has rendered and added
    (:meth:`frame_done`) and the saves it has finished (:meth:`save_done`). Each counter has one
    writer, so no lock is needed.
    """

    def __init__(self) -> None:
        self.submitted = 0
        self.done = 0
        self._saves: collections.deque[PendingSave] = collections.deque()  # oldest first
        self._samples: collections.deque[tuple[float, int]] = collections.deque()  # (time, done)

    # -- counting ----------------------------------------------------------------------------

    def frame_submitted(self) -> None:
        self.submitted += 1

    def frame_done(self) -> None:
        """(worker thread) A frame is rendered and added."""
        self.done += 1

    def episode_ended(self, index: int, first: int) -> PendingSave | None:
        """Episode ``index``, whose first frame was submitted frame number ``first``, is to be saved.

        Returns its pending save, or None when it has no frames (nothing will be saved).
        """
        if self.submitted <= first:
            return None
        pending = PendingSave(index, first, self.submitted)
        self._saves.append(pending)
        return pending

    def save_done(self) -> None:
        """(worker thread) The oldest pending save is finished (written, or failed)."""
        self._saves.popleft()

    @property
    def pending(self) -> list[PendingSave]:
        """The saves not finished yet, oldest first."""
        return list(self._saves)

    @property
    def behind(self) -> int:
        """Frames submitted that the worker has not finished."""
        return self.submitted - self.done

    # -- the rate ----------------------------------------------------------------------------

    def sample(self, now: float) -> None:
        """Note how many frames the worker has finished, at most every 0.25 s, for its rate."""
        samples = self._samples
        if samples and now - samples[-1][0] < 0.25:
            return
        samples.append((now, self.done))
        while len(samples) > 2 and now - samples[1][0] >= _RATE_WINDOW_S:
            samples.popleft()

    def rate(self) -> float | None:
        """Frames the worker finished per second over the last few seconds; None until it can tell."""
        samples = self._samples
        if len(samples) < 2:
            return None
        (t0, n0), (t1, n1) = samples[0], samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 - t0 >= 0.5 else None

    # -- in words ----------------------------------------------------------------------------

    def state(self, save: PendingSave) -> str:
        """How far ``save`` is: frames rendered of its total, the rate and the time left, or writing its files."""
        done = min(max(self.done - save.first, 0), save.frames)
        if done >= save.frames:
            return f"{save.frames} frames rendered, writing its files"
        rate = self.rate()
        timing = ""
        if rate is not None:
            left = (save.frames - done) / rate if rate > 0 else math.inf
            timing = f", {rate:.1f} frames/s, {format_duration(left)} left"
        return f"{done}/{save.frames} frames rendered{timing}"

    def describe(self) -> str | None:
        """The oldest unfinished save, in words: ``saving episode 3: 45/150 frames rendered, 7.1 frames/s, 15 s
        left``; None if there is none."""
        saves = self.pending
        if not saves:
            return None
        more = f" (then {len(saves) - 1} more)" if len(saves) > 1 else ""
        return f"saving episode {saves[0].index}: {self.state(saves[0])}{more}"


__all__ = ["PendingSave", "RecordingWorker", "SaveProgress"]
