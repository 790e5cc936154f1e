//! Example filter: answers 403 to clients whose `User-Agent` contains one of a few
//! patterns (ASCII case-insensitive), and to requests without a `User-Agent`.

#![no_std]

use fulcrum_filter_sdk::{Request, Verdict, export_filter};

/// Substrings of user agents that are refused.
const BLOCKED: [&[u8]; 3] = [b"badbot", b"sqlmap", b"masscan"];

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

fn on_request(req: &Request<'_>) -> Verdict {
    let blocked = match req.header("user-agent") {
        Some(ua) => BLOCKED.iter().any(|p| contains_ignore_case(ua, p)),
        None => true,
    };
    if !blocked {
        return Verdict::allow();
    }
    let Ok(mut verdict) = Verdict::deny(403) else {
        return Verdict::allow();
    };
    let _ = verdict.set_header("X-Fulcrum-Filter", b"block-ua");
    verdict
}

export_filter!(on_request);
