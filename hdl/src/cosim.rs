//! Verilog co-simulation: the generated Verilog of a stage, run in Icarus Verilog on
//! vectors from the model, compared with the model.
//!
//! rust-hdl simulates its Rust description, not the Verilog it writes, and 0.46 has code
//! generation bugs; this is the check that the Verilog (what yosys synthesises) behaves
//! like the Rust that the other tests verify. Two testbenches play frames with
//! pseudo-random idle cycles and back-pressure from an LFSR and write what comes out to
//! a text file, which the Rust side compares with the model: the header parser alone
//! (every header field against `wire::parse`), and the whole `FastPathCore` (parse,
//! Toeplitz hash, flow table, checksum update) against the model's `ReferenceCore`.
//!
//! Needs `iverilog` and `vvp` (Debian: `apt-get install -y iverilog`; `scripts/test.sh`
//! installs it). Without them the test fails and says so: a silently skipped
//! co-simulation would hide exactly the bugs it exists for.

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;
    use std::process::Command;

    use rust_hdl::prelude::*;

    use crate::parser::HeaderParser;
    use crate::sim::Rng;
    use crate::vectors::{ParsedHeader, random_frame};
    use crate::verilog::have_program;

    /// The parser's Verilog with every input marked as driven.
    fn parser_verilog() -> String {
        let mut uut = HeaderParser::new();
        uut.clock.connect();
        uut.s_axis.tdata.connect();
        uut.s_axis.tkeep.connect();
        uut.s_axis.tvalid.connect();
        uut.s_axis.tlast.connect();
        uut.s_axis.tuser.connect();
        uut.m_axis.tready.connect();
        uut.m_hdr.tready.connect();
        uut.connect_all();
        generate_verilog(&uut)
    }

    const FIELDS: [&str; 18] = [
        "status",
        "l4_kind",
        "dst_mac",
        "src_mac",
        "vlan_present",
        "vlan_tci",
        "ethertype",
        "l3_offset",
        "ip_header_len",
        "ip_total_len",
        "protocol",
        "src_ip",
        "dst_ip",
        "l4_offset",
        "src_port",
        "dst_port",
        "tcp_flags",
        "l4_checksum",
    ];

    fn testbench(beats: usize, frames: usize) -> String {
        let widths = [
            4, 3, 48, 48, 1, 16, 16, 8, 8, 16, 8, 32, 32, 8, 16, 16, 8, 16,
        ];
        let mut tb = String::new();
        writeln!(tb, "`timescale 1ns/1ps\nmodule tb;").unwrap();
        writeln!(tb, "reg clock = 0;\nalways #4 clock = ~clock;").unwrap();
        writeln!(tb, "reg [8:0] vec [0:{}];", beats - 1).unwrap();
        writeln!(
            tb,
            "integer i = 0, headers = 0, passed = 0, out, cycles = 0;"
        )
        .unwrap();
        writeln!(tb, "reg [31:0] lfsr = 32'hace1;").unwrap();
        writeln!(tb, "reg idle = 0, hdr_ready = 1, m_ready = 1;").unwrap();
        writeln!(
            tb,
            "wire s_tready, m_tvalid, m_tlast, hdr_valid;\nwire [7:0] m_tdata;"
        )
        .unwrap();
        for (f, w) in FIELDS.iter().zip(widths) {
            writeln!(tb, "wire [{}:0] {f};", w - 1).unwrap();
        }
        writeln!(tb, "wire tvalid = (i < {beats}) && !idle;").unwrap();
        writeln!(tb, "wire [8:0] beat = vec[i < {beats} ? i : 0];").unwrap();
        let mut ports = vec![
            ".clock(clock)".to_string(),
            ".s_axis$tdata(beat[7:0])".into(),
            ".s_axis$tkeep(1'b1)".into(),
            ".s_axis$tvalid(tvalid)".into(),
            ".s_axis$tready(s_tready)".into(),
            ".s_axis$tlast(beat[8])".into(),
            ".s_axis$tuser(1'b0)".into(),
            ".m_axis$tdata(m_tdata)".into(),
            ".m_axis$tkeep()".into(),
            ".m_axis$tvalid(m_tvalid)".into(),
            ".m_axis$tready(m_ready)".into(),
            ".m_axis$tlast(m_tlast)".into(),
            ".m_axis$tuser()".into(),
            ".m_hdr$tvalid(hdr_valid)".into(),
            ".m_hdr$tready(hdr_ready)".into(),
            ".m_hdr$ip_flags_frag()".into(),
            ".m_hdr$ip_checksum()".into(),
            ".m_hdr$frame_len()".into(),
        ];
        ports.extend(FIELDS.iter().map(|f| format!(".m_hdr${f}({f})")));
        writeln!(tb, "top uut({});", ports.join(", ")).unwrap();
        writeln!(
            tb,
            "initial begin\n  $readmemh(\"frames.hex\", vec);\n  out = $fopen(\"headers.txt\", \"w\");\nend"
        )
        .unwrap();
        let display: Vec<String> = FIELDS.iter().map(|_| "%h".to_string()).collect();
        writeln!(tb, "always @(posedge clock) begin").unwrap();
        writeln!(tb, "  cycles <= cycles + 1;").unwrap();
        writeln!(tb, "  if (tvalid && s_tready) i <= i + 1;").unwrap();
        writeln!(tb, "  if (m_tvalid && m_ready) passed <= passed + 1;").unwrap();
        writeln!(
            tb,
            "  if (hdr_valid && hdr_ready) begin\n    $fdisplay(out, \"{}\", {});\n    headers <= headers + 1;\n  end",
            display.join(" "),
            FIELDS.join(", ")
        )
        .unwrap();
        // 25 % idle cycles, 25 % stalls on each output.
        writeln!(
            tb,
            "  lfsr <= {{lfsr[30:0], lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0]}};"
        )
        .unwrap();
        writeln!(tb, "  idle <= lfsr[3] & lfsr[7];").unwrap();
        writeln!(tb, "  hdr_ready <= !(lfsr[11] & lfsr[13]);").unwrap();
        writeln!(tb, "  m_ready <= !(lfsr[17] & lfsr[19]);").unwrap();
        writeln!(
            tb,
            "  if (headers == {frames}) begin\n    $fdisplay(out, \"passed %0d cycles %0d\", passed, cycles);\n    $fclose(out);\n    $finish;\n  end"
        )
        .unwrap();
        writeln!(
            tb,
            "  if (cycles > {}) begin $display(\"timeout\"); $finish; end",
            beats * 8 + 1000
        )
        .unwrap();
        writeln!(tb, "end\nendmodule").unwrap();
        tb
    }

    #[test]
    fn header_parser_verilog_matches_the_model_in_iverilog() {
        assert!(
            have_program("iverilog") && have_program("vvp"),
            "iverilog/vvp not found: the Verilog co-simulation cannot run. Install it \
             (Debian: apt-get install -y iverilog; scripts/test.sh does this as root)."
        );
        let mut rng = Rng::new(0xc0_5111);
        let frames: Vec<Vec<u8>> = (0..3_000).map(|_| random_frame(&mut rng)).collect();
        let mut hex = String::new();
        for f in &frames {
            for (i, b) in f.iter().enumerate() {
                let last = u16::from(i + 1 == f.len()) << 8;
                writeln!(hex, "{:03x}", last | u16::from(*b)).unwrap();
            }
        }
        let beats: usize = frames.iter().map(Vec::len).sum();

        let dir = std::env::temp_dir().join(format!("fulcrum_cosim_parser_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("frames.hex"), hex).unwrap();
        std::fs::write(dir.join("parser.v"), parser_verilog()).unwrap();
        std::fs::write(dir.join("tb.v"), testbench(beats, frames.len())).unwrap();
        let compile = Command::new("iverilog")
            .current_dir(&dir)
            .args(["-g2005", "-o", "sim", "tb.v", "parser.v"])
            .output()
            .unwrap();
        assert!(
            compile.status.success(),
            "iverilog rejects the parser's Verilog:\n{}",
            String::from_utf8_lossy(&compile.stderr)
        );
        let run = Command::new("vvp")
            .current_dir(&dir)
            .args(["-n", "sim"])
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "vvp failed: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let text = std::fs::read_to_string(dir.join("headers.txt")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.len(),
            frames.len() + 1,
            "headers written by the testbench"
        );

        for (n, (line, frame)) in lines.iter().zip(&frames).enumerate() {
            let v: Vec<u64> = line
                .split(' ')
                .map(|x| u64::from_str_radix(x, 16).unwrap())
                .collect();
            let want = ParsedHeader::from_model(frame);
            let field = |name: &str| v[FIELDS.iter().position(|f| *f == name).unwrap()];
            let mut got = ParsedHeader {
                status: field("status"),
                ..Default::default()
            };
            if want.macs.is_some() {
                got.macs = Some((field("dst_mac"), field("src_mac")));
            }
            if want.vlan.is_some() {
                let present = field("vlan_present") == 1;
                got.vlan = Some((present, if present { field("vlan_tci") } else { 0 }));
            }
            if want.l3_offset.is_some() {
                got.l3_offset = Some(field("l3_offset"));
            }
            if want.ethertype.is_some() {
                got.ethertype = Some(field("ethertype"));
            }
            if want.ipv4.is_some() {
                got.ipv4 = Some((
                    field("src_ip"),
                    field("dst_ip"),
                    field("protocol"),
                    field("ip_header_len"),
                    field("ip_total_len"),
                    field("l4_offset"),
                    field("l4_kind"),
                ));
            }
            if want.ports.is_some() {
                got.ports = Some((field("src_port"), field("dst_port")));
            }
            if want.tcp_flags.is_some() {
                let f = field("tcp_flags");
                got.tcp_flags = Some((f & 2 != 0, f & 0x10 != 0, f & 1 != 0, f & 4 != 0));
            }
            if want.l4_checksum.is_some() {
                got.l4_checksum = Some(field("l4_checksum"));
            }
            assert_eq!(got, want, "frame {n} in the Verilog simulation");
        }
        let last = lines[frames.len()];
        assert!(
            last.starts_with(&format!("passed {beats} ")),
            "pass-through bytes: {last}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn fast_path_core_verilog_matches_the_model_in_iverilog() {
        use crate::top::core_verilog;
        use crate::top::reference::{self, Decision, ReferenceCore, SETS_LOG2};
        use fulcrum_model::hash::RSS_DEFAULT_KEY;

        assert!(
            have_program("iverilog") && have_program("vvp"),
            "iverilog/vvp not found: the Verilog co-simulation cannot run. Install it \
             (Debian: apt-get install -y iverilog; scripts/test.sh does this as root)."
        );
        let settings = reference::settings();
        let frames = reference::frames(0xc0_c0e, 800);
        let mut hex = String::new();
        for f in &frames {
            for (i, b) in f.iter().enumerate() {
                let last = u16::from(i + 1 == f.len()) << 8;
                writeln!(hex, "{:03x}", last | u16::from(*b)).unwrap();
            }
        }
        let beats: usize = frames.iter().map(Vec::len).sum();
        let key_words: Vec<String> = RSS_DEFAULT_KEY
            .chunks_exact(4)
            .map(|w| format!("32'h{:08x}", u32::from_be_bytes(w.try_into().unwrap())))
            .collect();
        let n = frames.len();
        let tb = format!(
            "`timescale 1ns/1ps
module tb;
reg clock = 0;
always #4 clock = ~clock;
reg [8:0] vec [0:{last_beat}];
reg [31:0] key [0:9];
integer i = 0, decided = 0, cycles = 0, out;
reg [31:0] lfsr = 32'h5eed;
reg [31:0] now = 0;
reg idle = 0, m_ready = 1, dec_ready = 1, key_write = 1;
reg [3:0] key_word = 0;
wire loading = key_write;
wire tvalid = !loading && (i < {beats}) && !idle;
wire [8:0] beat = vec[i < {beats} ? i : 0];
wire s_tready, dec_valid, dec_new_flow;
wire [3:0] dec_status;
wire [2:0] dec_l4_kind;
wire [1:0] dec_lookup;
wire [31:0] dec_flow_hash, dec_src_hash, dec_slot, dec_payload;
wire [15:0] dec_ip_checksum;
top uut(.clock(clock), .s_axis$tdata(beat[7:0]), .s_axis$tkeep(1'b1), .s_axis$tvalid(tvalid),
  .s_axis$tready(s_tready), .s_axis$tlast(beat[8]), .s_axis$tuser(1'b0), .m_axis$tdata(),
  .m_axis$tkeep(), .m_axis$tvalid(), .m_axis$tready(m_ready), .m_axis$tlast(), .m_axis$tuser(),
  .key_write(key_write), .key_word(key_word), .key_data(key[key_word]),
  .timeout_syn(32'd{syn}), .timeout_established(32'd{est}), .timeout_closing(32'd{closing}),
  .timeout_udp(32'd{udp}), .now_ms(now), .new_payload(32'h{payload:08x}),
  .rewrite_dst(32'h{rewrite:08x}), .dec_valid(dec_valid), .dec_ready(dec_ready),
  .dec_status(dec_status), .dec_l4_kind(dec_l4_kind), .dec_flow_hash(dec_flow_hash),
  .dec_src_hash(dec_src_hash), .dec_lookup(dec_lookup), .dec_slot(dec_slot),
  .dec_payload(dec_payload), .dec_new_flow(dec_new_flow), .dec_ip_checksum(dec_ip_checksum));
initial begin
  $readmemh(\"frames.hex\", vec);
  {key_init}
  out = $fopen(\"decisions.txt\", \"w\");
end
always @(posedge clock) begin
  cycles <= cycles + 1;
  if (key_write) begin
    if (key_word == 9) key_write <= 0; else key_word <= key_word + 1;
  end
  if (tvalid && s_tready) i <= i + 1;
  if (dec_valid && dec_ready) begin
    $fdisplay(out, \"%h %h %h %h %h %h %h %h\", dec_status, dec_flow_hash, dec_src_hash,
      dec_lookup, dec_slot, dec_payload, dec_new_flow, dec_ip_checksum);
    decided <= decided + 1;
    now <= now + 3;
  end
  lfsr <= {{lfsr[30:0], lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0]}};
  idle <= lfsr[3] & lfsr[7];
  m_ready <= !(lfsr[11] & lfsr[13]);
  dec_ready <= !(lfsr[17] & lfsr[19]);
  if (decided == {n}) begin $fclose(out); $finish; end
  if (cycles > {limit}) begin $display(\"timeout\"); $finish; end
end
endmodule
",
            last_beat = beats - 1,
            syn = settings.tcp_syn_timeout,
            est = settings.tcp_established_timeout,
            closing = settings.tcp_closing_timeout,
            udp = settings.udp_timeout,
            payload = reference::NEW_PAYLOAD,
            rewrite = reference::REWRITE_DST,
            key_init = key_words
                .iter()
                .enumerate()
                .map(|(i, w)| format!("key[{i}] = {w};"))
                .collect::<Vec<_>>()
                .join(" "),
            limit = beats * 8 + n * 80 + 1000,
        );

        let dir = std::env::temp_dir().join(format!("fulcrum_cosim_core_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("frames.hex"), hex).unwrap();
        std::fs::write(dir.join("core.v"), core_verilog::<SETS_LOG2>()).unwrap();
        std::fs::write(dir.join("tb.v"), tb).unwrap();
        let compile = Command::new("iverilog")
            .current_dir(&dir)
            .args(["-g2005", "-o", "sim", "tb.v", "core.v"])
            .output()
            .unwrap();
        assert!(
            compile.status.success(),
            "iverilog rejects the core's Verilog:\n{}",
            String::from_utf8_lossy(&compile.stderr)
        );
        let run = Command::new("vvp")
            .current_dir(&dir)
            .args(["-n", "sim"])
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "vvp failed: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let text = std::fs::read_to_string(dir.join("decisions.txt")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), n, "decisions written by the testbench");
        let mut reference = ReferenceCore::new();
        for (k, (line, frame)) in lines.iter().zip(&frames).enumerate() {
            let v: Vec<u64> = line
                .split(' ')
                .map(|x| u64::from_str_radix(x, 16).unwrap())
                .collect();
            let got = Decision {
                status: v[0],
                flow_hash: v[1] as u32,
                src_hash: v[2] as u32,
                lookup: v[3],
                slot: v[4],
                payload: v[5] as u32,
                new_flow: v[6] == 1,
                ip_checksum: v[7] as u16,
            };
            let want = reference.decide(frame, 3 * k as u32);
            assert_eq!(
                got.normalised(),
                want.normalised(),
                "frame {k} in the Verilog simulation"
            );
        }
        assert!(
            reference.news >= 30 && reference.hits >= 10,
            "too few flows exercised"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
