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

The engine generates the same streams compiled, 64 bits at a time: the squared recurrence
b_t = b_{t - r*2**m} xor b_{t - s*2**m} holds for every m (squaring is linear over GF(2)), so
with m = 6 word x of a component's stream (64 bits) is word[x - r] xor word[x - s]: a ring of
the last r words per lane and component, one XOR per word (``fill_draws``).
"""

import numpy as np
from numba import njit

from .errors import require

COMPONENTS = ((89, 38), (127, 63))   # (r, s): b_t = b_{t-r} xor b_{t-s}
DRAW_BITS = 32
LOW32 = (1 << DRAW_BITS) - 1
(R1, S1), (R2, S2) = COMPONENTS
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


def bootstrap_words(seeds, r, s):
    """Words 0 .. r - 1 (64 bits each, bit t of the stream at bit t % 64 of word t // 64) of one
    component for each seed in `seeds` (register contents), built from the register bits with
    the recurrence, doubling its lags (b_t = b_{t - r 2**m} xor b_{t - s 2**m}) as the stream
    grows."""
    bits = np.array([[(x >> i) & 1 for i in range(r)] for x in seeds], dtype=np.uint8)
    target = 64 * r
    while bits.shape[1] < target:
        n = bits.shape[1]
        m = (n // r).bit_length() - 1                       # largest m with r * 2**m <= n
        lag_r, lag_s = r << m, s << m
        new = bits[:, n - lag_r:n - lag_r + lag_s] ^ bits[:, n - lag_s:n]
        bits = np.concatenate((bits, new), axis=1)
    packed = np.packbits(bits[:, :target], axis=1, bitorder="little")
    return np.ascontiguousarray(packed).view("<u8").astype(np.uint64)


@njit(cache=True)
def fill_draws(ring1, ring2, pending, position, out, count):
    """Draws number position[0] .. position[0] + count - 1 of every lane into out[j * lanes +
    lane]; advances position[0].

    Per lane and component a ring holds the last r 64-bit words of the bit stream; the squared
    recurrence b_t = b_{t - 64 r} xor b_{t - 64 s} makes word x = word[x - r] xor word[x - s],
    so each word costs one XOR. The rings start with words 0 .. r - 1 (bootstrap_words).
    Draw d is the low (even d) or high (odd d) half of word d // 2 of the XOR of
    the two components; the high half waits in pending[lane]."""
    lanes = ring1.shape[0]
    first = position[0]
    for lane in range(lanes):
        x = (first + 1) >> 1                     # next word to read (when d is even)
        i1, j1 = x % R1, (x + R1 - S1) % R1
        i2, j2 = x % R2, (x + R2 - S2) % R2
        d = first
        for j in range(count):
            if d & 1:
                out[j * lanes + lane] = pending[lane]
            else:
                if x >= R1:
                    ring1[lane, i1] ^= ring1[lane, j1]
                if x >= R2:
                    ring2[lane, i2] ^= ring2[lane, j2]
                word = ring1[lane, i1] ^ ring2[lane, i2]
                out[j * lanes + lane] = np.uint32(word & np.uint64(LOW32))
                pending[lane] = np.uint32(word >> np.uint64(DRAW_BITS))
                x += 1
                i1 = i1 + 1 if i1 + 1 < R1 else 0
                j1 = j1 + 1 if j1 + 1 < R1 else 0
                i2 = i2 + 1 if i2 + 1 < R2 else 0
                j2 = j2 + 1 if j2 + 1 < R2 else 0
            d += 1
    position[0] = first + count


class LaneStreams:
    """The draws of all lanes of an array (the compiled generator of the engine):
    ``take(n)`` returns the next n draws of every lane, (lanes, n) uint32."""

    def __init__(self, seed, lanes):
        require(lanes >= 1, "lanes", lanes, "must be >= 1")
        seeds = [register_seeds(seed, lane) for lane in range(lanes)]
        self.ring1, self.ring2 = (bootstrap_words([x[i] for x in seeds], r, s)
                                  for i, (r, s) in enumerate(COMPONENTS))
        self.pending = np.zeros(lanes, dtype=np.uint32)
        self.position = np.zeros(1, dtype=np.int64)          # draws taken per lane
        self.lanes = lanes

    def take(self, n):
        out = np.empty(n * self.lanes, dtype=np.uint32)
        self.fill(out, n)
        return out.reshape(n, self.lanes).T.copy()

    def fill(self, out, n):
        """The next n draws of every lane into out[j * lanes + lane] (the engine's layout)."""
        fill_draws(self.ring1, self.ring2, self.pending, self.position, out, n)
