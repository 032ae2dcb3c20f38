"""Progress of long loops, for the headless runner's one updating line.

``track(iterable, desc)`` wraps a loop; ``StageProgressCallback`` does the same for a transformers
Trainer (``from vpolib.progress import StageProgressCallback``; transformers is imported only
then). While the runner executes a notebook it sets ``$VPO_PROGRESS_FILE``: progress (desc, done,
total, elapsed, eta) is then written to that small JSON file, never to the notebook's output. Without
it (an interactive notebook) ``track`` is a plain tqdm bar.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

ENV = "VPO_PROGRESS_FILE"
MIN_INTERVAL = 0.5  # seconds between writes of the progress file

_active: list[Task] = []  # nested loops: the innermost is reported, the outer one again when it ends


def progress_file() -> Path | None:
    """The file named by ``$VPO_PROGRESS_FILE`` (``None`` when unset)."""
    path = os.environ.get(ENV)
    return Path(path) if path else None


def read_progress(path: str | os.PathLike) -> dict | None:
    """The last state written to ``path`` (``None`` when absent or half-written)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


class Task:
    """One loop's progress, written to the progress file at most every ``MIN_INTERVAL`` seconds."""

    def __init__(self, desc: str, total: int | None, path: Path):
        self.desc, self.total, self.path = desc, total, path
        self.done, self.start, self._written, self.closed = 0, time.monotonic(), 0.0, False
        _active.append(self)
        self.write(force=True)

    def state(self) -> dict:
        elapsed = time.monotonic() - self.start
        eta = None
        if self.total and self.done:
            eta = max(elapsed / self.done * (self.total - self.done), 0.0)
        return {
            "desc": self.desc,
            "done": self.done,
            "total": self.total,
            "elapsed": round(elapsed, 2),
            "eta": None if eta is None else round(eta, 2),
            "pid": os.getpid(),
            "time": time.time(),
            "closed": self.closed,
        }

    def write(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._written < MIN_INTERVAL:
            return
        self._written = now
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(self.state()))
            os.replace(tmp, self.path)
        except OSError:  # progress is best effort: never fail a stage over it
            pass

    def update(self, n: int = 1, total: int | None = None) -> None:
        self.done += n
        if total is not None:
            self.total = total
        self.write(force=self.total is not None and self.done >= self.total)

    def close(self) -> None:
        if self in _active:
            _active.remove(self)
        if _active:
            _active[-1].write(force=True)
        else:
            self.closed = True
            self.write(force=True)


def track(iterable: Iterable, desc: str, total: int | None = None, disable: bool = False) -> Iterator:
    """Yield from ``iterable``, reporting progress (``total`` defaults to ``len(iterable)``).

    Under the runner (``$VPO_PROGRESS_FILE`` set) the progress goes to that file only; otherwise a tqdm
    bar is shown unless ``disable``.
    """
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    path = progress_file()
    if path is None:
        from tqdm.auto import tqdm

        yield from tqdm(iterable, desc=desc, total=total, disable=disable)
        return
    task = Task(desc, total, path)
    try:
        for item in iterable:
            yield item
            task.update()
    finally:
        task.close()


def _make_callback_class():
    from transformers import TrainerCallback

    class StageProgressCallback(TrainerCallback):
        """A transformers ``TrainerCallback``: training steps (done / max_steps) to the progress file.

        Does nothing when ``$VPO_PROGRESS_FILE`` is unset (the Trainer's own bar is shown then).
        """

        def __init__(self, desc: str = "training steps"):
            self.desc, self.task = desc, None

        def on_train_begin(self, args, state, control, **kwargs):
            path = progress_file()
            if path is not None:
                self.task = Task(self.desc, state.max_steps or None, path)

        def on_step_end(self, args, state, control, **kwargs):
            if self.task is not None:
                self.task.update(state.global_step - self.task.done, total=state.max_steps or None)

        def on_train_end(self, args, state, control, **kwargs):
            if self.task is not None:
                self.task.close()
                self.task = None

    StageProgressCallback.__module__ = __name__
    return StageProgressCallback


def __getattr__(name: str):
    """``StageProgressCallback`` is built on first use, so ``track`` never imports transformers."""
    if name == "StageProgressCallback":
        cls = globals()["StageProgressCallback"] = _make_callback_class()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def quiet_kernel() -> None:
    """In a kernel the runner starts (``$VPO_PROGRESS_FILE`` set): ``tqdm.auto`` becomes the plain tqdm,
    switched off by ``$TQDM_DISABLE``, so library bars (model loading, datasets) put no widgets into the
    executed notebook. Elsewhere it does nothing."""
    if progress_file() is None:
        return
    import tqdm.auto
    import tqdm.autonotebook
    import tqdm.std

    for mod in (tqdm.auto, tqdm.autonotebook):
        mod.tqdm, mod.trange = tqdm.std.tqdm, tqdm.std.trange


#: Kernel arguments for papermill (nbclient ``extra_arguments``): run :func:`quiet_kernel` at start-up,
#: and keep the kernel's own start-up warnings (e.g. "running over TCP") off the runner's progress line.
KERNEL_ARGS = [
    "--IPKernelApp.exec_lines=[\"__import__('vpolib.progress').progress.quiet_kernel()\"]",
    "--IPKernelApp.log_level=ERROR",
]


def run_streamed(cmd: list[str], cwd: str | os.PathLike | None = None, env: dict | None = None) -> None:
    """Run a job with its log streamed here line by line (a notebook shows it as it runs); raise on failure."""
    import subprocess

    print("$", " ".join(map(str, cmd)), flush=True)
    with subprocess.Popen(
        list(map(str, cmd)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd, env=env
    ) as proc:
        for line in proc.stdout:
            print(line, end="", flush=True)
    if proc.returncode != 0:
        raise RuntimeError(f"job failed (exit {proc.returncode}): {' '.join(map(str, cmd))}")
