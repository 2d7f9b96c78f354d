"""The course's pages: a student version and a solutions version of each executed notebook.

Why two: a teacher hands the student version out, so it must show the exercises and their
checks but no answer, and keeps the solutions version. Both are built from one execution of
the solutions notebook (every cell runs only when the exercises are answered):

* the **solutions** page is that notebook as it ran;
* the **student** page takes each answer cell's source from the student copy
  (``tutorials/NN-*.ipynb``: ``name = None  # your answer here``) and drops the outputs of
  every cell tagged ``exercise-answer``, ``exercise-check`` or ``answer-shown`` (a later cell
  whose output would give an answer away). The check cells' code stays: the student runs it.

The HTML comes from nbconvert's ``lab`` template with the figures inlined as data URIs and no
script loaded from the network (require.js, MathJax and Mermaid are left out: the course uses
none of them), so a page is one self-contained file.
"""

from __future__ import annotations

import copy
import html
import logging
from dataclasses import dataclass

EXERCISE_ANSWER = "exercise-answer"
EXERCISE_CHECK = "exercise-check"
ANSWER_SHOWN = "answer-shown"
HIDDEN_FROM_STUDENTS = frozenset({EXERCISE_ANSWER, EXERCISE_CHECK, ANSWER_SHOWN})

VERSIONS = ("student", "solutions")  # the folders ``pebblesim tutorial`` writes
_HIDDEN_NOTE = {
    "output_type": "stream",
    "name": "stdout",
    "text": "(hidden in the student version: it shows an answer; run it after the exercise)\n",
}

_TEMPLATE = """\
{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{% block extra_css %}
<style>
.course-banner { font: 14px/1.5 system-ui, sans-serif; padding: 8px 14px; margin: 8px 0 16px;
                 border-radius: 4px; }
.course-banner.student { background: #eef5ff; border-left: 4px solid #4a7bd0; }
.course-banner.solutions { background: #fff4e5; border-left: 4px solid #d08a1e; }
</style>
{% endblock extra_css %}
{%- block body_header -%}
{{ super() }}
<div class="course-banner {{ resources.course_version }}">{{ resources.course_banner }}</div>
{%- endblock body_header -%}
"""

_BANNERS = {
    "student": (
        "Student version: the exercises are empty. Open <code>{notebook}</code> in Jupyter, "
        "write each answer in its cell and run the check cell below it: it raises "
        "<code>AssertionError</code> until the answer is right."
    ),
    "solutions": (
        "Solutions version: every exercise answered and checked ({seconds:.0f} s to run). "
        "For the teacher; hand out the student version."
    ),
}


def tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def student_notebook(executed, student):
    """The executed solutions notebook as a student sees it: answer cells from ``student``
    (the student copy, cell for cell the same notebook), and no outputs on the cells that
    would show an answer. ``executed`` is not changed."""
    if len(executed.cells) != len(student.cells):
        raise ValueError("the student copy and the solutions copy differ in their cells")
    page = copy.deepcopy(executed)
    for cell, theirs in zip(page.cells, student.cells, strict=True):
        marks = set(tags(cell))
        if EXERCISE_ANSWER in marks:
            cell.source = theirs.source
        if cell.cell_type == "code" and marks & HIDDEN_FROM_STUDENTS:
            cell.outputs = [_HIDDEN_NOTE] if ANSWER_SHOWN in marks else []
            cell.execution_count = None
    return page


@dataclass(frozen=True)
class PageInfo:
    """What a page's banner says: which version, the notebook to open, the run's seconds."""

    version: str
    notebook: str
    seconds: float


def notebook_html(nb, title: str, info: PageInfo) -> str:
    """One self-contained HTML page for ``nb`` (nbconvert, ``lab`` template)."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        extra_loaders=[DictLoader({"course.html.j2": _TEMPLATE})],
        template_file="course.html.j2",
        embed_images=True,
    )
    banner = _BANNERS[info.version].format(
        notebook=html.escape(info.notebook), seconds=info.seconds
    )
    resources = {
        "metadata": {"name": f"{title} ({info.version} version)"},
        "course_version": info.version,
        "course_banner": banner,
    }
    quiet = exporter.log.level  # nbconvert warns of each figure's missing alt text
    exporter.log.setLevel(logging.ERROR)
    try:
        body, _ = exporter.from_notebook_node(nb, resources=resources)
    finally:
        exporter.log.setLevel(quiet)
    return body


def index_html(entries: list[tuple[str | None, str, str]]) -> str:
    """The course's front page: per part, links to its student and solutions pages (``page``
    is the file name inside each version's folder, None if not rendered) and a note."""
    items = []
    for page, title, note in entries:
        name = html.escape(title)
        if page is None:
            items.append(f"<li>{name} <span class='note'>({html.escape(note)})</span></li>")
            continue
        links = " · ".join(f"<a href='{v}/{html.escape(page)}'>{v}</a>" for v in VERSIONS)
        items.append(f"<li>{name}: {links}</li>")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<title>pebblesim course</title><style>body{font:16px/1.6 system-ui,sans-serif;"
        "max-width:860px;margin:40px auto;padding:0 24px} li{margin:10px 0}"
        " .note{color:#888}</style></head><body>\n<h1>The pebblesim course</h1>\n"
        "<p>Each part has a <b>student</b> version (the exercises empty, their checks in "
        "place; the notebooks to hand out are beside the pages in <code>student/</code>) and "
        "a <b>solutions</b> version (every exercise answered and checked).</p>\n"
        f"<ul>\n{chr(10).join(items)}\n</ul>\n</body></html>\n"
    )
