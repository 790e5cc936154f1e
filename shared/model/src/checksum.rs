//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Fulcrum rewrites addresses and ports of packets it forwards (NAT, full NAT). Summing a
//! whole segment again would need the whole payload before the header leaves the FPGA,
//! so the data path patches the checksum from the old and new values of the fields it
//! changed, with RFC 1624 equation 3:
//!
//! ```text
//! HC' = ~(~HC + ~m + m')        (16-bit ones-complement additions)
//! ```
//!
//! The full computation ([`sum`], [`fold`], [`checksum`], [`pseudo_header_v4`]) is here
//! to build test packets and to state what the incremental update must agree with.
//!
//! # Arithmetic
//!
//! A checksum is the ones-complement of the ones-complement sum of the big-endian 16-bit
//! words of the data. Ones-complement addition is ordinary addition with the carry out
//! of bit 15 added back in ("end-around carry"), which makes it addition modulo 0xFFFF
//! with two spellings of zero: 0x0000 (+0) and 0xFFFF (-0). [`sum`] accumulates in a
//! wide register and leaves the carries for [`fold`]; a hardware adder tree does the same.
//!
//! # The 0x0000 / 0xFFFF corner, and what this model guarantees
//!
//! [`fold`] of a nonzero sum is never 0x0000 (a multiple of 0xFFFF folds to 0xFFFF), so a
//! full computation over data with any nonzero word yields a checksum in
//! `0x0000..=0xFFFE`: 0x0000 when the data sums to -0, never 0xFFFF. Every IPv4 header
//! (version 4) and every TCP/UDP pseudo-header (protocol number) has a nonzero word.
//!
//! RFC 1624 section 3 shows that eqn 3, unlike its predecessor (RFC 1141), produces the
//! same 0x0000 as a full recomputation instead of 0xFFFF. One gap remains: if the
//! *received* checksum is 0xFFFF (a valid but non-canonical spelling of 0x0000, sent by
//! some stacks and mandated for UDP, see below), `~HC` is 0 and an update that changes
//! only 0xFFFF words into 0x0000 words gives 0xFFFF where a full recomputation gives
//! 0x0000. Both verify, but they differ in bits, and this model is compared bit for bit.
//!
//! So the model first reads a received 0xFFFF as 0x0000 (one 16-bit comparator in
//! hardware), then applies eqn 3. With that, `~HC` is never 0, the ones-complement sum
//! is never +0, and the model guarantees:
//!
//! * [`update16`], [`update32`] and [`update_bytes`] never return 0xFFFF;
//! * if the received checksum was valid, the result is **bit-identical** to a full
//!   recomputation over the rewritten data (tested below, corners included);
//! * if it was invalid, it stays invalid by the same amount: the update never repairs
//!   a corrupted packet into a valid-looking one.
//!
//! # UDP
//!
//! In UDP (over IPv4) a checksum field of 0 means "no checksum": it must stay 0 through
//! any rewrite. A computed checksum of 0x0000 is therefore transmitted as 0xFFFF
//! (RFC 768). Rewrite code must use:
//!
//! * IPv4 header and TCP: [`update16`] / [`update32`] / [`update_bytes`];
//! * UDP: [`update_udp16`] / [`update_udp32`] / [`update_udp_bytes`], which leave 0
//!   untouched and apply [`udp_fixup`] to the result;
//! * a UDP checksum computed from scratch: `udp_fixup(checksum(..))` (with the
//!   pseudo-header in the sum).
//!
//! Addresses are part of the TCP/UDP pseudo-header, so an address rewrite updates both the
//! IPv4 header checksum and the TCP/UDP checksum with the same old and new values.

