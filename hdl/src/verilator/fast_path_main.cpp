// Drives the Verilated `FastPath` (module `top`) from a script and logs what comes out,
// cycle for cycle as `fast_path_sim::FastPathSim` drives the rust-hdl simulation.
// Written by `fulcrum_hdl::verilator`; usage: fast_path_sim SCRIPT LOG.
//
// Script, one command per line (numbers hex unless noted):
//   X idle stall seed   traffic: idle per mille on both inputs, stall per mille on both
//                       outputs (decimal), seed of the driver's generator
//   F p bytes           queue a frame on receive port p (0 network, 1 MCU)
//   W a d               one cycle with a bus write
//   N n                 n idle cycles (decimal)
//   U n                 run until idle (every frame has its verdict and left), at most n
//                       cycles (decimal); logs "HANG" if it never is
//   S n                 poll STATUS.0 until 0 (a commit done), at most n cycles (decimal);
//                       logs "NOCOMMIT" if it never is
//   T t                 now_ms = t (low 32 bits); logged as "T t" (all 64)
//   D                   logged as "D" (a checkpoint: every frame through)
//   K i                 reads counter i through COUNTER_SELECT/HI/LO; logs "K i value"
// Log: "I p" (a frame's first byte taken), "W a d", "C" (commit), "V action reason
// service backend new_flow hash len", "O p bytes" (a whole output frame), the echoes
// above, "E cycles" at the end.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

namespace {

const uint16_t STATUS = 0x003;
const uint16_t COUNTER_SELECT = 0x050;
const uint16_t COUNTER_HI = 0x051;
const uint16_t COUNTER_LO = 0x052;
const int COUNTER_LATCH_CYCLES = COUNTER_LATCH;  // -D from the Rust side

struct Rng {
    uint64_t s;
    uint64_t next() {
        // splitmix64
        uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    bool chance(unsigned permille) { return next() % 1000 < permille; }
};

struct Source {
    std::deque<std::vector<uint8_t>> frames;
    size_t byte = 0;
    bool offered = false;
    // Returns whether the taken beat started a frame.
    bool advance() {
        bool first = byte == 0;
        byte++;
        if (!frames.empty() && byte == frames.front().size()) {
            frames.pop_front();
            byte = 0;
        }
        return first;
    }
};

struct Driver {
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<Vtop> top;
    FILE* log;
    Rng rng{0};
    unsigned idle = 0, stall = 0;
    Source net, mcu;
    std::vector<uint8_t> out[2];
    bool ready[2] = {true, true};
    uint64_t in_flight = 0, cycles = 0;
    uint32_t now = 0;
    bool quiet = false;  // the counter reads' COUNTER_SELECT write is not logged

    void frame_line(int p, const std::vector<uint8_t>& f) {
        fprintf(log, "O %d ", p);
        for (uint8_t b : f) fprintf(log, "%02x", b);
        fputc('\n', log);
    }

    void cycle(bool we, uint16_t wa, uint32_t wd, bool re, uint16_t ra) {
        Vtop& t = *top;
        t.clock = 0;
        t.now_ms = now;
        t.bus_we = we;
        t.bus_re = re;
        t.bus_addr = we ? wa : (re ? ra : 0);
        t.bus_wdata = we ? wd : 0;
        net.offered = !net.frames.empty() && !rng.chance(idle);
        t.net_rx__024tvalid = net.offered;
        t.net_rx__024tkeep = 1;
        t.net_rx__024tuser = 0;
        if (net.offered) {
            const auto& f = net.frames.front();
            t.net_rx__024tdata = f[net.byte];
            t.net_rx__024tlast = net.byte + 1 == f.size();
        } else {
            t.net_rx__024tdata = rng.next() & 0xff;
            t.net_rx__024tlast = rng.chance(500);
        }
        mcu.offered = !mcu.frames.empty() && !rng.chance(idle);
        t.mcu_rx__024tvalid = mcu.offered;
        t.mcu_rx__024tkeep = 1;
        t.mcu_rx__024tuser = 0;
        if (mcu.offered) {
            const auto& f = mcu.frames.front();
            t.mcu_rx__024tdata = f[mcu.byte];
            t.mcu_rx__024tlast = mcu.byte + 1 == f.size();
        } else {
            t.mcu_rx__024tdata = rng.next() & 0xff;
            t.mcu_rx__024tlast = rng.chance(500);
        }
        ready[0] = !rng.chance(stall);
        ready[1] = !rng.chance(stall);
        t.net_tx__024tready = ready[0];
        t.mcu_tx__024tready = ready[1];
        t.eval();
        if (we && !quiet) fprintf(log, "W %x %x\n", wa, wd);
        bool net_taken = net.offered && t.net_rx__024tready;
        bool mcu_taken = mcu.offered && t.mcu_rx__024tready;
        if (t.verdict_commit) fputs("C\n", log);
        if (t.verdict_valid) {
            fprintf(log, "V %x %x %x %x %x %x %x\n", t.verdict_action, t.verdict_reason,
                    t.verdict_service, t.verdict_backend, t.verdict_new_flow, t.verdict_hash,
                    t.verdict_len);
            if (in_flight) in_flight--;
        }
        if (ready[0] && t.net_tx__024tvalid) {
            out[0].push_back(t.net_tx__024tdata);
            if (t.net_tx__024tlast) {
                frame_line(0, out[0]);
                out[0].clear();
            }
        }
        if (ready[1] && t.mcu_tx__024tvalid) {
            out[1].push_back(t.mcu_tx__024tdata);
            if (t.mcu_tx__024tlast) {
                frame_line(1, out[1]);
                out[1].clear();
            }
        }
        t.clock = 1;
        t.eval();
        cycles++;
        if (net_taken && net.advance()) fputs("I 0\n", log);
        if (mcu_taken && mcu.advance()) fputs("I 1\n", log);
    }

