//! The Toeplitz hash of a flow, as defined by Microsoft Receive Side Scaling (RSS).
//!
//! Every new flow is hashed once; the hash picks the flow-table bucket and, through
//! [`crate::maglev::lookup`], the backend. We use Toeplitz rather than a "better" hash
//! because it is what NICs compute, so a host behind Fulcrum can reproduce our choice, and
//! because in hardware it is only AND gates and an XOR tree: no multipliers, no state.
//!
//! # Definition
//!
//! The key is a 320-bit string `K` (40 bytes, most significant bit of byte 0 first). The
//! input is a bit string `I` of at most 288 bits (36 bytes, same bit order). For every
//! input bit `i` that is set, the 32-bit window of the key starting at key bit `i` is
//! XORed into the result:
//!
//! ```text
//! hash = XOR over { i : I[i] == 1 } of K[i .. i + 32]   (K[i] is the MSB of the window)
//! ```
//!
//! The input of a flow is source address, destination address, source port, destination
//! port, each in network byte order, ports left out for non-TCP/UDP traffic
//! ([`ToeplitzKey::hash_v4`], [`ToeplitzKey::hash_v6`]). 36 bytes is the IPv6 4-tuple,
//! the longest input RSS defines, and the reason the key is 40 bytes long.
//!
//! # Why it is shaped this way
//!
//! [`ToeplitzKey::new`] precomputes the 288 windows (one per input bit, 1152 bytes), so a
//! hash is "AND each input bit with its window, XOR everything". That is literally the
//! FPGA datapath: the windows are constants once the key is written, and the XOR tree
//! is 288 inputs wide. The table is small enough for an MCU stack; a per-byte table
//! (`[[u32; 256]; 36]`, 36 KB) would be faster in software but buys nothing here.

use core::fmt;

/// The key Microsoft publishes for verifying RSS implementations, and the default key of
/// most NICs. Any key works; a load balancer in front of hosts that hash with the same key
/// lets them predict which backend a flow reaches.
pub const RSS_DEFAULT_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// The longest input the hash accepts, in bytes: an IPv6 4-tuple (16 + 16 + 2 + 2).
///
/// A 40-byte key has `320 - 32 + 1 = 289` full windows, enough for 288 input bits.
pub const MAX_INPUT_LEN: usize = 36;

/// One window per input bit.
const WINDOWS: usize = MAX_INPUT_LEN * 8;

/// A Toeplitz key with its per-input-bit windows precomputed.
///
/// Build it once when the key is configured, then hash every flow with it.
#[derive(Clone, PartialEq)]
pub struct ToeplitzKey {
    key: [u8; 40],
    /// `windows[i]` = key bits `i .. i + 32`, the value XORed in when input bit `i` is set.
    windows: [u32; WINDOWS],
}

impl ToeplitzKey {
    /// Takes a 40-byte key and precomputes its 288 windows.
    pub const fn new(key: [u8; 40]) -> Self {
        let mut windows = [0u32; WINDOWS];
        let mut i = 0;
        while i < WINDOWS {
            // The window starting at key bit `i` lies in the five key bytes from byte
            // `i / 8`; the last one (i = 287) ends in byte 39, the last key byte.
            let byte = i / 8;
            let five = (key[byte] as u64) << 32
                | (key[byte + 1] as u64) << 24
                | (key[byte + 2] as u64) << 16
                | (key[byte + 3] as u64) << 8
                | key[byte + 4] as u64;
            // Drop the `i % 8` leading bits and the trailing bits past the window.
            windows[i] = (five >> (8 - i % 8)) as u32;
            i += 1;
        }
        Self { key, windows }
    }

    /// The 40-byte key this was built from.
    pub fn key(&self) -> &[u8; 40] {
        &self.key
    }

    /// Hashes `input`, at most [`MAX_INPUT_LEN`] (36) bytes.
    ///
    /// A longer input is a caller bug: debug builds assert; release builds hash the first
    /// 36 bytes and ignore the rest, so the data path never panics on it.
    pub fn hash(&self, input: &[u8]) -> u32 {
        debug_assert!(
            input.len() <= MAX_INPUT_LEN,
            "Toeplitz input is longer than 36 bytes"
        );
        let input = match input.split_at_checked(MAX_INPUT_LEN) {
            Some((head, _)) => head,
            None => input,
        };
        let mut hash = 0u32;
        for (byte_index, &byte) in input.iter().enumerate() {
            let windows = &self.windows[byte_index * 8..byte_index * 8 + 8];
            for (bit, &window) in windows.iter().enumerate() {
                // Bit 0 of the byte's windows is the byte's most significant bit. The
                // window is masked rather than branched on: input bits are random, and a
                // mispredicted branch per bit cost 6x in the pipeline benchmark.
                let set = u32::from((byte >> (7 - bit)) & 1);
                hash ^= window & 0u32.wrapping_sub(set);
            }
        }
        hash
    }

