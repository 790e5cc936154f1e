//! `fulcrum flash --fpga` without a board: it finds the bitstream that
//! `boards/colorlight-5a-75b/build.sh` writes, and fails clearly when the bitstream or
//! openFPGALoader is missing.

use std::process::Command;

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn flash_fpga_finds_the_built_bitstream_or_says_how_to_build_it() {
    let dir = tempfile::tempdir().unwrap();
    // No bitstream built: the error names the path and the build command.
    let out = Command::new(env!("CARGO_BIN_EXE_fulcrum"))
        .args(["flash", "--fpga", "--board-rev", "7.0"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("target/colorlight-5a-75b/v7.0/fulcrum_board.bit")
            && text(&out).contains("boards/colorlight-5a-75b/build.sh --rev 7.0"),
        "{}",
        text(&out)
    );
    // A built bitstream (default revision 8.0) is found; without openFPGALoader it stops
    // there, saying so.
    let bit = dir.path().join("target/colorlight-5a-75b/v8.0");
    std::fs::create_dir_all(&bit).unwrap();
    std::fs::write(bit.join("fulcrum_board.bit"), b"not really a bitstream").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fulcrum"))
        .args(["flash", "--fpga"])
        .current_dir(dir.path())
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("openFPGALoader not found"),
        "{}",
        text(&out)
    );
    // An unknown revision is a usage error.
    let out = Command::new(env!("CARGO_BIN_EXE_fulcrum"))
        .args(["flash", "--fpga", "--board-rev", "6.1"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
