"""`SealedExecute`: nbgrader's Execute, with hidden checks judged outside the kernel.

Redefining `dleff.quiz`, built-ins or IPython's error handling cannot turn a wrong
answer into points (see `checks`). A kernel that dies or a loop that ignores
interrupts stops the run of *that* notebook only, keeps the points earned before it,
and says why in the student's feedback.
"""

from __future__ import annotations

import ast
import json
import os
import time
from pathlib import Path

import nbformat
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.v4 import new_markdown_cell, new_output
from nbgrader.preprocessors import Execute
from traitlets import Bool, Integer, default

from dleff.quiz import GRADED_STUDENT_ENV
from dleff_instructor import sandbox, warm
from dleff_instructor.checks import Note, split_hidden
from dleff_instructor.repair import REPAIRS_KEY

NOTE_CELL_ID = "dleff-grading-note"


def _error(name: str, message: str):
    return new_output("error", ename=name, evalue=message, traceback=[f"{name}: {message}"])


MEMORY_NOTE = ("Cell {index} asked for more memory than a submission may use ({gib:g} GiB, the grader's "
               "memory limit), so it failed; the other cells were graded.")


class SealedExecute(Execute):
    """nbgrader's Execute, with hidden checks judged outside the kernel and crashes contained.

    Each notebook's kernel runs in its own `sandbox.Sandbox` unless `sandboxed` is off
    (`make autograde UNSAFE=1`). The submission's student id is `self.student` while it runs.
    """

    sandboxed = Bool(True, help="Run each submission's kernel in a bubblewrap sandbox.").tag(config=True)
    notebook_timeout = Integer(600, help="Seconds one notebook may run in all.").tag(config=True)
    memory_gib = Integer(4, help="Memory a submission may allocate beyond the imports (GiB).").tag(config=True)
    warm_kernels = Bool(True, help="Fork each kernel from a server that has imported the quizzes' modules, one "
                                   "per student (see `warm`), where the grader grades a student's quizzes "
                                   "together.").tag(config=True)

    @default("shutdown_kernel")
    def _kill_when_done(self):
        return "immediate"  # a graded kernel has nothing to save: a graceful exit only costs a second or two

    def preprocess(self, nb, resources=None, km=None):
        # the kernel started below inherits this: a quiz whose id cell was left empty (JupyterHub)
        # shows the submission folder's variant, as the student saw it
        os.environ[GRADED_STUDENT_ENV] = (resources or {}).get("nbgrader", {}).get("student", "")
        self._stopped = ""
        self._notes: list[str] = list(nb.metadata.pop(REPAIRS_KEY, []))  # slips repaired before grading
        self._resources = resources or {}
        self._times = {"start": 0.0, "cells": 0.0, "judging": 0.0}
        self._deadline = time.monotonic() + self.notebook_timeout
        self._cell_timeout = self.timeout
        began = time.perf_counter()
        nb, resources = super().preprocess(nb, resources, km)
        self._times["total"] = time.perf_counter() - began
        self._record_times()
        if self._notes:
            note = new_markdown_cell("**Grading note.** " + " ".join(self._notes))
            note.id = NOTE_CELL_ID
            nb.cells.insert(0, note)
        return nb, resources

    @property
    def student(self) -> str | None:
        """The id of the student whose notebook is running (nbgrader passes it in resources)."""
        return self._resources.get("nbgrader", {}).get("student")

    def create_kernel_manager(self):
        from dleff.paths import course_root

        root = course_root()
        quiz_id = self._resources.get("nbgrader", {}).get("assignment")
        folder = root / "quizzes" / quiz_id if quiz_id else None
        name = self._resources.get("nbgrader", {}).get("notebook", "submission") + ".ipynb"
        limits = sandbox.Limits(memory=self.memory_gib * sandbox.GIB)
        bwrap = sandbox.check_available() if self.sandboxed else None
        kernels = warm.kernels_for(self.student or "", root, limits, bwrap) if self.warm_kernels else None
        if kernels is not None:
            kernels.prepare(folder, name, nbformat.writes(self.nb))
            try:
                self.km = kernels.kernel_manager(config=self.config)
                return self.km
            except (OSError, RuntimeError) as error:  # grade it the slow way rather than not at all
                self.log.warning("No warm kernel for %s (%s): starting a kernel of its own", self.student, error)
        if not self.sandboxed:
            return super().create_kernel_manager()
        box = sandbox.Sandbox(root, limits, bwrap)
        box.add_files(folder, name, nbformat.writes(self.nb))
        self.km = sandbox.SandboxedKernelManager(sandbox=box, config=self.config)
        return self.km

    async def async_start_new_kernel_client(self):
        began = time.perf_counter()
        try:
            return await super().async_start_new_kernel_client()
        finally:
            self._times["start"] += time.perf_counter() - began

    async def async_start_new_kernel(self, **kwargs):
        began = time.perf_counter()
        try:
            return await super().async_start_new_kernel(**kwargs)
        finally:
            self._times["start"] += time.perf_counter() - began

    # nbclient binds its sync wrappers to its own coroutines: rebind them to the timed ones above
    start_new_kernel = run_sync(async_start_new_kernel)
    start_new_kernel_client = run_sync(async_start_new_kernel_client)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        visible, checks = split_hidden(cell.source)
        cell.source = visible  # the autograded (and returned) notebook never holds hidden tests
        remaining = self._deadline - time.monotonic()
        if not self._stopped and remaining < 1:
            self._stop(index, f"The notebook ran longer than {self.notebook_timeout} s in all, so this cell "
                              "and the ones after it were not graded.", cell)
            return cell, resources
        if self._stopped:
            cell.outputs = [_error("NotRun", self._stopped)]
            return cell, resources
        self.timeout = int(min(self._cell_timeout, max(1, remaining)))
        began = time.perf_counter()
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            box = getattr(self.km, "sandbox", None)
            if box is not None and box.out_of_memory():
                self._stop(index, f"The kernel died while running this cell: it used more memory than a "
                                  f"submission may use ({self.memory_gib:g} GiB, the grader's memory limit), so "
                                  "the cells after it could not be run or graded.", cell)
            else:
                self._stop(index, "The kernel died while running this cell (a crash, `os._exit`, or running "
                                  "out of memory), so the cells after it could not be run or graded.", cell)
            return cell, resources
        except CellTimeoutError:  # no output for too long: nbclient gives up on the cell
            cell.outputs.append(_error("CellTimeoutError", f"no reply within {self.timeout} s"))
        finally:
            self._times["cells"] += time.perf_counter() - began
            self._times.setdefault("first_cell", time.perf_counter() - began)  # mostly imports
            self.timeout = self._cell_timeout
        if any(o.get("ename") == "MemoryError" for o in cell.outputs):
            self._notes.append(MEMORY_NOTE.format(index=index, gib=self.memory_gib))
        if any(o.get("ename") == "CellTimeoutError" for o in cell.outputs):
            if not self._responsive():
                self._stop(index, f"This cell ran longer than {self.timeout} s and ignored the interrupt "
                                  "(an endless loop?), so the kernel was stopped and the cells after it "
                                  "were not graded.", cell)
                return cell, resources
            self._notes.append(f"Cell {index} ran longer than {self.timeout} s and was interrupted "
                               "(an endless loop?).")
        failed = any(o.output_type == "error" for o in cell.outputs)
        if checks and not failed:
            # judged for the student of the submission folder: their variant of the quiz
            student = (resources or {}).get("nbgrader", {}).get("student", "")
            began = time.perf_counter()
            for check in checks:
                reason = check.judge(lambda expression: self._evaluate(expression, cell), student)
                if isinstance(reason, Note):
                    self._notes.append(reason)
                elif reason:
                    cell.outputs.append(_error("AssertionError", reason))
            self._times["judging"] += time.perf_counter() - began
        return cell, resources

    def _record_times(self) -> None:
        """Where this notebook's grading time went, appended to $DLEFF_GRADING_TIMES when set."""
        path = os.environ.get("DLEFF_GRADING_TIMES")
        if path:
            line = json.dumps({"student": self.student, "quiz": self._resources.get("nbgrader", {}).get(
                "assignment"), "sandboxed": self.sandboxed, **{k: round(v, 3) for k, v in self._times.items()}})
            with Path(path).open("a") as handle:
                handle.write(line + "\n")

    def _stop(self, index: int, reason: str, cell) -> None:
        self._stopped = reason
        cell.outputs.append(_error("GradingStopped", reason))
        self._notes.append(f"Cell {index}: {reason}")
        self.log.warning("Grading stopped at cell %s: %s", index, reason)
        if self.km is not None:  # an async manager: its shutdown must be awaited to happen at all
            run_sync(self.km.shutdown_kernel)(now=True)

    def _responsive(self, wait: float = 10.0) -> bool:
        """After a timeout and an interrupt: is the kernel ready for the next cell?"""
        msg_id = self.kc.execute("", silent=True, store_history=False)
        saved, self.timeout = self.timeout, int(wait)
        try:
            reply = self.wait_for_reply(msg_id)
        except DeadKernelError:
            reply = None
        finally:
            self.timeout = saved
        return reply is not None and reply["content"].get("status") == "ok"

    def _evaluate(self, expression: str, cell) -> tuple[bool, object]:
        """Ask the kernel for one value as plain data; parse it here without running its code."""
        try:
            msg_id = self.kc.execute("", silent=True, store_history=False, user_expressions={"v": expression})
            reply = self.wait_for_reply(msg_id, cell)
        except DeadKernelError:
            return False, "the kernel died"
        if reply is None:
            return False, "no reply from the kernel"
        result = reply["content"].get("user_expressions", {}).get("v", {})
        if result.get("status") != "ok":
            return False, f"{result.get('ename', 'Error')}: {result.get('evalue', '')}"
        try:
            return True, ast.literal_eval(result["data"]["text/plain"])
        except (KeyError, ValueError, SyntaxError, MemoryError, RecursionError):
            return False, "a value that is not plain data (a number, string, list or dict)"
