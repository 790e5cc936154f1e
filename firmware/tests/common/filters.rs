//! The example filters (`examples/filters`), built for wasm32 on first use so tests run
//! against real modules compiled from the SDK.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The bytes of the example filter `name` (`block_ua`, `route_by_header`, `request_id`).
pub fn example(name: &str) -> Vec<u8> {
    let dir = built();
    let path = dir.join(format!("filter_{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn built() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // This file is shared by crates at different depths: look upwards.
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|dir| dir.join("examples/filters"))
            .find(|dir| dir.join("Cargo.toml").is_file())
            .expect("examples/filters above the crate");
        let target = root.join("target");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // From inside the directory: cargo reads `.cargo/config.toml` (target, memory
        // flags) from the working directory, not from the manifest's.
        let status = Command::new(cargo)
            .current_dir(&root)
            .args(["build", "--release", "--locked"])
            .env("CARGO_TARGET_DIR", &target)
            // The outer build's flags are for the host, not for wasm32.
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET")
            .status()
            .expect("cargo runs");
        assert!(
            status.success(),
            "building examples/filters failed (is the wasm32-unknown-unknown target installed?)"
        );
        target.join("wasm32-unknown-unknown/release")
    })
}
