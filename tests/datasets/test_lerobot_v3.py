import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from roboreward.datasets.lerobot_v3 import DatasetError, DatasetReader, DatasetWriter

CAMERAS = ["front", "top"]
SPEC = {"fps": 10, "cameras": CAMERAS, "image_size": (32, 32), "state_names": ["a", "b", "c"],
        "action_names": ["u", "v"], "robot_type": "test_bot"}
REPO = Path(__file__).resolve().parents[2]


def image(episode: int, t: int, camera: str) -> np.ndarray:
    """Smooth, moving content (what a codec meets in sim frames), different per camera and step."""
    y, x = np.mgrid[0:32, 0:32]
    shift = 5 * t + 17 * episode + (40 if camera == "top" else 0)
    frame = np.stack([(x * 6 + shift) % 200 + 20, (y * 6) % 200 + 20, np.full_like(x, (30 * episode + 60) % 220)], -1)
    frame[8:16, 4 + t : 12 + t] = 235  # a block that moves
    return frame.astype(np.uint8)


def add_episode(writer: DatasetWriter, episode: int, length: int) -> None:
    for t in range(length):
        writer.add_frame(
            state=[episode, t, 100 * episode + t], action=[t, -episode],
            images={c: image(episode, t, c) for c in CAMERAS}, reward=t / 10, success=t >= length - 2,
            done=t == length - 1,
        )


def check_episode(reader: DatasetReader, episode: int, length: int, frames: bool = True) -> None:
    ep = reader.episode(episode)
    t = np.arange(length)
    assert len(ep) == length and ep.index == episode
    np.testing.assert_array_equal(ep.state, np.stack([np.full(length, episode), t, 100 * episode + t], 1))
    np.testing.assert_array_equal(ep.action, np.stack([t, np.full(length, -episode)], 1))
    np.testing.assert_allclose(ep.reward, t / 10, rtol=1e-6)
    np.testing.assert_array_equal(ep.step_success, t >= length - 2)
    np.testing.assert_array_equal(ep.done, t == length - 1)
    np.testing.assert_allclose(ep.timestamp, t / 10, rtol=1e-6)
    if frames:
        for camera in CAMERAS:
            decoded = reader.frames(episode, camera)
            written = np.stack([image(episode, k, camera) for k in range(length)])
            assert decoded.shape == written.shape and decoded.dtype == np.uint8
            # H.264 in yuv420p is lossy (colour is kept at half resolution): close on average, and
            # each decoded frame is nearest to the frame written at its own step, not a neighbour.
            error = np.abs(decoded.astype(int) - written).mean(axis=(1, 2, 3))
            assert error.max() < 6, (camera, error)
            for k in range(1, length):
                assert error[k] < np.abs(decoded[k].astype(int) - written[k - 1]).mean()


def check_files_match_metadata(root: Path, episodes: int) -> None:
    """What LeRobot globs (data/*/*.parquet) and what a dataset holds are exactly the committed episodes."""
    data = sorted(p.name for p in (root / "data").glob("*/*.parquet"))
    assert data == [f"file-{i:03d}.parquet" for i in range(episodes)]
    for camera in CAMERAS:
        videos = sorted(p.name for p in (root / f"videos/observation.images.{camera}").glob("*/*.mp4"))
        assert videos == [f"file-{i:03d}.mp4" for i in range(episodes)]
    assert not list(root.rglob("*.tmp")) and not (root / ".staging").exists()
    rows = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [row["episode_index"] for row in rows] == list(range(episodes))


