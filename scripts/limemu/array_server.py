"""The cocotb side of a Verilator session: drives the array core's bus on behalf of the host.

Runs inside the simulator. It connects to the host process (address and key in the
environment variables LIMEMU_CHANNEL and LIMEMU_KEY) and serves its requests until told to
quit: write words, read words, run K steps. Between requests, and while the core runs its
steps on its own, Python does nothing: the clock is cocotb's C-level GPI clock.

Bus timing: inputs are driven and outputs sampled on the falling edge, so every value is
settled; an access is presented only in a cycle where the core's ``ready`` is high (the
pipelined core: always; the compact core: not while it stores a wide entry). A write takes one
cycle; reads are issued one per cycle, at most READ_LATENCY in flight, and answered (``rack``)
in order, three cycles later or more.
"""

import os
from multiprocessing.connection import Client

import cocotb
from cocotb.triggers import FallingEdge, RisingEdge

CLOCK_PERIOD_NS = 10
READ_LATENCY = 3
BUS_INPUT_DELAY = 2
RESET_CYCLES = 3          # falling edges until a written start shows as busy


async def write_words(dut, pairs):
    for address, word in pairs:
        await FallingEdge(dut.clk)
        while not int(dut.ready.value):
            dut.we.value = 0
            await FallingEdge(dut.clk)
        dut.addr.value = address
        dut.wdata.value = word
        dut.we.value = 1
    await FallingEdge(dut.clk)
    dut.we.value = 0


async def read_words(dut, addresses):
    answers = []
    issued = list(addresses)
    in_flight = 0
    while len(answers) < len(addresses):
        await FallingEdge(dut.clk)
        if int(dut.rack.value):
            answers.append(int(dut.rdata.value))
            in_flight -= 1
        if issued and in_flight < READ_LATENCY and int(dut.ready.value):
            dut.addr.value = issued.pop(0)
            dut.re.value = 1
            in_flight += 1
        else:
            dut.re.value = 0
    dut.re.value = 0
    return answers


async def run_steps(dut, pairs):
    """Write the run's registers and start; wait for the core to finish. Returns cycles."""
    start = cocotb.utils.get_sim_time("ns")
    await write_words(dut, pairs)
    for _ in range(BUS_INPUT_DELAY):           # the core sees the start one cycle later
        await FallingEdge(dut.clk)
    if int(dut.busy.value):
        await RisingEdge(dut.done)
    await FallingEdge(dut.clk)
    return int((cocotb.utils.get_sim_time("ns") - start) // CLOCK_PERIOD_NS)


@cocotb.test()
async def serve(dut):
    """Serve the host's requests until it says quit."""
    dut.we.value = 0
    dut.re.value = 0
    for _ in range(RESET_CYCLES):                 # the wrapper holds reset for two cycles
        await FallingEdge(dut.clk)
    channel = Client(os.environ["LIMEMU_CHANNEL"], authkey=bytes.fromhex(os.environ["LIMEMU_KEY"]))
    try:
        while True:
            request = channel.recv()
            kind = request[0]
            if kind == "quit":
                channel.send(("ok",))
                break
            if kind == "write":
                await write_words(dut, request[1])
                channel.send(("ok",))
            elif kind == "read":
                channel.send(("ok", await read_words(dut, request[1])))
            elif kind == "run":
                channel.send(("ok", await run_steps(dut, request[1])))
            else:
                channel.send(("error", f"unknown request {kind!r}"))
    finally:
        channel.close()
