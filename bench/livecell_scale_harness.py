"""Harness of ``bench/livecell_scale.py``: run a step in a measured child process; serve files with Range.

:func:`run_child` runs a command in a child process and returns a :class:`Row` with its wall time,
the peak RSS summed over its process tree (sampled every 0.1 s with psutil, else from /proc) and
the exact peak RSS of its largest single process (getrusage in a small launcher).
:class:`RangeServer` is an HTTP/1.1 file server on 127.0.0.1 answering single ``Range`` requests
(206, suffix ranges, 416) that counts the body bytes it sends per file.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

try:
    import psutil  # optional: a portable process-tree walk; /proc is read without it
except ImportError:
    psutil = None

MIB = 2**20


@dataclass
class Row:
    """One line of the table; None where a figure does not apply."""

    step: str
    status: str = "ok"
    process_s: float | None = None  # wall time of the child process
    step_s: float | None = None  # the measured call inside it (else the process)
    tree_mib: float | None = None  # peak of RSS summed over the process tree, sampled
    proc_mib: float | None = None  # exact peak RSS of the largest single process
    after_mib: float | None = None  # RSS still held after the step, in the step's process
    moved_mib: float | None = None  # bytes the HTTP server sent
    disk_mib: float | None = None  # bytes the step left on disk
    target: str = ""
    verdict: str = ""
    note: str = ""


# Runs the step as its own child and writes that child's exact peak RSS to argv[1]. A process forked
# from this bench (big after its imports) would count the bench's pages in its ru_maxrss until exec;
# forked from this small launcher, the step's ru_maxrss is its own (plus the launcher's few MiB).
LAUNCHER = r"""
import json, resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    json.dump({"rc": rc, "maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}, f)
"""


def _descendants_rss(pid: int) -> int:
    """Bytes resident now in all descendants of ``pid`` (not ``pid`` itself; 0 when it is gone)."""
    if psutil is not None:
        try:
            procs = psutil.Process(pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return 0
        total = 0
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, list(children.get(pid, []))
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            pass
    return total


def run_child(step: str, cmd: list[str], env: dict, logs: Path, cwd=None) -> tuple[Row, dict]:
    """Run ``cmd`` under the launcher, sampling its tree's RSS; returns the row and its stdout's last JSON line."""
    logs.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"\W+", "-", step).strip("-")
    out_path, err_path, usage_path = logs / f"{slug}.out", logs / f"{slug}.log", logs / f"{slug}.usage"
    usage_path.unlink(missing_ok=True)
    start = time.perf_counter()
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(usage_path)] + cmd, env=env, cwd=cwd,
                                stdout=out, stderr=err)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _descendants_rss(proc.pid))
            time.sleep(0.1)
    seconds = time.perf_counter() - start
    usage = json.loads(usage_path.read_text()) if usage_path.is_file() else {"rc": proc.returncode, "maxrss_kib": 0}
    row = Row(step, process_s=seconds, step_s=seconds, tree_mib=peak / MIB, proc_mib=usage["maxrss_kib"] / 1024)
    lines = [x for x in out_path.read_text().splitlines() if x.startswith("{")]
    report = json.loads(lines[-1]) if lines else {}
    if usage["rc"]:
        tail = err_path.read_text().strip().splitlines()[-3:]
        row.status, row.note = "failed", f"exit {usage['rc']}, see {err_path}: " + " | ".join(tail)[-300:]
    row.step_s = report.get("step_s", seconds)
    row.after_mib = report.get("rss_after_mib")
    return row, report


def disk_bytes(*paths: Path) -> int:
    """Bytes in the files under ``paths``, each hard-linked file once."""
    seen = {(f.stat().st_dev, f.stat().st_ino): f.stat().st_size
            for p in paths if p.exists() for f in p.rglob("*") if f.is_file()}
    return sum(seen.values())


class RangeServer:
    """HTTP/1.1 file server on 127.0.0.1 with single-range requests; counts the body bytes it sends."""

    def __init__(self, folder: Path):
        self.folder, self.lock = folder.resolve(), threading.Lock()
        self.sent: dict[str, int] = {}
        self.requests = self.ranged = 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def reset(self) -> None:
        with self.lock:
            self.sent, self.requests, self.ranged = {}, 0, 0

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._serve(body=False)

            def do_GET(self):
                self._serve(body=True)

            def _serve(self, body: bool):
                name = unquote(self.path.split("?")[0]).lstrip("/")
                path = (server.folder / name).resolve()
                if server.folder not in path.parents or not path.is_file():
                    self.send_error(404)
                    return
                size = path.stat().st_size
                start, end, status = 0, size - 1, 200
                match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
                if match and match.group(1) + match.group(2):
                    first, last = match.groups()
                    start = int(first) if first else max(0, size - int(last))
                    end = min(int(last), size - 1) if first and last else size - 1
                    if start >= size or start > end:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                with server.lock:
                    server.requests += 1
                    server.ranged += status == 206
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(end - start + 1))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                self.end_headers()
                if body:
                    self._send_body(path, name, start, end - start + 1)

            def _send_body(self, path: Path, name: str, start: int, left: int):
                with open(path, "rb") as f:
                    f.seek(start)
                    try:
                        while left > 0:
                            chunk = f.read(min(left, 1 << 20))
                            self.wfile.write(chunk)
                            left -= len(chunk)
                            with server.lock:
                                server.sent[name] = server.sent.get(name, 0) + len(chunk)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client hung up; what was sent is counted
        return Handler
