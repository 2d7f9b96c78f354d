"""Outputs: only regular files are replaced, all or none; "-" is stdout; stale staging is
removed; a failed run leaves no new empty folder; a full disk is one sentence."""

from __future__ import annotations

import errno
import inspect
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulator.cli import commands, main
from simulator.cli.outputs import (
    STAGING_PREFIX,
    StagedOutput,
    process_start,
    remove_stale_staging,
    write_output_file,
)
from simulator.errors import PebbleError
from tests.deadlines import scaled

EXPORT = ("export", "--schedule", "1f1b", "--ranks", "2", "--microbatches", "4")
# These need cmd_export to hand its target to outputs.write_output_file; until it does, they
# would write a file named "-" or "newdir", so they are skipped.
NEEDS_EXPORT_CHANGE = pytest.mark.skipif(
    "write_output_file" not in inspect.getsource(commands.cmd_export),
    reason="cmd_export does not call write_output_file yet",
)


def staging_left(folder: Path) -> list[Path]:
    return list(folder.glob(f"{STAGING_PREFIX}*"))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_run_replaces_its_files_and_leaves_no_staging(tmp_path):
    (tmp_path / "a.txt").write_text("old")
    with StagedOutput(tmp_path) as out:
        out.path("a.txt").write_text("new")
        out.path("sub/b.txt").write_text("b")
    assert (tmp_path / "a.txt").read_text() == "new"
    assert (tmp_path / "sub" / "b.txt").read_text() == "b"
    assert sorted(p.name for p in out.written) == ["a.txt", "b.txt"]
    assert not staging_left(tmp_path)


@pytest.mark.parametrize("blocker", ["folder", "fifo", "symlink", "parent-is-a-file"])
def test_one_bad_destination_fails_the_run_before_anything_is_replaced(tmp_path, blocker):
    (tmp_path / "timeline.json").write_text("old timeline")
    trace = tmp_path / "trace.json"
    if blocker == "folder":
        trace.mkdir()
        (trace / "keep").write_text("k")
    elif blocker == "fifo":
        os.mkfifo(trace)
    elif blocker == "symlink":
        (tmp_path / "elsewhere").write_text("target")
        trace.symlink_to(tmp_path / "elsewhere")
    name = "sub/trace.json" if blocker == "parent-is-a-file" else "trace.json"
    if blocker == "parent-is-a-file":
        (tmp_path / "sub").write_text("a file")
    before = snapshot(tmp_path)
    with pytest.raises(PebbleError) as info, StagedOutput(tmp_path) as out:
        out.path("timeline.json").write_text("new timeline")
        out.path(name).write_text("new trace")
    assert "\n" not in str(info.value)
    assert snapshot(tmp_path) == before  # timeline.json was not replaced either
    assert not staging_left(tmp_path)
    if blocker == "fifo":
        assert stat.S_ISFIFO(os.lstat(trace).st_mode)
    if blocker == "symlink":
        assert trace.is_symlink()


