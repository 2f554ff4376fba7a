"""`SealedExecute`: nbgrader's Execute, with hidden checks judged outside the kernel.

Redefining `dleff.quiz`, built-ins or IPython's error handling cannot turn a wrong
answer into points (see `checks`). A kernel that dies or a loop that ignores
interrupts stops the run of *that* notebook only, keeps the points earned before it,
and says why in the student's feedback.
"""

from __future__ import annotations

import ast
import os

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.v4 import new_markdown_cell, new_output
from nbgrader.preprocessors import Execute

from dleff.quiz import GRADED_STUDENT_ENV
from dleff_instructor.checks import Note, split_hidden

NOTE_CELL_ID = "dleff-grading-note"


def _error(name: str, message: str):
    return new_output("error", ename=name, evalue=message, traceback=[f"{name}: {message}"])


class SealedExecute(Execute):
    """nbgrader's Execute, with hidden checks judged outside the kernel and crashes contained."""

    def preprocess(self, nb, resources=None, km=None):
        # the kernel started below inherits this: a quiz whose id cell was left empty (JupyterHub)
        # shows the submission folder's variant, as the student saw it
        os.environ[GRADED_STUDENT_ENV] = (resources or {}).get("nbgrader", {}).get("student", "")
        self._stopped = ""
        self._notes: list[str] = []
        nb, resources = super().preprocess(nb, resources, km)
        if self._notes:
            note = new_markdown_cell("**Grading note.** " + " ".join(self._notes))
            note.id = NOTE_CELL_ID
            nb.cells.insert(0, note)
        return nb, resources

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        visible, checks = split_hidden(cell.source)
        cell.source = visible  # the autograded (and returned) notebook never holds hidden tests
        if self._stopped:
            cell.outputs = [_error("NotRun", self._stopped)]
            return cell, resources
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            self._stop(index, "The kernel died while running this cell (a crash, `os._exit`, or running "
                              "out of memory), so the cells after it could not be run or graded.", cell)
            return cell, resources
        except CellTimeoutError:  # no output for too long: nbclient gives up on the cell
            cell.outputs.append(_error("CellTimeoutError", f"no reply within {self.timeout} s"))
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
            for check in checks:
                reason = check.judge(lambda expression: self._evaluate(expression, cell), student)
                if isinstance(reason, Note):
                    self._notes.append(reason)
                elif reason:
                    cell.outputs.append(_error("AssertionError", reason))
        return cell, resources

    def _stop(self, index: int, reason: str, cell) -> None:
        self._stopped = reason
        cell.outputs.append(_error("GradingStopped", reason))
        self._notes.append(f"Cell {index}: {reason}")
        self.log.warning("Grading stopped at cell %s: %s", index, reason)
        if self.km is not None:
            self.km.shutdown_kernel(now=True)

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
