"""A fork server for one student's kernels: import once, fork a fresh kernel per notebook.

Run as a script (`python forkserver.py CONTROL_SOCKET MODULE...`) inside that student's sandbox
(see `warm`); it imports nothing of the grader. It imports the modules the quizzes import
(torch alone takes ~2 s of CPU), then answers one request per connection on a Unix socket: a
JSON line `{"connection_file": ..., "cwd": ..., "log": ..., "arguments": [...]}`. It forks; the child starts its own
session, becomes an ipykernel on that connection file, and nothing else of the server runs in
it; the server replies `{"pid": <the child's pid as this process sees it>}`.

This is PrairieLearn's "import the grader once, fork per job" applied to Jupyter kernels. The
server is the sandbox's init (PID 1: no process inside can kill it) and, unsandboxed, a
subreaper: whatever a kernel starts and detaches is re-parented here, where the grader finds it
and ends it with the notebook. It never runs student code itself, but a student's kernel can
reach it (same sandbox, same uid): that is why a server serves only one student's notebooks,
and why the grader checks and ends everything from outside.
"""

import ctypes
import json
import os
import random
import signal
import socket
import sys

PR_SET_CHILD_SUBREAPER = 36


def _preload(modules: list[str]) -> None:
    for name in modules:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - a quiz that needs it reports the error in its own cell
            pass


def _reap(signum, frame) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _become_kernel(request: dict, listener: socket.socket) -> None:
    """In the forked child: a fresh session, output to the log, then an ipykernel. Never returns."""
    try:
        listener.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.chdir(request["cwd"])
        os.environ.update(request.get("env", {}))
        random.seed()  # a fresh process would draw its own seed: so does every fork
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()
        sys.argv = ["ipykernel_launcher", "-f", request["connection_file"], *request.get("arguments", [])]
        from ipykernel.kernelapp import IPKernelApp

        IPKernelApp.launch_instance(argv=sys.argv[1:])
    finally:
        os._exit(0)


def serve(control: str, modules: list[str]) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    _preload(modules)
    signal.signal(signal.SIGCHLD, _reap)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(control + ".new")
    listener.listen(4)
    os.rename(control + ".new", control)  # the socket appears only once the imports are done
    while True:
        connection, _ = listener.accept()
        with connection:
            request = json.loads(connection.makefile().readline())
            pid = os.fork()
            if pid == 0:
                connection.close()
                _become_kernel(request, listener)
            connection.sendall((json.dumps({"pid": pid}) + "\n").encode())


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2:])
