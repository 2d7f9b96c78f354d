"""Benchmark: the HTML viewer at half a million actions (build time, file size, and, with
``--browser``, how long headless chromium takes to show it and to redraw a zoom).

The run is 1F1B on 64 ranks x 4096 microbatches (524,288 actions, over a million cache
changes), predicted by the analytic executor with unit costs; nothing is written but the page.
Build time is split into the data (the figures' data functions, as arrays), the figure and the
HTML. The browser part needs Debian's chromium and chromium-driver and Selenium; it times the
page from navigation until plotly has drawn it, then zooms and pans with ``Plotly.relayout``
and times each until the next animation frame (the redraw a person waits for).

Run: python benchmarks/viewer.py [--ranks 64] [--microbatches 4096] [--out FILE.html] [--browser]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.analytic.run_plan import simulate_plan  # noqa: E402
from simulator.run import make_schedule, plan_run  # noqa: E402
from visualize.style import time_span  # noqa: E402
from visualize.viewer import PLOT_ID, viewer_figure  # noqa: E402
from visualize.viewer_data import (  # noqa: E402
    action_boxes,
    gradient_spans,
    memory_steps,
    pebble_rows,
    pebble_spans,
)

SHOWN = "window.shownAt = performance.now();"  # runs once plotly has drawn the page


def timed(what: str, work):
    started = time.perf_counter()
    result = work()
    print(f"  {what:<34} {time.perf_counter() - started:7.2f} s")
    return result


def build(ranks: int, microbatches: int, out: Path) -> None:
    print(f"1f1b, {ranks} ranks x {microbatches} microbatches (analytic, unit costs)")
    plan = plan_run(make_schedule("1f1b", ranks, microbatches))
    timeline = timed("simulate", lambda: simulate_plan(plan))
    print(f"  {len(timeline.events):,} actions, {len(timeline.cache):,} cache changes")
    print("the data, each part alone:")
    rows = pebble_rows(timeline)
    timed("boxes with their bytes", lambda: action_boxes(timeline))
    timed("pebble spans", lambda: pebble_spans(timeline, rows))
    timed("gradient spans", lambda: gradient_spans(timeline, rows))
    timed("memory per rank", lambda: memory_steps(timeline, time_span(timeline)))
    print("the page:")
    started = time.perf_counter()
    figure = timed("figure (data included)", lambda: viewer_figure([timeline]))
    html = timed(
        "html",
        lambda: figure.to_html(
            include_plotlyjs=True, full_html=True, div_id=PLOT_ID, post_script=SHOWN
        ),
    )
    out.write_text(html, encoding="utf-8")
    total = time.perf_counter() - started
    print(f"  build total {total:.1f} s; {out} is {out.stat().st_size / 2**20:.1f} MiB")


def browse(page: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    options.page_load_strategy = "none"  # navigation returns at once; the wait is below
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--enable-unsafe-swiftshader", "--use-angle=swiftshader",
                 "--window-size=1300,1900"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.command_executor.client_config.timeout = 3600  # a busy page answers late
    driver.set_script_timeout(3600)
    plot = f"document.getElementById('{PLOT_ID}')"
    try:
        started = time.perf_counter()
        driver.get(page.as_uri())
        WebDriverWait(driver, 3600, poll_frequency=1).until(
            lambda d: d.execute_script("return window.shownAt || null;")
        )
        shown = driver.execute_script("return window.shownAt;") / 1000
        print(
            f"browser: drawn {shown:.1f} s after navigation (page clock); "
            f"{time.perf_counter() - started:.1f} s until it answered"
        )
        span = driver.execute_script(f"return {plot}._fullLayout.xaxis.range.slice();")
        width = span[1] - span[0]
        for name, low, high in (
            ("zoom to 10%", 0.45, 0.55),
            ("pan", 0.50, 0.60),
            ("zoom to 0.1%", 0.5, 0.501),
            ("back to all", 0.0, 1.0),
        ):
            elapsed = driver.execute_async_script(
                "var done = arguments[2], g = " + plot + ", t = performance.now();"
                "Plotly.relayout(g, {'xaxis.range': [arguments[0], arguments[1]]})"
                ".then(() => requestAnimationFrame(() => done(performance.now() - t)));",
                span[0] + low * width,
                span[0] + high * width,
            )
            print(f"  {name:<14} redrawn in {elapsed:7.0f} ms")
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=64)
    parser.add_argument("--microbatches", type=int, default=4096)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "viewer.html")
    parser.add_argument("--browser", action="store_true", help="also time it in chromium")
    args = parser.parse_args()
    build(args.ranks, args.microbatches, args.out)
    if args.browser:
        if not (shutil.which("chromium") and shutil.which("chromedriver")):
            sys.exit("--browser needs chromium and chromedriver (apt-get install chromium "
                     "chromium-driver).")  # fmt: skip
        browse(args.out)


if __name__ == "__main__":
    main()
