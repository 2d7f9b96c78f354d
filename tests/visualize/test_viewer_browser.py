"""The HTML viewer in a real headless browser (Debian's chromium and chromium-driver, Selenium).

It loads the page from disk, checks what plotly rendered (panels, legend, slider, a box's
pixels in its kind's colour), zooms by dragging across the pipeline chart
(all three time panels follow), hovers one box (the tooltip names the action), plays the time
slider, and saves a screenshot to look at. Skipped, with the reason, where the browser, its
driver or Selenium is missing. Every wait is on a condition in the page, never a sleep.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from simulator.analytic.run_plan import simulate_plan
from simulator.run import make_schedule, plan_run
from visualize.style import kind_color
from visualize.viewer import PLOT_ID, TITLES, viewer_html, viewer_page
from visualize.viewer_lod import plan

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

MODEL = "transformer:layers=4,hidden=64,heads=4,seq=16,vocab=96"
RANKS, MICROBATCHES = 4, 8
WAIT = 180  # seconds: an upper bound on a slow, shared machine, not a delay
SCREENSHOT = Path(tempfile.gettempdir()) / "pebblesim-viewer-zoomed.png"
LARGE_SCREENSHOT = Path(tempfile.gettempdir()) / "pebblesim-viewer-large-zoomed.png"
PLOT = f"document.getElementById('{PLOT_ID}')"


def _browser() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("chromium and chromedriver are not installed (apt-get install chromium "
                    "chromium-driver)")  # fmt: skip
    return browser, driver


@pytest.fixture(scope="module")
def timeline():
    return simulate_plan(plan_run(make_schedule("1f1b", RANKS, MICROBATCHES), MODEL))


@pytest.fixture(scope="module")
def browser(timeline, tmp_path_factory):
    binary, driver_path = _browser()
    page = tmp_path_factory.mktemp("viewer") / "viewer.html"
    page.write_text(viewer_html([timeline]), encoding="utf-8")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--enable-unsafe-swiftshader",  # WebGL on the CPU (plotly's own): there is no GPU
        "--use-angle=swiftshader",
        "--window-size=1300,1900",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(page.as_uri())
        WebDriverWait(driver, WAIT).until(
            lambda d: d.execute_script(
                f"var g = {PLOT}; return !!(g && g._fullLayout && g._fullLayout._plots"
                " && window.pebblesimLod && pebblesimLod.firstDraw);"
            )
        )
        yield driver
    finally:
        driver.quit()


def layout_value(driver, expression: str):
    return driver.execute_script(f"var g = {PLOT}; return {expression};")


def box_position(driver, time: float, lane: float) -> tuple[float, float]:
    """Pixels of (time, lane) on the pipeline chart, from the plot's top-left corner."""
    return tuple(
        driver.execute_script(
            f"var L = {PLOT}._fullLayout, x = L.xaxis, y = L.yaxis;"
            "return [x._offset + x.l2p(arguments[0]), y._offset + y.l2p(arguments[1])];",
            time,
            lane,
        )
    )


def move_to(driver, px: float, py: float) -> ActionChains:
    """Actions that move the pointer to (px, py) of the plot (Selenium offsets from the centre)."""
    plot = driver.find_element("id", PLOT_ID)
    size = plot.size
    return ActionChains(driver).move_to_element_with_offset(
        plot, int(px - size["width"] / 2), int(py - size["height"] / 2)
    )


def hover(driver, box) -> str:
    """Hover the middle of ``box`` (an event on rank 1), check the point hovered is that
    action, and return the tooltip's text."""
    driver.execute_script(
        f"window.hovered = null; {PLOT}.on('plotly_hover', e => "
        "{ window.hovered = e.points[0].customdata; });"
    )
    px, py = box_position(driver, (box.start + box.end) / 2, 1)
    move_to(driver, px, py).perform()
    WebDriverWait(driver, WAIT).until(lambda d: d.execute_script("return window.hovered;"))
    rank, stage, microbatch = driver.execute_script("return window.hovered;")[:3]
    assert (rank, stage, microbatch) == (1, box.stage, box.microbatch)
    return driver.execute_script(
        f"return Array.from({PLOT}.querySelectorAll('.hovertext')).map(e => e.textContent)"
        ".join(' ');"
    )


