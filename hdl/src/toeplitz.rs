//! Stage 2, hash: the Toeplitz (RSS) hash of an IPv4 flow (`fulcrum_model::hash`).
//!
//! One request in, two hashes out, one request every seven cycles:
//!
//! - `flow_hash` = `ToeplitzKey::hash_v4(src, dst, ports)` (ports left out when
//!   `has_ports` is low: Toeplitz XORs a window only for set input bits, so leaving the
//!   ports out equals hashing them as zero);
//! - `src_hash` = `ToeplitzKey::hash(&src)`, the source-only hash of persistence and
//!   the IP-hash algorithm, which is the first 32 terms of the flow hash.
//!
//! Hardware shape: input bit `i` (MSB of `src` first) selects the 32-bit window of the
//! key starting at key bit `i`. The unit takes the 96 input bits 16 at a time: the cycle
//! it accepts a flow loads the input and key bits 0..127 (all a 96-bit input reaches)
//! into shift registers; each of the six cycles after ANDs the top 16 input bits with
//! their 16 windows (the top 47 key bits) and XORs them into the accumulator, three LUT
//! levels, then shifts both registers by 16. `src_hash` is the accumulator after the
//! second step. All 96 terms at once (the unit before, three cycles of latency, one flow
//! per cycle) was 2,900 LUTs, the fast path's largest block; the fast path hashes a
//! frame while it scans its 16 services (17 cycles), and at most twice per frame. The
//! key is ten 32-bit words written through `key_write` / `key_word` / `key_data`, word
//! `i` holding key bytes `4i..4i+3` big-endian exactly as register `HASH_KEY + i` of
//! `regmap.rs` (the shadow-bank commit belongs to the register block, which drives these
//! ports); words 4..9 are beyond an IPv4 flow's reach and not stored here.

use rust_hdl::prelude::*;

/// The Toeplitz hash unit.
#[derive(LogicBlock, Default)]
pub struct ToeplitzHash {
    /// The datapath clock.
    pub clock: Signal<In, Clock>,
    /// Write `key_data` into key word `key_word` this cycle.
    pub key_write: Signal<In, Bit>,
    /// Key word index, 0 to 9 (others are ignored).
    pub key_word: Signal<In, Bits<4>>,
    /// Key bytes `4i..4i+3`, byte `4i` in the top bits.
    pub key_data: Signal<In, Bits<32>>,
    /// A flow to hash is on the inputs below.
    pub s_valid: Signal<In, Bit>,
    /// The unit takes the flow this cycle (if `s_valid`).
    pub s_ready: Signal<Out, Bit>,
    /// Source address (first byte in the top bits).
    pub src_ip: Signal<In, Bits<32>>,
    /// Destination address.
    pub dst_ip: Signal<In, Bits<32>>,
    /// Source port.
    pub src_port: Signal<In, Bits<16>>,
    /// Destination port.
    pub dst_port: Signal<In, Bits<16>>,
    /// The flow has ports (TCP/UDP, not a fragment).
    pub has_ports: Signal<In, Bit>,
    /// The hashes below are valid.
    pub m_valid: Signal<Out, Bit>,
    /// The receiver takes them this cycle.
    pub m_ready: Signal<In, Bit>,
    /// Toeplitz over (src, dst, src port, dst port).
    pub flow_hash: Signal<Out, Bits<32>>,
    /// Toeplitz over src alone.
    pub src_hash: Signal<Out, Bits<32>>,

    key0: DFF<Bits<32>>,
    key1: DFF<Bits<32>>,
    key2: DFF<Bits<32>>,
    key3: DFF<Bits<32>>,
    /// A flow is being hashed: `step` 1..6 is the step the next edge does.
    busy: DFF<Bit>,
    step: DFF<Bits<3>>,
    /// The input bits not hashed yet, at the top (src, dst, ports).
    in_bits: DFF<Bits<96>>,
    /// Key bits from the current step's first input bit on, key bit `16 × step` at the top.
    window: DFF<Bits<128>>,
    acc: DFF<Bits<32>>,
    src_part: DFF<Bits<32>>,
    valid: DFF<Bit>,
    out_flow: DFF<Bits<32>>,
    out_src: DFF<Bits<32>>,

    accept: Signal<Local, Bit>,
    ports: Signal<Local, Bits<32>>,
    terms: Signal<Local, Bits<32>>,
    acc_next: Signal<Local, Bits<32>>,
}

impl ToeplitzHash {
    /// A hash unit with an all-zero key (every hash 0 until the key is written).
    pub fn new() -> Self {
        Self::default()
    }
}

