//! Stage 2, hash: the Toeplitz (RSS) hash of an IPv4 flow (`fulcrum_model::hash`).
//!
//! One request in, two hashes out, one request per cycle, three cycles of latency:
//!
//! - `flow_hash` = `ToeplitzKey::hash_v4(src, dst, ports)` (ports left out when
//!   `has_ports` is low: Toeplitz XORs a window only for set input bits, so leaving the
//!   ports out equals hashing them as zero);
//! - `src_hash` = `ToeplitzKey::hash(&src)`, the source-only hash of persistence and
//!   the IP-hash algorithm, which is the first 32 terms of the flow hash.
//!
//! Hardware shape: input bit `i` (MSB of `src` first) selects the 32-bit window of the
//! key starting at key bit `i`. The first cycle ANDs and XORs the windows of each 16-bit
//! half of the input words (src, dst, ports) into six registered partial hashes, three
//! LUT levels deep (32 windows per partial were five levels: a critical path at
//! 125 MHz); the second XORs the six into the registered outputs. The key is ten 32-bit words written through
//! `key_write` / `key_word` / `key_data`, word `i` holding key bytes `4i..4i+3` big-endian
//! exactly as register `HASH_KEY + i` of `regmap.rs` (the shadow-bank commit belongs to the
//! register block, which drives these ports).

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
    key4: DFF<Bits<32>>,
    key5: DFF<Bits<32>>,
    key6: DFF<Bits<32>>,
    key7: DFF<Bits<32>>,
    key8: DFF<Bits<32>>,
    key9: DFF<Bits<32>>,
    // Stage 1: input registered.
    valid1: DFF<Bit>,
    src1: DFF<Bits<32>>,
    dst1: DFF<Bits<32>>,
    ports1: DFF<Bits<32>>,
    // Stage 2: the six partial hashes (`_a`: the word's first 16 bits, `_b`: the rest).
    valid2: DFF<Bit>,
    part_src_a: DFF<Bits<32>>,
    part_src_b: DFF<Bits<32>>,
    part_dst_a: DFF<Bits<32>>,
    part_dst_b: DFF<Bits<32>>,
    part_ports_a: DFF<Bits<32>>,
    part_ports_b: DFF<Bits<32>>,
    // Stage 3: the hashes.
    valid3: DFF<Bit>,
    out_flow: DFF<Bits<32>>,
    out_src: DFF<Bits<32>>,

    advance: Signal<Local, Bit>,
    key: Signal<Local, Bits<320>>,
    acc_src_a: Signal<Local, Bits<32>>,
    acc_src_b: Signal<Local, Bits<32>>,
    acc_dst_a: Signal<Local, Bits<32>>,
    acc_dst_b: Signal<Local, Bits<32>>,
    acc_ports_a: Signal<Local, Bits<32>>,
    acc_ports_b: Signal<Local, Bits<32>>,
    ports: Signal<Local, Bits<32>>,
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
            self,
            clock,
            key0,
            key1,
            key2,
            key3,
            key4,
            key5,
            key6,
            key7,
            key8,
            key9,
            valid1,
            src1,
            dst1,
            ports1,
            valid2,
            part_src_a,
            part_src_b,
            part_dst_a,
            part_dst_b,
            part_ports_a,
            part_ports_b,
            valid3,
            out_flow,
            out_src
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
            if self.key_word.val() == 4 {
                self.key4.d.next = self.key_data.val();
            }
            if self.key_word.val() == 5 {
                self.key5.d.next = self.key_data.val();
            }
            if self.key_word.val() == 6 {
                self.key6.d.next = self.key_data.val();
            }
            if self.key_word.val() == 7 {
                self.key7.d.next = self.key_data.val();
            }
            if self.key_word.val() == 8 {
                self.key8.d.next = self.key_data.val();
            }
            if self.key_word.val() == 9 {
                self.key9.d.next = self.key_data.val();
            }
        }
        // A three-stage pipeline that stalls as a whole when the output is not taken.
        self.advance.next = !self.valid3.q.val() | self.m_ready.val();
        self.s_ready.next = self.advance.val();
        self.ports.next = (bit_cast::<32, 16>(self.src_port.val()) << 16)
            | bit_cast::<32, 16>(self.dst_port.val());
        if self.advance.val() {
            self.valid1.d.next = self.s_valid.val();
            self.src1.d.next = self.src_ip.val();
            self.dst1.d.next = self.dst_ip.val();
            self.ports1.d.next = 0.into();
            if self.has_ports.val() {
                self.ports1.d.next = self.ports.val();
            }
        }

        // The XOR trees work only when a request is in stage 1 (the result is not used
        // otherwise); the condition costs a few gates in hardware and keeps the 320-bit key
        // out of the simulator's idle cycles.
        self.key.next = 0.into();
        self.acc_src_a.next = 0.into();
        self.acc_src_b.next = 0.into();
        self.acc_dst_a.next = 0.into();
        self.acc_dst_b.next = 0.into();
        self.acc_ports_a.next = 0.into();
        self.acc_ports_b.next = 0.into();
        if self.valid1.q.val() {
            // Key bit 0 (MSB of key byte 0) is bit 319.
            self.key.next = (bit_cast::<320, 32>(self.key0.q.val()) << 288)
                | (bit_cast::<320, 32>(self.key1.q.val()) << 256)
                | (bit_cast::<320, 32>(self.key2.q.val()) << 224)
                | (bit_cast::<320, 32>(self.key3.q.val()) << 192)
                | (bit_cast::<320, 32>(self.key4.q.val()) << 160)
                | (bit_cast::<320, 32>(self.key5.q.val()) << 128)
                | (bit_cast::<320, 32>(self.key6.q.val()) << 96)
                | (bit_cast::<320, 32>(self.key7.q.val()) << 64)
                | (bit_cast::<320, 32>(self.key8.q.val()) << 32)
                | bit_cast::<320, 32>(self.key9.q.val());

            // Input bit i (MSB first) XORs in the key window starting at key bit i, which is
            // key[319 - i : 288 - i]. src is input bits 0..32, dst 32..64, ports 64..96.
            for i in 0..16 {
                if self.src1.q.val().get_bit(31 - i) {
                    self.acc_src_a.next =
                        self.acc_src_a.val() ^ self.key.val().get_bits::<32>(288 - i);
                }
                if self.dst1.q.val().get_bit(31 - i) {
                    self.acc_dst_a.next =
                        self.acc_dst_a.val() ^ self.key.val().get_bits::<32>(256 - i);
                }
                if self.ports1.q.val().get_bit(31 - i) {
                    self.acc_ports_a.next =
                        self.acc_ports_a.val() ^ self.key.val().get_bits::<32>(224 - i);
                }
            }
            for i in 16..32 {
                if self.src1.q.val().get_bit(31 - i) {
                    self.acc_src_b.next =
                        self.acc_src_b.val() ^ self.key.val().get_bits::<32>(288 - i);
                }
                if self.dst1.q.val().get_bit(31 - i) {
                    self.acc_dst_b.next =
                        self.acc_dst_b.val() ^ self.key.val().get_bits::<32>(256 - i);
                }
                if self.ports1.q.val().get_bit(31 - i) {
                    self.acc_ports_b.next =
                        self.acc_ports_b.val() ^ self.key.val().get_bits::<32>(224 - i);
                }
            }
        }
        if self.advance.val() {
            self.valid2.d.next = self.valid1.q.val();
            self.part_src_a.d.next = self.acc_src_a.val();
            self.part_src_b.d.next = self.acc_src_b.val();
            self.part_dst_a.d.next = self.acc_dst_a.val();
            self.part_dst_b.d.next = self.acc_dst_b.val();
            self.part_ports_a.d.next = self.acc_ports_a.val();
            self.part_ports_b.d.next = self.acc_ports_b.val();
            self.valid3.d.next = self.valid2.q.val();
            self.out_src.d.next = self.part_src_a.q.val() ^ self.part_src_b.q.val();
            self.out_flow.d.next = self.part_src_a.q.val()
                ^ self.part_src_b.q.val()
                ^ self.part_dst_a.q.val()
                ^ self.part_dst_b.q.val()
                ^ self.part_ports_a.q.val()
                ^ self.part_ports_b.q.val();
        }

        self.m_valid.next = self.valid3.q.val();
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
        // One flow per cycle after three cycles of latency.
        assert_eq!(cycles, flows.len() as u64 + 3);
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
