// The virtual board: the board top (array core + UART host bridge + LEDs) under Verilator,
// with its serial line on a pseudo-terminal. The host opens the pty's slave path with
// pyserial exactly like a USB serial port of a real board. Built and started by
// scripts/limemu/vboard.py.
//
//   vboard --divisor N [--chunk CYCLES] [--sleep-ms MS] [--always-clock] [--trace FILE]
//
// --trace needs a build with -DVBOARD_TRACE_VCD (Verilator --trace) or -DVBOARD_TRACE_FST
// (--trace-fst): every cycle of the board goes to FILE, two time units per clock cycle.
//
// stdout: "PTY <slave path>" once ready; then one "STATS key=value ..." line per "stats" line
// read on stdin. Exits at stdin's EOF (the parent went away), on "quit", SIGTERM or SIGINT:
// stdin must stay open (started by hand: `vboard --divisor 4`, then Ctrl-C or Ctrl-D).
//
// The serial line is simulated bit by bit: bytes read from the pty master are shifted into
// `rx` (start bit, 8 data bits LSB first, stop bit, `divisor` clock cycles each, back to back),
// and `tx` is sampled in the middle of each bit to reassemble the bytes written back to the
// master. The clock only runs while something can happen: when the bridge and the core are
// idle (led_link, led_busy low), no byte is waiting or being shifted in and the tx line is
// idle, nothing changes until the host sends a byte, so the harness sleeps in poll().
// Simulated time stands still meanwhile (the board's clock is virtual).

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "Vboard_top.h"
#include "Vboard_top___024root.h"
#include "verilated.h"
#if defined(VBOARD_TRACE_FST)
#include "verilated_fst_c.h"
#define VBOARD_TRACE 1
typedef VerilatedFstC TraceFile;
#elif defined(VBOARD_TRACE_VCD)
#include "verilated_vcd_c.h"
#define VBOARD_TRACE 1
typedef VerilatedVcdC TraceFile;
#endif

// Vboard_top::eval() is eval_step(): the model's scheduler plus per-call bookkeeping (a
// deleter and an inter-thread message queue, each behind a mutex) that a single-threaded
// model without dynamic objects or $display does not need. Calling the scheduler itself,
// after one ordinary eval() for the initial blocks, runs the board 1.17x faster (2.8e6
// against 2.4e6 cycles/s at 16 cells). The name is Verilator 5's (stable since 5.000);
// -DVBOARD_PLAIN_EVAL goes back to eval().
#ifndef VBOARD_PLAIN_EVAL
void Vboard_top___024root___eval(Vboard_top___024root* vlSelf);
#define EVAL(top) Vboard_top___024root___eval((top)->rootp)
#else
#define EVAL(top) (top)->eval()
#endif

namespace {

volatile sig_atomic_t g_stop = 0;

void on_signal(int) { g_stop = 1; }

[[noreturn]] void die(const char* what) {
    fprintf(stderr, "vboard: %s: %s\n", what, strerror(errno));
    exit(2);
}

double now_seconds() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct Options {
    int divisor = 0;
    long chunk = 1024;         // cycles between two looks at the pty while clocking
    int sleep_ms = 250;        // poll() timeout while asleep (stdin and the pty wake it)
    bool always_clock = false; // never sleep (benchmarks of the idle clock)
    const char* trace = nullptr;
};

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc) {
                fprintf(stderr, "vboard: %s needs a value\n", a.c_str());
                exit(2);
            }
            return argv[++i];
        };
        if (a == "--divisor") o.divisor = atoi(value());
        else if (a == "--chunk") o.chunk = atol(value());
        else if (a == "--sleep-ms") o.sleep_ms = atoi(value());
        else if (a == "--always-clock") o.always_clock = true;
        else if (a == "--trace") o.trace = value();
        else if (a.rfind("+verilator", 0) == 0) continue;   // Verilator's own runtime options
        else {
            fprintf(stderr, "vboard: unknown option %s\n", a.c_str());
            exit(2);
        }
    }
    if (o.divisor < 4) {
        fprintf(stderr, "vboard: --divisor must be >= 4 (clock cycles per bit)\n");
        exit(2);
    }
    if (o.chunk < 16) o.chunk = 16;
#ifndef VBOARD_TRACE
    if (o.trace) {
        fprintf(stderr, "vboard: --trace: this build has no trace support\n");
        exit(2);
    }
#endif
    return o;
}

struct Stats {
    uint64_t cycles = 0;         // clock cycles simulated
    uint64_t busy_cycles = 0;    // of which led_busy was high (the core runs)
    double clock_seconds = 0;    // wall time spent clocking (not asleep)
    uint64_t bytes_in = 0;       // bytes shifted into rx (completely)
    uint64_t bytes_out = 0;      // bytes reassembled from tx
    uint64_t framing_errors = 0; // tx bytes whose stop bit was low (dropped)
    uint64_t sleeps = 0;         // times the clock stopped for lack of work
};

}  // namespace

