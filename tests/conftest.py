"""Shared pytest fixtures."""
from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


@dataclass
class FakeServer:
    """A local HTTP file server for download tests (no internet needed).

    files: URL path (without leading slash) -> body bytes.
    modes: URL path -> how to misbehave:
        "truncate"  always announce the full Content-Length, send half, close;
        "cut_once"  like "truncate" for the first request only, then serve normally.
    requests: (path, Range header or None) per request, in arrival order.
    Paths not in ``files`` answer 404.  ``Range: bytes=N-`` gets a 206 with the tail.
    """

    url: str = ""
    files: dict = field(default_factory=dict)
    modes: dict = field(default_factory=dict)
    requests: list = field(default_factory=list)

    def ranges_for(self, path):
        return [r for p, r in self.requests if p == path]


def _handler(server: FakeServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def do_GET(self):
            path = self.path.lstrip("/")
            rng = self.headers.get("Range")
            server.requests.append((path, rng))
            body = server.files.get(path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            start = 0
            if rng and rng.startswith("bytes="):
                start = int(rng[len("bytes="):].split("-")[0])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            mode = server.modes.get(path)
            first = len(server.ranges_for(path)) == 1
            cut = mode == "truncate" or (mode == "cut_once" and first)
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            payload = body[start:]
            if cut:
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(payload)

    return Handler


@pytest.fixture
def serve_http():
    """``start(handler_class) -> base URL``: an HTTP server on 127.0.0.1 (a free port) in a thread.

    Every server started is shut down when the test ends.
    """
    servers = []

    def start(handler) -> str:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        servers.append(httpd)
        # A short poll interval keeps shutdown() (and so each test's teardown) quick.
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return f"http://127.0.0.1:{httpd.server_address[1]}/"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def http_server(serve_http):
    """A :class:`FakeServer` on 127.0.0.1 with a free port, running in a thread."""
    state = FakeServer()
    state.url = serve_http(_handler(state))
    return state


@pytest.fixture
def bright_cells_model():
    """A tiny 3-channel "cells" Keras model: foreground on bright pixels (sigmoid(20 x - 10),
    x in 0..1), centre and boundary distance 0 there and 1 on background, so the seeded
    watershed makes each separate bright blob one cell."""
    import numpy as np

    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Rescaling(1 / 255),
                              keras.layers.Conv2D(3, 1, activation="sigmoid")])
    model.layers[-1].set_weights([np.array([[[[20.0, -20.0, -20.0]]]], np.float32),
                                  np.array([-10.0, 10.0, 10.0], np.float32)])
    return model


@pytest.fixture(scope="session")
def small_samples(tmp_path_factory):
    """``copy(seed, dest) -> dest``: a copy of the sample of ``seed`` with one frame per cell type
    and split (24 frames), each seed drawn once per session (~5 s); tests may change their copy."""
    from livecell_kit import sample

    drawn = {}

    def copy(seed: int, dest: Path) -> Path:
        if seed not in drawn:
            drawn[seed] = sample.make_sample(tmp_path_factory.mktemp(f"small-sample-{seed}") / "sample",
                                             seed=seed, images_per_type={"train": 1, "val": 1, "test": 1})
        return Path(shutil.copytree(drawn[seed], dest))

    return copy


@pytest.fixture
def small_sample(small_samples, tmp_path) -> Path:
    """This test's own copy of the small sample of seed 0 (:func:`small_samples`), in ``tmp_path / "sample"``."""
    return small_samples(0, tmp_path / "sample")
