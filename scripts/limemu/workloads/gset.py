"""Graphs in the G-set text format, and seeded random graphs.

The G-set format (Helmberg & Rendl's benchmark graphs, generated with ``rudy``): the first line
holds ``n m`` (nodes, edges); each of the next ``m`` lines holds one undirected edge ``i j w``
with 1-based node indices and an integer weight. :func:`parse_gset` reads it strictly (every
malformed input raises :class:`ConfigError` naming the file, the 1-based line and the fault)
but tolerates what real files contain: trailing spaces, CRLF line ends, blank trailing lines.
"""

import os
import re
from dataclasses import dataclass, field

import numpy as np

from limemu.model.errors import ConfigError, require
from limemu.model.spec import MAX_CELLS

WEIGHT_KINDS = ("unit", "pm1")
_INT = re.compile(r"^[+-]?[0-9]+$")


@dataclass(frozen=True, eq=False)
class Graph:
    """An undirected simple graph: ``n`` nodes, edges ``(i[k], j[k])`` of weight ``w[k]``.

    ``i``, ``j`` are 0-based node indices and ``w`` integer weights, all numpy int64 arrays of
    one length ``m``. Validated on construction: indices in [0, n), no self-loop, no edge given
    twice (in either orientation).
    """

    n: int
    i: np.ndarray
    j: np.ndarray
    w: np.ndarray
    name: str = field(default="graph")

    def __post_init__(self):
        require(isinstance(self.n, (int, np.integer)) and not isinstance(self.n, bool) and
                self.n >= 1, "n", self.n, "a graph needs an integer number of nodes >= 1")
        object.__setattr__(self, "n", int(self.n))
        arrays = []
        for label in ("i", "j", "w"):
            a = np.asarray(getattr(self, label))
            require(a.ndim == 1, label, f"shape {a.shape}", "must be one-dimensional")
            require(a.size == 0 or a.dtype.kind in "iu" or
                    (a.dtype.kind == "f" and np.all(a == np.round(a))), label,
                    f"dtype {a.dtype}", "must hold integers")
            arrays.append(a.astype(np.int64))
        i, j, w = arrays
        require(len(i) == len(j) == len(w), "edges", (len(i), len(j), len(w)),
                "i, j and w must have the same length")
        if len(i):
            bad = np.flatnonzero((i < 0) | (i >= self.n) | (j < 0) | (j >= self.n))
            if len(bad):
                _fail_edge(i, j, bad, f"node index outside [0, {self.n})")
            loops = np.flatnonzero(i == j)
            if len(loops):
                _fail_edge(i, j, loops, "self-loop")
            key = np.minimum(i, j) * self.n + np.maximum(i, j)
            order = np.argsort(key, kind="stable")
            dup = np.flatnonzero(key[order][1:] == key[order][:-1])
            if len(dup):
                _fail_edge(i, j, order[dup + 1], "given twice (edges are undirected: (i, j) and "
                           "(j, i) are the same)")
        for label, a in zip(("i", "j", "w"), (i, j, w)):
            a.setflags(write=False)
            object.__setattr__(self, label, a)

    @property
    def m(self):
        """Number of edges."""
        return len(self.i)

    @property
    def total_weight(self):
        """Sum of all edge weights (a Python int)."""
        return int(self.w.sum())

    def degrees(self):
        return np.bincount(np.concatenate((self.i, self.j)), minlength=self.n)

    def __repr__(self):
        return (f"Graph(name={self.name!r}, n={self.n}, m={self.m}, "
                f"total_weight={self.total_weight})")


def _fail_edge(i, j, where, what):
    k = int(where[0])
    raise ConfigError(f"edge #{k} = ({int(i[k])}, {int(j[k])}) (0-based): {what}")


