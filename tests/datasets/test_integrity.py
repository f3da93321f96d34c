"""Dataset integrity: appends never delete what meta/ refers to, checksums catch changed files, every read error
names its file, and `roboreward demos verify` reports all of it. Real files, real ffmpeg, real pyarrow."""

import gc
import hashlib
import importlib.util
import json
import math
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from roboreward.datasets.lerobot_v3 import DatasetError, DatasetReader, DatasetWriter, verify_dataset
from roboreward.errors import WriteError

_spec = importlib.util.spec_from_file_location("lerobot_v3_helpers", Path(__file__).with_name("test_lerobot_v3.py"))
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)
SPEC, CAMERAS, REPO = helpers.SPEC, helpers.CAMERAS, helpers.REPO
add_episode, check_episode, start_child = helpers.add_episode, helpers.check_episode, helpers.start_child

LENGTHS = [4, 3, 5, 2]
TASKS = ["stack the blocks", "wave", "stack the blocks", "stack the blocks"]
META = "meta/episodes/chunk-000/file-000.parquet"


def data(episode: int) -> str:
    return f"data/chunk-000/file-{episode:03d}.parquet"


def video(episode: int, camera: str = "front") -> str:
    return f"videos/observation.images.{camera}/chunk-000/file-{episode:03d}.mp4"


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("template") / "ds"
    with DatasetWriter.create(root, **SPEC) as writer:
        for episode, (length, task) in enumerate(zip(LENGTHS, TASKS, strict=True)):
            add_episode(writer, episode, length)
            writer.save_episode(task=task)
    return root


@pytest.fixture
def ds(template, tmp_path) -> Path:
    """A fresh copy of a 4-episode, 2-camera dataset (14 frames, 2 tasks)."""
    root = tmp_path / "ds"
    shutil.copytree(template, root)
    return root


