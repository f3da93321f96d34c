"""The recording thread: jobs run in order, a cancel drops the queued ones but not the cleanup, and ends it."""

from __future__ import annotations

import threading

import mujoco
import pytest

from roboreward.envs import rendering
from roboreward.envs.rendering import FrameRenderer, RenderOptions
from roboreward.teleop.recording_worker import RecordingWorker


def test_jobs_run_in_order_and_stop_finishes_them():
    worker = RecordingWorker("test-worker")
    done: list[int] = []
    for i in range(5):
        worker.submit(lambda i=i: done.append(i))
    worker.stop()
    assert done == [0, 1, 2, 3, 4] and worker.join(0.0)


def test_cancel_lets_the_running_job_finish_drops_the_queue_runs_cleanups_and_ends_the_thread():
    worker = RecordingWorker("test-worker")
    started, release = threading.Event(), threading.Event()
    done: list[str] = []

    def slow() -> None:
        started.set()
        release.wait(10)
        done.append("running")

    worker.submit(slow)
    assert started.wait(10)
    for _ in range(3):
        worker.submit(lambda: done.append("queued"))
    worker.submit(lambda: done.append("cleanup"), cleanup=True)
    worker.cancel()
    assert not worker.join(0.2)  # the job under way is not cut short
    release.set()
    assert worker.join(10), "a cancelled worker must end once its running job is done"
    assert done == ["running", "cleanup"]


def test_an_error_stops_the_work_and_is_raised_in_the_caller():
    worker = RecordingWorker("test-worker")
    worker.submit(lambda: 1 / 0)
    with pytest.raises(RuntimeError, match="recording failed: ZeroDivisionError"):
        worker.flush()
    ran: list[str] = []
    worker.submit(lambda: ran.append("cleanup"), cleanup=True)
    worker.stop()
    assert ran == ["cleanup"]


def test_exit_closes_only_the_renderers_whose_thread_has_ended_or_is_this_one():
    """At interpreter exit a daemon thread may be inside a frame: its GL context is left to it."""
    model = mujoco.MjModel.from_xml_string(
        "<mujoco><worldbody><light pos='0 0 2'/><geom type='sphere' size='0.1'/></worldbody></mujoco>")
    data = mujoco.MjData(model)
    made, finish = threading.Event(), threading.Event()
    box: list[FrameRenderer] = []

    def render_in_a_thread() -> None:
        box.append(FrameRenderer(model, RenderOptions(width=16, height=16)))
        box[0].render(data)
        made.set()
        finish.wait(10)
        box[0].close()

    thread = threading.Thread(target=render_in_a_thread, daemon=True)
    thread.start()
    assert made.wait(30)
    mine = FrameRenderer(model, RenderOptions(width=16, height=16))
    try:
        rendering._close_live_renderers()
        assert box[0]._renderer is not None, "a live thread's renderer was closed under it"
        with pytest.raises(RuntimeError, match="closed"):
            mine.render(data)
    finally:
        finish.set()
        thread.join(10)
        mine.close()
