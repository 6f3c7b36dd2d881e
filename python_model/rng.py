"""The per-lane random generator: two combined LFSRs, 32 bits per cycle.

Hardware (one per lane): two shift registers of r = 89 and r = 127 bits whose bit streams obey
the primitive trinomial recurrences

    b_t = b_{t-89} xor b_{t-38}        c_t = c_{t-127} xor c_{t-63}

(periods 2**89 - 1 and 2**127 - 1, both Mersenne primes, so the combined period is their
product, about 2**216). Each cycle a register outputs its 32 oldest bits and shifts in 32 new
ones; since both lags exceed 32, the new bits depend only on bits already held, so each is one
XOR of two register bits. The lane's draw is the XOR of the two 32-bit outputs, bit i of draw c
being b_{32c+i} xor c_{32c+i}.

Cost per lane: 216 flip-flops and 64 two-input XORs (or 32 four-input LUTs for the next state
of both registers plus 32 two-input XORs for the output) -- no adders, no multipliers.

Seeding: the host fills each register with bits from SplitMix64 driven by (run seed, lane,
component); an all-zero register (probability 2**-89) is replaced by 1.

The model reproduces the stream vectorised over lanes and time: the squared recurrence
b_t = b_{t - r*2**m} xor b_{t - s*2**m} holds for every m (squaring is linear over GF(2)), so
with m >= 6 whole 64-bit words are XORs of two earlier words, s*2**(m-6) words at a time.
"""

import numpy as np

from .errors import require

COMPONENTS = ((89, 38), (127, 63))   # (r, s): b_t = b_{t-r} xor b_{t-s}
DRAW_BITS = 32
STATE_BITS = sum(r for r, _ in COMPONENTS)
MASK64 = 2**64 - 1


def splitmix64(state):
    """One SplitMix64 step: (next state, 64-bit output)."""
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


def register_seeds(seed, lane):
    """Initial contents of the lane's registers (ints, bit i = the i-th oldest bit)."""
    seeds = []
    for component, (r, _) in enumerate(COMPONENTS):
        state = (seed ^ (lane * 0xD1B54A32D192ED03) ^ (component * 0x8CB92BA72F3D8DD7)) & MASK64
        bits = 0
        for word in range(-(-r // 64)):
            state, out = splitmix64(state)
            bits |= out << (64 * word)
        bits &= (1 << r) - 1
        seeds.append(bits or 1)
    return seeds


class LaneGenerator:
    """Reference implementation of one lane, register for register as the hardware does it."""

    def __init__(self, seed, lane):
        self.registers = register_seeds(seed, lane)

    def next_draw(self):
        draw = 0
        for index, (r, s) in enumerate(COMPONENTS):
            reg = self.registers[index]
            draw ^= reg & 0xFFFFFFFF
            new = (reg ^ (reg >> (r - s))) & 0xFFFFFFFF      # b_{t-r} xor b_{t-s}, 32 at once
            self.registers[index] = (reg >> 32) | (new << (r - 32))
        return draw


class _ComponentStreams:
    """One LFSR component for all lanes, as 64-bit words (bit t of the stream at word t//64)."""

    def __init__(self, r, s, seeds, block_exponent):
        self.r, self.s = r, s
        self.lag_r = r << block_exponent          # word lags of the squared recurrence
        self.lag_s = s << block_exponent
        self.words = self._bootstrap(seeds, self.lag_r)
        self.start = 0                            # absolute word index of self.words[:, 0]

    def _bootstrap(self, seeds, n_words):
        """The first n_words words per lane, built bit by bit with growing squared lags."""
        r, s = self.r, self.s
        bits = np.array([[(x >> i) & 1 for i in range(r)] for x in seeds], dtype=np.uint8)
        target = 64 * n_words
        while bits.shape[1] < target:
            n = bits.shape[1]
            m = (n // r).bit_length() - 1                   # largest m with r * 2**m <= n
            lag_r, lag_s = r << m, s << m
            new = bits[:, n - lag_r:n - lag_r + lag_s] ^ bits[:, n - lag_s:n]
            bits = np.concatenate((bits, new), axis=1)
        packed = np.packbits(bits[:, :target], axis=1, bitorder="little")
        return np.ascontiguousarray(packed).view("<u8")

    def words_from(self, first, count):
        """Words [first, first + count) per lane; earlier words may be forgotten afterwards."""
        while self.start + self.words.shape[1] < first + count:
            new = (self.words[:, -self.lag_r:self.words.shape[1] - self.lag_r + self.lag_s]
                   ^ self.words[:, -self.lag_s:])
            keep = max(self.lag_r, self.start + self.words.shape[1] - first)
            drop = max(0, self.words.shape[1] - keep)
            self.words = np.concatenate((self.words[:, drop:], new), axis=1)
            self.start += drop
        a = first - self.start
        return self.words[:, a:a + count]


class LaneStreams:
    """The draws of all lanes of an array, vectorised: ``take(n)`` returns (lanes, n) uint32."""

    def __init__(self, seed, lanes):
        require(lanes >= 1, "lanes", lanes, "must be >= 1")
        seeds = [register_seeds(seed, lane) for lane in range(lanes)]
        # about 2 MB of bootstrap bits per lane and component at exponent 8; less for many lanes
        exponent = max(2, 8 - max(0, (lanes - 1).bit_length() - 5))
        self._components = [_ComponentStreams(r, s, [x[i] for x in seeds], exponent)
                            for i, (r, s) in enumerate(COMPONENTS)]
        self.lanes = lanes
        self.position = 0                          # draws consumed per lane

    def take(self, n):
        first, last = self.position // 2, -(-(self.position + n) // 2)
        draws = None
        for component in self._components:
            words = component.words_from(first, last - first).view("<u4")
            draws = words if draws is None else draws ^ words
        a = self.position - 2 * first
        self.position += n
        return draws[:, a:a + n].astype(np.uint32)
