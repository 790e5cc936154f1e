//! Stack high-water mark. cortex-m-rt's `paint-stack` fills the stack region (from the end
//! of the statics, `_stack_end`, up to `_stack_start`) with `0xCCCC_CCCC` at reset; the
//! lowest word no longer painted is as deep as the stack has ever gone. Logged now and
//! then so a run on the board tells how much of the reserve is really used.

#![allow(unsafe_code)]

use cortex_m_rt::STACK_PAINT_VALUE;

unsafe extern "C" {
    static _stack_start: u32;
    static _stack_end: u32;
}

/// (bytes of stack used at most so far, bytes available to the stack).
pub fn usage() -> (usize, usize) {
    let top = (&raw const _stack_start) as usize;
    let bottom = (&raw const _stack_end) as usize;
    let mut addr = bottom;
    while addr < top {
        // SAFETY: between `_stack_end` and `_stack_start` is RAM the stack may use; reading
        // words of it races with nothing that matters (only the painted words are compared,
        // and a stale read only moves the mark by a word).
        let word = unsafe { core::ptr::read_volatile(addr as *const u32) };
        if word != STACK_PAINT_VALUE {
            break;
        }
        addr += 4;
    }
    (top - addr, top - bottom)
}
