"""The course notebooks in tutorials/: stored clean, run green, and their exercises really check.

* Every notebook, student copy and solutions copy, is stored without outputs or execution counts.
* A student copy (``tutorials/NN-*.ipynb``) differs from its solutions copy
  (``tutorials/solutions/``) only in its answer cells: there each ``name = value  # your answer
  here`` line reads ``name = None  # your answer here``.
* Every solutions notebook runs top to bottom on a fresh kernel of this interpreter, through
  ``simulator.cli.tutorial.notebook_session`` (what ``pebblesim tutorial`` uses). A notebook with
  a Ray run starts its own local Ray and shuts it down: the kernel is another process, so this
  session's Ray is not its Ray.
* Afterwards, in the same kernel, each exercise's check cell raises AssertionError for the
  student copy's empty answer and for known wrong answers, and passes for the solution.
"""

from __future__ import annotations

import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from nbclient.exceptions import CellExecutionError  # noqa: E402

from simulator.cli.tutorial import (  # noqa: E402
    COMING,
    _require_jupyter_libraries,
    notebook_session,
    render_tutorials,
)
from simulator.cli.tutorial_pages import student_notebook  # noqa: E402
from simulator.errors import PebbleError  # noqa: E402
from tests.deadlines import scaled  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = ROOT / "tutorials"
SOLUTIONS = TUTORIALS / "solutions"
NAMES = sorted(p.name for p in SOLUTIONS.glob("*.ipynb"))
CELL_TIMEOUT = scaled(180)  # seconds for one cell on a quiet machine, scaled to this one
ANSWER_LINE = re.compile(r"^(\s*[A-Za-z_]\w*\s*=\s*)(.+?)(\s*# your answer here.*)$", re.M)

# Per notebook, per exercise (in order): answer cells that must fail the check.
WRONG_ANSWERS = {
    "01-backprop-is-local.ipynb": [
        # the add gate's local gradients alone, without the upstream -3; q's and z's roles swapped
        ["grads_xyz = [1.0, 1.0, 3.0]", "grads_xyz = [3.0, 3.0, -3.0]"],
        # max treated as add; the multiply's upstream forgotten
        ["grads_max = [-3.0, -3.0, 4.0]", "grads_max = [1.0, 0.0, 4.0]"],
        ["cached_bytes = 160", "cached_bytes = 120"],  # the outputs' bytes; one microbatch only
    ],
    "02-one-model-pebble-graph.ipynb": [
        ["peak_pebbles = 8", "peak_pebbles = 6"],  # one microbatch; the weighted layers' two each
        ["l0_ready = 6", "l0_ready = 8"],  # m = 2's answer; the backwards alone
        ['first_layer = 0\nallreduce_during = "0B1"', 'first_layer = 6\nallreduce_during = "0B0"'],
    ],
    "03-pipelines.ipynb": [
        ["gpipe_makespan = 30", "gpipe_makespan = 48"],  # one rank's work 3m; 3(m + p)
        ["rank2_inflight = 16", "rank2_inflight = 2"],  # GPipe's m; the rank's index
        ["smallest_m = 27", "smallest_m = 29"],  # 27 gives exactly 10%, which is not under
    ],
    "04-trading-pebbles-for-time.ipynb": [
        ["every2_step = 3.0", "every2_step = 3.4"],  # no recompute; half of full's recompute
        # Table 2 without recompute at t=4; 74 sbh split four ways; full's 2 sbh
        ["selective_t4 = 26", "selective_t4 = 18.5", "selective_t4 = 2"],
        # 4: Chen's sqrt(16), one microbatch's balance; 3: the best with one microbatch; 1: full
        ["best_k = 4", "best_k = 3", "best_k = 1"],
    ],
    "05-a-real-model.ipynb": [
        # twice m = 16's bytes, as if 1F1B grew with m; GPipe's rank 1 at m = 16
        ["rank1_gib = 23.85", "rank1_gib = 63.59"],
        # 3: weights, gradients and optimizer state alone; 7: GPipe's answer; 8: all the GPUs
        ["smallest_p = 3", "smallest_p = 7", "smallest_p = 8"],
        ["gpipe_p = 4", "gpipe_p = 8", "gpipe_p = 16"],  # 1F1B's answer; the node; m
    ],
    "06-red-and-blue-pebbles.ipynb": [
        # rank 1's blocks 3 and 4 sent (its backward follows its forward); the Linear inputs
        # only; all of rank 1's pebbles sent, the loss block's too
        ["sent_gib = [3, 2]", "sent_gib = [1.5, 0]", "sent_gib = [3, 3]"],
        # one way only, bytes / gap; one copy per forward, bytes / t_F; the H100's own PCIe
        ["smallest_gbs = 77.1", "smallest_gbs = 245.3", "smallest_gbs = 50"],
        # every rank that sends; the last rank; the first
        ["waiting_ranks = {0, 1, 2}", "waiting_ranks = {3}", "waiting_ranks = {0}"],
    ],
}


