"""`make run`'s plumbing: a failing lesson is named and the others still run."""

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from dleff import course


def write_lesson(path, *sources):
    notebook = new_notebook(cells=[new_code_cell(s) for s in sources])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)


def test_failure_is_reported_and_other_lessons_still_render(tmp_path):
    lessons, build = tmp_path / "notebooks", tmp_path / "build"
    lessons.mkdir()
    write_lesson(lessons / "01-good.ipynb", "print('hello')")
    write_lesson(lessons / "02-bad.ipynb", "x = 1", "raise ValueError('boom')", "print('never')")
    runs = course.run_course(lessons, build)
    assert [r.ok for r in runs] == [True, False]
    assert runs[1].failed_cell == 1 and "boom" in runs[1].error
    index = (build / "index.html").read_text()
    assert "01-good.html" in index and "02-bad.html" in index and "FAILED at cell 1" in index and "\x1b[" not in index
    assert "CPU cores" in index
    assert "hello" in (build / "01-good.html").read_text()


def test_remote_scripts_and_styles_are_removed():
    page = ('<script src="https://cdn.example/require.js"></script><script>local()</script>'
            '<script type="module">import m from "https://cdn.example/m.mjs"</script>'
            '<link rel="stylesheet" href="https://fonts.example/css"><link rel="icon" href="data:,">')
    cleaned = course.strip_remote_assets(page)
    assert "https://" not in cleaned
    assert "<script>local()</script>" in cleaned and 'href="data:,"' in cleaned


def test_index_title_is_the_first_heading_as_plain_text():
    notebook = new_notebook(cells=[nbformat.v4.new_markdown_cell("Intro\n\n# 04 · Using `torch.compile`\n\n# later")])
    assert course.title_and_picture(notebook) == ("04 · Using torch.compile", "")
