//! The register bus to the FPGA: SPI1 master (mode 0, MSB first) plus a GPIO chip
//! select, speaking the 7-byte frames of [`fulcrum_model::regmap::spi`]. The control
//! plane writes its tables through this ([`RegisterBus`]); everything above it is the
//! hardware-independent `fulcrum-firmware` crate.
//!
//! Blocking on purpose: one frame is 7 bytes (5.6 µs at 10 MHz), and the appliance writes
//! a commit as a burst from synchronous code.

use embassy_stm32::gpio::Output;
use embassy_stm32::mode::Blocking;
use embassy_stm32::spi::Spi;
use embassy_stm32::spi::mode::Master;
use fulcrum_model::regmap::{RegisterBus, spi};

/// SPI clock of the register bus (the FPGA samples SCK in its fabric clock domain).
pub const SPI_HZ: u32 = 10_000_000;

/// SPI1 + chip select, as a [`RegisterBus`].
pub struct SpiRegisterBus<'d> {
    spi: Spi<'d, Blocking, Master>,
    cs: Output<'d>,
    /// Transactions the SPI peripheral reported as failed (overrun, mode fault).
    pub errors: u32,
    frames: u32,
}

impl<'d> SpiRegisterBus<'d> {
    /// The bus on `spi` (configured for mode 0, ≤ [`SPI_HZ`]) with chip select `cs`
    /// (initially high).
    pub fn new(spi: Spi<'d, Blocking, Master>, cs: Output<'d>) -> Self {
        SpiRegisterBus {
            spi,
            cs,
            errors: 0,
            frames: 0,
        }
    }

    fn transaction(&mut self, frame: &mut [u8; spi::FRAME]) {
        self.cs.set_low();
        let result = self.spi.blocking_transfer_in_place(frame);
        self.cs.set_high();
        // Chip select stays high for ≥ 100 ns between frames so the FPGA, sampling it
        // synchronously, sees every frame boundary (~22 cycles at 216 MHz).
        cortex_m::asm::delay(22);
        self.frames = self.frames.wrapping_add(1);
        if self.frames.is_multiple_of(4096) {
            // ~50 ms of frames: a long commit is progress (see `watchdog::bus_progress`).
            crate::watchdog::bus_progress();
        }
        if result.is_err() {
            self.errors = self.errors.wrapping_add(1);
            defmt::warn!("register bus: SPI transfer failed");
        }
    }
}

impl RegisterBus for SpiRegisterBus<'_> {
    fn write32(&mut self, addr: u16, value: u32) {
        let mut frame = spi::write(addr, value);
        self.transaction(&mut frame);
    }

    fn read32(&mut self, addr: u16) -> u32 {
        let mut frame = spi::read(addr);
        self.transaction(&mut frame);
        spi::read_value(&frame)
    }
}