impl Logic for ToeplitzHash {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, key0, key1, key2, key3, busy, step, in_bits, window, acc, src_part, valid,
            out_flow, out_src
        );
        if self.key_write.val() {
            if self.key_word.val() == 0 {
                self.key0.d.next = self.key_data.val();
            }
            if self.key_word.val() == 1 {
                self.key1.d.next = self.key_data.val();
            }
            if self.key_word.val() == 2 {
                self.key2.d.next = self.key_data.val();
            }
            if self.key_word.val() == 3 {
                self.key3.d.next = self.key_data.val();
            }
        }
        // A new flow when idle and the last result is taken (or there is none).
        self.s_ready.next = !self.busy.q.val() & (!self.valid.q.val() | self.m_ready.val());
        self.accept.next = self.s_valid.val() & self.s_ready.val();
        if self.valid.q.val() & self.m_ready.val() {
            self.valid.d.next = false;
        }
        self.ports.next = (bit_cast::<32, 16>(self.src_port.val()) << 16)
            | bit_cast::<32, 16>(self.dst_port.val());
        if self.accept.val() {
            self.busy.d.next = true;
            self.step.d.next = 1.into();
            self.acc.d.next = 0.into();
            self.in_bits.d.next = (bit_cast::<96, 32>(self.src_ip.val()) << 64)
                | (bit_cast::<96, 32>(self.dst_ip.val()) << 32);
            if self.has_ports.val() {
                self.in_bits.d.next = (bit_cast::<96, 32>(self.src_ip.val()) << 64)
                    | (bit_cast::<96, 32>(self.dst_ip.val()) << 32)
                    | bit_cast::<96, 32>(self.ports.val());
            }
            // Key bit 0 (MSB of key byte 0) at the top.
            self.window.d.next = (bit_cast::<128, 32>(self.key0.q.val()) << 96)
                | (bit_cast::<128, 32>(self.key1.q.val()) << 64)
                | (bit_cast::<128, 32>(self.key2.q.val()) << 32)
                | bit_cast::<128, 32>(self.key3.q.val());
        }

        // One step: input bit i of the 16 at the top XORs in the window starting i bits
        // below the window's top. (Only while busy: rust-hdl 0.46 simulates `get_bits`
        // with big integers, so the terms must not run on every idle delta cycle.)
        self.terms.next = 0.into();
        self.acc_next.next = self.acc.q.val();
        if self.busy.q.val() {
            for i in 0..16 {
                if self.in_bits.q.val().get_bit(95 - i) {
                    self.terms.next = self.terms.val() ^ self.window.q.val().get_bits::<32>(96 - i);
                }
            }
            self.acc_next.next = self.acc.q.val() ^ self.terms.val();
            self.acc.d.next = self.acc_next.val();
            self.in_bits.d.next = self.in_bits.q.val() << 16;
            self.window.d.next = self.window.q.val() << 16;
            self.step.d.next = self.step.q.val() + 1;
            if self.step.q.val() == 2 {
                self.src_part.d.next = self.acc_next.val();
            }
            if self.step.q.val() == 6 {
                self.busy.d.next = false;
                self.valid.d.next = true;
                self.out_flow.d.next = self.acc_next.val();
                self.out_src.d.next = self.src_part.q.val();
            }
        }

        self.m_valid.next = self.valid.q.val();
        self.flow_hash.next = self.out_flow.q.val();
        self.src_hash.next = self.out_src.q.val();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{Rng, Traffic, settle, tick};
    use fulcrum_model::hash::{RSS_DEFAULT_KEY, ToeplitzKey};

    #[test]
    fn toeplitz_hash_is_synthesizable() {
        let mut uut = ToeplitzHash::new();
        uut.clock.connect();
        uut.key_write.connect();
        uut.key_word.connect();
        uut.key_data.connect();
        uut.s_valid.connect();
        uut.src_ip.connect();
        uut.dst_ip.connect();
        uut.src_port.connect();
        uut.dst_port.connect();
        uut.has_ports.connect();
        uut.m_ready.connect();
        uut.connect_all();
        crate::verilog::validate("toeplitz_hash", &generate_verilog(&uut));
    }

    /// One flow to hash: (src, dst, ports).
    type Flow = ([u8; 4], [u8; 4], Option<(u16, u16)>);

    /// Writes `key`, streams `flows` through with `traffic`, checks both hashes of each
    /// against the model. Returns the cycles spent streaming.
    fn run(key: [u8; 40], flows: &[Flow], traffic: Traffic, seed: u64) -> u64 {
        let model = ToeplitzKey::new(key);
        let mut rng = Rng::new(seed);
        let mut uut = ToeplitzHash::new();
        uut.connect_all();
        for (i, word) in key.chunks_exact(4).enumerate() {
            uut.key_write.next = true;
            uut.key_word.next = (i as u64).into();
            uut.key_data.next = u64::from(u32::from_be_bytes(word.try_into().unwrap())).into();
            settle(&mut uut);
            tick(&mut uut, |u| &mut u.clock);
        }
        uut.key_write.next = false;
        let (mut sent, mut received, mut cycles) = (0, 0, 0u64);
        while received < flows.len() {
            let offer = sent < flows.len() && !rng.chance(traffic.idle_permille);
            uut.s_valid.next = offer;
            let (src, dst, ports) = flows[sent.min(flows.len() - 1)];
            uut.src_ip.next = u64::from(u32::from_be_bytes(src)).into();
            uut.dst_ip.next = u64::from(u32::from_be_bytes(dst)).into();
            let (sp, dp) = ports.unwrap_or((rng.next_u64() as u16, rng.next_u64() as u16));
            uut.src_port.next = u64::from(sp).into();
            uut.dst_port.next = u64::from(dp).into();
            uut.has_ports.next = ports.is_some();
            uut.m_ready.next = traffic.ready(&mut rng);
            settle(&mut uut);
            let taken = offer && uut.s_ready.val();
            if uut.m_valid.val() && uut.m_ready.val() {
                let (src, dst, ports) = flows[received];
                let flow_hash: u64 = uut.flow_hash.val().into();
                let src_hash: u64 = uut.src_hash.val().into();
                assert_eq!(
                    flow_hash as u32,
                    model.hash_v4(src, dst, ports),
                    "flow {received}"
                );
                assert_eq!(
                    src_hash as u32,
                    model.hash(&src),
                    "src hash of flow {received}"
                );
                received += 1;
            }
            tick(&mut uut, |u| &mut u.clock);
            sent += usize::from(taken);
            cycles += 1;
        }
        cycles
    }

    #[test]
    fn microsoft_rss_vectors() {
        // The IPv4 rows of "Verifying the RSS Hash Calculation", with and without ports
        // (hash.rs holds the expected values and checks the model against them).
        /// (src, src port, dst, dst port, hash without ports, hash with ports).
        type RssRow = ([u8; 4], u16, [u8; 4], u16, u32, u32);
        let rows: [RssRow; 5] = [
            (
                [66, 9, 149, 187],
                2794,
                [161, 142, 100, 80],
                1766,
                0x323e_8fc2,
                0x51cc_c178,
            ),
            (
                [199, 92, 111, 2],
                14230,
                [65, 69, 140, 83],
                4739,
                0xd718_262a,
                0xc626_b0ea,
            ),
            (
                [24, 19, 198, 95],
                12898,
                [12, 22, 207, 184],
                38024,
                0xd2d0_a5de,
                0x5c2b_394a,
            ),
            (
                [38, 27, 205, 30],
                48228,
                [209, 142, 163, 6],
                2217,
                0x8298_9176,
                0xafc7_327f,
            ),
            (
                [153, 39, 163, 191],
                44251,
                [202, 188, 127, 2],
                1303,
                0x5d18_09c5,
                0x10e8_28a2,
            ),
        ];
        let key = ToeplitzKey::new(RSS_DEFAULT_KEY);
        let mut flows = Vec::new();
        for (src, sp, dst, dp, without, with) in rows {
            assert_eq!(key.hash_v4(src, dst, None), without);
            assert_eq!(key.hash_v4(src, dst, Some((sp, dp))), with);
            flows.push((src, dst, None));
            flows.push((src, dst, Some((sp, dp))));
        }
        let cycles = run(RSS_DEFAULT_KEY, &flows, Traffic::SMOOTH, 1);
        // One flow every seven cycles: accepted, six steps, taken as the next is accepted.
        assert_eq!(cycles, 7 * flows.len() as u64 + 1);
        run(RSS_DEFAULT_KEY, &flows, Traffic::BUMPY, 2);
    }

    fn random_flows(rng: &mut Rng, n: usize) -> Vec<Flow> {
        (0..n)
            .map(|_| {
                let src = (rng.next_u64() as u32).to_be_bytes();
                let dst = (rng.next_u64() as u32).to_be_bytes();
                let ports =
                    (!rng.chance(200)).then(|| (rng.next_u64() as u16, rng.next_u64() as u16));
                (src, dst, ports)
            })
            .collect()
    }

    #[test]
    fn random_flows_and_keys_match_the_model() {
        let mut rng = Rng::new(0x7e0b_1172);
        // 6,000 flows with the default key, 4 × 1,500 with random keys, half with stalls.
        let flows = random_flows(&mut rng, 6_000);
        run(RSS_DEFAULT_KEY, &flows[..3_000], Traffic::SMOOTH, 3);
        run(RSS_DEFAULT_KEY, &flows[3_000..], Traffic::BUMPY, 4);
        for round in 0..4 {
            let mut key = [0u8; 40];
            key.iter_mut().for_each(|b| *b = rng.byte());
            let flows = random_flows(&mut rng, 1_500);
            let traffic = if round % 2 == 0 {
                Traffic::SMOOTH
            } else {
                Traffic::BUMPY
            };
            run(key, &flows, traffic, 5 + round);
        }
    }
}
