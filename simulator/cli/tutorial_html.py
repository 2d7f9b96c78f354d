"""A small HTML writer for executed notebooks: what ``pebblesim tutorial`` needs, no more.

Why not nbconvert: it brings a template engine, a Markdown converter and a sanitizer for what
here is one page layout. The course's Markdown uses a small subset (headings, paragraphs,
bullet and numbered lists, fenced code, ``code``, **bold**, *italic*, links); outputs are
text streams, PNG figures (inlined as data URIs, so a page is one self-contained file), plain
text results and errors. Code is highlighted with Pygments when it is installed (it comes with
IPython).
"""

from __future__ import annotations

import html
import re

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_LIST_ITEM = re.compile(r"^(\s*)([-*]|\d+\.)\s+(.*)$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")

CSS = """
body { font: 16px/1.55 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f;
       max-width: 1040px; margin: 0 auto; padding: 24px 32px 64px; background: #fff; }
header.page { color: #666; font-size: 13px; border-bottom: 1px solid #ddd;
              padding-bottom: 8px; margin-bottom: 16px; }
h1 { font-size: 30px; margin: 8px 0 12px; } h2 { font-size: 23px; margin-top: 34px; }
h3 { font-size: 18px; margin-top: 24px; }
code { font: 14px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; background: #f3f3f5;
       padding: 1px 4px; border-radius: 3px; }
pre { font: 13.5px/1.45 ui-monospace, "DejaVu Sans Mono", monospace; margin: 0;
      white-space: pre-wrap; word-break: break-word; }
.cell { margin: 12px 0; }
.input { background: #f7f7f9; border: 1px solid #e1e1e6; border-left: 4px solid #4a7bd0;
         border-radius: 4px; padding: 8px 12px; position: relative; }
.input.exercise { border-left-color: #d08a1e; background: #fffaf1; }
.prompt { position: absolute; right: 8px; top: 4px; color: #999; font-size: 11px; }
.output { padding: 6px 12px 6px 16px; border-left: 4px solid transparent; }
.output pre { color: #333; }
.output pre.stderr { color: #8a5a00; background: #fff8e6; }
.output pre.error { color: #a40000; background: #fff0f0; padding: 6px; }
.output img { max-width: 100%; height: auto; display: block; margin: 4px 0; }
.markdown { padding: 0 4px; }
.markdown pre { background: #f3f3f5; padding: 8px 12px; border-radius: 4px; }
footer { margin-top: 40px; color: #888; font-size: 13px; }
ul.toc { list-style: none; padding-left: 0; font-size: 18px; } ul.toc li { margin: 8px 0; }
"""


def inline_html(text: str) -> str:
    """Escape ``text`` and render inline Markdown: code spans, bold, italic and links. Code
    spans are set aside first, so bold or italic text may contain them (``**the `m`**``)."""
    spans: list[str] = []

    def keep(match: re.Match) -> str:
        spans.append(f"<code>{html.escape(match.group(1))}</code>")
        return f"\x00{len(spans) - 1}\x00"

    part = html.escape(re.sub(r"`([^`]+)`", keep, text), quote=False)
    part = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", part)
    part = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", part)
    part = re.sub(
        r"\[([^\]]+)\]\(([^)\s]+)\)",
        lambda m: f'<a href="{html.escape(m.group(2))}">{m.group(1)}</a>',
        part,
    )
    return re.sub("\x00(\\d+)\x00", lambda m: spans[int(m.group(1))], part)


def _list_html(lines: list[str], start: int) -> tuple[str, int]:
    """One list (bullets or numbers) starting at ``lines[start]``; continuation lines are
    indented. Returns the HTML and the index of the first line after the list."""
    ordered = _LIST_ITEM.match(lines[start]).group(2)[0].isdigit()
    items: list[list[str]] = []
    index = start
    while index < len(lines):
        line = lines[index]
        item = _LIST_ITEM.match(line)
        if item and not item.group(1):
            items.append([item.group(3)])
        elif line.strip() and line.startswith((" ", "\t")) and items:
            items[-1].append(line.strip())
        else:
            break
        index += 1
    tag = "ol" if ordered else "ul"
    body = "".join(f"<li>{inline_html(' '.join(item))}</li>" for item in items)
    return f"<{tag}>{body}</{tag}>", index


