"""The course as students meet it: JupyterLab in a real (headless) browser.

One test walks the student's path end to end: open the first lesson, run all cells, answer a
quiz box wrongly and then rightly and read the feedback, see the lesson's plot, then open the
graded quiz, write an answer, save it, and find the answer in the file on disk.

It drives Debian's Chromium through Playwright (`tools/install_browser.sh` installs it; `make
test` runs that first). It skips only where no browser can be had: no Chromium, and no apt-get or no root to install it.
Screenshots go to build/screenshots/.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "build" / "screenshots"
CHROMIUM = Path(os.environ.get("DLEFF_CHROMIUM", "/usr/bin/chromium"))
# Without the background-networking switches Chromium's own connections to Google stall or
# are refused on a closed network; QUIC and the GPU are of no use headless.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
LESSON = "01-devices.ipynb"
GRADED_QUIZ = "quizzes/01-devices/01-devices-quiz.ipynb"
QUESTION = "threads-beyond-cores"
ANSWER_VARIABLE = "answer_oversubscribed"
# Any well-formed letter: this test checks that an answer is written and saved, not whether it is right
# (graded answers differ per student and are judged only at grading time).
GRADED_LETTER = "B"

# Generous for a loaded 2-core machine, in milliseconds (Playwright's unit).
START_LAB_S = 90
PAGE_MS = 90_000
RUN_ALL_MS = 240_000
FEEDBACK_MS = 30_000


# ---------------------------------------------------------------- the browser


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Chromium's path, installed by tools/install_browser.sh if it is missing."""
    if not CHROMIUM.exists():
        if shutil.which("apt-get") is None:
            pytest.skip(f"no browser: {CHROMIUM} is missing and apt-get is not available to install it "
                        "(install Chromium and set DLEFF_CHROMIUM to its path to run this test)")
        result = subprocess.run(["bash", str(ROOT / "tools" / "install_browser.sh")],
                                capture_output=True, text=True)
        if not CHROMIUM.exists() and "needs root" in result.stdout:
            pytest.skip(f"no browser: {result.stdout.strip()}")
        assert CHROMIUM.exists(), (f"tools/install_browser.sh did not install {CHROMIUM}:\n"
                                   f"{result.stdout}\n{result.stderr}")
    return CHROMIUM


