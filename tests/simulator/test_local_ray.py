"""The run records and session ending behind a run's own local Ray, on real processes (no Ray):
a session whose owner is gone is ended whole, one whose owner lives is left alone, and the time
limits read from the environment are refused in one sentence when they are not positive."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from simulator.errors import PebbleError
from simulator.ray_pipeline.local_ray import (
    RECORD_PREFIX,
    STATE_DIR_ENV,
    RayRecord,
    reap_abandoned,
    seconds_from_env,
)
from simulator.ray_pipeline.processes import boot_id, end_session, session_members, start_time

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads Linux /proc")

# A session leader with a grandchild in its own process group, as Ray's workers are; both print
# their pid and wait for ever.
TREE = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                         preexec_fn=os.setpgrp)
print(child.pid, flush=True)
time.sleep(600)
"""


def a_session() -> subprocess.Popen:
    leader = subprocess.Popen(
        [sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    leader.stdout.readline()  # the event: the grandchild is started
    assert len(session_members(leader.pid)) == 2
    return leader


def record(tmp_path, monkeypatch, owner: tuple[int, int], session: int) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path))
    text = json.dumps(RayRecord(owner[0], owner[1], session, boot_id()).__dict__)
    (tmp_path / f"{RECORD_PREFIX}{owner[0]}-{owner[1]}").write_text(text)


def test_the_session_of_a_run_that_is_gone_is_ended_whole(tmp_path, monkeypatch):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = (gone.pid, start_time(gone.pid))
    gone.wait()
    leader = a_session()
    try:
        record(tmp_path, monkeypatch, owner, leader.pid)
        assert reap_abandoned() == [(owner[0], 2)]
        assert session_members(leader.pid) == {}
        assert list(tmp_path.iterdir()) == []
    finally:
        leader.kill()
        leader.wait()


def test_the_session_of_a_live_run_is_left_alone(tmp_path, monkeypatch):
    leader = a_session()
    try:
        record(tmp_path, monkeypatch, (os.getpid(), start_time(os.getpid())), leader.pid)
        assert reap_abandoned() == []
        assert len(session_members(leader.pid)) == 2
        assert len(list(tmp_path.iterdir())) == 1
    finally:
        end_session(leader.pid)
        leader.wait()


@pytest.mark.parametrize("text", ["abc", "nan", "-1", "0", "inf"])
def test_a_time_limit_that_is_not_a_positive_number_is_one_sentence(monkeypatch, text):
    monkeypatch.setenv("PEBBLESIM_RAY_START_TIMEOUT", text)
    with pytest.raises(PebbleError, match=r"must be a positive number of seconds, got '"):
        seconds_from_env("PEBBLESIM_RAY_START_TIMEOUT", 300.0)
    monkeypatch.setenv("PEBBLESIM_RAY_START_TIMEOUT", "2.5")
    assert seconds_from_env("PEBBLESIM_RAY_START_TIMEOUT", 300.0) == 2.5
