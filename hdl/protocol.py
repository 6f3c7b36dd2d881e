"""The host link: a framed serial protocol between the host and a board's UART bridge.

No logic here, like hdl/regmap.py: the bridge (hdl/host_bridge.py) is built from these
constants and the host driver (scripts/limemu/link.py) encodes and decodes with these
functions. Nothing of the frame format is written anywhere else; the CRC is one
`amaranth.lib.crc` parameter set, `CRC`, which gives both the bridge's logic and the host's
answer.

UART 8N1, bytes on the wire; multi-byte fields little-endian.

Request  (host -> board)::

    0xA5 | command | seq | length (2) | payload (length bytes) | crc (2)

Response (board -> host)::

    0x5A | status | seq | skipped | length (2) | payload (length bytes) | crc (2)

``crc`` is `CRC` (CRC-16/CCITT-FALSE: polynomial 0x1021, initial value 0xFFFF) of every byte
after the sync byte up to the crc, least significant byte first. ``seq`` is the request's sequence
number, echoed. ``skipped`` counts the bytes the board discarded while looking for a sync
byte since its previous response (saturating at 255): garbage between frames.

Commands:

* ``INFO``: empty payload; answers the build description (`info_words`) and resets the
  duplicate filter. A host sends it first.
* ``WRITE``: payload = address (4) + n >= 1 words (4 each): words to ``address``,
  ``address + 1``, ...; n <= MAX_WORDS.
* ``READ``: payload = address (4) + count (2), 1 <= count <= MAX_WORDS: answers the words.

A request is checked completely before anything is applied, in this order: crc, command,
length, duplicate, the run rule, every address of the burst (`RegisterMap.refusal`). A refused
request is answered with its status and changes nothing. A WRITE whose seq equals that of the
last applied WRITE is answered DUPLICATE and not applied again: the host's resend after a lost
answer (checked before the run rule, so that a resent start is not answered BUSY).
While the core runs, the only write accepted is one word to ``control`` without ``start``
(stop, clear_errors), and only registers can be read.
A frame whose bytes stop arriving for `timeout` cycles is dropped and answered TRUNCATED;
garbage followed by silence is answered GARBAGE (seq 0).
"""

import binascii
import struct

from amaranth.lib.crc import catalog
from limemu.model.errors import require
from limemu.model.spec import HARDWARE_FIELDS as SPEC_FIELDS
from limemu.model.spec import Q_STORAGES

from .regmap import CONTROL, CORES, WORD_BITS, Geometry

REQUEST_SYNC = 0xA5
RESPONSE_SYNC = 0x5A
PROTOCOL_MAGIC = 0x4C4C4E4B        # "LLNK"
PROTOCOL_VERSION = 2                # 2: INFO names the core (Geometry.core)
MAX_WORDS = 256                    # words of one WRITE burst or READ answer
REQUEST_HEADER = 5                 # sync, command, seq, length
RESPONSE_HEADER = 6                # sync, status, seq, skipped, length
#: the frames' CRC, on bytes: `CRC.create()` is the bridge's logic, `crc16` the host's answer
CRC = catalog.CRC16_CCITT_FALSE(data_width=8)
CRC_BYTES = CRC.algorithm.crc_width // 8

COMMANDS = {"INFO": 0x01, "WRITE": 0x02, "READ": 0x03}
STATUS = {"OK": 0x00, "BAD_CRC": 0x01, "TRUNCATED": 0x02, "UNKNOWN_COMMAND": 0x03,
          "BAD_LENGTH": 0x04, "BAD_ADDRESS": 0x05, "BUSY": 0x06, "GARBAGE": 0x07,
          "DUPLICATE": 0x08}
STATUS_NAMES = {code: name for name, code in STATUS.items()}
STATUS_MEANING = {
    "OK": "done",
    "BAD_CRC": "the request's CRC did not match: nothing applied",
    "TRUNCATED": "the request stopped arriving before its end: nothing applied",
    "UNKNOWN_COMMAND": "the command byte is not one the bridge knows: nothing applied",
    "BAD_LENGTH": "the payload length does not fit the command or the bridge's buffer",
    "BAD_ADDRESS": "an address of the request is outside the register map or not accessible "
                   "that way: nothing applied",
    "BUSY": "the core is running: only a stop and register reads are accepted",
    "GARBAGE": "bytes outside any frame were discarded",
    "DUPLICATE": "this WRITE was applied already (same seq): not applied again",
}

# the build description answered by INFO (one word each, in this order)
GEOMETRY_FIELDS = ("groups", "q_storage", "q_capacity", "table_depth", "core")
Q_STORAGE_CODES = {name: code for code, name in enumerate(Q_STORAGES)}
CORE_CODES = {name: code for code, name in enumerate(CORES)}
INFO_FIELDS = (("protocol_magic", "protocol_version", "max_words", "clock_hz", "baud")
               + SPEC_FIELDS + GEOMETRY_FIELDS + ("run_cycles_lo", "run_cycles_hi"))


def crc16(data):
    """`CRC` of `data`. binascii's C routine computes this algorithm (asserted below against
    `CRC.compute`, a bit-by-bit Python loop too slow for a host's whole load)."""
    return binascii.crc_hqx(bytes(data), CRC.algorithm.initial_crc)


def encode_request(command, seq, payload=b""):
    require(0 <= seq <= 255, "seq", seq, "must be in [0, 255]")
    body = struct.pack("<BBH", COMMANDS[command], seq, len(payload)) + bytes(payload)
    return bytes([REQUEST_SYNC]) + body + struct.pack("<H", crc16(body))


