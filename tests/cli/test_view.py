"""``pebblesim view``: it writes the viewer page, and refuses bad input in one sentence
(the page itself is tested in ``tests/visualize/test_viewer.py`` and in a browser)."""

from __future__ import annotations

import pytest

from simulator.cli import main
from simulator.timeline import Timeline
from tests.visualize.synthetic import gpipe_timeline
from tests.visualize.test_viewer import page_figure
from visualize.viewer import PLOT_ID

P, M = 3, 4


def test_view_command_writes_the_page(tmp_path, capsys):
    source = tmp_path / "run.json"
    gpipe_timeline(P, M).save(source)
    assert main(["view", str(source)]) == 0
    written = tmp_path / "run.html"
    assert capsys.readouterr().out.strip() == str(written)
    page = written.read_text()
    assert page_figure(page)["layout"]["title"]["text"].startswith("pebblesim")
    assert f'id="{PLOT_ID}-data"' in page and "pebblesimLod" in page  # the run, to zoom into
    target = tmp_path / "pair.html"
    assert main(["view", str(source), str(source), "-o", str(target)]) == 0
    assert "predicted against measured" in target.read_text()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-o", "x.png"], "is not an .html file name"),
        (["{src}", "{src}"], "view takes one Timeline, or two"),
        (["-o", "{src}"], "is not an .html file name"),
    ],
)
def test_view_command_refuses_in_one_sentence(tmp_path, capsys, extra, message):
    source = tmp_path / "run.json"
    gpipe_timeline(P, M).save(source)
    argv = ["view", str(source), *(a.format(src=source) for a in extra)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_view_command_refuses_a_timeline_without_events(tmp_path, capsys):
    source = tmp_path / "empty.json"
    Timeline(meta={"schedule": "gpipe", "ranks": 1}).save(source)
    assert main(["view", str(source)]) == 1
    assert "holds no compute events to view" in capsys.readouterr().err