def test_the_page_renders_every_panel(browser):
    texts = browser.execute_script(
        f"var g = {PLOT}; return Array.from(g.querySelectorAll('.legendtext, .annotation-text,"
        " .slider-group .slider-label, .updatemenu-button text')).map(e => e.textContent);"
    )
    for expected in ("F forward", "B backward", "weight gradient ready", "rank 0", "▶ play"):
        assert any(expected in text for text in texts), expected
    titles = browser.execute_script(
        f"return Array.from({PLOT}.querySelectorAll('.annotation-text')).map(e => e.textContent);"
    )
    titles = titles[: len(TITLES)]  # then each panel's note (what it shows at this zoom)
    assert [t.split(":")[0] for t in titles] == [t.split(":")[0] for t in TITLES]
    assert layout_value(browser, "g._fullLayout.xaxis2.matches") == "x"
    assert layout_value(browser, "g.querySelectorAll('.slider-container').length") == 1


def test_the_boxes_are_drawn_in_their_colour(browser, timeline):
    from PIL import Image

    first = min((e for e in timeline.events if e.rank == 0), key=lambda e: e.start)
    px, py = box_position(browser, (first.start + first.end) / 2, 0)
    plot = browser.find_element("id", PLOT_ID).rect
    shot = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
    pixel = shot.getpixel((int(plot["x"] + px), int(plot["y"] + py)))
    colour = kind_color(first.kind).lstrip("#")
    expected = tuple(int(colour[i : i + 2], 16) for i in (0, 2, 4))
    assert max(abs(a - b) for a, b in zip(pixel, expected, strict=True)) <= 12, (pixel, expected)


def test_zoom_drags_all_time_panels_and_hover_names_the_action(browser, timeline):
    span = layout_value(browser, "g._fullLayout.xaxis.range.slice()")
    left, _ = box_position(browser, span[0] + 0.2 * (span[1] - span[0]), 0)
    right, middle = box_position(browser, span[0] + 0.45 * (span[1] - span[0]), 1.5)
    move_to(browser, left, middle).click_and_hold().move_by_offset(
        int((right - left) / 2), 0
    ).move_by_offset(int((right - left) / 2), 0).release().perform()
    WebDriverWait(browser, WAIT).until(
        lambda d: layout_value(d, "g._fullLayout.xaxis.range[1]") < span[1] * 0.6
    )
    zoomed = layout_value(browser, "g._fullLayout.xaxis.range.slice()")
    assert zoomed[1] - zoomed[0] < 0.4 * (span[1] - span[0])
    for axis in ("xaxis2", "xaxis3"):
        assert layout_value(browser, f"g._fullLayout.{axis}.range.slice()") == pytest.approx(zoomed)

    inside = [e for e in timeline.events if e.rank == 1 and zoomed[0] < e.start < e.end < zoomed[1]]
    box = max(inside, key=lambda e: e.end - e.start)
    text = hover(browser, box)
    assert f"{box.stage}{box.kind}{box.microbatch}" in text and "cached" in text
    browser.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000


def test_play_moves_the_cursor_through_the_run(browser):
    browser.execute_script(f"Plotly.relayout({PLOT}, {{'xaxis.autorange': true}});")
    end = layout_value(browser, "g.layout.shapes[g.layout.shapes.length - 1].x0")
    play = [
        b
        for b in browser.find_elements("css selector", f"#{PLOT_ID} .updatemenu-button")
        if "play" in b.text
    ][0]
    ActionChains(browser).move_to_element(play).click().perform()
    veil = "g.layout.shapes[g.layout.shapes.length - 1].x0"
    WebDriverWait(browser, WAIT).until(lambda d: 0 < layout_value(d, veil) < end)
    WebDriverWait(browser, WAIT).until(lambda d: layout_value(d, veil) == pytest.approx(end))