def snapshot(root: Path) -> dict[str, str]:
    """Every file under root -> sha256 of its bytes."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def edit_info(root: Path, **changes) -> None:
    path = root / "meta/info.json"
    info = json.loads(path.read_text())
    info.update(changes)
    path.write_text(json.dumps(info, indent=4))


def meta_rows(root: Path) -> list[dict]:
    return pq.read_table(root / META).to_pylist()


def write_meta_rows(root: Path, rows: list[dict]) -> None:
    pq.write_table(pa.Table.from_pylist(rows), root / META)


def drop_checksums(root: Path) -> None:
    """Make the dataset one whose episode rows carry no checksums (as a tool that does not record them writes)."""
    table = pq.read_table(root / META)
    pq.write_table(table.drop_columns([c for c in table.column_names if c.endswith("/sha256")]), root / META)


def demos(capsys, *args: str) -> tuple[int, list[str], str]:
    from roboreward.cli import main

    code = main(["demos", *args])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


# --------------------------------------------------------------------------------- appends never delete
@pytest.mark.parametrize("edit", ["total_episodes", "all_totals"])
def test_lowered_total_episodes_refuses_to_append_and_deletes_nothing(ds, edit):
    # What the issue found: total_episodes lowered from 4 to 2, and the next append deleted episodes 2 and 3.
    changes = {"total_episodes": 2} if edit == "total_episodes" else {"total_episodes": 2, "total_frames": 7}
    edit_info(ds, **changes)
    before = snapshot(ds)
    with pytest.raises(DatasetError) as caught:
        DatasetWriter.open_or_create(ds, **SPEC)  # what `demos record` and the teleop recorder call
    message = str(caught.value)
    assert "rows for episodes [2, 3] beyond the 2 that meta/info.json counts" in message
    assert data(2) in message and video(3, "top") in message and "Nothing was changed" in message
    assert "set total_episodes 4, total_frames 14 and total_tasks 2 in it" in message
    assert snapshot(ds) == before
    edit_info(ds, total_episodes=4, total_frames=14)  # the fix the message names (the refusal released the lock)
    with DatasetWriter.open(ds) as writer:
        assert writer.num_episodes == 4
        add_episode(writer, 4, 3)
        writer.save_episode(task="wave")
    reader = DatasetReader(ds)
    assert [e.length for e in reader.episodes] == LENGTHS + [3]
    for episode, length in enumerate(LENGTHS + [3]):
        check_episode(reader, episode, length, frames=episode in (2, 3, 4))


def test_demos_record_into_a_dataset_with_lowered_total_episodes_exits_2_and_keeps_every_file(ds, capsys):
    edit_info(ds, total_episodes=2, total_frames=7)
    before = snapshot(ds)
    code, _, err = demos(capsys, "record", "reach", "--episodes", "1", "--size", "32", "--max-steps", "5",
                         "--out", str(ds))
    assert code == 2
    assert "rows for episodes [2, 3] beyond the 2" in err and data(2) in err and "Nothing was changed" in err
    assert snapshot(ds) == before


def test_a_committed_save_is_never_undone_even_when_info_json_is_lowered_to_match_its_plan(tmp_path):
    # A kill right after the second save's commit leaves its plan (.staging/save.json, episode 1). Lowering the
    # totals so that episode 1 looks uncommitted must not make open() undo that save: info.json has changed
    # since the plan was written, so nobody can tell a kill from an edit.
    root = tmp_path / "ds"
    child = start_child(root, "2-after-7")
    out, err = child.communicate(timeout=120)
    assert child.returncode == -signal.SIGKILL, (out, err)
    plan = json.loads((root / ".staging/save.json").read_text())
    assert plan["episode_index"] == 1 and plan["total_tasks"] == 1 and data(1) in plan["files"]
    edit_info(root, total_episodes=1, total_frames=4, total_tasks=1, splits={"train": "0:1"})
    before = snapshot(root)
    with pytest.raises(DatasetError, match=r"rows for episodes \[1\] beyond the 1 .* no interrupted save made them"):
        DatasetWriter.open(root)
    assert snapshot(root) == before


def test_a_file_no_row_refers_to_is_refused_not_deleted(ds, capsys):
    shutil.copy(ds / data(0), ds / data(7))
    shutil.copy(ds / video(0), ds / video(7))
    with pytest.raises(DatasetError) as caught:
        DatasetWriter.open(ds)
    message = str(caught.value)
    assert f"{data(7)}, {video(7)} are in the dataset but no episode of meta/episodes/ refers to them" in message
    assert "Nothing was changed: move such files out" in message
    assert (ds / data(7)).is_file() and (ds / video(7)).is_file()
    code, out, _ = demos(capsys, "verify", str(ds))
    assert code == 2 and [line for line in out if line.startswith("problem:")] == [
        f"problem: {ds}: no episode refers to {data(7)}, {video(7)} (2 files; LeRobot would load them as part of "
        "the dataset); move them out, or restore the rows of meta/episodes/ that referred to them from a backup"
    ]


def test_more_tasks_than_info_counts_is_refused(ds):
    edit_info(ds, total_tasks=1)
    before = snapshot(ds)
    with pytest.raises(DatasetError, match=r"counts 1 tasks \(total_tasks\) but meta/tasks.parquet has 2, and no "
                                           "interrupted save explains it; nothing was changed"):
        DatasetWriter.open(ds)
    assert snapshot(ds) == before


def test_total_frames_that_do_not_add_up_are_refused(ds):
    edit_info(ds, total_frames=13)
    before = snapshot(ds)
    with pytest.raises(DatasetError, match=r"counts 13 frames \(total_frames\) but its 4 episodes hold 14; nothing "
                                           r"was changed. Set total_frames to 14"):
        DatasetWriter.open(ds)
    assert snapshot(ds) == before


def test_a_save_that_raised_half_way_is_undone_by_the_next_open(ds):
    # A real failure mid-save: the episodes file's temp name is taken by a folder, so writing it fails after the
    # episode's videos and data were renamed in.
    writer = DatasetWriter.open(ds)
    blocker = ds / (META + ".tmp")
    blocker.mkdir()
    add_episode(writer, 4, 3)
    with pytest.raises(WriteError, match="Is a directory"):
        writer.save_episode(task="a task first seen here")
    writer.finalize()
    assert (ds / data(4)).is_file() and (ds / video(4, "top")).is_file()  # renamed in, not committed
    assert json.loads((ds / ".staging/save.json").read_text())["episode_index"] == 4  # kept for open()
    blocker.rmdir()
    with DatasetWriter.open(ds) as writer:
        assert writer.num_episodes == 4 and writer.tasks == ["stack the blocks", "wave"]
        assert not (ds / data(4)).exists() and not (ds / video(4)).exists() and not (ds / ".staging").exists()
        add_episode(writer, 4, 2)
        writer.save_episode(task="wave")
    helpers.check_files_match_metadata(ds, 5)
    check_episode(DatasetReader(ds), 4, 2)


# --------------------------------------------------------------------------------- checksums
def test_each_file_checksum_is_in_its_episode_row(ds):
    rows = meta_rows(ds)
    assert len(rows) == 4
    for episode, row in enumerate(rows):
        assert row["data/sha256"] == hashlib.sha256((ds / data(episode)).read_bytes()).hexdigest()
        for camera in CAMERAS:
            key = f"videos/observation.images.{camera}/sha256"
            assert row[key] == hashlib.sha256((ds / video(episode, camera)).read_bytes()).hexdigest()
    schema = pq.read_schema(ds / META)
    assert schema.field("data/sha256").type == pa.string()  # plain extra columns, as LeRobot ignores `success`
    assert verify_dataset(ds).ok


def test_swapped_videos_are_caught_on_read_and_by_verify(ds, capsys):
    rows = meta_rows(ds)
    a, b = ds / video(0), ds / video(1)
    a_bytes, b_bytes = a.read_bytes(), b.read_bytes()
    a.write_bytes(b_bytes)
    b.write_bytes(a_bytes)
    reader = DatasetReader(ds)
    expected = rows[0]["videos/observation.images.front/sha256"]
    found = hashlib.sha256(b_bytes).hexdigest()
    with pytest.raises(DatasetError) as caught:
        reader.frames(0, "front")
    assert str(caught.value).startswith(
        f"{a} (episode 0's front video) does not match its checksum: {META} records sha256 {expected}, the file "
        f"has {found}; it changed after it was written"
    )
    with pytest.raises(DatasetError, match=r"file-001.mp4 \(episode 1's front video\) does not match its checksum"):
        reader.frames(1, "front")
    assert reader.frames(0, "top").shape == (4, 32, 32, 3)  # the other camera's files are intact
    check_episode(reader, 0, 4, frames=False)

    code, out, _ = demos(capsys, "verify", str(ds))
    problems = [line for line in out if line.startswith("problem:")]
    assert code == 2 and len(problems) == 2
    assert f"{a} (episode 0's front video) does not match its checksum" in problems[0]
    assert f"{b} (episode 1's front video) does not match its checksum" in problems[1]
    assert out[-1] == f"{ds}: 2 problems (4 episodes, 14 frames, 12 files)"


def test_a_bit_flip_in_a_data_file_is_caught(ds, capsys):
    path = ds / data(2)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match=rf"{path} \(episode 2's data\) does not match its checksum: {META} "
                                           "records sha256 [0-9a-f]{64}, the file has [0-9a-f]{64}"):
        DatasetReader(ds).episode(2)
    code, out, _ = demos(capsys, "verify", str(ds))
    assert code == 2 and sum(line.startswith("problem:") for line in out) == 1 and str(path) in out[0]


def test_a_dataset_without_checksums_reads_appends_and_verifies(ds, capsys):
    drop_checksums(ds)
    reader = DatasetReader(ds)
    for episode, length in enumerate(LENGTHS):
        check_episode(reader, episode, length, frames=episode == 1)
    code, out, _ = demos(capsys, "verify", str(ds))
    assert code == 0
    assert ("note: episodes 0-3 (4 of 4) have no checksums (their rows in meta/episodes/ have no data/sha256 / "
            "videos/<camera>/sha256 columns): their files were checked for presence only") in out
    assert out[-1] == (f"{ds}: sound (4 episodes, 14 frames, 12 files; 0 match their SHA-256 (0.0 MB), 12 have no "
                       "checksum)")

    with DatasetWriter.open(ds) as writer:  # the new episode's row gets checksums, the old rows stay without
        add_episode(writer, 4, 3)
        writer.save_episode(task="wave")
    rows = meta_rows(ds)
    assert [row["data/sha256"] is None for row in rows] == [True] * 4 + [False]
    reader = DatasetReader(ds)
    check_episode(reader, 4, 3)
    check_episode(reader, 0, 4, frames=False)
    report = verify_dataset(ds)
    assert report.ok and report.unchecked == [0, 1, 2, 3] and report.hashed == 3

    (ds / video(4, "top")).write_bytes((ds / video(0, "top")).read_bytes())  # the checked episode is checked
    assert not verify_dataset(ds).ok


# --------------------------------------------------------------------------------- read errors name the file
@pytest.mark.parametrize("checksums", [True, False])
def test_a_truncated_video_is_an_error_naming_it(ds, checksums, capsys):
    if not checksums:
        drop_checksums(ds)
    path = ds / video(1, "top")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    reader = DatasetReader(ds)
    with pytest.raises(DatasetError) as caught:
        reader.frames(1, "top")
    message = str(caught.value)
    assert message.startswith(f"{path} (episode 1's top video) ")
    if checksums:
        assert "does not match its checksum" in message
        assert message.endswith("restore it from a backup, or record the episode again")
    else:
        assert "cannot be decoded (" in message and "moov atom not found" in message
        assert "ffmpeg version" not in message and "\n" not in message  # ffmpeg's reason, not its banner
        assert message.endswith(f"restore it from a backup, or record the episode again (`roboreward demos verify "
                                f"{ds}` lists every missing or damaged file)")
    code, out, _ = demos(capsys, "verify", str(ds), "--decode")
    assert code == 2 and sum(line.startswith("problem:") for line in out) == 1 and str(path) in out[0]
    if not checksums:  # without checksums only decoding finds it
        assert demos(capsys, "verify", str(ds))[0] == 0


def test_a_bit_rotted_data_file_without_checksum_is_an_error_naming_it(ds):
    drop_checksums(ds)
    path = ds / data(1)
    raw = bytearray(path.read_bytes())
    raw[4:40] = b"\x00" * 36  # the first page's header
    path.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match=rf"^{path} \(episode 1's data\) cannot be read as Parquet \(.+\); restore"):
        DatasetReader(ds).episode(1)


def test_a_data_file_with_the_wrong_columns_is_an_error_naming_it(ds):
    drop_checksums(ds)
    path = ds / data(0)
    table = pq.read_table(path)
    pq.write_table(table.set_column(0, "observation.state", pa.array(["x"] * table.num_rows)), path)
    with pytest.raises(DatasetError, match=rf"^{path} \(episode 0's data\): column 'observation.state' \(string\) "
                                           r"does not hold \[3\] float32 values per frame"):
        DatasetReader(ds).episode(0)
    pq.write_table(table.drop_columns(["action"]), path)
    with pytest.raises(DatasetError, match=rf"^{path} \(episode 0's data\) has no column 'action'"):
        DatasetReader(ds).episode(0)


INFO_EDITS = [
    # (what info.json becomes, the message)
    (b"\xff\xfe\x00garbage", r"meta/info.json cannot be read as JSON \(.*utf-8.*\); it is the dataset's commit record"),
    (b'{"codebase_version": "v3.0", "fps": 10,', r"meta/info.json cannot be read as JSON \(Expecting"),
    (b"[1, 2, 3]", r"meta/info.json holds a JSON list, not an object"),
    ({"fps": "fast"}, r"meta/info.json: 'fps' is 'fast'; it must be the frames per second, an integer >= 1; "
                      r"correct it in .*meta/info.json, or restore that file from a backup$"),
    ({"fps": math.nan}, r"'fps' is nan; it must be the frames per second"),
    ({"fps": math.inf}, r"'fps' is inf; it must be the frames per second"),
    ({"fps": 10.5}, r"'fps' is 10.5; it must be the frames per second"),
    ({"fps": 0}, r"'fps' is 0; it must be the frames per second, an integer >= 1"),
    ({"fps": True}, r"'fps' is True; it must be"),
    ({"total_episodes": -1}, r"'total_episodes' is -1; it must be the number of committed episodes, an integer >= 0"),
    ({"total_episodes": 2.0}, r"'total_episodes' is 2.0; it must be"),
    ({"total_episodes": "4"}, r"'total_episodes' is '4'; it must be"),
    ({"total_episodes": 10**30}, r"'total_episodes' is 1000000000000000000000000000000; it must be"),
    ({"total_episodes": 10**18}, r"counts 1000000000000000000 episodes \(total_episodes\) but meta/episodes/ has no "
                                 r"row for episodes \[4, 5, 6, 7, 8, 9, 10, 11, 12, 13\]"),
    ({"total_frames": math.nan}, r"'total_frames' is nan; it must be the number of frames of those episodes"),
    ({"total_tasks": None}, r"'total_tasks' is None; it must be the number of tasks"),
    ({"chunks_size": 0}, r"'chunks_size' is 0; it must be the number of files per chunk folder"),
    ({"data_files_size_in_mb": math.nan}, r"'data_files_size_in_mb' is nan; it must be a positive number"),
    ({"robot_type": 5}, r"'robot_type' is 5; it must be a string or null"),
    ({"features": []}, r"'features' is \[\]; it must map feature names to their dtype and shape"),
    ({"features": {"observation.state": {"dtype": "float32", "shape": ["3"]}}},
     r"feature 'observation.state' has shape \['3'\]; it must be a list of integers >= 1"),
    ({"data_path": "data/{chunk}/x.parquet"}, r"'data_path' is 'data/\{chunk\}/x.parquet'; it must be a path "
                                              r"template like 'data/chunk-\{chunk_index:03d\}"),
    ({"video_path": "../../{video_key}/{chunk_index}-{file_index}.mp4"}, r"'video_path' is .* which leads outside "
                                                                        "the dataset folder"),
]


@pytest.mark.parametrize("edit, message", INFO_EDITS, ids=[str(i) for i in range(len(INFO_EDITS))])
def test_every_bad_info_json_value_is_an_error_naming_the_file_and_key(ds, edit, message, capsys):
    if isinstance(edit, bytes):
        (ds / "meta/info.json").write_bytes(edit)
    else:
        edit_info(ds, **edit)
    before = snapshot(ds)
    for read in (DatasetReader, DatasetWriter.open, lambda root: DatasetWriter.open_or_create(root, **SPEC)):
        with pytest.raises(DatasetError, match=message) as caught:
            read(ds)
        assert str(ds) in str(caught.value) and "\n" not in str(caught.value)
    assert snapshot(ds) == before
    code, out, _ = demos(capsys, "verify", str(ds))
    assert code == 2 and len(out) == 2 and out[0].startswith("problem: ") and str(ds) in out[0]


def test_damaged_metadata_files_are_errors_naming_them(ds):
    meta = ds / META
    good = meta.read_bytes()
    meta.write_bytes(good[: len(good) // 2])
    for read in (DatasetReader, DatasetWriter.open):
        with pytest.raises(DatasetError, match=rf"^{meta} cannot be read as Parquet \(.+\); it lists episodes of {ds}"):
            read(ds)
    assert verify_dataset(ds).problems[0].startswith(f"{meta} cannot be read as Parquet")

    meta.write_bytes(good)
    rows = meta_rows(ds)
    rows[2]["videos/observation.images.top/from_timestamp"] = math.nan
    write_meta_rows(ds, rows)
    with pytest.raises(DatasetError, match=rf"^{meta}: the row of episode 2 has videos/observation.images.top/"
                                           "from_timestamp = nan, not a finite number >= 0"):
        DatasetReader(ds)
    rows[2]["videos/observation.images.top/from_timestamp"] = 0.0
    rows[1]["length"] = -3
    write_meta_rows(ds, rows)
    with pytest.raises(DatasetError, match=rf"^{meta}: the row of episode 1 has length = -3, not an integer >= 0"):
        DatasetWriter.open(ds)
    write_meta_rows(ds, [{k: v for k, v in row.items() if k != "data/file_index"} for row in meta_rows(ds)])
    with pytest.raises(DatasetError, match=rf"^{meta} has no column 'data/file_index'"):
        DatasetReader(ds)

    meta.write_bytes(good)
    (ds / "meta/tasks.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DatasetError, match=rf"^{ds / 'meta/tasks.parquet'} cannot be read as LeRobot's task table"):
        DatasetReader(ds)


def test_damaged_stats_are_an_error_naming_the_file_and_the_next_open_rewrites_them(ds, capsys):
    stats = ds / "meta/stats.json"
    stats.write_text('{"observation.state": {"min": [0, 0')
    with pytest.raises(DatasetError, match=rf"^{stats} cannot be read as LeRobot's stats \(JSONDecodeError: .*\); "
                                           "it is rewritten from the episodes' own stats"):
        DatasetReader(ds).stats
    code, out, _ = demos(capsys, "verify", str(ds))
    assert code == 2 and out[0].startswith(f"problem: {stats} cannot be read")
    DatasetWriter.open(ds).finalize()
    assert DatasetReader(ds).stats["observation.state"]["count"].tolist() == [14]
    assert demos(capsys, "verify", str(ds))[0] == 0


# --------------------------------------------------------------------------------- roboreward demos verify
def test_verify_a_sound_dataset_from_the_command_line(ds):
    result = subprocess.run([sys.executable, "-m", "roboreward.cli", "demos", "verify", str(ds), "--decode"],
                            capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    size = sum((ds / f).stat().st_size for e in range(4) for f in (data(e), video(e), video(e, "top"))) / 1e6
    assert result.stdout.splitlines() == [
        f"{ds}: sound (4 episodes, 14 frames, 12 files; 12 match their SHA-256 ({size:.1f} MB); all decoded)"
    ]


def test_verify_reports_missing_files_and_interrupted_saves_one_line_each(ds, tmp_path, capsys):
    (ds / video(2, "top")).unlink()
    (ds / data(3)).unlink()
    code, out, _ = demos(capsys, "verify", str(ds))
    assert code == 2 and out == [
        f"problem: {ds / video(2, 'top')} (episode 2's top video) is missing; restore it from a backup, or record "
        "the episode again",
        f"problem: {ds / data(3)} (episode 3's data) is missing; restore it from a backup, or record the episode again",
        f"{ds}: 2 problems (4 episodes, 14 frames, 12 files)",
    ]
    with pytest.raises(DatasetError, match=r"file-002.mp4 \(episode 2's top video\) is missing"):
        DatasetWriter.open(ds)

    # A kill after the episode's row was written, before info.json: not committed, and open() undoes it.
    root = tmp_path / "killed"
    child = start_child(root, "2-before-7")
    child.communicate(timeout=120)
    assert child.returncode == -signal.SIGKILL
    code, out, _ = demos(capsys, "verify", str(root))
    assert code == 2 and out[0] == (
        f"problem: {root}: a save that was interrupted left episode 1's row in {META} and {data(1)}, {video(1)}, "
        f"{video(1, 'top')} (not committed: meta/info.json counts 1 episodes; LeRobot would load them); opening the "
        f"dataset for appending once removes it (`roboreward demos record ... --out {root}`, or "
        f"DatasetWriter.open({str(root)!r}).finalize())"
    )
    assert any(line.startswith("note: ") and ".staging/" in line for line in out)
    DatasetWriter.open(root).finalize()
    code, out, _ = demos(capsys, "verify", str(root))
    assert code == 0 and out == [f"{root}: sound (1 episodes, 4 frames, 3 files; 3 match their SHA-256 "
                                 f"({verify_dataset(root).hashed_bytes / 1e6:.1f} MB))"]


def test_verify_names_a_folder_that_is_not_a_dataset(tmp_path, capsys):
    code, out, _ = demos(capsys, "verify", str(tmp_path / "nothing"))
    assert code == 2 and out == [
        f"problem: {tmp_path / 'nothing'} does not exist; record a dataset into it first "
        f"(`roboreward demos record ... --out {tmp_path / 'nothing'}`)",
        f"{tmp_path / 'nothing'}: 1 problem (0 episodes, 0 frames, 0 files)",
    ]


def test_verify_notes_a_writer_at_work(ds):
    writer = DatasetWriter.open(ds)
    try:
        add_episode(writer, 4, 2)
        report = verify_dataset(ds)
        assert report.ok and any("a DatasetWriter has" in note for note in report.notes)
        assert any(".staging/" in note for note in report.notes)
    finally:
        writer.clear_episode()
        writer.finalize()
    assert verify_dataset(ds).notes == []


def test_a_refused_open_releases_its_lock_once(ds):
    # The refused writer object lives on in the traceback; when it is collected it must not close its lock's
    # descriptor number again, which by then belongs to another file.
    edit_info(ds, total_episodes=2)
    with pytest.raises(DatasetError) as caught:
        DatasetWriter.open(ds)
    with open(ds / META, "rb") as f:  # gets the lowest free descriptor: the lock's, just closed
        del caught
        gc.collect()
        assert f.read(4) == b"PAR1"
