// The array core under Verilator, clocked by a plain C++ loop: no cocotb, no --timing.
// Only for scripts/bench_rtl.py, which measures with it how much of the simulation time is
// the design's own evaluation and how much the cocotb harness adds.
//
// Requests on stdin, one per line, decimal numbers; one answer line each on stdout:
//   w N a1 d1 ... aN dN   write words              -> ok
//   r N a1 ... aN         read words               -> ok v1 ... vN
//   x N a1 d1 ... aN dN   write, then run until the core is no longer busy -> ok CYCLES
//   q                     quit                     -> ok
// Bus timing as cocotb_tests/array_tb.py: inputs change after the falling edge, a write
// takes one cycle while `ready` is high, a read is answered by `rack` some cycles later.
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <string>

#include "Varray_core.h"
#include "verilated.h"

static Varray_core* core;
static uint64_t cycles = 0;

static void cycle() {
    core->clk = 1;
    core->eval();
    core->clk = 0;
    core->eval();
    cycles++;
}

static void write_word(uint32_t address, uint32_t word) {
    while (!core->ready) cycle();
    core->addr = address;
    core->wdata = word;
    core->we = 1;
    cycle();
    core->we = 0;
}

static uint32_t read_word(uint32_t address) {
    while (!core->ready) cycle();
    core->addr = address;
    core->re = 1;
    cycle();
    core->re = 0;
    for (int waited = 0; !core->rack; waited++) {
        if (waited > 1000) {
            std::fprintf(stderr, "verilator_loop: no answer to a read of %u\n", address);
            std::exit(3);
        }
        cycle();
    }
    return core->rdata;
}

static bool write_pairs(size_t count) {
    for (size_t i = 0; i < count; i++) {
        uint32_t address, word;
        if (!(std::cin >> address >> word)) return false;
        write_word(address, word);
    }
    return true;
}

int main(int argc, char** argv) {
    Verilated::commandArgs(argc, argv);
    core = new Varray_core;
    core->we = 0;
    core->re = 0;
    core->clk = 0;
    core->eval();
    for (int i = 0; i < 3; i++) cycle();
    std::string kind;
    while (std::cin >> kind) {
        size_t count = 0;
        if (kind == "q") {
            std::printf("ok\n");
            break;
        }
        if (!(std::cin >> count)) break;
        if (kind == "w") {
            if (!write_pairs(count)) break;
            std::printf("ok\n");
        } else if (kind == "r") {
            std::printf("ok");
            for (size_t i = 0; i < count; i++) {
                uint32_t address;
                if (!(std::cin >> address)) return 2;
                std::printf(" %u", read_word(address));
            }
            std::printf("\n");
        } else if (kind == "x") {
            uint64_t start = cycles;
            if (!write_pairs(count)) break;
            cycle();                            // the core sees the start one cycle later
            cycle();
            while (core->busy) cycle();
            std::printf("ok %llu\n", static_cast<unsigned long long>(cycles - start));
        } else {
            std::printf("error unknown request %s\n", kind.c_str());
        }
        std::fflush(stdout);
    }
    core->final();
    delete core;
    return 0;
}