# A run too large to draw box by box: 8 ranks x 1024 microbatches, 16,384 actions on ~900
# pixels. These tests load it in the same browser, after the small page's tests.
LARGE_RANKS, LARGE_MICROBATCHES = 8, 1024


@pytest.fixture(scope="module")
def large(browser, tmp_path_factory):
    timeline = simulate_plan(plan_run(make_schedule("1f1b", LARGE_RANKS, LARGE_MICROBATCHES)))
    page = tmp_path_factory.mktemp("viewer") / "large.html"
    page.write_text(viewer_html([timeline]), encoding="utf-8")
    browser.get(page.as_uri())
    WebDriverWait(browser, WAIT).until(
        lambda d: d.execute_script("return !!(window.pebblesimLod && pebblesimLod.decoded);")
    )
    return timeline


def notes(driver) -> list[str]:
    texts = driver.execute_script(
        f"return Array.from({PLOT}.querySelectorAll('.annotation-text')).map(e => e.textContent);"
    )
    return texts[len(TITLES) :]


def test_a_large_run_first_shows_aggregated_columns_and_the_script_agrees(browser, large):
    assert notes(browser)[0].startswith("aggregated per pixel: 16,384 actions")
    layer = viewer_page([large]).layers[0].layer
    span = layout_value(browser, "g._fullLayout.xaxis.range.slice()")
    for low, high, columns in ((0.0, 1.0, 900), (0.3, 0.4, 500), (0.5, 0.502, 300)):
        t0, t1 = span[0] + low * (span[1] - span[0]), span[0] + high * (span[1] - span[0])
        expected = plan(layer, t0, t1, columns)
        got = browser.execute_script(
            "return pebblesimLod.plan('pipeline', arguments[0], arguments[1], arguments[2]);",
            t0, t1, columns,
        )  # fmt: skip
        assert (got["detail"], got["merged"], got["visible"]) == (
            len(expected.detail), expected.merged, expected.visible,
        )  # fmt: skip
        busy = np.array(got["busy"])  # float32 times in the page: shares agree to 1e-3
        assert np.abs(busy - expected.shares.sum(axis=1)).max() < 1e-3


def test_zooming_in_draws_each_action_and_its_hover_names_the_microbatch(browser, large):
    renders = browser.execute_script("return pebblesimLod.renders;")
    span = layout_value(browser, "g._fullLayout.xaxis.range.slice()")
    left, middle = box_position(browser, span[0] + 0.40 * (span[1] - span[0]), 1)
    right, _ = box_position(browser, span[0] + 0.46 * (span[1] - span[0]), 1)
    move_to(browser, left, middle).click_and_hold().move_by_offset(
        int((right - left) / 2), 0
    ).move_by_offset(int((right - left) / 2), 0).release().perform()
    WebDriverWait(browser, WAIT).until(
        lambda d: (
            d.execute_script("return pebblesimLod.renders;") > renders
            and d.execute_script("return pebblesimLod.lastRender.counts.pipeline.merged;") == 0
        )
    )
    zoomed = layout_value(browser, "g._fullLayout.xaxis.range.slice()")
    drawn = browser.execute_script("return pebblesimLod.lastRender.counts.pipeline;")
    inside = [e for e in large.events if zoomed[0] < e.end and e.start < zoomed[1]]
    assert drawn["drawn"] == drawn["visible"] == len(inside)
    assert notes(browser)[0] == f"each of the {len(inside):,} actions in view drawn"

    box = max(
        (e for e in inside if e.rank == 1 and zoomed[0] < e.start < e.end < zoomed[1]),
        key=lambda e: e.end - e.start,
    )
    text = hover(browser, box)
    assert f"{box.stage}{box.kind}{box.microbatch}" in text
    assert f"microbatch {box.microbatch}" in text
    browser.save_screenshot(str(LARGE_SCREENSHOT))
