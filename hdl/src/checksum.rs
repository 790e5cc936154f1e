//! The incremental checksum update of the rewrite stage (`fulcrum_model::checksum`).
//!
//! RFC 1624 eqn 3, `HC' = ~(~HC + ~m + m')`, for a 16-bit field or a 32-bit field (an IPv4
//! address, or both ports) in one adder tree, exactly as `update16` / `update32`:
//! a received `0xFFFF` is read as `0x0000` first, so the result is never `0xFFFF` and
//! equals a full recomputation bit for bit. With `udp` set it is `update_udp16` /
//! `update_udp32`: a checksum of 0 ("none") stays 0, a result of 0 is sent as `0xFFFF`.
//!
//! A 16-bit update is a 32-bit update with `old` and `new` high halves equal (they add
//! `~a + a = 0xFFFF`, which is zero in ones-complement arithmetic and cannot make a
//! nonzero sum zero), so the unit has no mode input; callers put 16-bit values in the low
//! halves with zero high halves.
//!
//! Four pipeline stages (pairwise sums; the whole sum; the first end-around fold; the
//! second fold, complement and the UDP rule: one stage for all five terms was the core's
//! critical path at 102 MHz, both folds and the rules in one stage a critical path at
//! 120 MHz), one update per cycle; the whole pipeline stalls while the output is not
//! taken.

use rust_hdl::prelude::*;

/// The RFC 1624 incremental checksum update unit.
#[derive(LogicBlock, Default)]
pub struct ChecksumUpdate {
    /// The datapath clock.
    pub clock: Signal<In, Clock>,
    /// An update is on the inputs below.
    pub s_valid: Signal<In, Bit>,
    /// The unit takes it this cycle (if `s_valid`).
    pub s_ready: Signal<Out, Bit>,
    /// The checksum as received.
    pub checksum: Signal<In, Bits<16>>,
    /// The field's old value (a 16-bit field in the low half, high half zero).
    pub old: Signal<In, Bits<32>>,
    /// The field's new value (same layout as `old`).
    pub new: Signal<In, Bits<32>>,
    /// UDP rules: 0 stays 0, a result of 0 becomes 0xFFFF.
    pub udp: Signal<In, Bit>,
    /// `updated` is valid.
    pub m_valid: Signal<Out, Bit>,
    /// The receiver takes it this cycle.
    pub m_ready: Signal<In, Bit>,
    /// The updated checksum.
    pub updated: Signal<Out, Bits<16>>,

    valid1: DFF<Bit>,
    part_a1: DFF<Bits<17>>,
    part_b1: DFF<Bits<17>>,
    part_c1: DFF<Bits<16>>,
    keep_zero1: DFF<Bit>,
    udp1: DFF<Bit>,
    valid2: DFF<Bit>,
    sum2: DFF<Bits<16>>,
    carry2: DFF<Bits<3>>,
    keep_zero2: DFF<Bit>,
    udp2: DFF<Bit>,
    valid3: DFF<Bit>,
    fold3: DFF<Bits<17>>,
    keep_zero3: DFF<Bit>,
    udp3: DFF<Bit>,
    valid4: DFF<Bit>,
    result4: DFF<Bits<16>>,

    advance: Signal<Local, Bit>,
    negated: Signal<Local, Bits<16>>,
    inv_old: Signal<Local, Bits<32>>,
    sum_all: Signal<Local, Bits<19>>,
    fold_once: Signal<Local, Bits<17>>,
    folded: Signal<Local, Bits<16>>,
    complement: Signal<Local, Bits<16>>,
    // The complement is 0 exactly when `fold3` is 0x0FFFF (with bit 16 set, `fold3` is at
    // most 0x10006: `sum2` + `carry2` ≤ 0xFFFF + 7, so its fold is small): compared on
    // the register, beside the fold's carry chain instead of after it.
    all_ones: Signal<Local, Bit>,
}