/// Adds the big-endian 16-bit words of `data` to `initial`, without folding.
///
/// An odd trailing byte is the high byte of a word whose low byte is zero (RFC 1071).
/// The result is congruent, modulo 0xFFFF, to the ones-complement sum; pass it to
/// [`fold`]. `initial` carries a previous partial sum, e.g. [`pseudo_header_v4`]; it must
/// cover an even number of bytes for the words of `data` to line up.
///
/// Carries beyond bit 31 are added back in, so any length and any `initial` are safe.
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let mut acc = u64::from(initial);
    let mut words = data.chunks_exact(2);
    for word in &mut words {
        acc += u64::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    // 2^32 = 1 (mod 0xFFFF): folding the top half onto the bottom half keeps the value.
    while acc > u64::from(u32::MAX) {
        acc = (acc & 0xFFFF_FFFF) + (acc >> 32);
    }
    acc as u32
}

/// Folds a 32-bit sum to 16 bits with end-around carry: the ones-complement sum.
///
/// Returns 0x0000 only for a sum of 0; any other multiple of 0xFFFF becomes 0xFFFF.
pub const fn fold(sum: u32) -> u16 {
    // Two rounds suffice: the first leaves at most 0x1FFFE, the second at most 0xFFFF.
    let once = (sum & 0xFFFF) + (sum >> 16);
    let twice = (once & 0xFFFF) + (once >> 16);
    twice as u16
}

/// The Internet checksum of `data`: `!fold(sum(data, 0))`.
///
/// To check received data, sum it *including* its checksum field: the result is 0.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data, 0))
}

/// The unfolded sum of the IPv4 pseudo-header of TCP and UDP (RFC 793, RFC 768):
/// source address, destination address, zero byte, protocol, segment length.
///
/// Use it as `initial` of [`sum`] over the TCP header or UDP header and payload.
pub fn pseudo_header_v4(src: [u8; 4], dst: [u8; 4], protocol: u8, length: u16) -> u32 {
    let addresses = sum(&src, 0) + sum(&dst, 0);
    addresses + u32::from(protocol) + u32::from(length)
}

/// `~HC` of eqn 3, with a received 0xFFFF read as its equivalent 0x0000 so that `~HC` is
/// never zero (see the module doc).
const fn negated_checksum(hc: u16) -> u32 {
    let hc = if hc == 0xFFFF { 0x0000 } else { hc };
    !hc as u32
}

/// Updates checksum `hc` after one 16-bit word of the covered data changed from `old` to
/// `new` (RFC 1624 eqn 3). Never returns 0xFFFF.
pub const fn update16(hc: u16, old: u16, new: u16) -> u16 {
    !fold(negated_checksum(hc) + !old as u32 + new as u32)
}

/// Updates checksum `hc` after a 32-bit field (an IPv4 address, both ports of a flow)
/// changed from `old` to `new`; the field starts at an even offset.
///
/// The two 16-bit halves go into one sum, as one adder tree would; the result is the
/// same as two [`update16`] calls. Never returns 0xFFFF.
pub const fn update32(hc: u16, old: u32, new: u32) -> u16 {
    let removed = !(old >> 16) as u16 as u32 + !old as u16 as u32;
    let added = (new >> 16) + (new & 0xFFFF);
    !fold(negated_checksum(hc) + removed + added)
}

/// Updates checksum `hc` after a field (e.g. an IPv6 address) changed from `old` to
/// `new`. Both must have the same, even length and start at an even offset of the covered
/// data; otherwise debug builds assert and release builds use the common even prefix.
/// Never returns 0xFFFF.
pub fn update_bytes(hc: u16, old: &[u8], new: &[u8]) -> u16 {
    debug_assert!(
        old.len() == new.len() && old.len().is_multiple_of(2),
        "checksum update needs old and new fields of the same, even length"
    );
    let mut acc = negated_checksum(hc);
    for (old, new) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        acc += u32::from(!u16::from_be_bytes([old[0], old[1]]));
        acc += u32::from(u16::from_be_bytes([new[0], new[1]]));
        // End-around carry as we go keeps `acc` below 0x3FFFE for any field length.
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    !fold(acc)
}

/// The checksum a UDP datagram carries for computed checksum `c`: 0x0000 becomes 0xFFFF,
/// because 0 on the wire means "no checksum" (RFC 768).
pub const fn udp_fixup(c: u16) -> u16 {
    if c == 0 { 0xFFFF } else { c }
}

