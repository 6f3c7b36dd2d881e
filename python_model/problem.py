"""The energy landscape L(W) = 1/2 W^T Q W - b^T W with integer Q (symmetric) and b.

Twice the loss, ``L2 = W^T Q W - 2 b^T W``, is always an integer; the model works with it.
Q is kept in a CSR-like form (row pointers, column indices, values) for both storages; a dense
copy is kept too when the array is small enough for the dense field engine.
"""

import numpy as np

from .errors import ConfigError, require
from .spec import MAX_CELLS


class QuadraticProblem:
    """Integer quadratic problem.

    Build with :meth:`dense` (a full symmetric matrix) or :meth:`sparse` (a list of
    couplings). ``name`` is a label for reports.
    """

    def __init__(self, n, rows, cols, vals, b, name="quadratic"):
        self.n = int(n)
        require(self.n <= MAX_CELLS, "n", self.n, f"must be <= {MAX_CELLS} (MAX_CELLS, the "
                "largest array)")
        self.name = name
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        vals = np.asarray(vals, dtype=np.int64)
        keep = vals != 0
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
        order = np.lexsort((cols, rows))
        rows, cols, vals = rows[order], cols[order], vals[order]
        if len(rows) > 1:
            dup = (rows[1:] == rows[:-1]) & (cols[1:] == cols[:-1])
            if np.any(dup):
                i = int(np.flatnonzero(dup)[0])
                raise ConfigError(f"Q[{rows[i]}, {cols[i]}] is given twice")
        self.indptr = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=self.n))))
        self.indices = cols
        self.data = vals
        self.b = np.asarray(b, dtype=np.int64).reshape(-1)
        require(self.b.shape == (self.n,), "b", f"shape {self.b.shape}",
                f"must have {self.n} entries")
        self.diag = np.zeros(self.n, dtype=np.int64)
        on_diag = rows == cols
        self.diag[rows[on_diag]] = vals[on_diag]
        self._check_symmetric(rows, cols, vals)

    # -- constructors ---------------------------------------------------------------------------
    @classmethod
    def dense(cls, Q, b, name="quadratic"):
        Q = np.asarray(Q)
        require(Q.ndim == 2 and Q.shape[0] == Q.shape[1], "Q", f"shape {Q.shape}", "must be square")
        _require_integer("Q", Q)
        _require_integer("b", np.asarray(b))
        rows, cols = np.nonzero(Q)
        return cls(Q.shape[0], rows, cols, Q[rows, cols], b, name=name)

    @classmethod
    def sparse(cls, n, i, j, w, b=None, name="quadratic"):
        """Couplings Q[i,j] = Q[j,i] = w for i != j; Q[i,i] = w for i == j."""
        i, j, w = (np.asarray(x, dtype=np.int64) for x in (i, j, w))
        require(len(i) == len(j) == len(w), "couplings", (len(i), len(j), len(w)),
                "i, j and w must have the same length")
        if len(i):
            bad = (i < 0) | (i >= n) | (j < 0) | (j >= n)
            require(not np.any(bad), "coupling index", int(np.concatenate((i, j))[np.argmax(
                np.concatenate((bad, bad)))]), f"must be in [0, {n})")
        off = i != j
        rows = np.concatenate((i, j[off]))
        cols = np.concatenate((j, i[off]))
        vals = np.concatenate((w, w[off]))
        return cls(n, rows, cols, vals, np.zeros(n, np.int64) if b is None else b, name=name)

    def _check_symmetric(self, rows, cols, vals):
        """Entries are sorted by (row, col); the transpose sorted the same way must match."""
        order = np.lexsort((rows, cols))
        bad = (cols[order] != rows) | (rows[order] != cols) | (vals[order] != vals)
        if np.any(bad):
            k = int(np.flatnonzero(bad)[0])
            r, c, v = int(rows[k]), int(cols[k]), int(vals[k])
            mirror = (self.indices[self.indptr[c]:self.indptr[c + 1]] == r)
            other = int(self.data[self.indptr[c]:self.indptr[c + 1]][mirror][0]) if mirror.any() \
                else 0
            raise ConfigError(f"Q[{r}, {c}] = {v} but Q[{c}, {r}] = {other}: Q must be symmetric")

    # -- properties -----------------------------------------------------------------------------
    @property
    def nnz(self):
        return len(self.data)

    def column(self, m):
        """(row indices, values) of column m (= row m, Q is symmetric)."""
        a, z = self.indptr[m], self.indptr[m + 1]
        return self.indices[a:z], self.data[a:z]

    def to_dense(self):
        Q = np.zeros((self.n, self.n), dtype=np.int64)
        rows = np.repeat(np.arange(self.n), np.diff(self.indptr))
        Q[rows, self.indices] = self.data
        return Q

    def matvec(self, W):
        return _segment_sum(self.data * np.asarray(W, dtype=np.int64)[self.indices], self.indptr)

    def field(self, W):
        """g = Q W - b."""
        return self.matvec(W) - self.b

    def loss2(self, W):
        """2 L(W) = W^T Q W - 2 b^T W, an exact Python integer."""
        W = np.asarray(W, dtype=np.int64)
        return int(np.dot(W, self.matvec(W))) - 2 * int(np.dot(self.b, W))

    def loss(self, W):
        return self.loss2(W) / 2

    def max_abs_field(self, w_max):
        """Bound on |g_n| over all states with |W| <= w_max."""
        abs_rows = _segment_sum(np.abs(self.data), self.indptr)
        return int(np.max(abs_rows * w_max + np.abs(self.b))) if self.n else 0

    def __repr__(self):
        return f"QuadraticProblem(name={self.name!r}, n={self.n}, nnz={self.nnz})"


def _segment_sum(values, indptr):
    """Sums of values over the CSR segments (exact for int64)."""
    csum = np.concatenate(([0], np.cumsum(values, dtype=np.int64)))
    return csum[indptr[1:]] - csum[indptr[:-1]]


def _require_integer(name, a):
    if a.dtype.kind in "iu":
        return
    if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
        return
    raise ConfigError(f"{name}: must hold integers (got dtype {a.dtype}); scale and round it first")
