//! Keeping the configuration across a reboot: a self-checking record in a flash sector on
//! the board, in a file on the simulated board.
//!
//! ```text
//! 0        4         6        10            14        18
//! | "FCFG" | ver u16 | len u32 | generation | crc32    | postcard Config (len bytes) |
//! ```
//! Little-endian integers; the CRC-32 (ISO-HDLC) covers the generation and payload. A
//! record that does not check out (erased flash, torn write, older format) is ignored and
//! the firmware boots without a config, never with half of one.

use fulcrum_model::config::Config;

/// Record magic.
pub const MAGIC: [u8; 4] = *b"FCFG";
/// Record format version.
pub const FORMAT: u16 = 1;
/// Header bytes.
pub const HEADER: usize = 18;

const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Where the record lives.
pub trait ConfigStore {
    /// Reads the stored record into `buf`; returns its length, or `None` if nothing is stored.
    fn load(&mut self, buf: &mut [u8]) -> Result<Option<usize>, StoreError>;
    /// Replaces the stored record.
    fn save(&mut self, record: &[u8]) -> Result<(), StoreError>;
}

/// Why the store failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StoreError {
    /// The medium failed (flash error, I/O error).
    Io,
    /// The record does not fit the medium.
    TooLarge,
}

/// Why a stored record was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RecordError {
    /// No magic: erased or never written.
    Empty,
    /// Another format version.
    Format(u16),
    /// Length beyond the buffer.
    Truncated,
    /// CRC mismatch: a torn or corrupted write.
    Corrupt,
    /// The payload did not decode as a config.
    Decode,
}

/// Writes the record of `config` at `generation` into `buf`; returns its length.
pub fn encode(config: &Config, generation: u32, buf: &mut [u8]) -> Result<usize, StoreError> {
    if buf.len() < HEADER {
        return Err(StoreError::TooLarge);
    }
    let len = postcard::to_slice(config, &mut buf[HEADER..])
        .map_err(|_| StoreError::TooLarge)?
        .len();
    buf[0..4].copy_from_slice(&MAGIC);
    buf[4..6].copy_from_slice(&FORMAT.to_le_bytes());
    buf[6..10].copy_from_slice(&(len as u32).to_le_bytes());
    buf[10..14].copy_from_slice(&generation.to_le_bytes());
    let mut digest = CRC.digest();
    digest.update(&buf[10..14]);
    digest.update(&buf[HEADER..HEADER + len]);
    buf[14..18].copy_from_slice(&digest.finalize().to_le_bytes());
    Ok(HEADER + len)
}

/// Reads a record into `config` (a service at a time: no whole config on the stack);
/// returns its generation. On error `config` may be partly written.
pub fn decode_into(record: &[u8], config: &mut Config) -> Result<u32, RecordError> {
    let (payload, generation) = check(record)?;
    fulcrum_mgmt::command::decode_config_into(payload, config).map_err(|_| RecordError::Decode)?;
    Ok(generation)
}

/// Checks a record's header and CRC; its payload and generation.
pub fn check(record: &[u8]) -> Result<(&[u8], u32), RecordError> {
    if record.len() < HEADER || record[0..4] != MAGIC {
        return Err(RecordError::Empty);
    }
    let format = u16::from_le_bytes([record[4], record[5]]);
    if format != FORMAT {
        return Err(RecordError::Format(format));
    }
    let len = u32::from_le_bytes([record[6], record[7], record[8], record[9]]) as usize;
    let payload = record
        .get(HEADER..HEADER.saturating_add(len))
        .ok_or(RecordError::Truncated)?;
    let mut digest = CRC.digest();
    digest.update(&record[10..14]);
    digest.update(payload);
    if digest.finalize().to_le_bytes() != record[14..18] {
        return Err(RecordError::Corrupt);
    }
    let generation = u32::from_le_bytes([record[10], record[11], record[12], record[13]]);
    Ok((payload, generation))
}
