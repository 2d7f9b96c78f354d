"""Names, PyTorch aliases and up-front size checks."""

from __future__ import annotations

import pytest

from schedules.actions import ScheduleError
from schedules.registry import SCHEDULES, build_schedule, canonical_name, list_schedules


def test_list_schedules_has_every_family_with_a_one_line_description():
    rows = list_schedules()
    assert [name for name, _ in rows] == list(SCHEDULES)
    assert {name for name, _ in rows} == {
        "naive",
        "gpipe",
        "1f1b",
        "interleaved-1f1b",
        "zb-h1",
        "zb-h2",
        "zb-v",
        "dualpipe-v",
    }
    for _, description in rows:
        assert description and "\n" not in description


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("GPipe", "gpipe"),
        ("1F1B", "1f1b"),
        ("Interleaved1F1B", "interleaved-1f1b"),
        ("ZBVZeroBubble", "zb-v"),
        ("DualPipeV", "dualpipe-v"),
        ("ScheduleGPipe", "gpipe"),
        ("ScheduleInterleaved1F1B", "interleaved-1f1b"),
        ("dualpipev", "dualpipe-v"),
        ("ZB-H1", "zb-h1"),
        ("zb_h2", "zb-h2"),
        (" 1f1b ", "1f1b"),
        ("PipeDream-Flush", "1f1b"),
    ],
)
def test_aliases_resolve(alias, name):
    assert canonical_name(alias) == name
    assert build_schedule(alias, 2, 4).name == name


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ScheduleError) as error:
        canonical_name("InterleavedZeroBubble")
    message = str(error.value)
    assert "unknown schedule 'InterleavedZeroBubble'" in message
    assert all(name in message for name in SCHEDULES)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("1f1b", 0, 4), "positive whole number of ranks"),
        (("1f1b", 2, -1), "positive whole number of microbatches"),
        (("1f1b", True, 4), "positive whole number of ranks"),
        (("1f1b", 2, 4.0), "positive whole number of microbatches"),
        (("interleaved-1f1b", 2, 4, 0), "positive whole number of chunks"),
        (("gpipe", 2, 4, 2), "gpipe puts one stage on each rank, so chunks must be 1"),
        (("zb-v", 2, 4, 3), "chunks must be 2"),
        (("dualpipe-v", 2, 4, 1), "chunks must be 2"),
        (("interleaved-1f1b", 2, 4, 1), "at least 2 chunks"),
        (("interleaved-1f1b", 4, 6, 2), "multiple of"),
        (("dualpipe-v", 3, 5), "at least as many microbatches as stages"),
    ],
)
def test_bad_sizes_are_one_sentence(args, match):
    with pytest.raises(ScheduleError, match=match) as error:
        build_schedule(*args)
    message = str(error.value)
    assert "\n" not in message and message.endswith(".")


def test_default_chunks():
    assert build_schedule("interleaved-1f1b", 2, 4).chunks == 2
    assert build_schedule("interleaved-1f1b", 2, 4, 3).chunks == 3
    assert build_schedule("zb-v", 2, 4).chunks == 2
    assert build_schedule("gpipe", 2, 4, 1).chunks == 1