int main(int argc, char** argv) {
    Options opt = parse(argc, argv);
    const int d = opt.divisor;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;     // no SA_RESTART: poll() returns EINTR
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGHUP, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);

    // -- the pseudo-terminal ----------------------------------------------------------------
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0) die("posix_openpt");
    if (grantpt(master) != 0) die("grantpt");
    if (unlockpt(master) != 0) die("unlockpt");
    const char* name = ptsname(master);
    if (!name) die("ptsname");
    std::string slave_path = name;
    // Our own descriptor of the slave stays open: the host closing and reopening the port
    // must not hang the line up (reads of the master would then fail with EIO).
    int slave = open(slave_path.c_str(), O_RDWR | O_NOCTTY);
    if (slave < 0) die("open the pty slave");
    termios tio;
    if (tcgetattr(slave, &tio) != 0) die("tcgetattr");
    cfmakeraw(&tio);
    tio.c_cflag |= CLOCAL | CREAD;
    if (tcsetattr(slave, TCSANOW, &tio) != 0) die("tcsetattr");
    if (fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK) != 0) die("fcntl");

    // -- the model ---------------------------------------------------------------------------
    auto ctx = std::make_unique<VerilatedContext>();
    ctx->commandArgs(argc, argv);
#ifdef VBOARD_TRACE
    if (opt.trace) ctx->traceEverOn(true);
#endif
    auto top = std::make_unique<Vboard_top>(ctx.get(), "board_top");
#ifdef VBOARD_TRACE
    std::unique_ptr<TraceFile> tfp;
    if (opt.trace) {
        tfp = std::make_unique<TraceFile>();
        top->trace(tfp.get(), 99);
        tfp->open(opt.trace);
    }