# ------------------------------------------------------------------------------------------ layout
def test_layout_metadata_data_and_videos(tmp_path):
    root = tmp_path / "ds"
    lengths = [5, 8, 6]
    with DatasetWriter.create(root, **SPEC) as writer:
        for episode, length in enumerate(lengths):
            add_episode(writer, episode, length)
            assert writer.save_episode(task="stack the blocks" if episode != 1 else "wave") == episode
    total = sum(lengths)

    for path in ["meta/info.json", "meta/stats.json", "meta/tasks.parquet", "meta/episodes/chunk-000/file-000.parquet"]:
        assert (root / path).is_file(), path
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["robot_type"] == "test_bot" and info["fps"] == 10
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, total, 2)
    assert info["splits"] == {"train": "0:3"} and info["chunks_size"] == 1000
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    features = info["features"]
    assert features["observation.state"] == {"dtype": "float32", "shape": [3], "names": ["a", "b", "c"]}
    assert features["action"] == {"dtype": "float32", "shape": [2], "names": ["u", "v"]}
    assert features["next.success"]["dtype"] == "bool" and features["next.reward"]["dtype"] == "float32"
    for key in ["timestamp", "frame_index", "episode_index", "index", "task_index", "next.done"]:
        assert features[key]["shape"] == [1]
    for camera in CAMERAS:
        video = features[f"observation.images.{camera}"]
        assert video["dtype"] == "video" and video["shape"] == [32, 32, 3]
        assert video["names"] == ["height", "width", "channels"]
        assert video["info"]["video.codec"] == "h264" and video["info"]["video.pix_fmt"] == "yuv420p"
        assert video["info"]["video.fps"] == 10 and video["info"]["has_audio"] is False

    start = 0
    for episode, length in enumerate(lengths):
        table = pq.read_table(root / f"data/chunk-000/file-{episode:03d}.parquet")
        assert table.num_rows == length
        schema = table.schema
        assert schema.field("observation.state").type == pa.list_(pa.float32(), 3)
        assert schema.field("action").type == pa.list_(pa.float32(), 2)
        assert schema.field("next.success").type == pa.bool_() and schema.field("timestamp").type == pa.float32()
        assert schema.field("index").type == pa.int64() and schema.field("task_index").type == pa.int64()
        assert table.column("index").to_pylist() == list(range(start, start + length))
        assert set(table.column("episode_index").to_pylist()) == {episode}
        assert set(table.column("task_index").to_pylist()) == {1 if episode == 1 else 0}
        for camera in CAMERAS:
            video = root / f"videos/observation.images.{camera}/chunk-000/file-{episode:03d}.mp4"
            assert imageio_ffmpeg.count_frames_and_secs(str(video))[0] == length
        start += length

    rows = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    start = 0
    for episode, (row, length) in enumerate(zip(rows, lengths, strict=True)):
        assert row["episode_index"] == episode and row["length"] == length and row["success"] is True
        assert (row["dataset_from_index"], row["dataset_to_index"]) == (start, start + length)
        assert (row["data/chunk_index"], row["data/file_index"]) == (0, episode)
        assert (row["meta/episodes/chunk_index"], row["meta/episodes/file_index"]) == (0, 0)
        assert row["tasks"] == ["wave" if episode == 1 else "stack the blocks"]
        for camera in CAMERAS:
            key = f"videos/observation.images.{camera}"
            assert (row[f"{key}/chunk_index"], row[f"{key}/file_index"]) == (0, episode)
            assert row[f"{key}/from_timestamp"] == 0.0 and row[f"{key}/to_timestamp"] == pytest.approx(length / 10)
        assert row["stats/observation.state/count"] == [length]
        assert np.array(row["stats/observation.images.front/mean"]).shape == (3, 1, 1)
        start += length

    tasks = pd.read_parquet(root / "meta/tasks.parquet")
    assert list(tasks.index) == ["stack the blocks", "wave"] and tasks["task_index"].tolist() == [0, 1]
    stats = json.loads((root / "meta/stats.json").read_text())
    assert stats["observation.state"]["count"] == [total] and stats["index"]["max"] == [total - 1]
    assert stats["observation.state"]["max"] == [2, 7, 200 + 5]
    all_index = np.arange(total)
    assert stats["index"]["mean"][0] == pytest.approx(all_index.mean())
    assert stats["index"]["std"][0] == pytest.approx(all_index.std())
    image_mean = np.array(stats["observation.images.top"]["mean"])
    assert image_mean.shape == (3, 1, 1) and 0 < image_mean.min() and image_mean.max() < 1

    reader = DatasetReader(root)
    assert len(reader) == 3 and reader.cameras == CAMERAS and reader.fps == 10
    assert reader.tasks == ["stack the blocks", "wave"]
    assert [(e.length, e.task, e.success) for e in reader.episodes] == [
        (5, "stack the blocks", True), (8, "wave", True), (6, "stack the blocks", True)]
    for episode, length in enumerate(lengths):
        check_episode(reader, episode, length)
    assert reader.frames(1, "observation.images.top").shape == (8, 32, 32, 3)  # the feature key works too
    check_files_match_metadata(root, 3)


