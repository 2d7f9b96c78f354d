"""Benchmark: the HTML viewer at the demo's size and at half a million actions: build time, page
size, and, with ``--browser``, how long headless chromium takes to draw it and to redraw a zoom.

Two runs, both predicted by the analytic executor with unit costs:

* demo: what ``pebblesim demo`` views, 1F1B on 4 ranks x 8 microbatches x 4 steps, predicted
  against "measured" (the same run twice: one page with both lanes);
* large: 1F1B on 64 ranks x 4096 microbatches (524,288 actions, over a million cache changes).

Build time is split into the data (the figures' data functions, as arrays), the figure as first
drawn (``viewer_page``: the level of detail of the whole run) and the HTML (the packed full data
included). The browser part needs Debian's chromium and chromium-driver and Selenium (WebGL runs
on the CPU: there is no GPU). It times the page from navigation until plotly has drawn it and
the next frame is painted ("first draw"), until the packed data is decoded, then zooms and pans
with ``Plotly.relayout`` and times each until the page's script has redrawn what is in view and
the next frame is painted. The machine's load average is printed beside the times: on a shared
machine they move with it. ``--screenshots DIR`` saves the page drawn and zoomed.

Run: python benchmarks/viewer.py [--size demo|large|both] [--ranks 64] [--microbatches 4096]
                                 [--model llama3-70b --hardware h100] [--browser] [--repeat 3]
                                 [--screenshots DIR] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.analytic.run_plan import simulate_plan  # noqa: E402
from simulator.run import CostSource, make_schedule, plan_run  # noqa: E402
from visualize.style import time_span  # noqa: E402
from visualize.viewer import PLOT_ID, viewer_page  # noqa: E402
from visualize.viewer_data import (  # noqa: E402
    action_boxes,
    gradient_spans,
    memory_steps,
    pebble_rows,
    pebble_spans,
)
from visualize.viewer_page import page_html  # noqa: E402

SHOWN = "requestAnimationFrame(() => { window.shownAt = performance.now(); });"
PLOT = f"document.getElementById('{PLOT_ID}')"
ZOOMS = (  # shares of the whole run: (name, from, to)
    ("zoom to 10%", 0.45, 0.55),
    ("pan by 5%", 0.50, 0.60),
    ("zoom to 1%", 0.5, 0.51),
    ("zoom to 0.1%", 0.5, 0.501),
    ("back to all", 0.0, 1.0),
)


def timed(what: str, work):
    started = time.perf_counter()
    result = work()
    print(f"  {what:<34} {time.perf_counter() - started:7.2f} s")
    return result


def build(name, ranks, microbatches, steps, pair, out: Path, model=None, hardware=None) -> None:
    costs = f"{model} on {hardware}" if hardware else "unit costs"
    print(f"{name}: 1f1b, {ranks} ranks x {microbatches} microbatches x {steps} step(s) "
          f"(analytic, {costs}){', viewed as a pair' if pair else ''}")  # fmt: skip
    schedule = make_schedule("1f1b", ranks, microbatches, steps=steps)
    plan = plan_run(schedule, model, steps=steps, costs=CostSource(hardware=hardware))
    timeline = timed("simulate", lambda: simulate_plan(plan))
    print(f"  {len(timeline.events):,} actions, {len(timeline.cache):,} cache changes")
    print("the data, each part alone:")
    rows = pebble_rows(timeline)
    timed("boxes with their bytes", lambda: action_boxes(timeline))
    spans = timed("pebble spans", lambda: pebble_spans(timeline, rows))
    grads = timed("gradient spans", lambda: gradient_spans(timeline, rows))
    timed("memory per rank", lambda: memory_steps(timeline, time_span(timeline)))
    print(
        f"  {len(spans.row):,} pebble spans, {len(grads.row):,} gradient spans on {len(rows)} rows"
    )
    print("the page:")
    started = time.perf_counter()
    timelines = [timeline, timeline] if pair else [timeline]
    page = timed("figure as first drawn (+ data)", lambda: viewer_page(timelines))
    html = timed("html with the packed data", lambda: page_html(page, PLOT_ID, SHOWN))
    out.write_text(html, encoding="utf-8")
    total = time.perf_counter() - started
    data = html[html.index(f'id="{PLOT_ID}-data">') : html.index("</script>", html.index(PLOT_ID))]
    print(f"  build total {total:.1f} s; {out} is {out.stat().st_size / 2**20:.1f} MiB "
          f"(packed data {len(data) / 2**20:.1f} MiB, plotly.js 4.6 MiB)")  # fmt: skip
    for on in page.layers:
        traces = page.figure.data[on.first : on.first + len(on.layer.kinds)]
        drawn = sum(int(np.isfinite(np.asarray(t.x, float)).sum()) // 3 for t in traces)
        print(f"  first view, {on.layer.panel}: {on.layer.count:,} segments, "
              f"{drawn:,} drawn one by one")  # fmt: skip


def driver(width: int = 1300, height: int = 2500):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    options.page_load_strategy = "none"  # navigation returns at once; the waits are below
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--enable-unsafe-swiftshader", "--use-angle=swiftshader",
                 f"--window-size={width},{height}", "--force-device-scale-factor=1"):  # fmt: skip
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    browser.command_executor.client_config.timeout = 600  # a busy page answers late
    browser.set_script_timeout(600)
    return browser


def wait_for(browser, expression: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, 600, poll_frequency=0.05).until(
        lambda d: d.execute_script(f"return {expression} || null;")
    )


def cpu(browser) -> float:
    """Seconds of CPU the page's main thread has used (the renderer's, from Chrome's
    DevTools): unlike the clock, it does not grow when other work shares the cores."""
    metrics = browser.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]
    return next(m["value"] for m in metrics if m["name"] == "ThreadTime")


def used(browser, before: float) -> float:
    after = cpu(browser)
    return after - before if after >= before else after  # a new renderer starts from 0


def load(browser, page: Path) -> dict:
    """Navigate to ``page``: first draw and data decoded (seconds after navigation, page
    clock), and the main thread's CPU until the first draw."""
    before = cpu(browser)
    browser.get(page.as_uri())
    shown = wait_for(browser, "window.shownAt") / 1000
    spent = used(browser, before)
    browser.execute_async_script("pebblesimLod.ready.then(() => arguments[0](1));")
    decoded = browser.execute_script("return pebblesimLod.decoded;") / 1000
    return {"shown": shown, "decoded": decoded, "cpu": spent}


