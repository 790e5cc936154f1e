//! `rtl/mdio_ctrl.v` against two clause 22 PHY models (`sim/tb_mdio.v`) in iverilog: the
//! controller finds both PHYs by scanning, restricts their advertisement to 1000BASE-T
//! full duplex and restarts auto-negotiation with the exact register values, then follows
//! each PHY's link (the latching-low status bit read twice) as it comes and goes. The
//! models report any malformed frame (preamble, start, op code, write turnaround, a read
//! turnaround the controller still drives).

use std::process::Command;

fn run(params: &[(&str, u64)]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let board = fulcrum_board_colorlight::sim::board_dir();
    let vvp = dir.path().join("tb_mdio.vvp");
    let mut cmd = Command::new("iverilog");
    cmd.args(["-g2005", "-s", "tb_mdio", "-o"]).arg(&vvp);
    for (name, value) in params {
        cmd.arg(format!("-Ptb_mdio.{name}={value}"));
    }
    cmd.arg(board.join("sim/tb_mdio.v"))
        .arg(board.join("rtl/mdio_ctrl.v"));
    let out = cmd.output().expect("iverilog (apt-get install iverilog)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("vvp").arg("-n").arg(&vvp).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

/// The controller's output lines: (time ns, phys, addr0, addr1, link bits, ready).
fn states(log: &[String]) -> Vec<(u64, u32, u32, u32, String, bool)> {
    log.iter()
        .filter_map(|l| l.strip_prefix("S "))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
                f[4].to_string(),
                f[5] == "1",
            )
        })
        .collect()
}

#[test]
fn phys_found_set_to_gigabit_only_and_their_links_followed() {
    let log = run(&[("PHY_A", 3), ("PHY_B", 17)]);
    assert!(log.last().is_some_and(|l| l.starts_with("END ")), "{log:?}");
    let errors: Vec<&String> = log.iter().filter(|l| l.starts_with("E ")).collect();
    assert!(errors.is_empty(), "malformed MDIO frames: {errors:?}");

    // Set-up: each PHY's ID read, then its three writes, in this order.
    let setup: Vec<&str> = log
        .iter()
        .filter(|l| l.starts_with("T ") && !l.contains(" R 1 "))
        .map(String::as_str)
        .collect();
    assert_eq!(
        setup,
        [
            "T 3 R 2 001c",
            "T 17 R 2 0362",
            "T 3 W 9 0200",
            "T 3 W 4 0001",
            "T 3 W 0 1340",
            "T 17 W 9 0200",
            "T 17 W 4 0001",
            "T 17 W 0 1340",
        ]
    );

    // Outputs: both found (3, then 17), ready after the writes, PHY 3's link at the first
    // poll, PHY 17's when it comes up (600 us) and goes down (900 us), each within two
    // poll periods (5,000 cycles = 40 us) plus four reads.
    let s = states(&log);
    let last = s.last().unwrap();
    assert_eq!((last.1, last.2, last.3, last.5), (2, 3, 17, true));
    let first_ready = s.iter().find(|x| x.5).unwrap().0;
    let setup_end = s.iter().position(|x| x.5).unwrap();
    assert!(s[..setup_end].iter().all(|x| x.4 == "00"));
    let links: Vec<(u64, &str)> = s[setup_end..]
        .windows(2)
        .filter(|w| w[0].4 != w[1].4)
        .map(|w| (w[1].0, w[1].4.as_str()))
        .collect();
    assert_eq!(
        links.iter().map(|l| l.1).collect::<Vec<_>>(),
        ["01", "11", "01"],
        "{s:?}"
    );
    let bound = 2 * 40_000 + 4 * 64 * 16 * 8;
    assert!(links[0].0 - first_ready <= bound as u64, "{links:?}");
    assert!(
        (600_000..=600_000 + bound as u64).contains(&links[1].0),
        "{links:?}"
    );
    assert!(
        (900_000..=900_000 + bound as u64).contains(&links[2].0),
        "{links:?}"
    );
}

#[test]
fn without_phys_nothing_is_set_up_and_the_line_goes_quiet() {
    let log = run(&[("PRESENT", 0)]);
    let end = log
        .last()
        .and_then(|l| l.strip_prefix("END "))
        .expect("END");
    assert!(
        log.iter()
            .all(|l| !l.starts_with("T ") && !l.starts_with("E "))
    );
    assert!(states(&log).iter().all(|x| x.1 == 0 && !x.5), "{log:?}");
    // 32 scan reads of 64 bits, then nothing more.
    assert_eq!(end.parse::<u32>().unwrap(), 32 * 64);
}