def test_reopen_appends_and_success_can_be_given(tmp_path):
    root = tmp_path / "ds"
    writer = DatasetWriter.create(root, **SPEC)
    add_episode(writer, 0, 4)
    writer.save_episode(task="stack the blocks")
    writer.finalize()

    writer = DatasetWriter.open(root)
    assert (writer.num_episodes, writer.num_frames, writer.tasks) == (1, 4, ["stack the blocks"])
    add_episode(writer, 1, 3)
    writer.save_episode(task="wave", success=False)
    add_episode(writer, 2, 5)
    writer.clear_episode()  # dropped: episode 2 is recorded again below
    add_episode(writer, 2, 2)
    writer.save_episode(task="stack the blocks")
    writer.finalize()
    writer.finalize()  # twice is fine

    reader = DatasetReader(root)
    episodes = [(e.index, e.length, e.success, e.from_index) for e in reader.episodes]
    assert episodes == [(0, 4, True, 0), (1, 3, False, 4), (2, 2, True, 7)]
    for episode, length in enumerate([4, 3, 2]):
        check_episode(reader, episode, length, frames=episode == 2)
    assert reader.info["total_frames"] == 9 and reader.stats["observation.state"]["count"].tolist() == [9]
    check_files_match_metadata(root, 3)


def test_exception_mid_episode_keeps_finished_episodes(tmp_path):
    root = tmp_path / "ds"
    with pytest.raises(RuntimeError, match="robot fell over"), DatasetWriter.create(root, **SPEC) as writer:
        add_episode(writer, 0, 3)
        writer.save_episode(task="stack the blocks")
        add_episode(writer, 1, 2)
        raise RuntimeError("robot fell over")
    assert len(DatasetReader(root)) == 1 and not (root / ".staging").exists()
    DatasetWriter.open(root).finalize()  # the lock was released