# -- parsing -------------------------------------------------------------------------------------
def parse_gset(source, name=None):
    """Read a G-set graph.

    ``source`` is a path (``str`` without a newline, or ``os.PathLike``) or the file's text
    (``str`` containing a newline, or ``bytes``). ``name`` labels the graph and the error
    messages; by default the file name's stem for a path, ``"<text>"`` for text.
    Returns a :class:`Graph` with 0-based indices.
    """
    if isinstance(source, bytes):
        text, label, stem = _decode(source, name or "<text>"), name or "<text>", name or "gset"
    elif isinstance(source, str) and ("\n" in source or "\r" in source):
        text, label, stem = source, name or "<text>", name or "gset"
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        label = path
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the G-set file "
                              f"({exc.strerror or exc})") from exc
        text = _decode(raw, path)
        stem = name or os.path.splitext(os.path.basename(path))[0]
    else:
        raise ConfigError(f"parse_gset: source = {type(source).__name__}: must be a path, "
                          "a str holding the file's text, or bytes")
    n, i, j, w = _parse_lines(text, label)
    return Graph(n, i, j, w, name=stem)


def _decode(raw, label):
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{label}, line {line}: not ASCII text (byte {raw[exc.start]:#04x})") \
            from None


def _parse_lines(text, label):
    lines = text.replace("\r\n", "\n").split("\n")
    # Blank lines at the end (including the empty string after a final newline) are tolerated.
    end = len(lines)
    while end and not lines[end - 1].strip():
        end -= 1

    def fail(k, what):
        raise ConfigError(f"{label}, line {k}: {what}")

    if end == 0:
        fail(1, "empty file (expected a header 'n m')")
    header = lines[0].split()
    if len(header) != 2:
        fail(1, f"bad header {lines[0].strip()!r}: expected two integers 'n m', "
                f"got {len(header)} field(s)")
    if not all(_INT.match(x) for x in header):
        fail(1, f"bad header {lines[0].strip()!r}: 'n m' must be integers")
    n, m = int(header[0]), int(header[1])
    if n < 1:
        fail(1, f"n = {n}: a graph needs at least one node")
    if n > MAX_CELLS:
        fail(1, f"n = {n}: must be <= {MAX_CELLS} (MAX_CELLS, the largest array)")
    if m < 0:
        fail(1, f"m = {m}: the edge count cannot be negative")
    if m > n * (n - 1) // 2:
        fail(1, f"m = {m}: a simple graph on n = {n} nodes has at most {n * (n - 1) // 2} edges")

    size = min(m, end - 1)          # never more than the file's lines: m may be a lie
    i = np.empty(size, dtype=np.int64)
    j = np.empty(size, dtype=np.int64)
    w = np.empty(size, dtype=np.int64)
    seen = {}
    count = 0
    for k in range(1, end):
        lineno = k + 1
        fields = lines[k].split()
        if not fields:
            fail(lineno, "blank line inside the edge list")
        if count == m:
            fail(lineno, f"more edges than the header's m = {m} (line 1)")
        if len(fields) != 3:
            fail(lineno, f"expected 3 fields 'i j w', got {len(fields)}: {lines[k].strip()!r}")
        bad = [x for x in fields if not _INT.match(x)]
        if bad:
            fail(lineno, f"non-integer field {bad[0]!r} in {lines[k].strip()!r}")
        a, c, weight = (int(x) for x in fields)
        for node in (a, c):
            if not 1 <= node <= n:
                fail(lineno, f"node index {node} outside [1, {n}]")
        if a == c:
            fail(lineno, f"self-loop on node {a}")
        key = (min(a, c), max(a, c))
        if key in seen:
            fail(lineno, f"duplicate edge ({a}, {c}): already given on line {seen[key]}")
        if not -2**62 <= weight < 2**62:
            fail(lineno, f"weight {weight} does not fit in 62 bits")
        seen[key] = lineno
        i[count], j[count], w[count] = a - 1, c - 1, weight
        count += 1
    if count != m:
        fail(end + 1, f"the file ends after {count} edge(s) but the header (line 1) declares "
                      f"m = {m}")
    return n, i, j, w


def write_gset(graph, path):
    """Write ``graph`` in the G-set format (1-based, LF line ends). Returns the path."""
    require(isinstance(graph, Graph), "graph", type(graph).__name__, "must be a Graph")
    rows = np.stack((graph.i + 1, graph.j + 1, graph.w), axis=1)
    body = "".join(f"{a} {c} {weight}\n" for a, c, weight in rows.tolist())
    with open(path, "w", encoding="ascii", newline="\n") as f:
        f.write(f"{graph.n} {graph.m}\n")
        f.write(body)
    return path


# -- random graphs -------------------------------------------------------------------------------
def random_graph(n, m=None, p=None, weights="unit", seed=1, name=None):
    """A seeded Erdős–Rényi graph: G(n, m) (exactly ``m`` distinct edges, uniformly among all
    such graphs) or G(n, p) (each of the n(n-1)/2 pairs independently with probability ``p``).

    Give exactly one of ``m`` and ``p``. ``weights``: ``"unit"`` (all 1) or ``"pm1"``
    (independent +-1). ``seed`` seeds a ``numpy.random.Generator``: the same arguments give the
    same graph. G(n, p) is drawn as G(n, M) with M ~ Binomial(n(n-1)/2, p), which has exactly
    the G(n, p) distribution and never enumerates all pairs. Edges are listed with i < j, sorted.
    """
    require(isinstance(n, (int, np.integer)) and not isinstance(n, bool), "n", n,
            "must be an integer")
    require(n >= 1, "n", n, "a graph needs at least one node")
    n = int(n)
    pairs = n * (n - 1) // 2
    require((m is None) != (p is None), "m, p", (m, p), "give exactly one of m (edge count) and "
            "p (edge probability)")
    require(weights in WEIGHT_KINDS, "weights", weights, f"must be one of {WEIGHT_KINDS}")
    require(isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0,
            "seed", seed, "must be an integer >= 0")
    rng = np.random.default_rng(int(seed))
    if m is not None:
        require(isinstance(m, (int, np.integer)) and not isinstance(m, bool), "m", m,
                "must be an integer")
        require(0 <= m <= pairs, "m", m, f"must be in [0, n(n-1)/2 = {pairs}] for n = {n}")
        m = int(m)
        label = f"gnm_n{n}_m{m}_s{seed}"
    else:
        require(isinstance(p, (int, float, np.floating)) and not isinstance(p, bool) and
                0.0 <= float(p) <= 1.0, "p", p, "must be a probability in [0, 1]")
        m = int(rng.binomial(pairs, float(p))) if pairs else 0
        label = f"gnp_n{n}_p{float(p):g}_s{seed}"
    k = np.sort(rng.choice(pairs, size=m, replace=False)).astype(np.int64) if m else \
        np.zeros(0, np.int64)
    hi, lo = _unrank_pairs(k)
    w = np.ones(m, np.int64) if weights == "unit" else rng.choice(np.array([-1, 1]), size=m)
    return Graph(n, lo, hi, w.astype(np.int64), name=name or label)


def _unrank_pairs(k):
    """Pair index k = hi(hi-1)/2 + lo (0 <= lo < hi) -> (hi, lo), exact for any int64 k."""
    hi = np.floor((1.0 + np.sqrt(1.0 + 8.0 * k.astype(np.float64))) / 2.0).astype(np.int64)
    # Correct the floating-point estimate (at most a step or two off for huge k).
    for _ in range(4):
        hi = np.where(hi * (hi - 1) // 2 > k, hi - 1, hi)
        hi = np.where((hi + 1) * hi // 2 <= k, hi + 1, hi)
    lo = k - hi * (hi - 1) // 2
    assert np.all((lo >= 0) & (lo < hi)), "pair unranking failed"
    return hi, lo
