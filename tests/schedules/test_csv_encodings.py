"""Schedule CSV files in the encodings spreadsheets write, and files that are not text at all:
UTF-8 with or without a byte-order mark and UTF-16/32 with one are read; Latin-1, binary
files, absurd cells, directories and devices are one sentence naming the file."""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schedules.csv_io import MAX_INDEX, read_csv, schedule_to_csv
from schedules.errors import PebbleError, ScheduleError
from schedules.registry import build_schedule

SCHEDULE = build_schedule("1f1b", 2, 4)
TEXT = schedule_to_csv(SCHEDULE)


def one_sentence(exc: BaseException, path) -> str:
    message = str(exc)
    assert isinstance(exc, PebbleError), repr(exc)
    assert "\n" not in message and message.endswith("."), message
    assert str(path) in message, message
    return message


def refused(path, match: str) -> str:
    with pytest.raises(ScheduleError, match=match) as info:
        read_csv(path, 4)
    return one_sentence(info.value, path)


@pytest.mark.parametrize(
    "encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le-bom", "utf-16-be-bom", "utf-32"]
)
def test_text_encodings_with_a_byte_order_mark_are_read(tmp_path, encoding):
    if encoding.endswith("-bom"):
        codec = encoding.removesuffix("-bom")
        raw = ("\ufeff" + TEXT).encode(codec)
    else:
        raw = TEXT.encode(encoding)
    path = tmp_path / "schedule.csv"
    path.write_bytes(raw)
    assert read_csv(path, 4, name="1f1b") == SCHEDULE
    assert read_csv(raw, 4, name="1f1b") == SCHEDULE  # the file's bytes, as read elsewhere


def test_a_byte_order_mark_in_text_is_skipped():
    assert read_csv("\ufeff" + TEXT, 4, name="1f1b") == SCHEDULE


def test_latin1_is_one_sentence_naming_the_byte(tmp_path):
    path = tmp_path / "schedule.csv"
    path.write_bytes("0F0,0B0 é\n".encode("latin-1"))
    message = refused(path, r"is not a text CSV file \(byte 0xe9 at offset 8 is not UTF-8\)")
    assert message.startswith(str(path))


def test_binary_files_are_one_sentence(tmp_path):
    path = tmp_path / "schedule.csv"
    path.write_bytes(b"0F0,\x000B0\n")
    refused(path, r"not a text CSV file \(a NUL byte at offset 4\)")
    path.write_bytes(bytes(range(256)))
    refused(path, r"not a text CSV file \(a NUL byte at offset 0\)")
    path.write_bytes(bytes(range(1, 256)))
    refused(path, r"byte 0x80 at offset 127 is not UTF-8")
    path.write_bytes(TEXT.encode("utf-16") + b"\x00")  # odd length: a broken UTF-16 file
    refused(path, r"at offset \d+ is not UTF-16-LE")
    path.write_bytes(b"\xef\xbb\xbf0F0,\xe9")  # the offset counts the byte-order mark
    refused(path, r"byte 0xe9 at offset 7 is not UTF-8")


def test_a_hundred_thousand_digits_are_one_sentence_naming_row_and_cell(tmp_path):
    path = tmp_path / "schedule.csv"
    path.write_text("0F0,0B0\n1F0," + "9" * 100_000 + "F0\n")
    message = refused(path, r"row 1, cell 1: '9+'\.\.\. \(100002 characters\) is too long")
    assert len(message) < 300
    path.write_text("0F0,0B0\n1F0,1" + "0" * 10 + "F0\n")
    refused(path, rf"row 1, cell 1: '10000000000F0' names an index over {MAX_INDEX}")
    path.write_text("0F0,0B0\n1F0,1F" + "9" * 12 + "\n")
    refused(path, r"row 1, cell 1: '1F999999999999' names an index over")
    path.write_text('0F0,"' + "9" * 200_000 + '"\n')
    refused(path, r"line 1: not a CSV row \(field larger than field limit")


def test_a_far_stage_index_is_a_gap_found_at_once(tmp_path):
    path = tmp_path / "schedule.csv"
    path.write_text(f"0F0,0B0\n{MAX_INDEX}F0\n")
    started = time.process_time()  # this process's CPU: a busy machine does not count
    refused(path, r"has no action for stage 1; stages must be numbered 0\.\.1000000000")
    assert time.process_time() - started < 0.5  # a walk over 10**9 stages takes minutes


def test_text_and_bytes_errors_name_the_file_given_as_name():
    with pytest.raises(ScheduleError, match=r"^runs/s\.csv row 0, cell 1: cannot read 'x'"):
        read_csv("0F0,x\n", 1, name="runs/s.csv")
    with pytest.raises(ScheduleError, match=r"^runs/s\.csv is not a text CSV file"):
        read_csv(b"0F0,\xff\n", 1, name="runs/s.csv")
    with pytest.raises(ScheduleError, match=r"^schedule CSV row 0, cell 1"):
        read_csv("0F0,x\n", 1)


def test_directories_devices_and_missing_files_are_one_sentence(tmp_path):
    folder = tmp_path / "schedule.csv"
    folder.mkdir()
    refused(folder, r"is a directory, not a CSV file\.$")
    refused("/dev/null", r"/dev/null is a device or socket, not a CSV file\.$")
    refused(tmp_path / "missing.csv", r"cannot read schedule file .* \(No such file")


@pytest.mark.skipif(not os.path.isdir("/dev/fd"), reason="needs /dev/fd")
def test_a_pipe_is_read():
    read_end, write_end = os.pipe()
    os.write(write_end, TEXT.encode())
    os.close(write_end)
    try:
        assert read_csv(f"/dev/fd/{read_end}", 4, name="1f1b") == SCHEDULE
    finally:
        os.close(read_end)


# ------------------------------------------------------------------ mutation (hypothesis)
@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(TEXT)), st.sampled_from(["\x00", "é", "9" * 5000, ",", "\n"])),
        max_size=3,
    ),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"]),
    cut=st.integers(0, 2 * len(TEXT)),
)
def test_a_mutated_csv_reads_or_is_one_sentence(tmp_path, edits, encoding, cut):
    text = TEXT
    for position, insert in edits:
        text = text[:position] + insert + text[position:]
    path = tmp_path / "mutated.csv"
    path.write_bytes(text.encode(encoding, errors="replace")[:cut])
    try:
        read_csv(path, 4)
    except PebbleError as exc:
        one_sentence(exc, path)