    /// Hashes an IPv4 flow: `src`, `dst`, then `(src_port, dst_port)` if present, all in
    /// network byte order (12 bytes with ports, 8 without).
    pub fn hash_v4(&self, src: [u8; 4], dst: [u8; 4], ports: Option<(u16, u16)>) -> u32 {
        let mut input = [0u8; 12];
        input[0..4].copy_from_slice(&src);
        input[4..8].copy_from_slice(&dst);
        let len = put_ports(&mut input, 8, ports);
        self.hash(&input[..len])
    }

    /// Hashes an IPv6 flow: `src`, `dst`, then `(src_port, dst_port)` if present, all in
    /// network byte order (36 bytes with ports, 32 without).
    pub fn hash_v6(&self, src: [u8; 16], dst: [u8; 16], ports: Option<(u16, u16)>) -> u32 {
        let mut input = [0u8; 36];
        input[0..16].copy_from_slice(&src);
        input[16..32].copy_from_slice(&dst);
        let len = put_ports(&mut input, 32, ports);
        self.hash(&input[..len])
    }
}

/// Appends the ports, if any, at `at`; returns the input length.
fn put_ports(input: &mut [u8], at: usize, ports: Option<(u16, u16)>) -> usize {
    match ports {
        Some((src_port, dst_port)) => {
            input[at..at + 2].copy_from_slice(&src_port.to_be_bytes());
            input[at + 2..at + 4].copy_from_slice(&dst_port.to_be_bytes());
            at + 4
        }
        None => at,
    }
}

impl Default for ToeplitzKey {
    /// The key built from [`RSS_DEFAULT_KEY`].
    fn default() -> Self {
        Self::new(RSS_DEFAULT_KEY)
    }
}

impl fmt::Debug for ToeplitzKey {
    // The windows follow from the key; printing 288 of them would hide the one thing
    // worth seeing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ToeplitzKey(")?;
        for byte in &self.key {
            write!(f, "{byte:02x}")?;
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};
    use std::vec::Vec;

    /// One row of Microsoft's "Verifying the RSS Hash Calculation" tables. The published
    /// tables list the destination first; the hash input is still source first.
    struct Vector<const N: usize> {
        src: [u8; N],
        src_port: u16,
        dst: [u8; N],
        dst_port: u16,
        without_ports: u32,
        with_ports: u32,
    }

    const IPV4_VECTORS: [Vector<4>; 5] = [
        Vector {
            src: [66, 9, 149, 187],
            src_port: 2794,
            dst: [161, 142, 100, 80],
            dst_port: 1766,
            without_ports: 0x323e_8fc2,
            with_ports: 0x51cc_c178,
        },
        Vector {
            src: [199, 92, 111, 2],
            src_port: 14230,
            dst: [65, 69, 140, 83],
            dst_port: 4739,
            without_ports: 0xd718_262a,
            with_ports: 0xc626_b0ea,
        },
        Vector {
            src: [24, 19, 198, 95],
            src_port: 12898,
            dst: [12, 22, 207, 184],
            dst_port: 38024,
            without_ports: 0xd2d0_a5de,
            with_ports: 0x5c2b_394a,
        },
        Vector {
            src: [38, 27, 205, 30],
            src_port: 48228,
            dst: [209, 142, 163, 6],
            dst_port: 2217,
            without_ports: 0x8298_9176,
            with_ports: 0xafc7_327f,
        },
        Vector {
            src: [153, 39, 163, 191],
            src_port: 44251,
            dst: [202, 188, 127, 2],
            dst_port: 1303,
            without_ports: 0x5d18_09c5,
            with_ports: 0x10e8_28a2,
        },
    ];

