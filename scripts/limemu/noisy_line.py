"""A noisy serial line between the host and a serial port: link faults for soak tests.

`NoisyLine(port, rates, seed=...)` opens `port` (the virtual board's pty, or any tty) and
offers its own pty, `line.port`, which the host opens instead. A relay thread copies bytes both
ways and, byte by byte, injects the faults of a noisy USB-serial line:

* flip: one bit of the byte inverted;
* drop: the byte lost;
* duplicate: the byte delivered twice;
* delay: the line stalls for up to `rates.delay_seconds` before the byte (order is kept).

Each kind has its own rate per byte (at most one fault per byte), the same in both directions.
Faults are drawn from a generator per direction seeded by `seed`: the same bytes get the same
faults. `counts()` says what was injected, by direction and kind, and how many bytes passed.
`Faults` is the byte-level part without threads or ttys (tested on its own).
"""

import os
import random
import select
import threading
import time
import tty
from dataclasses import dataclass, fields

from limemu.model.errors import require

DIRECTIONS = ("to_board", "to_host")
KINDS = ("flip", "drop", "duplicate", "delay")


@dataclass(frozen=True)
class FaultRates:
    """Per-byte probability of each fault kind; delay_seconds: the longest stall a delay
    fault inserts (drawn uniformly up to it)."""

    flip: float = 0.0
    drop: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.0
    delay_seconds: float = 0.02

    def __post_init__(self):
        for kind in KINDS:
            require(0 <= getattr(self, kind) <= 1, kind, getattr(self, kind), "must be in [0, 1]")
        require(self.total <= 1, "sum of the fault rates", self.total, "must be <= 1")
        require(0 <= self.delay_seconds <= 10, "delay_seconds", self.delay_seconds,
                "must be in [0, 10]")

    @classmethod
    def spread(cls, rate, **options):
        """`rate` per byte in all, shared equally by the four kinds."""
        require(0 <= rate <= 1, "fault rate", rate, "must be in [0, 1]")
        return cls(**{kind: rate / len(KINDS) for kind in KINDS}, **options)

    @property
    def total(self):
        return sum(getattr(self, kind) for kind in KINDS)

    def describe(self):
        return ", ".join(f"{f.name} {getattr(self, f.name):g}" for f in fields(self))


class Faults:
    """The faults of one direction: apply(data) -> [(stall seconds, bytes)], in order."""

    def __init__(self, rates, seed):
        self.rates = rates
        self.random = random.Random(seed)
        self.counts = dict.fromkeys(KINDS, 0)
        self.bytes = 0
        r = rates
        self._bounds = (r.flip, r.flip + r.drop, r.flip + r.drop + r.duplicate, r.total)

    def apply(self, data):
        out, chunk = [], bytearray()
        flip, drop, duplicate, delay = self._bounds
        draw = self.random.random
        for byte in data:
            self.bytes += 1
            u = draw()
            if u >= delay:                                   # the common case: untouched
                chunk.append(byte)
            elif u < flip:
                self.counts["flip"] += 1
                chunk.append(byte ^ 1 << self.random.randrange(8))
            elif u < drop:
                self.counts["drop"] += 1
            elif u < duplicate:
                self.counts["duplicate"] += 1
                chunk += bytes((byte, byte))
            else:
                self.counts["delay"] += 1
                out.append((0.0, bytes(chunk)))
                chunk = bytearray([byte])
                out.append((self.random.uniform(0, self.rates.delay_seconds), b""))
        out.append((0.0, bytes(chunk)))
        return _joined(out)


def _joined(pieces):
    """[(stall, bytes)] with each stall carried by the bytes after it and empty pieces gone."""
    out, stall = [], 0.0
    for pause, data in pieces:
        stall += pause
        if data:
            out.append((stall, data))
            stall = 0.0
    return out


class NoisyLine:
    """A relay with faults between a host and `port` (see the module docstring). `port`: the
    host's side to open (a pty path); close() stops the relay (also as a context manager)."""

    def __init__(self, port, rates, *, seed=0):
        self.rates = rates
        self._board = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self._board)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)            # the host's serial library sets it again on open
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        self.faults = {direction: Faults(rates, f"{seed}/{direction}")
                       for direction in DIRECTIONS}
        self._wake_r, self._wake_w = os.pipe()
        self._stop = False
        self._lock = threading.Lock()
        self.error = None
        self._thread = threading.Thread(target=self._relay, name=f"noisy line {port}",
                                        daemon=True)
        self._thread.start()

    def counts(self):
        """{direction: {kind: count, ..., "bytes": bytes that entered}}."""
        with self._lock:
            return {d: {**f.counts, "bytes": f.bytes} for d, f in self.faults.items()}

    def injected(self):
        """{kind: count} over both directions."""
        counts = self.counts()
        return {kind: sum(counts[d][kind] for d in DIRECTIONS) for kind in KINDS}

    def _relay(self):
        # per direction: (source fd, destination fd, queue of [release time, bytes])
        routes = {"to_board": (self._master, self._board, []),
                  "to_host": (self._board, self._master, [])}
        free_at = dict.fromkeys(DIRECTIONS, 0.0)       # when the line is free after its stalls
        try:
            blocked = False
            while not self._stop:
                now = time.monotonic()
                waiting = [q[0][0] for _, _, q in routes.values() if q]
                timeout = min(waiting) - now if waiting else 0.5
                if blocked:                             # a reader behind: look again soon
                    timeout = 0.002
                readable, _, _ = select.select(
                    [self._wake_r] + [src for src, _, _ in routes.values()], [], [],
                    min(max(timeout, 0.0), 0.5))
                if self._wake_r in readable:
                    break
                now, blocked = time.monotonic(), False
                for direction, (src, dst, queue) in routes.items():
                    if src in readable:
                        data = _read(src)
                        if data is None:
                            return                      # the other end is gone
                        with self._lock:
                            pieces = self.faults[direction].apply(data)
                        for stall, piece in pieces:
                            release = max(now, free_at[direction]) + stall
                            free_at[direction] = release
                            queue.append([release, piece])
                    while queue and queue[0][0] <= now:
                        written = _write(dst, queue[0][1])
                        if written < len(queue[0][1]):
                            queue[0][1] = queue[0][1][written:]
                            blocked = True
                            break                       # the reader is behind: try again later
                        queue.pop(0)
        except OSError as error:                        # noqa: PERF203
            self.error = error

    def close(self):
        if self._thread.is_alive():
            self._stop = True
            os.write(self._wake_w, b"x")
            self._thread.join(timeout=5)
        for fd in (self._board, self._master, self._slave, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _read(fd):
    """Bytes waiting on fd; b"" if none after all; None when the other end has closed."""
    try:
        data = os.read(fd, 4096)
    except BlockingIOError:
        return b""
    except OSError:                                   # EIO: a pty whose other side closed
        return None
    return data if data else None


def _write(fd, data):
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0