def markdown_html(text: str) -> str:
    """The course's Markdown subset as HTML (see the module docstring)."""
    lines = text.splitlines()
    blocks: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.strip():
            index += 1
        elif line.startswith("```"):
            end = next(
                (j for j in range(index + 1, len(lines)) if lines[j].startswith("```")), None
            )
            end = len(lines) if end is None else end
            code = html.escape("\n".join(lines[index + 1 : end]))
            blocks.append(f"<pre><code>{code}</code></pre>")
            index = end + 1
        elif heading := _HEADING.match(line):
            level = len(heading.group(1))
            blocks.append(f"<h{level}>{inline_html(heading.group(2))}</h{level}>")
            index += 1
        elif _LIST_ITEM.match(line) and not _LIST_ITEM.match(line).group(1):
            block, index = _list_html(lines, index)
            blocks.append(block)
        else:
            paragraph = []
            while index < len(lines) and lines[index].strip():
                if paragraph and (
                    lines[index].startswith(("```", "#")) or _interrupts(lines[index])
                ):
                    break
                paragraph.append(lines[index].strip())
                index += 1
            blocks.append(f"<p>{inline_html(' '.join(paragraph))}</p>")
    return "\n".join(blocks)


def _interrupts(line: str) -> bool:
    """Does a list start here, ending the paragraph above? A bullet does; a number only as
    ``1.`` (CommonMark's rule: a wrapped line that begins "15." is still the paragraph)."""
    item = _LIST_ITEM.match(line)
    return bool(item) and not item.group(1) and item.group(2) in ("-", "*", "1.")


def _highlighter():
    """(highlight(source) -> HTML, CSS) with Pygments, or plain escaping without it."""
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer
    except ImportError:
        return html.escape, ""
    formatter = HtmlFormatter(nowrap=True, style="default")
    lexer = PythonLexer()
    return (lambda source: highlight(source, lexer, formatter)), formatter.get_style_defs(".input")


def output_html(output) -> str:
    """One cell output: a stream, a figure, a plain-text result or an error."""
    kind = output.get("output_type")
    if kind == "stream":
        name = output.get("name", "stdout")
        return f'<pre class="{name}">{html.escape(_ANSI.sub("", output.get("text", "")))}</pre>'
    if kind == "error":
        trace = _ANSI.sub("", "\n".join(output.get("traceback", [])))
        text = trace or f"{output.get('ename')}: {output.get('evalue')}"
        return f'<pre class="error">{html.escape(text)}</pre>'
    data = output.get("data", {})
    if "image/png" in data:
        png = "".join(data["image/png"].split())
        return f'<img alt="figure" src="data:image/png;base64,{png}">'
    if "image/svg+xml" in data:
        return f'<div class="svg">{data["image/svg+xml"]}</div>'
    if "text/plain" in data:
        return f"<pre>{html.escape(_ANSI.sub('', data['text/plain']))}</pre>"
    return ""


def cell_html(cell, highlight) -> str:
    if cell.cell_type == "markdown":
        return f'<div class="cell markdown">{markdown_html(cell.source)}</div>'
    if cell.cell_type != "code":
        return ""
    tags = cell.get("metadata", {}).get("tags", [])
    exercise = " exercise" if any(t.startswith("exercise") for t in tags) else ""
    count = cell.get("execution_count")
    prompt = f'<span class="prompt">[{count}]</span>' if count else ""
    outputs = "".join(output_html(o) for o in cell.get("outputs", []))
    source = f'<div class="input{exercise}">{prompt}<pre>{highlight(cell.source)}</pre></div>'
    return f'<div class="cell code">{source}<div class="output">{outputs}</div></div>'


def _page(title: str, header: str, body: str, extra_css: str = "") -> str:
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<title>{html.escape(title)}</title>\n<style>{CSS}{extra_css}</style>\n</head>\n"
        f"<body>\n<header class='page'>{header}</header>\n{body}\n"
        "<footer>pebblesim course · rendered by <code>pebblesim tutorial</code></footer>\n"
        "</body>\n</html>\n"
    )


def notebook_html(nb, title: str, source: str = "", seconds: float | None = None) -> str:
    """A whole executed notebook as one self-contained HTML page."""
    highlight, css = _highlighter()
    ran = f", executed in {seconds:.1f} s" if seconds is not None else ""
    header = (
        f"<a href='index.html'>pebblesim course</a> · {html.escape(source)}{ran}"
        " · exercises shown answered"
    )
    body = "\n".join(cell_html(cell, highlight) for cell in nb.cells)
    return _page(title, header, body, css)


def index_html(entries: list[tuple[str | None, str, str]]) -> str:
    """The course's table of contents: one (page file name or None, title, note) per part;
    a part without a page is listed without a link, with its note."""
    items = []
    for page, title, note in entries:
        text = html.escape(title)
        if page:
            text = f"<a href='{html.escape(page)}'>{text}</a>"
        if note:
            text += f" <em>({html.escape(note)})</em>"
        items.append(f"<li>{text}</li>")
    body = (
        "<h1>pebblesim: a course in pipeline-parallel training</h1>\n"
        f"<ul class='toc'>{''.join(items)}</ul>"
    )
    return _page("pebblesim course", "pebblesim course", body)
