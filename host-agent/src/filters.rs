//! WebAssembly filters on an appliance: upload (chunked, with the module's SHA-256 so
//! the appliance can check what it assembled), list, remove. The appliance validates
//! and instantiates the module itself; this side only carries it.

use fulcrum_mgmt::message::{FILTER_CHUNK, FilterInfo, Request, Response};
use fulcrum_model::config::Name;
use sha2::{Digest, Sha256};

use crate::client::{Client, ClientError};

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unexpected(what: &str, got: &Response) -> ClientError {
    ClientError::Protocol(format!("expected {what}, got {got:?}"))
}

/// Uploads `wasm` as `service`'s filter: begin, chunks of [`FILTER_CHUNK`] bytes,
/// commit. Returns what the appliance installed.
pub fn upload(client: &mut Client, service: &Name, wasm: &[u8]) -> Result<FilterInfo, ClientError> {
    let length = u32::try_from(wasm.len())
        .map_err(|_| ClientError::Protocol("module larger than 4 GiB".into()))?;
    let done = |r: Response| match r {
        Response::Done => Ok(()),
        other => Err(unexpected("Done", &other)),
    };
    done(client.request(&Request::FilterBegin {
        service: service.clone(),
        length,
        sha256: sha256(wasm),
    })?)?;
    for (i, chunk) in wasm.chunks(FILTER_CHUNK).enumerate() {
        let data = heapless::Vec::from_slice(chunk)
            .map_err(|_| ClientError::Protocol("chunk too large".into()))?;
        done(client.request(&Request::FilterChunk {
            offset: (i * FILTER_CHUNK) as u32,
            data,
        })?)?;
    }
    match client.request(&Request::FilterCommit)? {
        Response::FilterInstalled(info) => Ok(info),
        other => Err(unexpected("FilterInstalled", &other)),
    }
}

/// The appliance's filters.
pub fn list(client: &mut Client) -> Result<Vec<FilterInfo>, ClientError> {
    match client.request(&Request::FilterList)? {
        Response::Filters(list) => Ok(list.into_iter().collect()),
        other => Err(unexpected("a filter list", &other)),
    }
}

/// Removes `service`'s filter (refused with `NotFound` if it has none).
pub fn remove(client: &mut Client, service: &Name) -> Result<(), ClientError> {
    match client.request(&Request::FilterRemove {
        service: service.clone(),
    })? {
        Response::Done => Ok(()),
        other => Err(unexpected("Done", &other)),
    }
}

/// One filter as JSON (for `fulcrum filter list --json`).
pub fn info_json(info: &FilterInfo) -> serde_json::Value {
    serde_json::json!({
        "service": info.service.as_str(),
        "size": info.size,
        "sha256": hex(&info.sha256),
        "memory_bytes": info.memory_bytes,
        "fuel_per_request": info.fuel_per_request,
        "runs": info.runs,
        "errors": info.errors,
        "max_fuel_used": info.max_fuel_used,
    })
}

/// The filters as a table.
pub fn render(list: &[FilterInfo]) -> String {
    if list.is_empty() {
        return "no filters\n".into();
    }
    let mut out = format!(
        "{:<16} {:>7} {:>8} {:>10} {:>10} {:>8} {:>10}  {}\n",
        "SERVICE", "BYTES", "MEMORY", "FUEL/REQ", "RUNS", "ERRORS", "MAX FUEL", "SHA-256"
    );
    for f in list {
        out.push_str(&format!(
            "{:<16} {:>7} {:>8} {:>10} {:>10} {:>8} {:>10}  {}\n",
            f.service.as_str(),
            f.size,
            f.memory_bytes,
            f.fuel_per_request,
            f.runs,
            f.errors,
            f.max_fuel_used,
            &hex(&f.sha256)[..16],
        ));
    }
    out
}
