//! Writing a filter in Rust: a handler `fn(&Request) -> Verdict` and one
//! [`export_filter!`](crate::export_filter) line.
//!
//! ```ignore
//! #![no_std]
//! use fulcrum_filter_sdk::{Request, Verdict, export_filter};
//!
//! fn on_request(req: &Request<'_>) -> Verdict {
//!     match req.header("user-agent") {
//!         Some(ua) if ua.starts_with(b"BadBot") => Verdict::deny(403).unwrap_or_else(|_| Verdict::allow()),
//!         _ => Verdict::allow(),
//!     }
//! }
//! export_filter!(on_request);
//! ```
//!
//! Build as a `cdylib` for `wasm32-unknown-unknown` with `panic = "abort"` and small
//! memory (see `examples/filters/.cargo/config.toml`: page size 1, 16 KiB of memory, an
//! 8 KiB stack). A panic in the filter traps: the host counts it as an error and applies
//! the service's fail policy. On wasm32, enable the SDK's `panic-handler` feature
//! for a handler that traps (`unreachable`).

use crate::{Request, STATUS_BAD_LENGTH, STATUS_BAD_REQUEST, STATUS_VERDICT_TOO_LARGE, Verdict};

/// Input buffer size [`export_filter!`](crate::export_filter) reserves by default.
pub const DEFAULT_INPUT_CAPACITY: usize = 4096;
/// Output buffer size reserved by default: the longest verdict fits.
pub const DEFAULT_OUTPUT_CAPACITY: usize = crate::MAX_VERDICT_LEN;

/// The body of `fulcrum_on_request`: decodes `input[..len]`, runs `handler`, encodes its
/// verdict into `output`. Returns the verdict's length or a negative `STATUS_*` code.
pub fn handle(
    input: &[u8],
    len: i32,
    output: &mut [u8],
    handler: impl FnOnce(&Request<'_>) -> Verdict,
) -> i32 {
    let Some(input) = usize::try_from(len).ok().and_then(|n| input.get(..n)) else {
        return STATUS_BAD_LENGTH;
    };
    let Ok(request) = Request::parse(input) else {
        return STATUS_BAD_REQUEST;
    };
    match handler(&request).encode(output) {
        Ok(n) => n as i32,
        Err(_) => STATUS_VERDICT_TOO_LARGE,
    }
}

/// Defines the ABI's exports around a handler `fn(&Request<'_>) -> Verdict`, with static
/// input and output buffers (default sizes, or `input = N, output = M`).
#[macro_export]
macro_rules! export_filter {
    ($handler:path) => {
        $crate::export_filter!(
            $handler,
            input = $crate::guest::DEFAULT_INPUT_CAPACITY,
            output = $crate::guest::DEFAULT_OUTPUT_CAPACITY
        );
    };
    ($handler:path, input = $input:expr, output = $output:expr) => {
        const _: () = {
            static mut FULCRUM_INPUT: [u8; $input] = [0; $input];
            static mut FULCRUM_OUTPUT: [u8; $output] = [0; $output];

            #[unsafe(no_mangle)]
            extern "C" fn fulcrum_abi_version() -> i32 {
                $crate::ABI_VERSION as i32
            }

            #[unsafe(no_mangle)]
            extern "C" fn fulcrum_input() -> i32 {
                (&raw const FULCRUM_INPUT) as usize as i32
            }

            #[unsafe(no_mangle)]
            extern "C" fn fulcrum_input_capacity() -> i32 {
                $input as i32
            }

            #[unsafe(no_mangle)]
            extern "C" fn fulcrum_output() -> i32 {
                (&raw const FULCRUM_OUTPUT) as usize as i32
            }

            #[unsafe(no_mangle)]
            extern "C" fn fulcrum_output_capacity() -> i32 {
                $output as i32
            }

            #[unsafe(no_mangle)]
            extern "C" fn fulcrum_on_request(len: i32) -> i32 {
                // SAFETY: a wasm instance runs one call at a time and the host never
                // re-enters it, so these are the only references to the buffers while
                // the call lasts.
                let (input, output) = unsafe {
                    (
                        &*(&raw const FULCRUM_INPUT),
                        &mut *(&raw mut FULCRUM_OUTPUT),
                    )
                };
                $crate::guest::handle(input, len, output, $handler)
            }
        };
    };
}

/// A panic handler for filters: traps, which the host reports as an error.
#[cfg(all(feature = "panic-handler", target_arch = "wasm32"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{FilterRequest, encode};
    use core::net::Ipv4Addr;

    #[test]
    fn handle_runs_the_handler_and_reports_errors() {
        let headers: [(&str, &[u8]); 1] = [("X-Pool", b"blue")];
        let req = FilterRequest {
            client: Ipv4Addr::new(10, 0, 0, 1),
            method: "GET",
            path: "/",
            minor_version: 1,
            headers: &headers,
            body_prefix: b"",
        };
        let mut input = [0u8; 128];
        let n = encode(&req, &mut input).unwrap() as i32;
        let mut out = [0u8; 64];
        let route = |r: &Request<'_>| {
            let pool = core::str::from_utf8(r.header("x-pool").unwrap()).unwrap();
            Verdict::route(pool).unwrap()
        };
        let len = handle(&input, n, &mut out, route);
        assert_eq!(
            Verdict::decode(&out[..len as usize]),
            Verdict::route("blue")
        );
        assert_eq!(handle(&input, -1, &mut out, route), STATUS_BAD_LENGTH);
        assert_eq!(handle(&input, 129, &mut out, route), STATUS_BAD_LENGTH);
        assert_eq!(handle(&input, n - 1, &mut out, route), STATUS_BAD_REQUEST);
        assert_eq!(
            handle(&input, n, &mut out[..3], route),
            STATUS_VERDICT_TOO_LARGE
        );
    }
}
