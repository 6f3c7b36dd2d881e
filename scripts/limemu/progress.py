"""Progress of long work on stderr, with tqdm: a bar with rate and ETA, or a status line.

Progress is drawn only when it is asked for (no ``--quiet``) and stderr is a terminal, so logs,
pipes and tests stay free of it. Results and summaries are ordinary output, never progress.
"""

import sys
import threading
import time
from pathlib import Path

from tqdm import tqdm


def shown(enabled=True):
    """Whether progress is drawn: asked for and stderr is a terminal."""
    return bool(enabled) and sys.stderr.isatty()


def bar(*, total=None, desc, unit="it", enabled=True, **options):
    """A tqdm bar on stderr (disabled unless `shown(enabled)`); it is cleared when closed."""
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False,
                dynamic_ncols=True, disable=not shown(enabled), **options)


def note(text):
    """A line on stderr that does not break a progress bar being drawn."""
    tqdm.write(text, file=sys.stderr)


class StepProgress:
    """The progress of a run in steps, as a callable ``progress(step, target)`` (the engine's
    and the sessions' callback): steps done of the segment, steps per second, ETA and
    cell-evaluations per second. ``begin`` and ``end`` bracket one segment of a run."""

    def __init__(self, label, cells, enabled=True):
        self.label, self.cells, self.enabled = label, int(cells), enabled
        self._bar = None
        self._first = 0
        self._started = 0.0

    def begin(self, step, target):
        self.end()
        if shown(self.enabled) and target > step:
            self._first, self._started = int(step), time.perf_counter()
            self._bar = bar(total=int(target) - int(step), desc=self.label, unit="step")

    def __call__(self, step, target=None):
        if self._bar is None:
            return
        done = int(step) - self._first
        self._bar.update(done - self._bar.n)
        rate = done * self.cells / max(time.perf_counter() - self._started, 1e-9)
        self._bar.set_postfix_str(f"{rate:.3g} cell-evaluations/s", refresh=False)

    def end(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class StatusLine:
    """One line that shows the latest news of a task whose length is unknown (an FPGA tool):
    the elapsed time and the text given to ``update``. A context manager."""

    def __init__(self, label, enabled=True):
        self._bar = bar(desc=label, enabled=enabled,
                        bar_format="{desc}: {elapsed} {postfix}")

    def update(self, text):
        self._bar.set_postfix_str(text[:100])

    def close(self):
        self._bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def following(work, log_path, label, enabled=True):
    """work() (a blocking build), while a StatusLine shows the elapsed time and the latest
    line of its log file `log_path`. Returns what work returns; raises what it raises."""
    if not shown(enabled):
        return work()
    outcome = {}

    def target():
        try:
            outcome["value"] = work()
        except BaseException as error:       # noqa: BLE001 (raised again in the caller)
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    with StatusLine(label) as status:
        while thread.is_alive():
            thread.join(0.5)
            status.update(last_line(log_path))
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def last_line(path, tail=4096):
    """The last non-blank line of a text file ('' when it is missing or empty)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, Path(path).stat().st_size - tail))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    return next((line.strip() for line in reversed(lines) if line.strip()), "")