def read(path: Path):
    return nbformat.read(path, as_version=4)


def student_version(source: str) -> str:
    """An answer cell as the student copy stores it: every answer set to None."""
    return ANSWER_LINE.sub(lambda m: f"{m.group(1)}None{m.group(3)}", source)


def tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def exercises(nb) -> list[tuple[int, int]]:
    """(answer cell index, check cell index) per exercise, in order."""
    pairs = []
    for index, cell in enumerate(nb.cells):
        if "exercise-answer" in tags(cell):
            check = next(
                j for j in range(index + 1, len(nb.cells)) if "exercise-check" in tags(nb.cells[j])
            )
            pairs.append((index, check))
    return pairs


@pytest.mark.parametrize(
    "path",
    sorted(TUTORIALS.glob("*.ipynb")) + sorted(SOLUTIONS.glob("*.ipynb")),
    ids=lambda p: str(p.relative_to(TUTORIALS)),
)
def test_notebook_is_stored_without_outputs(path):
    for index, cell in enumerate(read(path).cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {index + 1} has outputs"
            assert cell.execution_count is None, f"cell {index + 1} has an execution count"
            assert "execution" not in cell.metadata, f"cell {index + 1} has execution timings"


def test_every_notebook_has_a_student_copy_a_solution_and_exercise_checks():
    assert NAMES, "no notebooks in tutorials/solutions"
    assert sorted(p.name for p in TUTORIALS.glob("*.ipynb")) == NAMES
    numbers = [int(name.split("-")[0]) for name in NAMES]
    assert not set(numbers) & set(COMING), "a part both shipped and listed as coming"
    assert sorted([*numbers, *COMING]) == list(range(1, len(numbers) + len(COMING) + 1))
    with_exercises = {name for name in NAMES if exercises(read(SOLUTIONS / name))}
    assert with_exercises == set(WRONG_ANSWERS), "list wrong answers for every exercise"
    for name in with_exercises:
        assert len(exercises(read(SOLUTIONS / name))) == len(WRONG_ANSWERS[name]), name
        assert len(WRONG_ANSWERS[name]) >= 3, f"{name}: a part has at least three exercises"


@pytest.mark.parametrize("name", NAMES)
def test_student_copy_differs_from_the_solution_only_in_its_answers(name):
    student, solution = read(TUTORIALS / name), read(SOLUTIONS / name)
    assert len(student.cells) == len(solution.cells)
    answers = {a for a, _ in exercises(solution)}
    for index, (mine, theirs) in enumerate(zip(student.cells, solution.cells, strict=True)):
        where = f"{name}, cell {index + 1}"
        assert (mine.cell_type, tags(mine)) == (theirs.cell_type, tags(theirs)), where
        if index in answers:
            assert "# your answer here" in mine.source, where
            assert mine.source == student_version(theirs.source), where
            assert mine.source != theirs.source, f"{where}: the student copy holds the answer"
        else:
            assert mine.source == theirs.source, where


@dataclass
class Run:
    """One solutions notebook executed, then its check cells probed in the same kernel."""

    seconds: float = 0.0
    error: str | None = None
    probes: list[tuple[str, str, str | None]] = field(default_factory=list)  # label, source, ename


def probe(client, answer: str, check: str) -> str | None:
    """Run an answer cell, then the check cell: None if both pass, else the exception name."""
    try:
        client.execute_cell(nbformat.v4.new_code_cell(answer), 0)
        client.execute_cell(nbformat.v4.new_code_cell(check), 0)
    except CellExecutionError as exc:
        return exc.ename
    return None


def execute(name: str) -> Run:
    solution, student = read(SOLUTIONS / name), read(TUTORIALS / name)
    run = Run()
    with (
        tempfile.TemporaryDirectory() as workdir,
        notebook_session(solution, Path(workdir), CELL_TIMEOUT) as client,
    ):
        started = time.perf_counter()
        for index, cell in enumerate(solution.cells):
            try:
                client.execute_cell(cell, index)
            except CellExecutionError as exc:
                run.error = f"cell {index + 1} raised {exc.ename}: {exc.evalue}\n{exc}"
                return run
        run.seconds = time.perf_counter() - started
        for number, (answer, check) in enumerate(exercises(solution)):
            check_source = solution.cells[check].source
            tries = [("student copy", student.cells[answer].source)]
            tries += [("wrong answer", wrong) for wrong in WRONG_ANSWERS[name][number]]
            tries += [("solution", solution.cells[answer].source)]
            for label, source in tries:
                run.probes.append((label, source, probe(client, source, check_source)))
    return run


@pytest.fixture(scope="module")
def executed():
    """name -> Run, each notebook executed once for all the tests below."""
    runs: dict[str, Run] = {}

    def get(name: str) -> Run:
        if name not in runs:
            runs[name] = execute(name)
        return runs[name]

    return get


@pytest.mark.parametrize("name", NAMES)
def test_solutions_notebook_runs_top_to_bottom(executed, name):
    run = executed(name)
    assert run.error is None, run.error
    print(f"{name}: {run.seconds:.1f} s")  # timed by benchmarks/tutorials.py, never asserted


@pytest.mark.parametrize("name", [n for n in NAMES if n in WRONG_ANSWERS])
def test_check_cells_fail_on_wrong_answers_and_pass_on_the_solution(executed, name):
    run = executed(name)
    assert run.error is None, run.error
    assert run.probes
    for label, source, outcome in run.probes:
        expected = None if label == "solution" else "AssertionError"
        assert outcome == expected, f"{label} {source!r}: the check gave {outcome or 'a pass'}"


# ---------------------------------------------------------------- pebblesim tutorial (HTML)


def test_a_missing_library_is_one_sentence():
    with pytest.raises(PebbleError, match=r"^the tutorials need no_such_module_here, which is"):
        _require_jupyter_libraries(("nbformat", "no_such_module_here"))


def test_unknown_tutorial_is_one_sentence():
    with pytest.raises(PebbleError, match="there is no tutorial 9; the course has parts 1, 2, 3"):
        render_tutorials([9], Path("unused"))


def test_render_writes_student_and_solutions_pages_and_an_index(tmp_path):
    seen = []
    out = tmp_path / "html"
    written = render_tutorials([1], out, progress=seen.append)
    assert seen == ["01-backprop-is-local.ipynb"]
    assert sorted(str(p.relative_to(out)) for p in written) == [
        "index.html",
        "solutions/01-backprop-is-local.html",
        "solutions/01-backprop-is-local.ipynb",
        "student/01-backprop-is-local.html",
        "student/01-backprop-is-local.ipynb",
    ]
    assert read(out / "student" / NAMES[0]) == read(TUTORIALS / NAMES[0])  # handed out clean
    solutions = (out / "solutions" / "01-backprop-is-local.html").read_text()
    student = (out / "student" / "01-backprop-is-local.html").read_text()
    for page in (solutions, student):
        assert "1. Backprop is local" in page
        assert page.count("data:image/png;base64,") >= 2  # the two circuits, inlined
        assert not re.search(r"<script[^>]+src=|<link[^>]+href=[\"']http", page)  # no network
        assert "Traceback" not in page
    assert "Solutions version" in solutions and "Student version" in student
    assert "Right: 288 bytes" in solutions  # an exercise, answered and checked
    assert "Right: 288" not in student and "Right: [" not in student  # no check's output
    assert student.count("None</span>") >= 3 or student.count(">None<") >= 3  # empty answers
    index = (out / "index.html").read_text()
    assert "href='student/01-backprop-is-local.html'" in index
    assert "href='solutions/01-backprop-is-local.html'" in index
    assert "(not rendered yet: pebblesim tutorial 2)" in index
    assert not list(out.glob(".pebblesim-staging-*"))


@pytest.mark.parametrize("name", NAMES)
def test_student_page_shows_no_answer(name):
    """The student page of a notebook, built from its solutions run: the student copy's answer
    cells, and no output on an answer, a check or a cell tagged ``answer-shown``."""
    solution, student = read(SOLUTIONS / name), read(TUTORIALS / name)
    for cell in solution.cells:  # stand-in outputs where a run would leave them
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", text="Right: an answer")]
    page = student_notebook(solution, student)
    hidden = {"exercise-answer", "exercise-check", "answer-shown"}
    for index, cell in enumerate(page.cells):
        if set(tags(cell)) & hidden:
            shown = "".join(o.get("text", "") for o in cell.outputs)
            assert "Right" not in shown, f"{name}, cell {index + 1} shows its output"
            assert not any("data" in o for o in cell.outputs), f"{name}, cell {index + 1}"
        if "exercise-answer" in tags(cell):
            assert cell.source == student.cells[index].source
    assert all(c.outputs for c in solution.cells if c.cell_type == "code")  # not changed
    assert any(c.outputs for c in page.cells if c.cell_type == "code")  # the rest is shown


def test_a_scaled_cell_timeout_that_is_not_whole_is_accepted(tmp_path):
    """On a busy machine the suite scales its deadlines (390.4 s); nbclient takes whole seconds
    only, and once refused every notebook of a loaded CI run."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1 + 1")])
    with notebook_session(nb, tmp_path, 390.39) as client:
        assert client.timeout == 391
        client.execute_cell(nb.cells[0], 0)