#endif
    top->clk = 0;
    top->rx = 1;
    top->eval();       // the initial blocks and the settle: before any EVAL

    printf("PTY %s\n", slave_path.c_str());
    fflush(stdout);

    Stats st;
    // bytes from the host, not yet shifted in
    std::vector<uint8_t> in;
    size_t in_pos = 0;
    // bytes for the host, not yet written to the master
    std::vector<uint8_t> out;
    size_t out_pos = 0;
    const size_t IN_HIGH = 1 << 16;   // stop reading the pty above this backlog: backpressure
    std::vector<uint8_t> buffer(1 << 16);
    std::string command;

    // serial line into the board (rx): a frame of 10 bits, LSB first, `d` cycles per bit
    uint32_t rx_frame = 0;
    int rx_bits = 0;    // bits of the frame still to put on the line
    int rx_count = 0;   // cycles left of the bit on the line
    // serial line out of the board (tx): 0 idle, 1 in a byte, 2 wait for the line to rise
    int tx_state = 0;
    int tx_count = 0;   // cycles to the next sample
    int tx_bit = 0;     // the bit sampled next: 0 start, 1..8 data, 9 stop
    uint32_t tx_byte = 0;
    // the board must look idle this long (cycles) before the clock stops: its receiver sees
    // the last stop bit, its bridge registers what it got
    const long QUIET_NEEDED = 4L * d + 64;
    long quiet = 0;
    bool asleep = false;
    bool stdin_open = true;

    auto handle_command = [&](const std::string& line) {
        if (line == "stats") {
            printf("STATS cycles=%llu busy_cycles=%llu clock_us=%llu bytes_in=%llu "
                   "bytes_out=%llu framing_errors=%llu sleeps=%llu pending_in=%zu "
                   "pending_out=%zu\n",
                   (unsigned long long)st.cycles, (unsigned long long)st.busy_cycles,
                   (unsigned long long)(st.clock_seconds * 1e6),
                   (unsigned long long)st.bytes_in, (unsigned long long)st.bytes_out,
                   (unsigned long long)st.framing_errors, (unsigned long long)st.sleeps,
                   in.size() - in_pos, out.size() - out_pos);
            fflush(stdout);
        } else if (line == "quit") {
            g_stop = 1;
        } else if (!line.empty()) {
            fprintf(stderr, "vboard: unknown command %s\n", line.c_str());
        }
    };

    while (!g_stop) {
        // -- input/output: one poll() per chunk of cycles, blocking only when asleep ----------
        pollfd fds[2];
        int nfds = 0;
        short master_events = 0;
        if (in.size() - in_pos < IN_HIGH) master_events |= POLLIN;
        if (out_pos < out.size()) master_events |= POLLOUT;
        fds[nfds++] = {master, master_events, 0};
        if (stdin_open) fds[nfds++] = {0, POLLIN, 0};
        int ready = poll(fds, nfds, asleep ? opt.sleep_ms : 0);
        if (ready < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        if (fds[0].revents & POLLIN) {
            ssize_t n = read(master, buffer.data(), buffer.size());
            if (n > 0) {
                if (in_pos == in.size()) {
                    in.clear();
                    in_pos = 0;
                } else if (in_pos > (1 << 16)) {
                    in.erase(in.begin(), in.begin() + in_pos);
                    in_pos = 0;
                }
                in.insert(in.end(), buffer.data(), buffer.data() + n);
                asleep = false;
            } else if (n < 0 && errno != EAGAIN && errno != EINTR && errno != EIO) {
                die("read the pty");
            }
        }
        if (out_pos < out.size()) {
            ssize_t n = write(master, out.data() + out_pos, out.size() - out_pos);
            if (n > 0) {
                out_pos += n;
                if (out_pos == out.size()) {
                    out.clear();
                    out_pos = 0;
                }
            } else if (n < 0 && errno != EAGAIN && errno != EINTR && errno != EIO) {
                die("write the pty");
            }
        }
        if (nfds > 1 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = read(0, buffer.data(), buffer.size());
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                stdin_open = false;
                g_stop = 1;    // the parent went away
                break;
            }
            for (ssize_t i = 0; i < n; ++i) {
                if (buffer[i] == '\n') {
                    handle_command(command);
                    command.clear();
                } else {
                    command += static_cast<char>(buffer[i]);
                }
            }
            if (g_stop) break;
        }
        if (asleep) continue;

        // -- clock a chunk of cycles ----------------------------------------------------------
        const double t0 = now_seconds();
        long c = 0;
        for (; c < opt.chunk; ++c) {
            // falling edge: the line into the board changes between rising edges
            if (rx_count == 0) {
                if (rx_bits == 0 && in_pos < in.size()) {
                    rx_frame = 0x200u | (uint32_t(in[in_pos++]) << 1);
                    rx_bits = 10;
                }
                if (rx_bits) {
                    top->rx = rx_frame & 1u;
                    rx_frame >>= 1;
                    --rx_bits;
                    rx_count = d;
                    if (rx_bits == 0) ++st.bytes_in;
                } else {
                    top->rx = 1;
                }
            }
            top->clk = 0;
            EVAL(top);
#ifdef VBOARD_TRACE
            if (tfp) tfp->dump(2 * (st.cycles + c) + 1);
#endif
            top->clk = 1;
            EVAL(top);
#ifdef VBOARD_TRACE
            if (tfp) tfp->dump(2 * (st.cycles + c) + 2);
#endif
            if (rx_count) --rx_count;

            // the board's tx line, sampled in the middle of each bit
            const int tx = top->tx;
            if (tx_state == 0) {
                if (!tx) {
                    tx_state = 1;
                    tx_bit = 0;
                    tx_byte = 0;
                    tx_count = d / 2;
                }
            } else if (tx_state == 1) {
                if (--tx_count == 0) {
                    if (tx_bit == 0) {
                        tx_state = tx ? 0 : 1;    // a glitch, not a start bit
                    } else if (tx_bit <= 8) {
                        tx_byte |= uint32_t(tx) << (tx_bit - 1);
                    } else {
                        if (tx) {
                            out.push_back(static_cast<uint8_t>(tx_byte));
                            ++st.bytes_out;
                            tx_state = 0;
                        } else {
                            ++st.framing_errors;
                            fprintf(stderr, "vboard: framing error on tx at cycle %llu\n",
                                    (unsigned long long)(st.cycles + c));
                            tx_state = 2;
                        }
                    }
                    ++tx_bit;
                    tx_count = d;
                }
            } else if (tx) {
                tx_state = 0;
            }

            const bool busy = top->led_busy;
            st.busy_cycles += busy;
            if (busy || top->led_link || !tx || tx_state || rx_bits || rx_count ||
                in_pos < in.size()) {
                quiet = 0;
            } else if (++quiet >= QUIET_NEEDED && !opt.always_clock) {
                asleep = true;
                ++st.sleeps;
                ++c;
                break;
            }
        }
        st.cycles += c;
        st.clock_seconds += now_seconds() - t0;
    }

    // flush what the board said last (best effort: the host may be gone)
    for (int i = 0; i < 100 && out_pos < out.size(); ++i) {
        ssize_t n = write(master, out.data() + out_pos, out.size() - out_pos);
        if (n > 0) out_pos += n;
        else usleep(1000);
    }
    top->final();
#ifdef VBOARD_TRACE
    if (tfp) tfp->close();
#endif
    fprintf(stderr, "vboard: stopped after %llu cycles (%llu busy) in %.3f s of clocking; "
            "%llu bytes in, %llu out\n", (unsigned long long)st.cycles,
            (unsigned long long)st.busy_cycles, st.clock_seconds,
            (unsigned long long)st.bytes_in, (unsigned long long)st.bytes_out);
    close(slave);
    close(master);
    return 0;
}
