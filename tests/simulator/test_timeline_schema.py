"""The Timeline schema check: a damaged or hand-edited timeline.json is one sentence naming the
file, the field and the value, never a traceback; a good one loads fast and unchanged.

The mutation test at the end (hypothesis) deletes, retypes, breaks and re-encodes a real
simulated Timeline and asserts that loading either succeeds or raises one PebbleError line.
Its helpers are shared with ``test_profile_schema``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import tracemalloc
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.analytic.run_plan import simulate_plan
from simulator.errors import PebbleError
from simulator.run import CostSource, Layout, make_schedule, plan_run
from simulator.timeline import Timeline
from simulator.timeline.json_values import MAX_JSON_BYTES
from simulator.timeline.schema import MAX_RANKS


def simulated(schedule="zb-h1", ranks=2, microbatches=2, steps=2, dp=2, hardware=None):
    plan = plan_run(
        make_schedule(schedule, ranks, microbatches),
        layout=Layout(data=dp),
        costs=CostSource(hardware=hardware),
        steps=steps,
    )
    return simulate_plan(plan)


@pytest.fixture(scope="module")
def good() -> dict:
    """A real Timeline's JSON form: 2 ranks, 2 microbatches, 2 steps, 2 replicas, unit costs."""
    return simulated().to_dict()


