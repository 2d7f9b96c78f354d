"""PyTorch's compute-only CSV: every family round-trips; bad files are named by row and cell."""

from __future__ import annotations

import pytest

from schedules.actions import ScheduleError
from schedules.csv_io import read_csv, schedule_to_csv, write_csv
from schedules.registry import build_schedule, list_schedules
from schedules.validate import validate

NAMES = [name for name, _ in list_schedules()]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("p", "m"), [(1, 2), (2, 4), (4, 8)])
def test_every_family_round_trips_through_a_file(tmp_path, name, p, m):
    schedule = build_schedule(name, p, m)
    path = tmp_path / f"{name}.csv"
    write_csv(schedule, path)
    assert read_csv(path, m, name=name) == schedule
    assert read_csv(str(path), m, name=name) == schedule
    assert read_csv(path.read_text(), m, name=name) == schedule


def test_layout_is_one_row_per_rank_of_action_strings():
    text = schedule_to_csv(build_schedule("1f1b", 2, 2))
    assert text == "0F0,0F1,0B0,0B1\n1F0,1B0,1F1,1B1\n"


def test_stage_to_rank_comes_from_the_rows_so_v_layouts_work():
    schedule = read_csv("0F0,3F0,3B0,0B0\n1F0,2F0,2B0,1B0\n", 1)
    assert schedule.stage_to_rank == (0, 1, 1, 0)
    validate(schedule)


def test_empty_cells_and_spaces_are_ignored():
    schedule = read_csv("0F0, ,0B0,\n", 1, name="x")
    assert [str(a) for a in schedule.actions[0]] == ["0F0", "0B0"]


def test_a_bad_cell_is_named_by_row_and_cell():
    with pytest.raises(ScheduleError, match=r"row 1, cell 2: cannot read 'oops'"):
        read_csv("0F0,0B0\n1F0,1B0,oops\n", 1)


def test_a_stage_on_two_rows_is_named():
    with pytest.raises(ScheduleError, match=r"stage 0 \(0B0\) also appears on row 0"):
        read_csv("0F0\n1F0,0B0\n", 1)


def test_a_gap_in_stage_numbers_is_named():
    with pytest.raises(ScheduleError, match="no action for stage 1"):
        read_csv("0F0,0B0\n2F0,2B0\n", 1)


def test_empty_csv_and_missing_file():
    with pytest.raises(ScheduleError, match="holds no actions"):
        read_csv("\n\n", 1)
    with pytest.raises(ScheduleError, match="cannot read schedule file"):
        read_csv("no/such/schedule.csv", 1)


def test_microbatch_count_mismatch_is_left_to_the_validator():
    text = schedule_to_csv(build_schedule("gpipe", 2, 3))
    with pytest.raises(ScheduleError, match="0F3 never runs"):
        validate(read_csv(text, 4))
    with pytest.raises(ScheduleError, match="names microbatch 2, but the schedule has 2"):
        validate(read_csv(text, 2))