def zoom(browser, span, low: float, high: float) -> dict:
    """Zoom the time axis to ``[low, high]`` of ``span``; the time until the page's script
    has redrawn it and the next frame is painted, and the main thread's CPU meanwhile."""
    width = span[1] - span[0]
    before = cpu(browser)
    result = browser.execute_async_script(
        "var done = arguments[2], g = " + PLOT + ", t = performance.now();"
        "Plotly.relayout(g, {'xaxis.range': [arguments[0], arguments[1]]})"
        ".then(() => pebblesimLod.request())"
        ".then(() => requestAnimationFrame(() => done({ms: performance.now() - t,"
        " render: pebblesimLod.lastRender, error: pebblesimLod.error})));",
        span[0] + low * width,
        span[0] + high * width,
    )
    result["cpu"] = used(browser, before)
    return result


def median(values) -> float:
    return statistics.median(values)


def browse(page: Path, repeat: int, shots: Path | None, name: str) -> None:
    browser = driver()
    browser.execute_cdp_cmd("Performance.enable", {"timeDomain": "threadTicks"})
    try:
        loads, zooms = [], {z[0]: [] for z in ZOOMS}
        for attempt in range(repeat):
            loads.append(load(browser, page))
            if shots and attempt == 0:
                browser.save_screenshot(str(shots / f"viewer-{name}.png"))
            span = browser.execute_script(f"return {PLOT}._fullLayout.xaxis.range.slice();")
            for label, low, high in ZOOMS:
                result = zoom(browser, span, low, high)
                if result["error"]:
                    raise RuntimeError(result["error"])
                zooms[label].append(result)
                if shots and attempt == 0 and label == "zoom to 0.1%":
                    browser.save_screenshot(str(shots / f"viewer-{name}-zoomed.png"))
        print(f"browser, median of {repeat} loads (load average {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} cores; CPU: the page's main thread):")  # fmt: skip
        shown = [r["shown"] for r in loads]
        print(f"  first draw    {median(shown):5.2f} s after navigation (min {min(shown):.2f}; "
              f"CPU {median(r['cpu'] for r in loads):.2f} s)")  # fmt: skip
        print(f"  data decoded  {median(r['decoded'] for r in loads):5.2f} s after navigation")
        for label, results in zooms.items():
            ms = [r["ms"] for r in results]
            counts = results[0]["render"]["counts"]["pipeline"]
            print(f"  {label:<13} {median(ms):5.0f} ms (min {min(ms):.0f}; CPU "
                  f"{1000 * median(r['cpu'] for r in results):.0f} ms, the script's part "
                  f"{median(r['render']['compute'] for r in results):.0f} ms); pipeline: "
                  f"{counts['drawn']:,} drawn, {counts['merged']:,} aggregated")  # fmt: skip
    finally:
        browser.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("demo", "large", "both"), default="both")
    parser.add_argument("--ranks", type=int, default=64, help="of the large run")
    parser.add_argument("--microbatches", type=int, default=4096, help="of the large run")
    parser.add_argument("--model", help="a model preset for the large run (e.g. llama3-70b)")
    parser.add_argument("--hardware", help="time it on this preset (e.g. h100), not unit costs")
    parser.add_argument("--browser", action="store_true", help="also time it in chromium")
    parser.add_argument("--repeat", type=int, default=3, help="page loads timed per size")
    parser.add_argument("--screenshots", type=Path, help="save the drawn pages here")
    parser.add_argument("--keep", type=Path, help="write the pages here (else a temporary folder)")
    args = parser.parse_args()
    if args.browser and not (shutil.which("chromium") and shutil.which("chromedriver")):
        sys.exit("--browser needs chromium and chromedriver (apt-get install chromium "
                 "chromium-driver).")  # fmt: skip
    folder = args.keep or Path(tempfile.mkdtemp(prefix="pebblesim-viewer-"))
    folder.mkdir(parents=True, exist_ok=True)
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    sizes = {"demo": (4, 8, 4, True), "large": (args.ranks, args.microbatches, 1, False)}
    for name, (ranks, microbatches, steps, pair) in sizes.items():
        if args.size not in (name, "both"):
            continue
        page = folder / f"viewer-{name}.html"
        model = (args.model, args.hardware) if name == "large" else (None, None)
        build(name, ranks, microbatches, steps, pair, page, *model)
        if args.browser:
            browse(page, args.repeat, args.screenshots, name)
        print()


if __name__ == "__main__":
    main()