def encode_response(status, seq, skipped=0, payload=b""):
    """A response as the bridge sends it (tests and documentation)."""
    body = struct.pack("<BBBH", STATUS[status], seq, min(skipped, 255), len(payload)) + payload
    return bytes([RESPONSE_SYNC]) + body + struct.pack("<H", crc16(body))


def write_payload(address, words):
    require(1 <= len(words) <= MAX_WORDS, "words", len(words), f"must be 1..{MAX_WORDS}")
    return struct.pack(f"<I{len(words)}I", address, *words)


def read_payload(address, count):
    require(1 <= count <= MAX_WORDS, "count", count, f"must be 1..{MAX_WORDS}")
    return struct.pack("<IH", address, count)


def words_of(payload):
    return list(struct.unpack(f"<{len(payload) // 4}I", payload))


def bursts(pairs, limit=MAX_WORDS):
    """(address, [words]) bursts of consecutive addresses, in the order given."""
    out = []
    for address, word in pairs:
        if out and out[-1][0] + len(out[-1][1]) == address and len(out[-1][1]) < limit:
            out[-1][1].append(int(word))
        else:
            out.append((int(address), [int(word)]))
    return out


# payload sizes, taken from the encoders above (the bridge is built from them)
WORD_BYTES = WORD_BITS // 8
ADDRESS_BYTES = len(write_payload(0, [0])) - WORD_BYTES    # a payload starts with the address
READ_LENGTH = len(read_payload(0, 1))                      # address + count
COUNT_BYTES = READ_LENGTH - ADDRESS_BYTES
BUFFER_BYTES = len(write_payload(0, [0] * MAX_WORDS))      # the longest payload there is


def info_words(spec, geometry, *, clock_hz, baud, run_cycles=0):
    """The words INFO answers for a build of (spec, geometry)."""
    values = {"protocol_magic": PROTOCOL_MAGIC, "protocol_version": PROTOCOL_VERSION,
              "max_words": MAX_WORDS, "clock_hz": clock_hz, "baud": baud,
              "run_cycles_lo": run_cycles & 0xFFFFFFFF, "run_cycles_hi": run_cycles >> 32}
    values.update({name: getattr(spec, name) for name in SPEC_FIELDS})
    values.update({name: getattr(geometry, name) for name in GEOMETRY_FIELDS})
    values["q_storage"] = Q_STORAGE_CODES[geometry.q_storage]
    values["core"] = CORE_CODES[geometry.core]
    return [values[name] for name in INFO_FIELDS]


def parse_info(words):
    """INFO words -> dict with 'spec' (SPEC_FIELDS values), 'geometry' (a Geometry), and the
    link fields. Raises ValueError on a foreign or newer protocol."""
    if len(words) != len(INFO_FIELDS):
        raise ValueError(f"INFO answered {len(words)} words, expected {len(INFO_FIELDS)}")
    values = dict(zip(INFO_FIELDS, words))
    if values["protocol_magic"] != PROTOCOL_MAGIC:
        raise ValueError(f"not a limemu board: INFO magic {values['protocol_magic']:#x}, "
                         f"expected {PROTOCOL_MAGIC:#x}")
    if values["protocol_version"] != PROTOCOL_VERSION:
        raise ValueError(f"the board speaks protocol version {values['protocol_version']}, "
                         f"this host speaks {PROTOCOL_VERSION}: rebuild the bitstream")
    storage = {code: name for name, code in Q_STORAGE_CODES.items()}.get(values["q_storage"])
    if storage is None:
        raise ValueError(f"INFO names Q storage {values['q_storage']}, which this host does not "
                         f"know (codes {Q_STORAGE_CODES})")
    core = {code: name for name, code in CORE_CODES.items()}.get(values["core"])
    if core is None:
        raise ValueError(f"INFO names core {values['core']}, which this host does not know "
                         f"(codes {CORE_CODES})")
    geometry = Geometry(lanes=values["lanes"], groups=values["groups"], q_storage=storage,
                        q_capacity=values["q_capacity"], table_depth=values["table_depth"],
                        core=core)
    return {"spec": {name: values[name] for name in SPEC_FIELDS}, "geometry": geometry,
            "clock_hz": values["clock_hz"], "baud": values["baud"],
            "max_words": values["max_words"],
            "run_cycles": values["run_cycles_lo"] | (values["run_cycles_hi"] << 32)}


def write_refusal(rmap, address, words, running):
    """The status a WRITE of `words` at `address` is refused with, or None (accepted).
    During a run only one word to ``control`` without ``start`` passes (stop, clear_errors)."""
    if running and not (len(words) == 1 and address == rmap["control"].base
                        and not (words[0] >> CONTROL["start"]) & 1):
        return "BUSY"
    return _burst_refusal(rmap, address, len(words), write=True, running=running)


def read_refusal(rmap, address, count, running):
    """The status a READ of `count` words at `address` is refused with, or None."""
    return _burst_refusal(rmap, address, count, write=False, running=running)


def _burst_refusal(rmap, address, count, *, write, running):
    reasons = {rmap.refusal(a, write=write, running=running)
               for a in range(address, address + count)}
    return "BAD_ADDRESS" if "address" in reasons else "BUSY" if "busy" in reasons else None


assert WORD_BITS == 32
assert crc16(b"123456789\xff\x00") == CRC.compute(b"123456789\xff\x00")