# ---------------------------------------------------------------- JupyterLab


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _api(base: str, token: str, path: str, method: str = "GET", timeout: float = 5):
    request = urllib.request.Request(f"{base}{path}", method=method,
                                     headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
    return json.loads(body) if body else None


def _descendants(pid: int) -> dict[int, bytes]:
    """Processes started by `pid`, at any depth, with their command lines (kernels run in
    sessions of their own, so they are not in the server's process group)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = [], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        found += frontier
    return {child: _cmdline(child) for child in found}


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _write_settings(folder: Path) -> None:
    """Lab settings for a quiet, deterministic page: every cell in the DOM, no news pop-ups."""
    settings = {
        # JupyterLab only keeps visible cells in the page by default; the test looks for
        # outputs further down, so render them all.
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
            {"fetchNews": "false", "checkForUpdates": False},
    }
    for name, values in settings.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on a copy of the lessons (at its root) and the quizzes, in fast mode."""
    home = tmp_path_factory.mktemp("lab")
    root = home / "course"
    shutil.copytree(ROOT / "notebooks", root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copytree(ROOT / "quizzes", root / "quizzes", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    _write_settings(home / "settings")
    token = secrets.token_hex(24)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DLEFF_FAST": "1",
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "PYTHONUNBUFFERED": "1",
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    log_path = home / "jupyterlab.log"
    log = log_path.open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser",
         f"--port={port}", "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )

    def log_tail() -> str:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])

    try:
        deadline = time.monotonic() + START_LAB_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with status {server.returncode}:\n{log_tail()}")
            try:
                _api(base, token, "/api/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer on {base} within {START_LAB_S} s:\n{log_tail()}")
                time.sleep(0.5)
        yield {"base": base, "token": token, "root": root, "log": log_tail}
    finally:
        _stop(server, base, token)
        log.close()


def _stop(server: subprocess.Popen, base: str, token: str) -> None:
    """Shut the kernels and the server down; kill whatever of ours is left."""
    children = _descendants(server.pid)
    try:
        for kernel in _api(base, token, "/api/kernels") or []:
            _api(base, token, f"/api/kernels/{kernel['id']}", method="DELETE", timeout=15)
        _api(base, token, "/api/shutdown", method="POST")
    except OSError:
        pass
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
    for pid, cmdline in children.items():  # what is left of ours, one by one
        if cmdline and _cmdline(pid) == cmdline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# ---------------------------------------------------------------- helpers


def _right_answer(question_id: str) -> str:
    """The plain answer, read from the instructors' bank source (never written in this test)."""
    source = json.loads((ROOT / "solutions" / "banks" / "01-devices.json").read_text())
    return next(entry["answer"] for entry in source["questions"] if entry["id"] == question_id)


def _choices(question_id: str) -> list[str]:
    bank = json.loads((ROOT / "quizzes" / "banks" / "01-devices.json").read_text())
    return list(next(entry["choices"] for entry in bank["questions"] if entry["id"] == question_id))


def _code_cell_number(path: Path, grade_id: str) -> int:
    """Position, among the notebook's code cells, of the nbgrader cell `grade_id`."""
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    return next(i for i, c in enumerate(cells) if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id)


def _wait_kernel_idle(page, timeout: int) -> None:
    """Until the notebook's kernel is connected and idle, and no cell waits to run.

    The status bar says "<kernel> | Idle" only once a kernel is connected; the toolbar's
    execution indicator alone reads idle before that, and a Run All issued then asks for a
    kernel in a dialog instead of running.
    """
    page.wait_for_function(
        """() => {
            const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            if (!panel) return false;
            const kernel = [...document.querySelectorAll('.jp-StatusBar-TextItem')]
                .some(item => (item.title || '').startsWith('Change kernel')
                              && /\\| Idle$/.test(item.textContent.trim()));
            const indicator = panel.querySelector('.jp-Notebook-ExecutionIndicator');
            const waiting = [...panel.querySelectorAll('.jp-InputPrompt')]
                .some(prompt => prompt.textContent.includes('*'));
            return kernel && indicator && indicator.getAttribute('data-status') === 'idle' && !waiting;
        }""",
        timeout=timeout,
    )


def _open(page, lab, path: str):
    page.goto(f"{lab['base']}/lab/tree/{path}?reset&token={lab['token']}", timeout=PAGE_MS)
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    panel.locator(".jp-Cell").first.wait_for(timeout=PAGE_MS)
    _wait_kernel_idle(page, PAGE_MS)
    return panel


def _shot(locator, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    locator.scroll_into_view_if_needed()
    locator.screenshot(path=str(SCREENSHOTS / name))


# ---------------------------------------------------------------- the test


def test_student_path_in_the_browser(chromium, lab):
    from playwright.sync_api import expect, sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in [*SCREENSHOTS.glob("0[0-9]-*.png"), *SCREENSHOTS.glob("failure*")]:
        old.unlink()
    right = _right_answer(QUESTION)
    wrong = next(key for key in _choices(QUESTION) if key != right)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.set_default_timeout(PAGE_MS)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))

            # -- the lesson: run all cells as a student does, from the menu
            lesson = _open(page, lab, LESSON)
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
            page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
            # Locators given to `has=` are relative to the cell, so they start from `page`.
            quiz_cell = lesson.locator(".jp-CodeCell").filter(
                has=page.locator(".widget-vbox", has_text=f"Quiz (01-devices/{QUESTION})"))
            quiz_box = quiz_cell.locator(".widget-vbox")
            expect(quiz_box).to_have_count(1, timeout=RUN_ALL_MS)
            _wait_kernel_idle(page, RUN_ALL_MS)

            tracebacks = lesson.locator(".jp-OutputArea-output").filter(has_text="Traceback")
            assert tracebacks.count() == 0, f"a lesson cell failed:\n{tracebacks.first.inner_text()}"
            prompts = lesson.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
            assert prompts and all(re.search(r"\[\d+\]", p) for p in prompts), f"cells left unrun: {prompts}"

            # -- the quiz box: a wrong answer, then the right one
            check = quiz_box.get_by_role("button", name="Check")
            feedback = quiz_box.locator(".widget-html").last
            quiz_box.get_by_role("radio", name=re.compile(rf"^{wrong}\.")).check()
            check.click()
            expect(feedback).to_contain_text("Not quite", timeout=FEEDBACK_MS)
            _shot(quiz_cell, "01-lesson-quiz-wrong.png")

            quiz_box.get_by_role("radio", name=re.compile(rf"^{right}\.")).check()
            check.click()
            expect(feedback).to_contain_text("Right", timeout=FEEDBACK_MS)
            assert "Not quite" not in feedback.inner_text()
            _shot(quiz_cell, "02-lesson-quiz-right.png")

            # -- the scaling plot, drawn by matplotlib as a PNG output
            plot_cell = lesson.locator(".jp-CodeCell").filter(has=page.locator(".jp-RenderedImage img")).last
            plot = plot_cell.locator(".jp-RenderedImage img")
            expect(plot).to_be_visible(timeout=FEEDBACK_MS)
            width = plot.evaluate("img => img.complete ? img.naturalWidth : 0")
            assert width > 100, f"the plot image did not load (natural width {width})"
            _shot(plot_cell, "03-lesson-plot.png")

            # -- the graded quiz: write an answer in place of the stub and save
            quiz = _open(page, lab, GRADED_QUIZ)
            saved = lab["root"] / GRADED_QUIZ
            answer_cell = quiz.locator(".jp-CodeCell").nth(_code_cell_number(saved, ANSWER_VARIABLE))
            expect(answer_cell).to_contain_text("NotImplementedError")
            answer_cell.locator(".cm-content").click()
            page.keyboard.press("Control+A")
            page.keyboard.type(f'{ANSWER_VARIABLE} = "{GRADED_LETTER}"')
            page.keyboard.press("Escape")
            page.keyboard.press("Control+S")

            deadline = time.monotonic() + FEEDBACK_MS / 1000
            source = None
            while time.monotonic() < deadline:
                try:
                    notebook = json.loads(saved.read_text())
                except json.JSONDecodeError:  # caught mid-write
                    notebook = {"cells": []}
                cell = next((c for c in notebook["cells"]
                             if c["metadata"].get("nbgrader", {}).get("grade_id") == ANSWER_VARIABLE), None)
                source = "".join(cell["source"]) if cell else None
                if source and "NotImplementedError" not in source:
                    break
                time.sleep(0.5)
            assert source == f'{ANSWER_VARIABLE} = "{GRADED_LETTER}"', f"saved answer cell holds {source!r}"
            expect(page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty")).to_have_count(0)
            _shot(answer_cell, "04-graded-quiz-saved.png")
            page.screenshot(path=str(SCREENSHOTS / "05-graded-quiz-page.png"))
            assert not errors, f"errors in the page: {errors}"
        except BaseException:
            # What the page showed when it went wrong, and the server's log, for the report.
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "failure.png"))
            (SCREENSHOTS / "failure.html").write_text(page.content())
            (SCREENSHOTS / "failure-jupyterlab.log").write_text(lab["log"]())
            raise
        finally:
            browser.close()
