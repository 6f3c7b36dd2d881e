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


def bootstrap_words(seeds, r, s, words):
    """Words 0 .. words - 1 (64 bits each, bit t of the stream at bit t % 64 of word t // 64)
    of one component for each seed in `seeds` (register contents), built from the register bits
    with the recurrence, doubling its lags (b_t = b_{t - r 2**m} xor b_{t - s 2**m}) as the
    stream grows. Returns (len(seeds), words) uint64."""
    bits = np.array([[(x >> i) & 1 for i in range(r)] for x in seeds], dtype=np.uint8)
    target = 64 * words
    while bits.shape[1] < target:
        n = bits.shape[1]
        m = (n // r).bit_length() - 1                       # largest m with r * 2**m <= n
        lag_r, lag_s = r << m, s << m
        new = bits[:, n - lag_r:n - lag_r + lag_s] ^ bits[:, n - lag_s:n]
        bits = np.concatenate((bits, new), axis=1)
    packed = np.packbits(bits[:, :target], axis=1, bitorder="little")
    return np.ascontiguousarray(packed).view("<u8").astype(np.uint64)


# the compiled streams: state slots (LaneStreams.state)
DRAWS_TAKEN, HEAD, NEXT_WORD, BASE, GENERATED = range(5)


@njit(cache=True)
def fill_draws(streams, out, count):
    """Draws number d .. d + count - 1 of every lane into out[j * lanes + lane], d the draws
    taken so far (streams = LaneStreams.arrays()); advances the streams.

    Word x of a component's stream (64 bits) is word[x - r] xor word[x - s] by the squared
    recurrence b_t = b_{t - 64 r} xor b_{t - 64 s}: one XOR per word. Words are made in blocks,
    per lane along time (the lags of 38 words or more let the compiler vectorise), into
    buffers that keep the last R2 words before each block; the XOR of the components' words
    waits in `draws`, per lane (as 32-bit halves: draw 2k is word k's low half), and is
    copied into out's layout as it is taken."""
    state, words1, words2, words = streams
    draws = words.view(np.uint32)              # little-endian: draw 2k is word k's low half
    lanes = words1.shape[0]
    block = draws.shape[1]                     # draws per lane
    j = 0
    while j < count:
        head = state[HEAD]
        if head == block:
            _next_block(state, words1, words2, words)
            head = 0
        m = min(count - j, block - head)
        _interleave(draws, head, m, out, j)
        state[HEAD] = head + m
        j += m
    state[DRAWS_TAKEN] += count


@njit(cache=True, inline="always")
def _interleave(draws, head, m, out, j):
    """out[(j + k) * lanes + lane] = draws[lane, head + k] for k < m. (Lane by lane: the
    loops stream; four lanes, the default, in one loop, which the compiler vectorises.)"""
    lanes = np.uint64(draws.shape[0])
    head, m, j = np.uint64(head), np.uint64(m), np.uint64(j)
    if lanes == 4:
        a, b, c, d = draws[0], draws[1], draws[2], draws[3]
        for k in range(m):
            o = (j + k) * np.uint64(4)
            out[o] = a[head + k]
            out[o + np.uint64(1)] = b[head + k]
            out[o + np.uint64(2)] = c[head + k]
            out[o + np.uint64(3)] = d[head + k]
        return
    for lane in range(lanes):
        row = draws[lane]
        for k in range(m):
            out[(j + k) * lanes + lane] = row[head + k]


@njit(cache=True)
def _next_block(state, words1, words2, mixed_words):
    """The draws of the next block of words: words NEXT_WORD .. NEXT_WORD + block - 1."""
    lanes = words1.shape[0]
    block = mixed_words.shape[1]
    first, base, generated = state[NEXT_WORD], state[BASE], state[GENERATED]
    end = first + block
    if end - base > words1.shape[1]:                    # keep the last R2 words, at the front
        keep = generated - R2
        for lane in range(lanes):
            for p in range(R2):
                words1[lane, p] = words1[lane, keep - base + p]
                words2[lane, p] = words2[lane, keep - base + p]
        base = keep
    # unsigned indices: no negative-index wrap-around, so the loops vectorise
    start, stop, at = np.uint64(generated - base), np.uint64(end - base), np.uint64(first - base)
    for lane in range(lanes):
        w1, w2, mixed = words1[lane], words2[lane], mixed_words[lane]
        for p in range(start, stop):
            w1[p] = w1[p - np.uint64(R1)] ^ w1[p - np.uint64(S1)]
        for p in range(start, stop):
            w2[p] = w2[p - np.uint64(R2)] ^ w2[p - np.uint64(S2)]
        for k in range(np.uint64(block)):
            mixed[k] = w1[at + k] ^ w2[at + k]
    state[NEXT_WORD], state[BASE], state[GENERATED] = end, base, max(generated, end)
    state[HEAD] = 0


def block_words(lanes):
    """Words per lane made at once: long blocks, within a few MB for many lanes."""
    return max(256, min(2048, (1 << 18) // lanes))


class LaneStreams:
    """The draws of all lanes of an array, compiled (the engine's generator):
    ``take(n)`` returns the next n draws of every lane, (lanes, n) uint32."""

    def __init__(self, seed, lanes):
        require(lanes >= 1, "lanes", lanes, "must be >= 1")
        seeds = [register_seeds(seed, lane) for lane in range(lanes)]
        block = block_words(lanes)
        buffers = []
        for i, (r, s) in enumerate(COMPONENTS):
            words = np.zeros((lanes, R2 + block), dtype=np.uint64)
            words[:, :R2] = bootstrap_words([x[i] for x in seeds], r, s, R2)
            buffers.append(words)
        self.words1, self.words2 = buffers
        self.draws = np.zeros((lanes, block), dtype=np.uint64)   # waiting draws, two per word
        self.state = np.zeros(5, dtype=np.int64)
        self.state[HEAD] = 2 * block                      # nothing waiting: make a block first
        self.state[GENERATED] = R2                        # words 0 .. R2 - 1 are there
        self.lanes = lanes

    def arrays(self):
        return self.state, self.words1, self.words2, self.draws

    @property
    def position(self):
        """Draws taken per lane so far."""
        return int(self.state[DRAWS_TAKEN])

    def take(self, n):
        out = np.empty(n * self.lanes, dtype=np.uint32)
        fill_draws(self.arrays(), out, n)
        return out.reshape(n, self.lanes).T.copy()
