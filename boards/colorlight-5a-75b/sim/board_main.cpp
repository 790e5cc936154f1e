// The board top (fulcrum_board) under Verilator, driven at its pins with explicit times:
// the same job as sim/tb_board.v does in iverilog, in the same file formats, without
// delays in the Verilog (ecp5_models_vl.v), so no `--timing` is needed.
//
//   board_sim IN1 IN2 OUT [RXC1_PS RXC2_PS]
//
// IN1/IN2: one 9-bit hex word per line: a byte of a frame as on the wire after the SFD
// (FCS included), 100 = end of frame (an empty frame is a pause of 2048 byte times),
// 1ff = end of input. Frames go out back to back with the 12-byte inter-frame gap,
// starting 3 us after time 0 (after the PLL lock and the reset).
// OUT: one line per frame seen on each port's RGMII transmit pins:
//   <port> <start_ps> <idle_byte_times_before> <preamble_ok> <bytes after SFD, hex>
// and on stderr a last line "cycles N" (core clock cycles simulated).
//
// Times: the core clock (clk25 driven at 125 MHz, see ecp5_models_vl.v) has an 8000 ps
// period; each PHY's receive clock has its own (default 7996 and 8004 ps, 500 ppm fast
// and slow), so every frame crosses a clock domain. A PHY changes RXD/RX_CTL at its clock
// edges (low nibble at the rising edge, high nibble at the falling one); the FPGA sees
// that clock 3000 ps later. A receiving PHY samples TXD/TX_CTL 2000 ps after each TXC
// edge. The model is evaluated only at clock edges (nothing else changes state).
// The run ends 200 us after both inputs are sent.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "Vboard.h"
#include "verilated.h"

namespace {

constexpr uint64_t CORE_HALF_PS = 4000;
constexpr uint64_t INSERTION_PS = 3000;
constexpr uint64_t PHY_TX_SAMPLE_PS = 2000;
constexpr uint64_t START_PS = 3000000;
constexpr uint64_t TAIL_PS = 200000000;
constexpr uint64_t NEVER = UINT64_MAX;

struct Symbol {
    uint8_t byte;
    bool en;
};

// The line symbols (one per byte time) a PHY sends for the frames of a file.
bool read_symbols(const char *path, std::vector<Symbol> &out) {
    std::ifstream in(path);
    if (!in) {
        fprintf(stderr, "board_sim: cannot read %s\n", path);
        return false;
    }
    std::vector<uint8_t> frame;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        unsigned long w = std::strtoul(line.c_str(), nullptr, 16);
        if (w == 0x1ff) break;
        if (w == 0x100) {
            if (frame.empty()) {
                for (int i = 0; i < 2048; i++) out.push_back({0, false});
            } else {
                for (int i = 0; i < 7; i++) out.push_back({0x55, true});
                out.push_back({0xd5, true});
                for (uint8_t b : frame) out.push_back({b, true});
                for (int i = 0; i < 12; i++) out.push_back({0, false});
                frame.clear();
            }
        } else if (w <= 0xff) {
            frame.push_back(static_cast<uint8_t>(w));
        } else {
            fprintf(stderr, "board_sim: %s: bad word %s\n", path, line.c_str());
            return false;
        }
    }
    return true;
}

// One receive side of the board: a PHY sending `symbols` on pins rxd/rx_ctl/rxc.
struct RxSide {
    std::vector<Symbol> symbols;
    uint64_t half_ps;
    size_t next = 0;           // the next symbol to send
    bool started = false;      // the PHY began sending (first rising edge after START_PS)
    bool phy_level = false;    // the PHY's clock level
    uint64_t next_phy;         // time of the PHY's next clock edge
    uint64_t next_fpga = NEVER;  // time the FPGA sees the last PHY edge
    bool fpga_level = false;
    bool done() const { return started && next >= symbols.size(); }
};

// One transmit side: a PHY sampling TXD/TX_CTL 2 ns after each TXC edge.
struct TxSide {
    int port;
    bool txc = false;
    uint64_t sample_at = NEVER;
    bool sample_rising = false;
    uint8_t lo = 0;
    bool en = false;
    // frame assembly
    bool in_frame = false, sfd = false, pre_ok = true;
    int pre = 0;
    uint64_t start = 0;
    uint32_t idle = 0, gap = 0;
    std::vector<uint8_t> bytes;
};

