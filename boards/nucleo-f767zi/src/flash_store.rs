//! The saved configuration in the internal flash: [`fulcrum_firmware::persist`] records in
//! the last two 256 KiB sectors (single-bank layout), written alternately.
//!
//! | slot | sector | address |
//! |---|---|---|
//! | A | 10 | `0x0818_0000` |
//! | B | 11 | `0x081C_0000` |
//!
//! A sector has to be erased before it is written, and an erase takes seconds; a reset or
//! power loss in between would lose the only copy. So a save goes to the slot that does
//! *not* hold the newest good record, and loading picks the newest record (by generation)
//! whose CRC checks out: a torn save falls back to the previous config, never to half of
//! one. The firmware itself stays far below both sectors (it must fit 512 KiB).

use embassy_stm32::flash::{Blocking, Flash, WRITE_SIZE};
use fulcrum_firmware::persist::{ConfigStore, FORMAT, HEADER, MAGIC, StoreError};

use crate::watchdog::FlashWindow;

/// Offsets (from the start of flash) of the two record slots: sectors 10 and 11.
pub const SLOTS: [u32; 2] = [0x0018_0000, 0x001C_0000];
/// Bytes of one slot (one sector).
pub const SLOT_SIZE: u32 = 256 * 1024;

/// Same CRC as `fulcrum_firmware::persist` (CRC-32/ISO-HDLC over generation + payload).
const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// A [`ConfigStore`] on two flash sectors.
pub struct FlashConfigStore<'d> {
    flash: Flash<'d, Blocking>,
    /// The slot holding the newest good record, as far as we know.
    current: Option<usize>,
}

impl<'d> FlashConfigStore<'d> {
    /// The store on `flash`.
    pub fn new(flash: Flash<'d, Blocking>) -> Self {
        FlashConfigStore {
            flash,
            current: None,
        }
    }

    /// Reads and checks the record in `slot` into `buf`: its generation and length.
    fn check(&mut self, slot: usize, buf: &mut [u8]) -> Option<(u32, usize)> {
        let base = SLOTS[slot];
        let header = buf.get_mut(..HEADER)?;
        self.flash.blocking_read(base, header).ok()?;
        if header[0..4] != MAGIC || u16::from_le_bytes([header[4], header[5]]) != FORMAT {
            return None;
        }
        let len = u32::from_le_bytes([header[6], header[7], header[8], header[9]]) as usize;
        let total = HEADER.checked_add(len)?;
        if total > buf.len() || total > SLOT_SIZE as usize {
            defmt::warn!(
                "config slot {}: record of {} bytes does not fit the buffer",
                slot,
                total
            );
            return None;
        }
        self.flash
            .blocking_read(base + HEADER as u32, &mut buf[HEADER..total])
            .ok()?;
        let mut digest = CRC.digest();
        digest.update(&buf[10..14]);
        digest.update(&buf[HEADER..total]);
        if digest.finalize().to_le_bytes() != buf[14..18] {
            defmt::warn!("config slot {}: CRC mismatch (torn or corrupt write)", slot);
            return None;
        }
        let generation = u32::from_le_bytes([buf[10], buf[11], buf[12], buf[13]]);
        Some((generation, total))
    }

    fn verify(&mut self, base: u32, record: &[u8]) -> bool {
        let mut chunk = [0u8; 64];
        for (i, want) in record.chunks(chunk.len()).enumerate() {
            let got = &mut chunk[..want.len()];
            if self
                .flash
                .blocking_read(base + (i * 64) as u32, got)
                .is_err()
                || got != want
            {
                return false;
            }
        }
        true
    }
}

/// Whether generation `a` is newer than `b` (serial-number arithmetic: generations wrap).
fn newer(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl ConfigStore for FlashConfigStore<'_> {
    fn load(&mut self, buf: &mut [u8]) -> Result<Option<usize>, StoreError> {
        let a = self.check(0, buf);
        let b = self.check(1, buf);
        let chosen = match (a, b) {
            (Some((ga, _)), Some((gb, lb))) if newer(gb, ga) => Some((1, lb)),
            (Some((_, la)), _) => Some((0, la)),
            (None, Some((_, lb))) => Some((1, lb)),
            (None, None) => None,
        };
        self.current = chosen.map(|(slot, _)| slot);
        let Some((slot, len)) = chosen else {
            defmt::info!("no saved config in flash");
            return Ok(None);
        };
        // `buf` holds what was read from slot B last; slot A has to be read again.
        if slot == 0 {
            self.flash
                .blocking_read(SLOTS[0], &mut buf[..len])
                .map_err(|_| StoreError::Io)?;
        }
        defmt::info!("saved config: slot {}, {} bytes", slot, len);
        Ok(Some(len))
    }

    fn save(&mut self, record: &[u8]) -> Result<(), StoreError> {
        if record.len() > SLOT_SIZE as usize {
            return Err(StoreError::TooLarge);
        }
        let slot = self.current.map_or(0, |s| 1 - s);
        let base = SLOTS[slot];
        let full = record.len() / WRITE_SIZE * WRITE_SIZE;
        let mut tail = [0xFFu8; WRITE_SIZE];
        tail[..record.len() - full].copy_from_slice(&record[full..]);
        let written = {
            let _window = FlashWindow::open();
            self.flash
                .blocking_erase(base, base + SLOT_SIZE)
                .and_then(|()| self.flash.blocking_write(base, &record[..full]))
                .and_then(|()| {
                    if full < record.len() {
                        self.flash.blocking_write(base + full as u32, &tail)
                    } else {
                        Ok(())
                    }
                })
        };
        if let Err(e) = written {
            defmt::warn!("config slot {}: flash error {}", slot, e);
            return Err(StoreError::Io);
        }
        if !self.verify(base, record) {
            defmt::warn!("config slot {}: read-back differs", slot);
            return Err(StoreError::Io);
        }
        self.current = Some(slot);
        defmt::info!("config saved to slot {} ({} bytes)", slot, record.len());
        Ok(())
    }
}