/// [`update16`] for a UDP checksum: 0 ("none") stays 0, a result of 0 is sent as 0xFFFF.
pub const fn update_udp16(hc: u16, old: u16, new: u16) -> u16 {
    if hc == 0 {
        0
    } else {
        udp_fixup(update16(hc, old, new))
    }
}

/// [`update32`] for a UDP checksum: 0 ("none") stays 0, a result of 0 is sent as 0xFFFF.
pub const fn update_udp32(hc: u16, old: u32, new: u32) -> u16 {
    if hc == 0 {
        0
    } else {
        udp_fixup(update32(hc, old, new))
    }
}

/// [`update_bytes`] for a UDP checksum: 0 ("none") stays 0, a result of 0 is sent as
/// 0xFFFF.
pub fn update_udp_bytes(hc: u16, old: &[u8], new: &[u8]) -> u16 {
    if hc == 0 {
        0
    } else {
        udp_fixup(update_bytes(hc, old, new))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};
    use std::vec::Vec;

    const TCP: u8 = 6;
    const UDP: u8 = 17;

    /// Offsets in an IPv4 header and in TCP/UDP headers.
    const IP_CHECKSUM: usize = 10;
    const IP_SRC: usize = 12;
    const IP_DST: usize = 16;
    const TCP_CHECKSUM: usize = 16;
    const UDP_CHECKSUM: usize = 6;

    fn get16(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([b[at], b[at + 1]])
    }
    fn put16(b: &mut [u8], at: usize, v: u16) {
        b[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
    fn get32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }
    fn put32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    /// The IPv4 header checksum recomputed from scratch.
    fn ip_full(header: &[u8]) -> u16 {
        let mut h = header.to_vec();
        put16(&mut h, IP_CHECKSUM, 0);
        checksum(&h)
    }

    /// The TCP or UDP checksum recomputed from scratch, with the UDP 0 -> 0xFFFF rule.
    fn l4_full(src: u32, dst: u32, protocol: u8, segment: &[u8]) -> u16 {
        let at = if protocol == TCP {
            TCP_CHECKSUM
        } else {
            UDP_CHECKSUM
        };
        let mut s = segment.to_vec();
        put16(&mut s, at, 0);
        let pseudo = pseudo_header_v4(
            src.to_be_bytes(),
            dst.to_be_bytes(),
            protocol,
            s.len() as u16,
        );
        let c = !fold(sum(&s, pseudo));
        if protocol == UDP { udp_fixup(c) } else { c }
    }

    /// A 20..=60-byte IPv4 header with random fields and a valid checksum.
    fn ipv4_header() -> impl Strategy<Value = Vec<u8>> {
        (0usize..=10)
            .prop_flat_map(|options| proptest::collection::vec(any::<u8>(), 20 + 4 * options))
            .prop_map(|mut h| {
                h[0] = 0x40 | (h.len() / 4) as u8;
                let c = ip_full(&h);
                put16(&mut h, IP_CHECKSUM, c);
                h
            })
    }

    fn config() -> Config {
        Config {
            cases: 1024,
            rng_seed: RngSeed::Fixed(0x1071_1624),
            failure_persistence: None,
            ..Config::default()
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to 0x2ddf0, fold to
        // 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data, 0), 0x2_ddf0);
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn known_ipv4_header() {
        // A classic captured header: 172.16.10.99 -> 172.16.10.12, checksum 0xb1e6.
        let mut h = [
            0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0xb1, 0xe6, 0xac, 0x10,
            0x0a, 0x63, 0xac, 0x10, 0x0a, 0x0c,
        ];
        assert_eq!(checksum(&h), 0, "a valid header sums to -0");
        put16(&mut h, IP_CHECKSUM, 0);
        assert_eq!(checksum(&h), 0xb1e6);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(&[0x12, 0x34, 0x56], 0), 0x1234 + 0x5600);
        assert_eq!(checksum(&[0xab]), !0xab00);
    }

    #[test]
    fn sum_never_loses_carries() {
        let ones = [0xFFu8; 4096];
        let expected = fold(sum(&ones, 0));
        assert_eq!(fold(sum(&ones, u32::MAX)), fold(expected as u32 + 0xFFFF));
        assert_eq!(fold(sum(&ones, 0)), 0xFFFF);
        assert_eq!(
            checksum(&[0; 8]),
            0xFFFF,
            "all-zero data is the only way to 0xFFFF"
        );
    }

    #[test]
    fn fold_spellings_of_zero() {
        assert_eq!(fold(0), 0x0000);
        assert_eq!(fold(0xFFFF), 0xFFFF);
        assert_eq!(fold(0x1_FFFE), 0xFFFF);
        assert_eq!(fold(u32::MAX), 0xFFFF);
        assert_eq!(fold(0x1_0000), 0x0001);
    }

    #[test]
    fn pseudo_header_matches_summing_its_bytes() {
        let src = [192, 0, 2, 1];
        let dst = [198, 51, 100, 200];
        let bytes = [192, 0, 2, 1, 198, 51, 100, 200, 0, UDP, 0x05, 0xdc];
        assert_eq!(
            fold(pseudo_header_v4(src, dst, UDP, 1500)),
            fold(sum(&bytes, 0))
        );
    }

    #[test]
    fn update32_equals_two_update16() {
        let cases = [
            (0x1234, 0xdead_beef, 0x0a00_0001),
            (0x0000, 0xFFFF_FFFF, 0x0000_0000),
            (0xFFFF, 0xFFFF_0000, 0x0000_FFFF),
            (0xb1e6, 0xac10_0a63, 0xac10_0a63),
        ];
        for (hc, old, new) in cases {
            let halves = update16(
                update16(hc, (old >> 16) as u16, (new >> 16) as u16),
                old as u16,
                new as u16,
            );
            assert_eq!(update32(hc, old, new), halves);
            assert_eq!(
                update_bytes(hc, &old.to_be_bytes(), &new.to_be_bytes()),
                halves
            );
        }
    }

    #[test]
    fn update_never_returns_negative_zero() {
        // Exhaustive over the checksum and the new word for the nastiest old words.
        for old in [0x0000, 0x0001, 0x7FFF, 0xFFFE, 0xFFFF] {
            for hc in 0..=0xFFFFu16 {
                for new in [0x0000, 0x0001, 0xFFFE, 0xFFFF, old] {
                    assert_ne!(update16(hc, old, new), 0xFFFF, "{hc:#x} {old:#x} {new:#x}");
                }
            }
        }
    }

    #[test]
    fn udp_zero_means_none_and_stays_zero() {
        assert_eq!(update_udp16(0, 0x1234, 0x4321), 0);
        assert_eq!(update_udp32(0, 0x0a00_0001, 0x0a00_0002), 0);
        assert_eq!(update_udp_bytes(0, &[1, 2], &[3, 4]), 0);
        assert_eq!(udp_fixup(0), 0xFFFF);
        assert_eq!(udp_fixup(0x1234), 0x1234);
    }

    /// Builds a 20-byte IPv4 header (TTL 64, protocol UDP) whose words other than the
    /// checksum sum to exactly 0xFFFF, i.e. -0, so its full checksum is 0x0000. The
    /// identification field absorbs the difference.
    fn header_summing_to_negative_zero(src: u32, dst: u32) -> [u8; 20] {
        let mut h = [0u8; 20];
        h[0] = 0x45;
        put16(&mut h, 2, 20);
        h[8] = 64;
        h[9] = UDP;
        put32(&mut h, IP_SRC, src);
        put32(&mut h, IP_DST, dst);
        let rest = fold(sum(&h, 0));
        // Choose the identification so the ones-complement sum becomes 0xFFFF.
        put16(&mut h, 4, !rest);
        assert_eq!(fold(sum(&h, 0)), 0xFFFF);
        h
    }

    #[test]
    fn corner_checksum_zero_before_and_after() {
        // Before: the header sums to -0, its checksum is 0x0000. The rewrite swaps the
        // two halves of the source address, which keeps the sum, so the checksum after
        // is 0x0000 again. Eqn 3 must give 0x0000 too, not 0xFFFF (RFC 1624 section 3).
        let h = header_summing_to_negative_zero(0x0a00_0001, 0xc0a8_0101);
        assert_eq!(ip_full(&h), 0x0000);
        let mut after = h;
        put32(&mut after, IP_SRC, 0x0001_0a00);
        assert_eq!(ip_full(&after), 0x0000);
        assert_eq!(update32(0x0000, 0x0a00_0001, 0x0001_0a00), 0x0000);
    }

    #[test]
    fn corner_into_and_out_of_checksum_zero() {
        // Into 0x0000: a valid header whose rewrite brings the sum to -0.
        let h = header_summing_to_negative_zero(0x0a00_0001, 0xc0a8_0101);
        let mut before = h;
        put32(&mut before, IP_SRC, 0x0a00_0005);
        let hc = ip_full(&before);
        assert_eq!(hc, 0xFFFB);
        assert_eq!(update32(hc, 0x0a00_0005, 0x0a00_0001), 0x0000);
        // Out of 0x0000: the reverse rewrite.
        assert_eq!(update32(0x0000, 0x0a00_0001, 0x0a00_0005), 0xFFFB);
    }

    #[test]
    fn corner_received_negative_zero_checksum() {
        // A header summing to -0 may carry 0xFFFF instead of 0x0000: both verify. The
        // rewrite turns 0xFFFF words into 0x0000 words, the case where plain eqn 3
        // (~HC = 0) would answer 0xFFFF. The model reads 0xFFFF as 0x0000 and answers
        // what a full recomputation answers.
        let before = header_summing_to_negative_zero(0xFFFF_FFFF, 0x0a00_0001);
        let mut received = before;
        put16(&mut received, IP_CHECKSUM, 0xFFFF);
        assert_eq!(checksum(&received), 0x0000, "0xFFFF verifies too");

        let mut after = before;
        put32(&mut after, IP_SRC, 0x0000_0000);
        let full = ip_full(&after);
        assert_eq!(full, 0x0000);
        assert_eq!(update32(0xFFFF, 0xFFFF_FFFF, 0x0000_0000), full);
        assert_eq!(update32(0x0000, 0xFFFF_FFFF, 0x0000_0000), full);

        // What literal eqn 3 would give: equivalent (-0), but not the same bits.
        let literal = !fold(!0xFFFFu16 as u32 + !0xFFFFu16 as u32 + !0xFFFFu16 as u32);
        assert_eq!(literal, 0xFFFF);

        // A no-op rewrite also canonicalises a received 0xFFFF to 0x0000.
        assert_eq!(update16(0xFFFF, 0x1234, 0x1234), 0x0000);
    }

    #[test]
    fn corner_udp_negative_zero_round_trip() {
        // A UDP datagram whose computed checksum is 0x0000 carries 0xFFFF. Rewriting the
        // destination port there and back must give 0xFFFF again, and match recomputing.
        let src: u32 = 0x0a00_0001;
        let dst: u32 = 0x0a00_0002;
        let mut seg = [0u8; 12];
        put16(&mut seg, 0, 5353);
        put16(&mut seg, 2, 53);
        put16(&mut seg, 4, 12);
        // Pick the payload so the datagram sums to -0.
        let rest = fold(sum(
            &seg,
            pseudo_header_v4(src.to_be_bytes(), dst.to_be_bytes(), UDP, 12),
        ));
        put16(&mut seg, 8, !rest);
        let c = l4_full(src, dst, UDP, &seg);
        assert_eq!(c, 0xFFFF, "computed 0x0000 is sent as 0xFFFF");
        put16(&mut seg, UDP_CHECKSUM, c);

        let moved = update_udp16(c, 53, 5300);
        put16(&mut seg, 2, 5300);
        assert_eq!(moved, l4_full(src, dst, UDP, &seg));
        let back = update_udp16(moved, 5300, 53);
        put16(&mut seg, 2, 53);
        assert_eq!(back, 0xFFFF);
        assert_eq!(back, l4_full(src, dst, UDP, &seg));
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn ipv4_header_rewrite_matches_full(
            mut h in ipv4_header(),
            new_src in any::<u32>(),
            new_dst in any::<u32>(),
        ) {
            let mut hc = get16(&h, IP_CHECKSUM);
            hc = update32(hc, get32(&h, IP_SRC), new_src);
            hc = update32(hc, get32(&h, IP_DST), new_dst);
            put32(&mut h, IP_SRC, new_src);
            put32(&mut h, IP_DST, new_dst);
            prop_assert_eq!(hc, ip_full(&h));
            put16(&mut h, IP_CHECKSUM, hc);
            prop_assert_eq!(checksum(&h), 0);
        }

        #[test]
        fn ipv4_address_as_bytes_matches_full(
            mut h in ipv4_header(),
            new_dst in any::<[u8; 4]>(),
        ) {
            let old = h[IP_DST..IP_DST + 4].to_vec();
            let hc = update_bytes(get16(&h, IP_CHECKSUM), &old, &new_dst);
            h[IP_DST..IP_DST + 4].copy_from_slice(&new_dst);
            prop_assert_eq!(hc, ip_full(&h));
        }

        #[test]
        fn tcp_rewrite_matches_full(
            header in proptest::collection::vec(any::<u8>(), 20),
            payload in proptest::collection::vec(any::<u8>(), 0..1500),
            (src, dst, new_src, new_dst) in any::<(u32, u32, u32, u32)>(),
            (new_src_port, new_dst_port) in any::<(u16, u16)>(),
        ) {
            let mut seg = [header, payload].concat();
            let c = l4_full(src, dst, TCP, &seg);
            put16(&mut seg, TCP_CHECKSUM, c);

            let mut hc = c;
            hc = update32(hc, src, new_src);
            hc = update32(hc, dst, new_dst);
            hc = update16(hc, get16(&seg, 0), new_src_port);
            hc = update16(hc, get16(&seg, 2), new_dst_port);
            put16(&mut seg, 0, new_src_port);
            put16(&mut seg, 2, new_dst_port);
            prop_assert_eq!(hc, l4_full(new_src, new_dst, TCP, &seg));
        }

        #[test]
        fn udp_rewrite_matches_full(
            payload in proptest::collection::vec(any::<u8>(), 0..1500),
            (src, dst, new_src, new_dst) in any::<(u32, u32, u32, u32)>(),
            (src_port, dst_port, new_src_port, new_dst_port) in any::<(u16, u16, u16, u16)>(),
        ) {
            let mut seg = std::vec![0u8; 8];
            put16(&mut seg, 0, src_port);
            put16(&mut seg, 2, dst_port);
            put16(&mut seg, 4, (8 + payload.len()) as u16);
            seg.extend_from_slice(&payload);
            let c = l4_full(src, dst, UDP, &seg);
            put16(&mut seg, UDP_CHECKSUM, c);

            // Both ports as one 32-bit field, as a full-NAT rewrite would do it.
            let ports = u32::from(src_port) << 16 | u32::from(dst_port);
            let new_ports = u32::from(new_src_port) << 16 | u32::from(new_dst_port);
            let mut hc = c;
            hc = update_udp32(hc, src, new_src);
            hc = update_udp_bytes(hc, &dst.to_be_bytes(), &new_dst.to_be_bytes());
            hc = update_udp32(hc, ports, new_ports);
            put32(&mut seg, 0, new_ports);
            prop_assert_eq!(hc, l4_full(new_src, new_dst, UDP, &seg));

            // "No checksum" survives the same rewrite.
            prop_assert_eq!(update_udp32(0, src, new_src), 0);
        }

        #[test]
        fn update_is_congruent_even_for_invalid_checksums(
            hc in any::<u16>(),
            old in any::<u16>(),
            new in any::<u16>(),
        ) {
            // Whatever the received checksum, the update moves it by exactly old - new
            // (mod 0xFFFF): a corrupted packet stays detectably corrupted.
            let updated = update16(hc, old, new);
            let expected = (u32::from(hc) + 0xFFFF - u32::from(new) + u32::from(old)) % 0xFFFF;
            prop_assert_eq!(u32::from(updated) % 0xFFFF, expected);
        }
    }
}