    void run(uint64_t n) {
        for (uint64_t i = 0; i < n; i++) cycle(false, 0, 0, false, 0);
    }

    uint32_t read32(uint16_t a) {
        cycle(false, 0, 0, true, a);
        // The value is on bus_rdata from the second cycle after bus_re (BUS_READ_LATENCY).
        cycle(false, 0, 0, false, 0);
        return top->bus_rdata;
    }

    bool is_idle() {
        return in_flight == 0 && net.frames.empty() && mcu.frames.empty() &&
               !top->net_tx__024tvalid && !top->mcu_tx__024tvalid;
    }

    bool run_until_idle(uint64_t limit) {
        uint64_t start = cycles;
        while (cycles - start < limit) {
            run(1);
            if (is_idle()) {
                run(64);
                if (is_idle()) return true;
            }
        }
        return false;
    }

    bool wait_commit(uint64_t limit) {
        uint64_t start = cycles;
        while (cycles - start < limit) {
            if ((read32(STATUS) & 1) == 0) return true;
            run(15);
        }
        return false;
    }
};

std::vector<uint8_t> unhex(const char* s) {
    std::vector<uint8_t> v;
    auto nib = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
    for (; s[0] && s[1] && s[0] != '\n'; s += 2) v.push_back(nib(s[0]) << 4 | nib(s[1]));
    return v;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s SCRIPT LOG\n", argv[0]);
        return 2;
    }
    FILE* script = fopen(argv[1], "r");
    Driver d;
    d.log = fopen(argv[2], "w");
    if (!script || !d.log) {
        perror("open");
        return 2;
    }
    d.ctx.reset(new VerilatedContext);
    d.top.reset(new Vtop{d.ctx.get()});
    d.top->clock = 0;
    d.top->eval();
    std::string line;
    std::vector<char> buf(1 << 16);
    while (true) {
        // Lines can be long (a frame of 2 KiB is 4 KiB of hex).
        line.clear();
        while (fgets(buf.data(), buf.size(), script)) {
            line += buf.data();
            if (!line.empty() && line.back() == '\n') break;
        }
        if (line.empty()) break;
        const char* l = line.c_str();
        unsigned long long a = 0, b = 0, c = 0;
        switch (l[0]) {
            case 'X':
                sscanf(l + 1, "%llu %llu %llx", &a, &b, &c);
                d.idle = a;
                d.stall = b;
                d.rng.s = c;
                break;
            case 'F': {
                int p = l[2] - '0';
                auto f = unhex(l + 4);
                if (f.empty()) break;
                d.in_flight++;
                (p == 0 ? d.net : d.mcu).frames.push_back(std::move(f));
                break;
            }
            case 'W':
                sscanf(l + 1, "%llx %llx", &a, &b);
                d.cycle(true, a, b, false, 0);
                break;
            case 'N':
                sscanf(l + 1, "%llu", &a);
                d.run(a);
                break;
            case 'U':
                sscanf(l + 1, "%llu", &a);
                if (!d.run_until_idle(a)) fputs("HANG\n", d.log);
                break;
            case 'S':
                sscanf(l + 1, "%llu", &a);
                if (!d.wait_commit(a)) fputs("NOCOMMIT\n", d.log);
                break;
            case 'T':
                sscanf(l + 1, "%llx", &a);
                d.now = uint32_t(a);
                fprintf(d.log, "T %llx\n", a);
                break;
            case 'D':
                fputs("D\n", d.log);
                break;
            case 'K': {
                sscanf(l + 1, "%llx", &a);
                d.quiet = true;
                d.cycle(true, COUNTER_SELECT, a, false, 0);
                d.quiet = false;
                d.run(COUNTER_LATCH_CYCLES);
                uint64_t hi = d.read32(COUNTER_HI);
                uint64_t lo = d.read32(COUNTER_LO);
                fprintf(d.log, "K %llx %llx\n", a, (unsigned long long)(hi << 32 | lo));
                break;
            }
            default:
                fprintf(stderr, "bad script line: %s", l);
                return 2;
        }
    }
    fprintf(d.log, "E %llu\n", (unsigned long long)d.cycles);
    d.top->final();
    fclose(d.log);
    return 0;
}