void on_byte(TxSide &t, uint8_t b, bool en, uint64_t now, FILE *out) {
    if (en) {
        if (!t.in_frame) {
            t.in_frame = true;
            t.start = now;
            t.gap = t.idle;
            t.pre = 0;
            t.sfd = false;
            t.pre_ok = true;
            t.bytes.clear();
        }
        if (!t.sfd) {
            if (b == 0xd5) {
                t.sfd = true;
                if (t.pre != 7) t.pre_ok = false;
            } else {
                if (b != 0x55) t.pre_ok = false;
                t.pre++;
            }
        } else {
            t.bytes.push_back(b);
        }
    } else {
        if (t.in_frame) {
            fprintf(out, "%d %llu %u %d ", t.port, static_cast<unsigned long long>(t.start),
                    t.gap, t.pre_ok ? 1 : 0);
            for (uint8_t x : t.bytes) fprintf(out, "%02x", x);
            fprintf(out, "\n");
            t.in_frame = false;
            t.idle = 0;
        }
        t.idle++;
    }
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: board_sim IN1 IN2 OUT [RXC1_PS RXC2_PS]\n");
        return 2;
    }
    uint64_t rxc1_ps = argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 7996;
    uint64_t rxc2_ps = argc > 5 ? std::strtoull(argv[5], nullptr, 10) : 8004;
    RxSide rx[2];
    if (!read_symbols(argv[1], rx[0].symbols) || !read_symbols(argv[2], rx[1].symbols)) return 2;
    rx[0].half_ps = rxc1_ps / 2;
    rx[1].half_ps = rxc2_ps / 2;
    for (auto &r : rx) r.next_phy = r.half_ps;
    FILE *out = fopen(argv[3], "w");
    if (!out) {
        fprintf(stderr, "board_sim: cannot write %s\n", argv[3]);
        return 2;
    }

    auto ctx = std::make_unique<VerilatedContext>();
    ctx->commandArgs(argc, argv);
    auto top = std::make_unique<Vboard>(ctx.get());
    top->clk25 = 0;
    top->eth_mdio = 1;
    top->eth1_rxc = 0;
    top->eth2_rxc = 0;
    top->eth1_rxd = 0;
    top->eth2_rxd = 0;
    top->eth1_rx_ctl = 0;
    top->eth2_rx_ctl = 0;
    top->eval();

    TxSide tx[2];
    tx[0].port = 1;
    tx[1].port = 2;
    uint64_t next_core = CORE_HALF_PS;
    bool core_level = false;
    uint64_t cycles = 0;
    uint64_t end = NEVER;

    while (true) {
        uint64_t now = next_core;
        for (auto &r : rx) {
            now = std::min(now, std::min(r.next_phy, r.next_fpga));
        }
        for (auto &t : tx) now = std::min(now, t.sample_at);
        if (now >= end) break;
        ctx->time(now);

        bool edge = false;
        // The PHYs launch data at their own clock edges (pins only: no evaluation).
        for (int p = 0; p < 2; p++) {
            RxSide &r = rx[p];
            if (r.next_phy != now) continue;
            r.phy_level = !r.phy_level;
            r.next_phy = now + r.half_ps;
            r.next_fpga = now + INSERTION_PS;
            if (r.phy_level && !r.started && now >= START_PS) r.started = true;
            if (!r.started) continue;
            Symbol s{0, false};
            if (r.next < r.symbols.size()) s = r.symbols[r.next];
            uint8_t nibble = r.phy_level ? (s.byte & 0xf) : (s.byte >> 4);
            if (!r.phy_level && r.next < r.symbols.size()) r.next++;
            if (p == 0) {
                top->eth1_rxd = nibble;
                top->eth1_rx_ctl = s.en;
            } else {
                top->eth2_rxd = nibble;
                top->eth2_rx_ctl = s.en;
            }
        }
        // The PHYs sample what the FPGA sends (outputs as of the last edge).
        for (auto &t : tx) {
            if (t.sample_at != now) continue;
            t.sample_at = NEVER;
            uint8_t d = t.port == 1 ? top->eth1_txd : top->eth2_txd;
            bool ctl = t.port == 1 ? top->eth1_tx_ctl : top->eth2_tx_ctl;
            if (t.sample_rising) {
                t.lo = d & 0xf;
                t.en = ctl;
            } else {
                on_byte(t, static_cast<uint8_t>((d << 4) | t.lo), t.en, now, out);
            }
        }
        // Clock edges the FPGA sees.
        for (int p = 0; p < 2; p++) {
            RxSide &r = rx[p];
            if (r.next_fpga != now) continue;
            r.next_fpga = NEVER;
            r.fpga_level = !r.fpga_level;
            if (p == 0) top->eth1_rxc = r.fpga_level;
            else top->eth2_rxc = r.fpga_level;
            edge = true;
        }
        if (next_core == now) {
            core_level = !core_level;
            top->clk25 = core_level;
            next_core = now + CORE_HALF_PS;
            if (core_level) cycles++;
            edge = true;
        }
        if (edge) {
            top->eval();
            for (auto &t : tx) {
                bool txc = t.port == 1 ? top->eth1_txc : top->eth2_txc;
                if (txc != t.txc) {
                    t.txc = txc;
                    t.sample_at = now + PHY_TX_SAMPLE_PS;
                    t.sample_rising = txc;
                }
            }
        }
        if (end == NEVER && rx[0].done() && rx[1].done()) end = now + TAIL_PS;
    }
    top->final();
    fclose(out);
    fprintf(stderr, "cycles %llu\n", static_cast<unsigned long long>(cycles));
    return 0;
}
