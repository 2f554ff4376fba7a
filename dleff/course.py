"""`make run`: execute every lesson and write the rendered course to build/.

Each lesson runs top to bottom in a fresh kernel; a failing cell stops that lesson
(later cells depend on it) but not the others. The run ends with a summary and a
non-zero exit status if any lesson failed.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from tqdm.auto import tqdm

from dleff.devices import machine_summary
from dleff.paths import course_root


@dataclass
class LessonRun:
    path: Path
    seconds: float
    failed_cell: int | None = None
    error: str = ""
    title: str = ""
    picture: str = ""

    @property
    def ok(self) -> bool:
        return self.failed_cell is None


def lessons(folder: Path) -> list[Path]:
    return sorted(folder.glob("[0-9][0-9]-*.ipynb"))


def execute(path: Path, timeout: int = 1800, progress: bool = True,
            notebook: nbformat.NotebookNode | None = None) -> tuple[nbformat.NotebookNode, LessonRun]:
    """Run one lesson in a fresh python3 kernel, cell by cell, with a progress bar.

    `notebook`: an edited copy of the lesson to run instead of the file (tests put reference
    answers into the exercise cells); it still runs in the lesson's folder.
    """
    notebook = notebook if notebook is not None else nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    run = LessonRun(path=path, seconds=0.0)
    start = time.perf_counter()
    cells = tqdm(notebook.cells, desc=path.stem, unit="cell", disable=not progress, leave=True)
    with client.setup_kernel():
        for index, cell in enumerate(cells):
            try:
                client.execute_cell(cell, index)
            except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
                run.failed_cell = index
                message = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()  # tracebacks carry ANSI colours
                run.error = message.splitlines()[-1] if message else repr(error)
                break
    run.seconds = time.perf_counter() - start
    return notebook, run


def render(notebook: nbformat.NotebookNode, target: Path) -> None:
    """One self-contained HTML page: images embedded, no scripts or fonts from the network."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", embed_images=True)
    # MathJax and require.js come from a CDN by default; the course must open offline.
    exporter.mathjax_url = ""
    exporter.require_js_url = ""
    exporter.widget_renderer_url = ""
    body, _ = exporter.from_notebook_node(notebook)
    target.write_text(strip_remote_assets(body))


def strip_remote_assets(page: str) -> str:
    """Drop scripts and stylesheets that load from the network (the page works without them)."""
    import re

    def keep(script: re.Match) -> str:
        return "" if re.search(r"(src=|from\s*|import\s*\(?)[\"']https?://", script.group(0)) else script.group(0)

    page = re.sub(r"<script\b.*?</script>", keep, page, flags=re.DOTALL)
    return re.sub(r"<link[^>]*\bhref=[\"']https?://[^>]*>", "", page)


def title_and_picture(notebook: nbformat.NotebookNode) -> tuple[str, str]:
    """The lesson's first heading as plain text, and its first plot as a data URL ('' if none)."""
    title = next((line.lstrip("# ").strip().replace("`", "") for cell in notebook.cells if cell.cell_type == "markdown"
                  for line in cell.source.splitlines() if line.startswith("# ")), "")
    picture = next((output["data"]["image/png"] for cell in notebook.cells if cell.cell_type == "code"
                    for output in cell.get("outputs", []) if "image/png" in output.get("data", {})), "")
    return title, f"data:image/png;base64,{picture}" if picture else ""


def write_index(runs: list[LessonRun], build: Path) -> Path:
    rows = []
    for run in runs:
        name = run.path.stem
        status = "ran in" if run.ok else f"FAILED at cell {run.failed_cell} ({html.escape(run.error)}) after"
        picture = f"<img src='{run.picture}' alt='first plot of {name}'>" if run.picture else ""
        rows.append(f"<li><a href='{name}.html'>{html.escape(run.title or name)}</a> "
                    f"<small>{status} {run.seconds:.0f} s</small><br>{picture}</li>")
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>dleff: training efficiency</title>"
        "<style>body{font-family:sans-serif;max-width:50em;margin:2em auto}li{margin:1em 0}"
        "img{max-width:22em;border:1px solid #ddd}</style></head><body>"
        "<h1>dleff: deep-learning training efficiency, measured</h1>"
        f"<p class='machine'><b>This machine:</b> {html.escape(machine_summary().removeprefix('This machine: '))}</p>"
        "<p>Every number and plot in these pages was measured on the machine above when the course was run."
        " Quizzes appear without their answers: run the notebooks to check yours.</p>"
        f"<h2>Sections</h2><ol>{''.join(rows)}</ol></body></html>"
    )
    index = build / "index.html"
    index.write_text(page)
    return index


def run_course(folder: Path, build: Path, only: list[str] | None = None) -> list[LessonRun]:
    build.mkdir(parents=True, exist_ok=True)
    paths = [p for p in lessons(folder) if not only or any(p.stem.startswith(o) for o in only)]
    runs = []
    for number, path in enumerate(paths, 1):
        print(f"[{number}/{len(paths)}] {path.name}", flush=True)
        notebook, run = execute(path)
        nbformat.write(notebook, build / path.name)
        render(notebook, build / f"{path.stem}.html")
        run.title, run.picture = title_and_picture(notebook)
        runs.append(run)
        print(f"    {'ok' if run.ok else 'FAILED at cell ' + str(run.failed_cell)} in {run.seconds:.0f} s",
              flush=True)
    write_index(runs, build)
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run"])
    parser.add_argument("lessons", nargs="*", help="only lessons whose name starts with these (e.g. 01)")
    args = parser.parse_args(argv)
    mode = "fast settings (DLEFF_FAST)" if os.environ.get("DLEFF_FAST") else "full settings"
    print(f"Running the course with {mode}. {machine_summary()}", flush=True)
    root = course_root()
    build = root / "build"
    runs = run_course(root / "notebooks", build, only=args.lessons)
    failed = [run for run in runs if not run.ok]
    print(f"\n{len(runs) - len(failed)} of {len(runs)} lessons ran; course written to {build / 'index.html'}")
    for run in failed:
        print(f"FAILED {run.path.name}, cell {run.failed_cell}: {run.error}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