    // Microsoft publishes three IPv6 rows (not five); these are all of them.
    const IPV6_VECTORS: [Vector<16>; 3] = [
        Vector {
            // 3ffe:2501:200:1fff::7
            src: [
                0x3f, 0xfe, 0x25, 0x01, 0x02, 0x00, 0x1f, 0xff, 0, 0, 0, 0, 0, 0, 0, 0x07,
            ],
            src_port: 2794,
            // 3ffe:2501:200:3::1
            dst: [
                0x3f, 0xfe, 0x25, 0x01, 0x02, 0x00, 0x00, 0x03, 0, 0, 0, 0, 0, 0, 0, 0x01,
            ],
            dst_port: 1766,
            without_ports: 0x2cc1_8cd5,
            with_ports: 0x4020_7d3d,
        },
        Vector {
            // 3ffe:501:8::260:97ff:fe40:efab
            src: [
                0x3f, 0xfe, 0x05, 0x01, 0x00, 0x08, 0x00, 0x00, 0x02, 0x60, 0x97, 0xff, 0xfe, 0x40,
                0xef, 0xab,
            ],
            src_port: 14230,
            // ff02::1
            dst: [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01],
            dst_port: 4739,
            without_ports: 0x0f0c_461c,
            with_ports: 0xdde5_1bbf,
        },
        Vector {
            // 3ffe:1900:4545:3:200:f8ff:fe21:67cf
            src: [
                0x3f, 0xfe, 0x19, 0x00, 0x45, 0x45, 0x00, 0x03, 0x02, 0x00, 0xf8, 0xff, 0xfe, 0x21,
                0x67, 0xcf,
            ],
            src_port: 44251,
            // fe80::200:f8ff:fe21:67cf
            dst: [
                0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x02, 0x00, 0xf8, 0xff, 0xfe, 0x21, 0x67, 0xcf,
            ],
            dst_port: 38024,
            without_ports: 0x4b61_e985,
            with_ports: 0x02d1_feef,
        },
    ];

    #[test]
    fn microsoft_ipv4_vectors() {
        let key = ToeplitzKey::default();
        for v in &IPV4_VECTORS {
            assert_eq!(key.hash_v4(v.src, v.dst, None), v.without_ports);
            let ports = Some((v.src_port, v.dst_port));
            assert_eq!(key.hash_v4(v.src, v.dst, ports), v.with_ports);
        }
    }

    #[test]
    fn microsoft_ipv6_vectors() {
        let key = ToeplitzKey::default();
        for v in &IPV6_VECTORS {
            assert_eq!(key.hash_v6(v.src, v.dst, None), v.without_ports);
            let ports = Some((v.src_port, v.dst_port));
            assert_eq!(key.hash_v6(v.src, v.dst, ports), v.with_ports);
        }
    }

    #[test]
    fn hash_v4_input_is_src_dst_src_port_dst_port() {
        let key = ToeplitzKey::default();
        let input = [66, 9, 149, 187, 161, 142, 100, 80, 0x0a, 0xea, 0x06, 0xe6];
        assert_eq!(key.hash(&input), 0x51cc_c178);
    }

    #[test]
    fn empty_input_hashes_to_zero() {
        assert_eq!(ToeplitzKey::default().hash(&[]), 0);
    }

    #[test]
    fn key_and_debug() {
        let key = ToeplitzKey::new([0xab; 40]);
        assert_eq!(key.key(), &[0xab; 40]);
        assert_ne!(key, ToeplitzKey::default());
        let text = std::format!("{:?}", ToeplitzKey::default());
        assert_eq!(
            text,
            "ToeplitzKey(6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa)"
        );
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "longer than 36 bytes")]
    fn overlong_input_asserts_in_debug() {
        ToeplitzKey::default().hash(&[1; 37]);
    }

    #[test]
    #[cfg(not(debug_assertions))]
    fn overlong_input_hashes_first_36_bytes_in_release() {
        let key = ToeplitzKey::default();
        let mut input = [0x5a; 40];
        let expected = key.hash(&input[..36]);
        input[36..].fill(0xff);
        assert_eq!(key.hash(&input), expected);
    }

    /// The definition, read literally: slide a 32-bit window along the key one bit per
    /// input bit, XOR it in when the input bit is set.
    fn naive_toeplitz(key: &[u8; 40], input: &[u8]) -> u32 {
        let key_bit = |n: usize| u32::from(key[n / 8] >> (7 - n % 8) & 1);
        let mut hash = 0;
        for i in 0..input.len() * 8 {
            if input[i / 8] >> (7 - i % 8) & 1 == 1 {
                let window = (0..32).fold(0u32, |w, k| w << 1 | key_bit(i + k));
                hash ^= window;
            }
        }
        hash
    }

    proptest! {
        #![proptest_config(Config {
            cases: 512,
            rng_seed: RngSeed::Fixed(0x7065_6c69_7a74),
            failure_persistence: None,
            ..Config::default()
        })]

        #[test]
        fn matches_naive_definition(
            key in proptest::collection::vec(any::<u8>(), 40),
            input in proptest::collection::vec(any::<u8>(), 0..=MAX_INPUT_LEN),
        ) {
            let key: [u8; 40] = key.try_into().unwrap();
            let input: Vec<u8> = input;
            prop_assert_eq!(ToeplitzKey::new(key).hash(&input), naive_toeplitz(&key, &input));
        }
    }
}