def test_a_cli_run_into_a_folder_with_a_blocked_destination_is_one_sentence(capsys, tmp_path):
    simulate = ("simulate", "--schedule", "1f1b", "--ranks", "2", "--microbatches", "4")
    assert main([*simulate, "--out", str(tmp_path)]) == 0
    (tmp_path / "trace.json").unlink()
    (tmp_path / "trace.json").mkdir()
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert main([*simulate, "--steps", "2", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "trace.json is a folder" in err
    assert snapshot(tmp_path) == before


def test_output_folder_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(PebbleError, match="not a folder"), StagedOutput(tmp_path / "f"):
        pass
    assert (tmp_path / "f").read_text() == "x"


def test_a_failed_run_removes_the_folders_it_created_when_empty(tmp_path):
    target = tmp_path / "new" / "deeper"
    with pytest.raises(RuntimeError), StagedOutput(target) as out:
        out.path("a.txt").write_text("a")
        raise RuntimeError("the run failed")
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(KeyboardInterrupt), StagedOutput(existing):
        raise KeyboardInterrupt
    assert existing.is_dir() and not list(existing.iterdir())


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_staging_is_removed_by_the_next_run(tmp_path):
    host = "".join(c for c in socket.gethostname() if c.isalnum())[:32]
    me = os.getpid()
    dead = tmp_path / f"{STAGING_PREFIX}{host}_{dead_pid()}_0_abc"
    reused = tmp_path / f"{STAGING_PREFIX}{host}_{me}_{process_start(me) + 1}_abc"
    live = tmp_path / f"{STAGING_PREFIX}{host}_{me}_{process_start(me)}_abc"
    old_style = tmp_path / f"{STAGING_PREFIX}k2j4h1x0"
    recent_old_style = tmp_path / f"{STAGING_PREFIX}zz9"
    for folder in (dead, reused, live, old_style, recent_old_style):
        folder.mkdir()
        (folder / "timeline.json").write_text("partial")
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(old_style, (day_ago, day_ago))
    with StagedOutput(tmp_path) as out:
        out.path("a.txt").write_text("a")
    left = {p.name for p in staging_left(tmp_path)}
    assert left == {live.name, recent_old_style.name}
    assert remove_stale_staging(tmp_path) == []


def test_write_output_file_dash_is_stdout(capsys, tmp_path):
    assert write_output_file("-", "a,b\n") is None
    assert capsys.readouterr().out == "a,b\n"


@pytest.mark.parametrize("name", ["newdir/", "existing", "/"])
def test_write_output_file_refuses_folders(tmp_path, name):
    (tmp_path / "existing").mkdir()
    target = name if name == "/" else str(tmp_path / name) + ("/" if name.endswith("/") else "")
    with pytest.raises(PebbleError, match="names a folder; give a file name"):
        write_output_file(target, "text")
    assert not (tmp_path / "newdir").exists()
    assert (tmp_path / "existing").is_dir()


def test_write_output_file_replaces_regular_files_and_follows_links(tmp_path):
    real = tmp_path / "real.csv"
    real.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    assert write_output_file(link, "new") == link
    assert link.is_symlink() and real.read_text() == "new"
    assert write_output_file(tmp_path / "sub" / "x.csv", "x") == tmp_path / "sub" / "x.csv"
    assert (tmp_path / "sub" / "x.csv").read_text() == "x"
    assert not staging_left(tmp_path) and not staging_left(tmp_path / "sub")


def test_write_output_file_writes_through_a_fifo(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE, text=True)
    write_output_file(fifo, "through\n")
    assert reader.communicate(timeout=scaled(10))[0] == "through\n"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_is_one_sentence_naming_the_file():
    with pytest.raises(PebbleError, match=r"cannot write /dev/full: the disk is full"):
        write_output_file("/dev/full", "x" * 100_000)


def test_a_full_disk_inside_a_staged_run_names_the_final_file(tmp_path):
    with pytest.raises(PebbleError) as info, StagedOutput(tmp_path) as out:
        out.path("trace.json").write_text("partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert str(info.value).startswith(f"cannot write {tmp_path / 'trace.json'}: the disk is full")
    assert not staging_left(tmp_path) and not (tmp_path / "trace.json").exists()


def test_main_turns_a_full_disk_anywhere_into_one_sentence(capsys, monkeypatch):
    def full(args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/fig.png")

    monkeypatch.setattr(commands, "cmd_schedules", full)
    assert main(["schedules"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "pebblesim: error: cannot write /data/fig.png: the disk is full; "
        "free some space and run again.\n"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can replace /dev/null")
def test_export_to_dev_null_as_root_keeps_the_device(capsys):
    code = main([*EXPORT, "-o", "/dev/null"])
    assert code in (0, 1)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert not list(Path("/dev").glob(f"{STAGING_PREFIX}*"))


@NEEDS_EXPORT_CHANGE
def test_export_to_dev_null_writes_through(capsys):
    assert main([*EXPORT, "-o", "/dev/null"]) == 0
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


@NEEDS_EXPORT_CHANGE
@pytest.mark.parametrize("name", ["newdir/", "existing", "/"])
def test_export_to_a_folder_is_one_sentence(capsys, tmp_path, name):
    (tmp_path / "existing").mkdir()
    target = name if name == "/" else str(tmp_path / name) + ("/" if name.endswith("/") else "")
    assert main([*EXPORT, "-o", target]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "give a file name" in err
    assert not (tmp_path / "newdir").exists()


@NEEDS_EXPORT_CHANGE
def test_export_dash_is_stdout(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*EXPORT, "-o", "-"]) == 0
    assert capsys.readouterr().out.count("\n") == 2
    assert not list(tmp_path.iterdir())
