"""Progress of long runs on stderr."""

import sys
import time


class Progress:
    """Progress on stderr for runs longer than a couple of seconds."""

    def __init__(self, label, cells, enabled=True):
        self.label, self.cells, self.enabled = label, cells, enabled
        self.start = self.last = time.perf_counter()
        self.shown = False

    def __call__(self, done, total):
        now = time.perf_counter()
        if not self.enabled or now - self.last < 2.0:
            return
        self.last = now
        rate = done * self.cells / max(now - self.start, 1e-9)
        sys.stderr.write(f"  {self.label}: step {done}/{total} ({100 * done / total:.0f} %), "
                         f"{rate:.3g} cell-evaluations/s\n")
        self.shown = True
