//! The heap of the `filters` build: wasmi allocates (compiled code, the instance's
//! linear memory, its value stack), so the image gets a global allocator over a static
//! array (in `.bss`, so `build.sh` counts it as static RAM).
//!
//! Sizing (measured on x86-64 with `firmware/examples/filter_instructions.rs`, see
//! docs/PERFORMANCE.md; not measured on the MCU, where pointers are half the size): an
//! installed example filter keeps 60–70 KB (36 KB of compiled code for a 3.9 KB
//! module, 21.5 KB of instance with its 16 KiB linear memory, the value stack), a
//! minimal WAT filter 22 KB. Replacing a filter holds the old and the new one at once.
//! 80 KiB is what the RAM allows (the stack keeps ~66 KiB, just above the largest frame;
//! see README.md "Filters"): one example filter. Replacing it in place needs room for
//! both, which this heap does not have: the upload is refused with "not enough memory"
//! and the operator removes the old filter first (`fulcrum filter remove`). wasmi cannot
//! fail an allocation gracefully, so the board gives the filters a probe of the free
//! heap and they refuse modules the estimate says will not fit
//! (`Filters::set_free_memory_probe`).

use core::mem::MaybeUninit;

use embedded_alloc::LlffHeap;
use fulcrum_firmware::filter::FilterLimits;

/// Bytes of heap.
pub const HEAP_BYTES: usize = 80 * 1024;

/// What one filter may use on this board.
pub const FILTER_LIMITS: FilterLimits = FilterLimits {
    max_module_bytes: 8 * 1024,
    memory_bytes: 16 * 1024,
    fuel_per_request: 100_000,
    fuel_at_install: 1_000_000,
    stack_bytes: 8 * 1024,
    max_recursion_depth: 128,
};

#[global_allocator]
static HEAP: LlffHeap = LlffHeap::empty();

/// Free heap bytes (for `Filters::set_free_memory_probe`).
pub fn free() -> usize {
    HEAP.free()
}

/// Hands the heap its memory; call once, first thing at boot.
#[allow(unsafe_code)]
pub fn init() {
    static mut MEMORY: [MaybeUninit<u8>; HEAP_BYTES] = [MaybeUninit::uninit(); HEAP_BYTES];
    // SAFETY: called once, before anything allocates; MEMORY is used by nothing else.
    unsafe { HEAP.init(&raw mut MEMORY as usize, HEAP_BYTES) }
}