impl ChecksumUpdate {
    /// An idle update unit.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Logic for ChecksumUpdate {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, valid1, part_a1, part_b1, part_c1, keep_zero1, udp1, valid2, sum2, carry2,
            keep_zero2, udp2, valid3, fold3, keep_zero3, udp3, valid4, result4
        );
        self.advance.next = !self.valid4.q.val() | self.m_ready.val();
        self.s_ready.next = self.advance.val();

        // Stage 1: ~HC (a received 0xFFFF read as 0x0000), ~old and new halves, added in
        // pairs.
        self.negated.next = !self.checksum.val();
        if self.checksum.val() == 0xffff {
            self.negated.next = 0xffff.into();
        }
        self.inv_old.next = !self.old.val();
        // The data registers load only with a valid update (their value is meaningless
        // otherwise): rust-hdl 0.46 simulates `get_bits` and shifts with big integers,
        // so they must not run on every delta cycle.
        if self.advance.val() {
            self.valid1.d.next = self.s_valid.val();
            if self.s_valid.val() {
                self.part_a1.d.next = bit_cast::<17, 16>(self.negated.val())
                    + bit_cast::<17, 16>(self.inv_old.val().get_bits::<16>(16));
                self.part_b1.d.next = bit_cast::<17, 16>(self.inv_old.val().get_bits::<16>(0))
                    + bit_cast::<17, 16>(self.new.val().get_bits::<16>(16));
                self.part_c1.d.next = self.new.val().get_bits::<16>(0);
                self.keep_zero1.d.next = self.udp.val() & (self.checksum.val() == 0);
                self.udp1.d.next = self.udp.val();
            }
        }

        // Stage 2: the whole sum, kept as low 16 bits and carries.
        self.sum_all.next = bit_cast::<19, 17>(self.part_a1.q.val())
            + bit_cast::<19, 17>(self.part_b1.q.val())
            + bit_cast::<19, 16>(self.part_c1.q.val());
        if self.advance.val() {
            self.valid2.d.next = self.valid1.q.val();
            if self.valid1.q.val() {
                self.sum2.d.next = self.sum_all.val().get_bits::<16>(0);
                self.carry2.d.next = self.sum_all.val().get_bits::<3>(16);
                self.keep_zero2.d.next = self.keep_zero1.q.val();
                self.udp2.d.next = self.udp1.q.val();
            }
        }

        // Stage 3: fold with end-around carry once.
        self.fold_once.next =
            bit_cast::<17, 16>(self.sum2.q.val()) + bit_cast::<17, 3>(self.carry2.q.val());
        if self.advance.val() {
            self.valid3.d.next = self.valid2.q.val();
            if self.valid2.q.val() {
                self.fold3.d.next = self.fold_once.val();
                self.keep_zero3.d.next = self.keep_zero2.q.val();
                self.udp3.d.next = self.udp2.q.val();
            }
        }

        // Stage 4: the second fold, complement, UDP rules.
        self.folded.next = bit_cast::<16, 17>(self.fold3.q.val());
        if self.fold3.q.val().get_bit(16) {
            self.folded.next = bit_cast::<16, 17>(self.fold3.q.val()) + 1;
        }
        self.complement.next = !self.folded.val();
        self.all_ones.next = self.fold3.q.val() == 0xffff;
        if self.advance.val() {
            self.valid4.d.next = self.valid3.q.val();
            self.result4.d.next = self.complement.val();
            if self.udp3.q.val() & self.all_ones.val() {
                self.result4.d.next = 0xffff.into();
            }
            if self.keep_zero3.q.val() {
                self.result4.d.next = 0.into();
            }
        }
        self.m_valid.next = self.valid4.q.val();
        self.updated.next = self.result4.q.val();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{Rng, Traffic, settle, tick};
    use fulcrum_model::checksum as model;

    #[test]
    fn checksum_update_is_synthesizable() {
        let mut uut = ChecksumUpdate::new();
        uut.clock.connect();
        uut.s_valid.connect();
        uut.checksum.connect();
        uut.old.connect();
        uut.new.connect();
        uut.udp.connect();
        uut.m_ready.connect();
        uut.connect_all();
        crate::verilog::validate("checksum_update", &generate_verilog(&uut));
    }

    /// One update: (checksum, old, new, udp, 32-bit field).
    #[derive(Debug, Clone, Copy)]
    struct Case {
        hc: u16,
        old: u32,
        new: u32,
        udp: bool,
        wide: bool,
    }

    impl Case {
        fn expected(&self) -> u16 {
            let (old16, new16) = (self.old as u16, self.new as u16);
            match (self.udp, self.wide) {
                (false, false) => model::update16(self.hc, old16, new16),
                (false, true) => model::update32(self.hc, self.old, self.new),
                (true, false) => model::update_udp16(self.hc, old16, new16),
                (true, true) => model::update_udp32(self.hc, self.old, self.new),
            }
        }
    }

    /// Streams `cases` through the unit and compares every result with the model.
    fn run(cases: &[Case], traffic: Traffic, seed: u64) -> u64 {
        let mut rng = Rng::new(seed);
        let mut uut = ChecksumUpdate::new();
        uut.connect_all();
        let (mut sent, mut received, mut cycles) = (0, 0, 0u64);
        while received < cases.len() {
            let offer = sent < cases.len() && !rng.chance(traffic.idle_permille);
            let c = cases[sent.min(cases.len() - 1)];
            let mask = if c.wide { u32::MAX } else { 0xffff };
            uut.s_valid.next = offer;
            uut.checksum.next = u64::from(c.hc).into();
            uut.old.next = u64::from(c.old & mask).into();
            uut.new.next = u64::from(c.new & mask).into();
            uut.udp.next = c.udp;
            uut.m_ready.next = traffic.ready(&mut rng);
            settle(&mut uut);
            let taken = offer && uut.s_ready.val();
            if uut.m_valid.val() && uut.m_ready.val() {
                let c = cases[received];
                let got: u64 = uut.updated.val().into();
                assert_eq!(got as u16, c.expected(), "{c:x?}");
                received += 1;
            }
            tick(&mut uut, |u| &mut u.clock);
            sent += usize::from(taken);
            cycles += 1;
        }
        cycles
    }

    const CORNERS: [u16; 7] = [0x0000, 0x0001, 0x7fff, 0x8000, 0xfffe, 0xffff, 0x1234];

    #[test]
    fn every_checksum_value_with_random_fields() {
        let mut rng = Rng::new(0xc5c5);
        let mut cases = Vec::with_capacity(4 * 65536);
        for hc in 0..=u16::MAX {
            for (udp, wide) in [(false, false), (false, true), (true, false), (true, true)] {
                let (old, new) = (rng.next_u64() as u32, rng.next_u64() as u32);
                cases.push(Case {
                    hc,
                    old,
                    new,
                    udp,
                    wide,
                });
            }
        }
        let cycles = run(&cases, Traffic::SMOOTH, 1);
        // One update per cycle, four cycles of latency.
        assert_eq!(cycles, cases.len() as u64 + 4);
    }

    #[test]
    fn corner_values_on_every_input() {
        let mut cases = Vec::new();
        for hc in CORNERS {
            for a in CORNERS {
                for b in CORNERS {
                    for udp in [false, true] {
                        cases.push(Case {
                            hc,
                            old: a.into(),
                            new: b.into(),
                            udp,
                            wide: false,
                        });
                        for c in CORNERS {
                            let old = u32::from(a) << 16 | u32::from(c);
                            let new = u32::from(b) << 16 | u32::from(c ^ a);
                            cases.push(Case {
                                hc,
                                old,
                                new,
                                udp,
                                wide: true,
                            });
                        }
                    }
                }
            }
        }
        run(&cases, Traffic::BUMPY, 2);
        run(&cases, Traffic::SMOOTH, 3);
    }

    #[test]
    fn valid_checksums_stay_equal_to_a_full_recomputation() {
        // A 20-byte IPv4 header with a correct checksum; rewrite the destination address
        // and check the updated checksum against a fresh one.
        let mut rng = Rng::new(0x1624);
        let mut cases = Vec::new();
        let mut fresh = Vec::new();
        for _ in 0..5_000 {
            let mut ip = [0u8; 20];
            ip.iter_mut().for_each(|b| *b = rng.byte());
            ip[0] = 0x45;
            ip[10..12].fill(0);
            let hc = model::checksum(&ip);
            let old = u32::from_be_bytes(ip[16..20].try_into().unwrap());
            let new = rng.next_u64() as u32;
            ip[16..20].copy_from_slice(&new.to_be_bytes());
            fresh.push(model::checksum(&ip));
            cases.push(Case {
                hc,
                old,
                new,
                udp: false,
                wide: true,
            });
        }
        for (c, f) in cases.iter().zip(&fresh) {
            assert_eq!(c.expected(), *f);
        }
        run(&cases, Traffic::BUMPY, 4);
    }
}
