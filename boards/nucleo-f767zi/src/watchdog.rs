//! The independent watchdog (IWDG, ~4 s), petted only while the main loops make progress.
//!
//! The loops that run the appliance bump [`HEARTBEAT`] ([`beat`]); [`watchdog_task`] pets
//! the IWDG once a second only if the heartbeat moved since its last look. So a stuck
//! executor (a blocking loop) and a stuck main task (its loops no longer polled) both end
//! in a reset, while a merely busy one does not.
//!
//! Erasing a 256 KiB flash sector blocks the CPU for ~2 s typical, 4 s worst case
//! (STM32F767 datasheet, ×32 parallelism), longer than the watchdog allows once the LSI's
//! tolerance (17–47 kHz) is counted; [`FlashWindow`] stretches the timeout to its maximum
//! (~32 s nominal) around such an operation and restores it afterwards.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use embassy_stm32::pac;
use embassy_stm32::pac::iwdg::vals::{Key, Pr};
use embassy_stm32::peripherals::IWDG;
use embassy_stm32::wdg::IndependentWatchdog;
use embassy_time::Timer;

/// Watchdog timeout in normal operation.
pub const TIMEOUT_US: u32 = 4_000_000;
/// How often the pet task looks at the heartbeat.
const CHECK_MS: u64 = 1000;

/// Bumped by the main loops; the watchdog is petted only when it moves.
pub static HEARTBEAT: AtomicU32 = AtomicU32::new(0);
static RUNNING: AtomicBool = AtomicBool::new(false);

/// Records progress of the main loops.
pub fn beat() {
    HEARTBEAT.fetch_add(1, Ordering::Relaxed);
}

/// Starts the watchdog and pets it while [`HEARTBEAT`] moves.
#[embassy_executor::task]
pub async fn watchdog_task(mut wdg: IndependentWatchdog<'static, IWDG>) -> ! {
    wdg.unleash();
    RUNNING.store(true, Ordering::Relaxed);
    let mut last = HEARTBEAT.load(Ordering::Relaxed);
    let mut stalled = 0u32;
    loop {
        Timer::after_millis(CHECK_MS).await;
        let now = HEARTBEAT.load(Ordering::Relaxed);
        if now != last {
            wdg.pet();
            last = now;
            stalled = 0;
        } else {
            stalled += 1;
            defmt::warn!(
                "watchdog: no progress from the main loops for {} s; not petting",
                stalled
            );
        }
    }
}

/// Bounded wait for the IWDG's register updates (they cross into the LSI domain; without
/// a running LSI they never finish, so never wait forever).
fn wait_updates() {
    for _ in 0..200_000 {
        let sr = pac::IWDG.sr().read();
        if !sr.pvu() && !sr.rvu() {
            return;
        }
    }
}

/// The watchdog stretched to its longest timeout for a long blocking operation (a flash
/// sector erase); the normal timeout comes back when this is dropped.
pub struct FlashWindow {
    saved: Option<(Pr, u16)>,
}

impl FlashWindow {
    /// Stretches the timeout (if the watchdog runs) and reloads the counter.
    pub fn open() -> Self {
        if !RUNNING.load(Ordering::Relaxed) {
            return FlashWindow { saved: None };
        }
        let iwdg = pac::IWDG;
        wait_updates();
        let saved = (iwdg.pr().read().pr(), iwdg.rlr().read().rl());
        iwdg.kr().write(|w| w.set_key(Key::ENABLE));
        iwdg.pr().write(|w| w.set_pr(Pr::DIVIDE_BY256));
        iwdg.rlr().write(|w| w.set_rl(0x0FFF));
        wait_updates();
        iwdg.kr().write(|w| w.set_key(Key::RESET));
        FlashWindow { saved: Some(saved) }
    }
}

impl Drop for FlashWindow {
    fn drop(&mut self) {
        let Some((pr, rl)) = self.saved else { return };
        let iwdg = pac::IWDG;
        iwdg.kr().write(|w| w.set_key(Key::ENABLE));
        iwdg.pr().write(|w| w.set_pr(pr));
        iwdg.rlr().write(|w| w.set_rl(rl));
        wait_updates();
        iwdg.kr().write(|w| w.set_key(Key::RESET));
    }
}

/// Reloads the running watchdog from the register bus during a long table write: frames
/// moving to the FPGA are progress. A full first write of big rings (65537 entries per
/// service, ~0.9 s each at the bus's speed) blocks the executor for longer than the
/// timeout, so the pet task alone would reset the board in the middle of it.
pub fn bus_progress() {
    if RUNNING.load(Ordering::Relaxed) {
        pac::IWDG.kr().write(|w| w.set_key(Key::RESET));
    }
}