def write(tmp_path, doc, name="timeline.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


def one_sentence(exc: BaseException) -> str:
    message = str(exc)
    assert type(exc) is not KeyError and isinstance(exc, PebbleError), repr(exc)
    assert "\n" not in message and message.endswith("."), message
    return message


def refused(tmp_path, doc, match: str) -> str:
    path = write(tmp_path, doc)
    with pytest.raises(PebbleError, match=match) as info:
        Timeline.load(path)
    message = one_sentence(info.value)
    assert message.startswith(path), message
    return message


# ------------------------------------------------------------------ good files
def test_a_saved_timeline_loads_back_equal(tmp_path, good):
    timeline = simulated()
    path = tmp_path / "t.json"
    timeline.save(path)
    again = Timeline.load(path)
    assert again.meta == timeline.meta
    for name in ("events", "comms", "cache", "grad_ready", "allreduce", "optimizer"):
        assert getattr(again, name) == getattr(timeline, name), name
    assert again.summary() == timeline.summary()


def test_the_cpu_table_round_trips_and_is_written_only_when_it_has_rows(tmp_path):
    plan = plan_run(make_schedule("1f1b", 2, 4), steps=2)
    shared = simulate_plan(replace(plan, cores=1))
    assert len(shared.action_cpu) == len(shared.events)
    shared.save(tmp_path / "t.json")
    assert Timeline.load(tmp_path / "t.json").action_cpu == shared.action_cpu
    assert "action_cpu" not in simulate_plan(plan).to_dict()


def test_every_schedule_family_passes_its_own_check():
    from schedules.registry import list_schedules

    for name, _ in list_schedules():
        timeline = simulated(name, ranks=2, microbatches=4, steps=1, dp=1)
        assert Timeline.from_dict(timeline.to_dict()).events == timeline.events, name


def test_legacy_and_lenient_forms_load(good):
    doc = copy.deepcopy(good)
    doc["meta"] = {"time_unit": "unit"}  # a file from before the typed meta
    for row in doc["events"]:
        del row["replica"]  # defaults to 0
    doc["events"][0]["rank"] = 1.0  # an integral float is an integer
    timeline = Timeline.from_dict(doc)
    assert timeline.events[0].rank == 1 and type(timeline.events[0].rank) is int
    assert {e.replica for e in timeline.events} == {0}
    doc["meta"] = None
    with pytest.raises(PebbleError, match="meta must be an object"):
        Timeline.from_dict(doc)


# ------------------------------------------------------------------ bad values, one sentence each
def event(doc, index=3) -> dict:
    return doc["events"][index]


def cpu_rows(**change) -> list[dict]:
    """An ``action_cpu`` table of one row, ``change`` applied."""
    row = {"rank": 0, "stage": 0, "kind": "F", "microbatch": 0, "step": 0, "cpu": 0.5}
    return [{**row, **change}]


CASES = [  # (edit the document, what the message says)
    (lambda d: event(d).update(end=event(d)["start"] - 0.25), r"events\[3\] ends \(.*\) before"),
    (lambda d: event(d).update(rank=2), r"events\[3\]\.rank is 2, outside 0\.\.1 \(meta\.ranks"),
    (lambda d: event(d).update(rank=-1), r"events\[3\]\.rank is -1"),
    (lambda d: event(d).update(start=-1.0), r"events\[3\]\.start is -1\.0, outside 0\.\."),
    (lambda d: event(d).update(start=math.nan), r"events\[3\]\.start is NaN, not a finite"),
    (lambda d: event(d).update(end=math.inf), r"events\[3\]\.end is Infinity, not a finite"),
    (lambda d: event(d).update(end=1e300), r"events\[3\]\.end is 1e\+300, outside"),
    (lambda d: event(d).update(rank=True), r"events\[3\]\.rank must be an integer, got true"),
    (lambda d: event(d).update(rank=0.5), r"events\[3\]\.rank must be an integer, got 0\.5"),
    (lambda d: event(d).update(step="0"), r"events\[3\]\.step must be an integer, got \"0\""),
    (lambda d: event(d).update(start="0"), r"events\[3\]\.start must be a number"),
    (lambda d: event(d).update(kind="X"), r"events\[3\]\.kind is \"X\", not one of F, B, I, W"),
    (lambda d: event(d).update(kind=None), r"events\[3\]\.kind is null"),
    (lambda d: event(d).update(step=2), r"events\[3\]\.step is 2, outside 0\.\.1"),
    (lambda d: event(d).update(microbatch=9), r"events\[3\]\.microbatch is 9"),
    (lambda d: event(d).update(replica=2), r"events\[3\]\.replica is 2, outside 0\.\.1 \(meta\.dp"),
    (lambda d: event(d).update(stage=10**30), r"events\[3\]\.stage is an integer of 100 bits"),
    (lambda d: event(d).pop("end"), r"events\[3\] has no 'end' field"),
    (lambda d: event(d).update(note=1), r"events\[3\] has an unknown field \"note\""),
    (lambda d: d["events"].__setitem__(3, [0, 1]), r"events\[3\] must be an object"),
    (lambda d: d.update(events={}), r"events must be a list of rows"),
    (lambda d: d["comms"][0].update(kind="F"), r"comms\[0\]\.kind is \"F\", not one of activ"),
    (lambda d: d["comms"][0].update(bytes=-1), r"comms\[0\]\.bytes is -1"),
    (lambda d: d["comms"][0].update(dst_rank=7), r"comms\[0\]\.dst_rank is 7"),
    (lambda d: d["cache"][0].update(layer=99), r"cache\[0\]\.layer is 99, not a layer of meta"),
    (lambda d: d["grad_ready"][0].update(time=-0.5), r"grad_ready\[0\]\.time is -0\.5"),
    (lambda d: d["optimizer"][0].update(end=-1), r"optimizer\[0\]\.end is -1"),
    (lambda d: d["allreduce"][0].update(start=99), r"allreduce\[0\] ends \(.*\) before it starts"),
    (lambda d: d["meta"].update(ranks=0), r"meta\.ranks is 0, outside 1\.\.100000 \(MAX_RANKS\)"),
    (lambda d: d["meta"].update(ranks=10**9), r"meta\.ranks is 1000000000, outside"),
    (lambda d: d["meta"].update(ranks="2"), r"meta\.ranks must be an integer, got \"2\""),
    (lambda d: d["meta"].update(microbatches=-3), r"meta\.microbatches is -3"),
    (lambda d: d["meta"].update(chunks=0), r"meta\.chunks is 0"),
    (lambda d: d["meta"].update(steps=math.nan), r"meta\.steps must be an integer, got NaN"),
    (lambda d: d["meta"].update(dp=None), r"meta\.dp must be an integer, got null"),
    (lambda d: d["meta"].update(stages=3), r"stage_to_rank has 2 entries, but meta\.stages is 3"),
    (lambda d: d["meta"].update(stage_to_rank=[0, 5]), r"meta\.stage_to_rank\[1\] is 5"),
    (lambda d: d["meta"].update(stage_to_rank="01"), r"meta\.stage_to_rank must be a list"),
    (lambda d: d["meta"].update(time_unit="min"), r"meta\.time_unit is \"min\", not one of s, u"),
    (lambda d: d["meta"].update(model=3), r"meta\.model must be a string"),
    (lambda d: d["meta"].update(microbatch_rows=-1), r"meta\.microbatch_rows is -1"),
    (lambda d: d["meta"]["layers"][1].update(stage=4), r"meta\.layers\[1\]\.stage is 4"),
    (lambda d: d["meta"]["layers"][1].update(rank=1), r"meta\.layers\[1\]\.rank is 1, but meta"),
    (lambda d: d["meta"]["layers"][1].update(index=0), r"meta\.layers\[1\]\.index is 0, which"),
    (lambda d: d["meta"]["layers"][1].update(has_params=1), r"has_params must be true or false"),
    (lambda d: d["meta"]["layers"][1].pop("name"), r"meta\.layers\[1\] has no 'name' field"),
    (lambda d: d["meta"]["layers"].append(7), r"meta\.layers\[4\] must be an object"),
    (lambda d: d.update(action_cpu=cpu_rows(cpu=-0.5)), r"action_cpu\[0\]\.cpu is -0\.5, outside"),
    (lambda d: d.update(action_cpu=cpu_rows(cpu="1")), r"action_cpu\[0\]\.cpu must be a number"),
    (lambda d: d.update(action_cpu=cpu_rows(kind="X")), r"action_cpu\[0\]\.kind is \"X\", not one"),
    (lambda d: d.update(action_cpu=cpu_rows(rank=5)), r"action_cpu\[0\]\.rank is 5, outside 0"),
    (lambda d: d.update(action_cpu={}), r"action_cpu must be a list of rows"),
    (lambda d: d.update(version=2), r"has Timeline schema version 2; pebblesim reads version 1"),
    (lambda d: d.update(version=True), r"has Timeline schema version true"),
    (lambda d: d.pop("version"), r"has Timeline schema version null"),
]


@pytest.mark.parametrize(("edit", "match"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_a_bad_value_is_one_sentence_naming_file_field_and_value(tmp_path, good, edit, match):
    doc = copy.deepcopy(good)
    edit(doc)
    refused(tmp_path, doc, match)


def test_from_dict_without_a_file_names_the_timeline(good):
    doc = copy.deepcopy(good)
    doc["events"][0]["end"] = -2.0
    with pytest.raises(PebbleError, match=r"^Timeline: events\[0\]\.end is -2\.0"):
        Timeline.from_dict(doc)
    with pytest.raises(PebbleError, match=r"^Timeline: meta\.ranks is 0"):
        Timeline(meta={"ranks": 0})


def test_an_absurd_rank_count_is_refused_before_anything_is_sized_by_it(tmp_path, good):
    doc = copy.deepcopy(good)
    doc["meta"]["ranks"] = 10**9
    doc["meta"]["stage_to_rank"] = []
    tracemalloc.start()
    refused(tmp_path, doc, f"outside 1..{MAX_RANKS} \\(MAX_RANKS\\)")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 * 2**20  # a table sized by 10**9 ranks would be gigabytes
    doc = copy.deepcopy(good)
    doc["meta"] = {"time_unit": "unit"}  # no ranks: rows are bounded by the limit instead
    doc["events"][0]["rank"] = 10**9
    refused(tmp_path, doc, r"events\[0\]\.rank is 1000000000, outside .* MAX_RANKS")


# ------------------------------------------------------------------ bad files
def test_files_that_are_not_timelines(tmp_path, good):
    cases = {
        "latin1.json": (
            json.dumps({"x": "é"}).replace("\\u00e9", "é").encode("latin-1"),
            "0xe9 at offset 7 is not UTF-8",
        ),
        "utf16.json": (json.dumps(good).encode("utf-16"), "looks like UTF-16"),
        "notjson.json": (b"{nope", r"not JSON: Expecting property name .* line 1, column 2"),
        "truncated.json": (json.dumps(good).encode()[:200], "not JSON"),
        "list.json": (b"[1, 2]", r"its JSON is a list, not an object"),
        "deep.json": (b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
        "digits.json": (b'{"version": 1' + b"1" * 5000 + b"}", "not a Timeline file"),
        "empty.json": (b"", "not JSON"),
    }
    for name, (raw, match) in cases.items():
        path = tmp_path / name
        path.write_bytes(raw)
        with pytest.raises(PebbleError, match=match) as info:
            Timeline.load(path)
        assert one_sentence(info.value).startswith(str(path)) or "no Timeline" in str(info.value)
    with pytest.raises(PebbleError, match=r"is a directory, not a Timeline file\.$"):
        Timeline.load(tmp_path)
    with pytest.raises(PebbleError, match=r"^no Timeline file at .*missing\.json\.$"):
        Timeline.load(tmp_path / "missing.json")
    with pytest.raises(PebbleError, match=r"/dev/null is a device or socket"):
        Timeline.load("/dev/null")


def test_a_utf8_byte_order_mark_is_read(tmp_path, good):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(good).encode())
    assert len(Timeline.load(path).events) == len(good["events"])


def test_an_oversized_file_is_refused_by_its_size(tmp_path):
    path = tmp_path / "big.json"
    with open(path, "wb") as handle:
        handle.truncate(MAX_JSON_BYTES + 1)  # sparse: no disk used
    with pytest.raises(PebbleError, match="over the .*-byte limit .*MAX_JSON_BYTES"):
        Timeline.load(path)


# ------------------------------------------------------------------ speed
def test_half_a_million_events_validate(good):
    """Correctness at size; how fast is ``benchmarks/timeline_load.py``'s job."""
    meta = {**good["meta"], "ranks": 8, "stages": 8, "stage_to_rank": list(range(8))}
    meta["microbatches"], meta["steps"], meta["dp"], meta["layers"] = 10_000, 1, 1, []
    n = 500_000
    events = [
        {"rank": i % 8, "stage": i % 8, "kind": "F", "microbatch": i % 10_000, "step": 0,
         "start": float(i), "end": float(i) + 0.5, "replica": 0}
        for i in range(n)
    ]  # fmt: skip
    doc = {"version": 1, "meta": meta, "events": events}
    timeline = Timeline.from_dict(doc)
    assert len(timeline.events) == n
    assert timeline.events[n - 1].start == float(n - 1)


# ------------------------------------------------------------------ mutation (hypothesis)
ODD_VALUES = [
    None, True, False, "x", "", -1, -0.5, 0.5, 0, 1e308, -1e308, 10**30, 2**63, math.nan,
    math.inf, -math.inf, [], {}, [0, 1], {"a": 1}, "é" * 50,
]  # fmt: skip


def paths_of(value, prefix=()) -> list[tuple]:
    """Every key/index path into a JSON document (the document itself excluded)."""
    out = []
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        out.append((*prefix, key))
        if isinstance(child, (dict, list)):
            out.extend(paths_of(child, (*prefix, key)))
    return out


def _parent(doc, path):
    for key in path[:-1]:
        try:
            doc = doc[key]
        except (KeyError, IndexError, TypeError):
            return None
    return doc if isinstance(doc, (dict, list)) else None


def mutate(doc, path, how: str, value) -> None:
    """Delete, retype or swap at ``path`` (a no-op where the path has gone)."""
    parent = _parent(doc, path)
    key = path[-1]
    if isinstance(parent, list):  # an earlier mutation may have made a list of an object
        if not isinstance(key, int) or not 0 <= key < len(parent):
            return
    elif parent is None or key not in parent:
        return
    if how == "delete":
        del parent[key]
    elif how == "swap" and isinstance(parent[key], dict) and {"start", "end"} <= set(parent[key]):
        row = parent[key]
        row["start"], row["end"] = row["end"], row["start"]
    else:
        parent[key] = value


def encoded(doc, how: str, cut: float) -> bytes:
    text = json.dumps(doc)  # NaN and Infinity as Python writes them
    if how == "utf-16":
        return text.encode("utf-16")
    if how == "latin-1":
        return text.replace("\\u00e9", "é").encode("latin-1", errors="replace")
    if how == "truncate":
        return text.encode()[: int(len(text) * cut)]
    return text.encode()


MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["delete", "retype", "retype", "swap"]),
        st.integers(0, 10**6),
        st.sampled_from(ODD_VALUES),
    ),
    min_size=1,
    max_size=3,
)
ENCODINGS = st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-16", "latin-1", "truncate"])


def mutated_file(base: dict, path, mutations, encoding: str, cut: float) -> None:
    doc = copy.deepcopy(base)
    paths = paths_of(base)
    for how, pick, value in mutations:
        mutate(doc, paths[pick % len(paths)], how, copy.deepcopy(value))
    path.write_bytes(encoded(doc, encoding, cut))


def loads_or_one_sentence(load, path) -> object | None:
    try:
        return load(path)
    except PebbleError as exc:
        one_sentence(exc)
        return None


FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(mutations=MUTATIONS, encoding=ENCODINGS, cut=st.floats(0.0, 1.0))
def test_a_mutated_timeline_loads_or_is_one_sentence(tmp_path, good, mutations, encoding, cut):
    path = tmp_path / "mutated.json"
    mutated_file(good, path, mutations, encoding, cut)
    timeline = loads_or_one_sentence(Timeline.load, path)
    if timeline is not None:  # what loads is safe to report on
        summary = timeline.summary()
        assert math.isfinite(summary.makespan) and math.isfinite(summary.bubble_fraction)
    os.remove(path)