def test_bad_input_gets_clear_errors(tmp_path):
    root = tmp_path / "ds"
    writer = DatasetWriter.create(root, **SPEC)
    good = {c: image(0, 0, c) for c in CAMERAS}
    frame = {"state": [0, 0, 0], "action": [0, 0], "images": good}
    with pytest.raises(DatasetError, match=r"state has shape \(4,\), but this dataset's state has shape \(3,\)"):
        writer.add_frame(**{**frame, "state": [0, 0, 0, 0]})
    with pytest.raises(DatasetError, match=r"action has shape \(2, 1\)"):
        writer.add_frame(**{**frame, "action": [[0], [0]]})
    with pytest.raises(DatasetError, match="state contains NaN or inf at entries \\[1\\]"):
        writer.add_frame(**{**frame, "state": [0, np.nan, 0]})
    with pytest.raises(DatasetError, match=r"camera 'side' is not in this dataset; its cameras are \['front', 'top'\]"):
        writer.add_frame(**{**frame, "images": {**good, "side": good["top"]}})
    with pytest.raises(DatasetError, match=r"images lacks camera\(s\) \['top'\]"):
        writer.add_frame(**{**frame, "images": {"front": good["front"]}})
    with pytest.raises(DatasetError, match=r"shape \(32, 30, 3\); this dataset's frames are .* \(32, 32, 3\)"):
        writer.add_frame(**{**frame, "images": {**good, "top": good["top"][:, :30]}})
    with pytest.raises(DatasetError, match="is float64; pass uint8 RGB"):
        writer.add_frame(**{**frame, "images": {**good, "top": good["top"] / 255.0}})
    with pytest.raises(DatasetError, match="save_episode\\(\\) has no frames to save"):
        writer.save_episode(task="x")  # the rejected frames above added nothing
    writer.add_frame(**frame)
    with pytest.raises(DatasetError, match="task='' must be a non-empty sentence"):
        writer.save_episode(task="")
    with pytest.raises(DatasetError, match="another DatasetWriter has .* open"):
        DatasetWriter.open(root)
    with pytest.raises(DatasetError, match="an episode of 1 frames is not saved"):
        writer.finalize()
    writer.save_episode(task="ok")
    writer.finalize()
    with pytest.raises(DatasetError, match="is finalized; open it again"):
        writer.add_frame(**frame)

    with pytest.raises(DatasetError, match="already holds a dataset; open it with DatasetWriter.open"):
        DatasetWriter.create(root, **SPEC)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("x")
    with pytest.raises(DatasetError, match="exists and is not empty; choose a new"):
        DatasetWriter.create(other, **SPEC)
    with pytest.raises(DatasetError, match="is not a LeRobot dataset: it has no meta/info.json"):
        DatasetWriter.open(other)
    with pytest.raises(DatasetError, match="does not exist"):
        DatasetReader(tmp_path / "missing")
    with pytest.raises(DatasetError, match=r"needs an even height and width; use e.g. \(32, 34\)"):
        DatasetWriter.create(tmp_path / "odd", **{**SPEC, "image_size": (32, 33)})
    with pytest.raises(DatasetError, match="must be letters, digits"):
        DatasetWriter.create(tmp_path / "cam", **{**SPEC, "cameras": ["a/b"]})
    with pytest.raises(DatasetError, match="recorded differently \\(cameras \\['front'\\] != \\['front', 'top'\\]\\)"):
        DatasetWriter.open_or_create(root, **{**SPEC, "cameras": ["front"]})
    info = json.loads((root / "meta/info.json").read_text())
    (root / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(DatasetError, match="codebase_version 'v2.1'; roboreward reads and writes 'v3.0' only"):
        DatasetReader(root)
    reader_root = tmp_path / "ds2"
    with DatasetWriter.create(reader_root, **SPEC) as w:
        add_episode(w, 0, 2)
        w.save_episode(task="ok")
    reader = DatasetReader(reader_root)
    with pytest.raises(DatasetError, match=r"episode 5 is not in .*; it has episodes 0..0"):
        reader.episode(5)
    with pytest.raises(DatasetError, match="camera 'side' is not in this dataset"):
        reader.frames(0, "side")


# ------------------------------------------------------------------------------------------ kills
# A writer in a child process, killed from outside (slow mode) or by itself right before or after
# the k-th os.replace of a save (the commit steps: video, video, data, tasks, episodes, stats,
# info.json).
CHILD = r"""
import importlib.util, os, signal, sys, time
spec = importlib.util.spec_from_file_location("helpers", sys.argv[1])  # this test file, for its helpers
helpers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(helpers)
from roboreward.datasets.lerobot_v3 import DatasetWriter
SPEC, CAMERAS, image, add_episode = helpers.SPEC, helpers.CAMERAS, helpers.image, helpers.add_episode

root, mode = sys.argv[2], sys.argv[3]
writer = DatasetWriter.open_or_create(root, **SPEC)
if mode == "slow":
    episode = writer.num_episodes
    while True:
        for t in range(6):
            writer.add_frame(state=[episode, t, 100 * episode + t], action=[t, -episode],
                             images={c: image(episode, t, c) for c in CAMERAS}, reward=t / 10,
                             success=t >= 4, done=t == 5)
            print(f"frame {episode} {t}", flush=True)
            time.sleep(0.02)
        writer.save_episode(task="stack the blocks")
        print(f"saved {episode}", flush=True)
        episode += 1
else:  # "S-before-K" / "S-after-K": kill around the K-th os.replace of save number S (1 or 2)
    save, when, k = mode.split("-")
    real_replace, calls = os.replace, [0]
    def replace(src, dst):
        calls[0] += 1
        if calls[0] == int(k) and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst)
        if calls[0] == int(k) and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
    for episode, (length, task) in enumerate([(4, "stack the blocks"), (3, "wave")]):
        add_episode(writer, episode, length)
        if episode + 1 == int(save):
            os.replace = replace
        writer.save_episode(task=task)
    print("not killed", flush=True)
"""


def start_child(root: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, __file__, str(root), mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)


def test_sigkill_mid_episode_keeps_finished_episodes_and_resumes(tmp_path):
    root = tmp_path / "ds"
    child = start_child(root, "slow")
    deadline = time.monotonic() + 60
    try:
        saved = -1
        while True:  # kill during episode 2, a few frames in (its videos are half-written in .staging)
            line = child.stdout.readline()
            assert line, f"writer exited early: {child.stderr.read()}"
            assert time.monotonic() < deadline, "writer too slow"
            if line.startswith("saved"):
                saved = int(line.split()[1])
            if saved >= 1 and line.startswith("frame") and int(line.split()[2]) >= 3:
                break
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert list((root / ".staging").iterdir()), "the unfinished episode should have left staging files"

    reader = DatasetReader(root)  # reads without repairing: exactly the finished episodes
    assert len(reader) == saved + 1 == 2
    for episode in range(2):
        check_episode(reader, episode, 6, frames=episode == 1)

    with DatasetWriter.open(root) as writer:  # repairs, then appends
        assert writer.num_episodes == 2 and not (root / ".staging").exists()
        add_episode(writer, 2, 4)
        writer.save_episode(task="stack the blocks")
    reader = DatasetReader(root)
    assert [e.length for e in reader.episodes] == [6, 6, 4] and reader.num_frames == 16
    check_episode(reader, 2, 4)
    check_files_match_metadata(root, 3)


def test_sigkill_at_every_commit_step(tmp_path):
    # The second save's 7 renames; and the first save, which also creates tasks and the episodes file.
    modes = [f"2-before-{k}" for k in range(1, 8)] + ["2-after-7", "1-before-5", "1-after-7"]
    children = {mode: start_child(tmp_path / mode, mode) for mode in modes}
    for mode, child in children.items():
        out, err = child.communicate(timeout=120)
        assert child.returncode == -signal.SIGKILL, (mode, out, err)

    for mode in modes:
        root = tmp_path / mode
        save, when, k = mode.split("-")
        committed = int(save) - (0 if (when, k) == ("after", "7") else 1)  # info.json is the commit record
        tasks = ["stack the blocks", "wave"][:committed]
        reader = DatasetReader(root)
        assert len(reader) == committed and reader.tasks == tasks, mode
        if committed:
            check_episode(reader, committed - 1, [4, 3][committed - 1], frames=False)

        with DatasetWriter.open(root) as writer:
            assert writer.num_episodes == committed and writer.tasks == tasks, mode
            add_episode(writer, committed, 2)
            writer.save_episode(task="wave")
        reader = DatasetReader(root)
        lengths = [4, 3][:committed] + [2]
        tasks = tasks if "wave" in tasks else tasks + ["wave"]
        assert [e.length for e in reader.episodes] == lengths and reader.tasks == tasks, mode
        assert reader.info["total_tasks"] == len(tasks), mode
        assert reader.stats["index"]["count"].tolist() == [sum(lengths)], mode
        check_episode(reader, committed, 2)
        check_files_match_metadata(root, committed + 1)


# ------------------------------------------------------------------------------------------ recording
def test_record_scripted_demos_on_reach(tmp_path):
    from roboreward.datasets.record import STATE_NAMES, record_scripted_demos

    summary = record_scripted_demos("reach", tmp_path / "reach", episodes=2, cameras=["corner3", "topview"],
                                    width=32, height=32, seed=0, max_steps=60, progress=False)
    assert summary.episodes == [0, 1] and summary.successes == 2 and summary.frames == 120
    reader = DatasetReader(tmp_path / "reach")
    assert reader.fps == 80 and reader.robot_type == "sawyer" and reader.cameras == ["corner3", "topview"]
    assert reader.features["observation.state"]["names"] == STATE_NAMES and len(STATE_NAMES) == 39
    for info in reader.episodes:
        assert info.length == 60 and info.success and info.task == "reach the red goal with the gripper"
        ep = reader.episode(info.index)
        assert ep.state.shape == (60, 39) and ep.action.shape == (60, 4) and np.abs(ep.action).max() <= 1
        assert ep.step_success.any() and ep.done.tolist() == [False] * 59 + [True]
        assert 0 <= ep.reward.min() and ep.reward.max() <= 10
        frames = reader.frames(info.index, "topview")
        assert frames.shape == (60, 32, 32, 3) and frames.std() > 5  # a rendered scene, not a blank
    # The episodes are different rollouts (seed + episode index): different goals.
    assert not np.allclose(reader.episode(0).state[0, -3:], reader.episode(1).state[0, -3:])


def test_record_the_crowd_expert_state_and_topdown_frames(tmp_path):
    """ORCA as the robot in the crowd env, recorded: the flattened observation, the action, the top-down view."""
    from roboreward.datasets.record import record_scripted_demos
    from roboreward.envs.crowd.env import CrowdNavEnv

    kwargs = {"scenario": {"name": "circle_crossing", "n_humans": 4}, "sensing": {"lidar_rays": 0}}
    summary = record_scripted_demos("crowd", tmp_path / "crowd", episodes=2, width=32, height=32, seed=5,
                                    env_kwargs=kwargs, progress=False)
    reader = DatasetReader(tmp_path / "crowd")
    assert reader.cameras == ["topdown"] and reader.robot_type == "holonomic_base" and reader.fps == 4
    names = reader.features["observation.state"]["names"]
    assert names[:2] == ["human0_x", "human0_y"] and names[-8:-6] == ["goal_x", "goal_y"] and len(names) == 8 + 4 * 5 + 4
    env = CrowdNavEnv(**kwargs)
    obs, _ = env.reset(seed=5)  # episode 0 of the dataset: seed + 0
    ep = reader.episode(0)
    np.testing.assert_allclose(ep.state[0], env.demo_state(obs), atol=1e-6)
    np.testing.assert_allclose(ep.action[0], env.scripted_action(obs), atol=1e-6)
    assert ep.done[-1] and summary.frames == sum(info.length for info in reader.episodes)
    assert reader.frames(0, "topdown").shape == (ep.state.shape[0], 32, 32, 3)


def test_a_dataset_names_the_env_it_was_recorded_in_and_takes_no_episodes_from_another(tmp_path):
    from roboreward.datasets.record import record_scripted_demos, recorded_env

    kwargs = {"scenario": {"name": "circle_crossing", "n_humans": 2}, "sensing": {"lidar_rays": 0}}
    out = tmp_path / "crowd"
    record_scripted_demos("crowd", out, episodes=1, width=32, height=32, env_kwargs=kwargs, progress=False)
    assert recorded_env(out) == {"env_id": "roboreward/CrowdNav-v0", "kwargs": kwargs}
    record_scripted_demos("crowd", out, episodes=1, width=32, height=32, env_kwargs=kwargs, progress=False)
    other = {**kwargs, "humans": {"react_to_robot": 0.0}}  # the same layout, other people
    with pytest.raises(DatasetError, match=r"holds demos recorded in roboreward/CrowdNav-v0 with \{'scenario'.*; these "
                                           r"would be .*'react_to_robot': 0.0.*Record into a new folder \(--out\)"):
        record_scripted_demos("crowd", out, episodes=1, width=32, height=32, env_kwargs=other, progress=False)
    assert len(DatasetReader(out)) == 2  # the refused recording added nothing and left the dataset readable
    record_scripted_demos("crowd", out, episodes=1, width=32, height=32, env_kwargs=kwargs, progress=False)
    assert len(DatasetReader(out)) == 3  # and released it

    (out / "meta" / "recorded_env.json").write_text("{not json")
    with pytest.raises(DatasetError, match="recorded_env.json is not readable JSON"):
        recorded_env(out)


def test_cli_records_demos(tmp_path):
    out = tmp_path / "demos"
    command = [sys.executable, "-m", "roboreward.cli", "demos", "record", "reach", "--episodes", "1",
               "--cameras", "corner3", "--size", "32", "--max-steps", "12", "--out", str(out)]
    result = subprocess.run(command, check=False, capture_output=True, text=True, cwd=REPO, timeout=120,
                            env={**os.environ, "MUJOCO_GL": "egl"})
    assert result.returncode == 0, result.stderr
    assert "recorded 1 episodes of roboreward/MetaWorld-Reach-v3" in result.stdout
    reader = DatasetReader(out)
    assert len(reader) == 1 and reader.episodes[0].length == 12 and reader.cameras == ["corner3"]

    from roboreward.cli import main

    assert main(["demos", "record", "nope", "--out", str(tmp_path / "x")]) == 2
    assert main(["demos", "record", "reach", "--cameras", "topview", "--size", "32", "--out", str(out)]) == 2


def test_cli_task_names_match_the_registered_tasks():
    from roboreward.datasets.cli import TASK_NAMES
    from roboreward.datasets.record import TASK_TEXT, metaworld_tasks, resolve_env_id

    assert sorted(TASK_NAMES) == sorted(metaworld_tasks())
    assert set(TASK_TEXT) == {f"{name}-v3" for name in TASK_NAMES}
    door = "roboreward/MetaWorld-DoorOpen-v3"
    assert resolve_env_id("door-open") == resolve_env_id("door-open-v3") == resolve_env_id(door) == door


def test_video_encoder_runs_ffmpeg_in_its_own_session_and_reports_its_failure(tmp_path):
    from roboreward.datasets.lerobot_v3 import VideoEncoder

    frame = np.full((16, 32, 3), 200, dtype=np.uint8)
    encoder = VideoEncoder(tmp_path / "ok.mp4", 32, 16, 10)
    # A Ctrl-C in the terminal goes to the foreground process group: ffmpeg is not in it.
    assert os.getsid(encoder._proc.pid) != os.getsid(0)
    for _ in range(5):
        encoder.write(frame)
    encoder.close()
    frames = list(imageio_ffmpeg.read_frames(str(tmp_path / "ok.mp4")))
    assert len(frames) == 1 + 5  # read_frames yields its metadata first

    broken = VideoEncoder(tmp_path / "clip.notavideoformat", 32, 16, 10)  # ffmpeg cannot pick a muxer
    with pytest.raises(DatasetError, match="ffmpeg .*Unable to choose an output format"):
        for _ in range(50):
            broken.write(frame)
        broken.close()
