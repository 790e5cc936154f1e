//! Example filter: routes a request to the pool named by its `X-Pool` header (for canary
//! and blue/green tests), and requests under `/api/` without one to the `api` pool.
//! A header naming an invalid pool is answered 400; everything else is allowed.

#![no_std]

use fulcrum_filter_sdk::{Request, Verdict, export_filter};

fn on_request(req: &Request<'_>) -> Verdict {
    if let Some(pool) = req.header("x-pool") {
        let verdict = core::str::from_utf8(pool)
            .ok()
            .and_then(|p| Verdict::route(p).ok());
        return match verdict {
            Some(mut v) => {
                // The backend need not see the routing hint.
                let _ = v.remove_header("X-Pool");
                v
            }
            None => Verdict::deny(400).unwrap_or_else(|_| Verdict::allow()),
        };
    }
    if req.path().starts_with("/api/") {
        return Verdict::route("api").unwrap_or_else(|_| Verdict::allow());
    }
    Verdict::allow()
}

export_filter!(on_request);
