//! Delta table writes (`ControlPlane::write_delta`) leave the data path exactly as a full
//! rewrite (`write_all`) would, while writing only what changed.

mod common;

use common::{Owned, config, one_service};
use fulcrum_model::compile::ControlPlane;
use fulcrum_model::config::AdminState;
use fulcrum_model::pipeline::Pipeline;
use fulcrum_model::tables::{BACKEND_SLOTS, SERVICE_SLOTS};

fn same_tables(a: &Pipeline<'_>, b: &Pipeline<'_>, step: &str) {
    assert_eq!(a.settings(), b.settings(), "{step}: settings");
    for s in 0..SERVICE_SLOTS {
        assert_eq!(a.service(s), b.service(s), "{step}: service {s}");
        assert_eq!(a.members(s), b.members(s), "{step}: members {s}");
        assert_eq!(a.ring(s), b.ring(s), "{step}: ring {s}");
    }
    for i in 0..BACKEND_SLOTS {
        assert_eq!(a.backend(i), b.backend(i), "{step}: backend {i}");
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn two_services(n_web: usize, algorithm: &str, weight_of_first: u16, ring: u32) -> String {
    let mut text = one_service("nat", algorithm, "", n_web).replace(
        "maglev_ring_size = 4099",
        &format!("maglev_ring_size = {ring}"),
    );
    text = text.replacen(
        "name = \"web-1\"\n",
        &format!("name = \"web-1\"\nweight = {weight_of_first}\n"),
        1,
    );
    text.push_str(
        "[[service]]\nname = \"api\"\nvip = \"10.0.0.101\"\nprotocol = \"tcp\"\nport = 443\nmode = \"nat\"\nalgorithm = \"maglev\"\n[service.health]\nkind = \"none\"\n",
    );
    for i in 0..5 {
        text.push_str(&format!(
            "[[service.backend]]\nname = \"api-{i}\"\naddress = \"10.0.2.{}\"\nport = 8443\nmac = \"02:00:00:00:02:{:02x}\"\n",
            10 + i,
            10 + i
        ));
    }
    text
}

#[test]
fn delta_writes_equal_full_writes_over_random_changes() {
    let base = config(&two_services(8, "maglev", 1, 4099));
    let mut sa = Owned::for_config(&base);
    let mut sb = Owned::for_config(&base);
    let mut a = sa.pipeline();
    let mut b = sb.pipeline();
    let mut cp = ControlPlane::new();
    cp.apply(&base).unwrap();
    let ring = 65537;
    let (mut old, mut new, mut full) = (vec![0u16; ring], vec![0u16; ring], vec![0u16; ring]);
    cp.write_all(&mut a, &mut full).unwrap();
    cp.write_all(&mut b, &mut full).unwrap();
    let mut previous = cp.clone();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut single_health_changes = Vec::new();

    for step in 0..300 {
        let slots: Vec<usize> = (0..BACKEND_SLOTS)
            .filter(|&i| cp.backend_name(i).is_some())
            .collect();
        let slot = slots[rng.below(slots.len() as u64) as usize];
        let op = rng.below(7);
        match op {
            0 => cp.set_health(slot, rng.below(2) == 0),
            1 => cp.set_admin(
                slot,
                [AdminState::Enabled, AdminState::Drain, AdminState::Disabled]
                    [rng.below(3) as usize],
            ),
            2 => cp.set_effective_weight(slot, rng.below(5) as u16),
            3 => cp.set_rtt(slot, rng.below(100_000) as u32),
            4 => cp.set_mac(slot, [2, 0, 0, 0, 9, rng.below(256) as u8]),
            5 => {
                let algorithm = ["maglev", "round_robin", "ip_hash", "least_connections"]
                    [rng.below(4) as usize];
                let ring = [4099, 4093, 1021][rng.below(3) as usize];
                let text = two_services(
                    3 + rng.below(8) as usize,
                    algorithm,
                    1 + rng.below(4) as u16,
                    ring,
                );
                cp.apply(&config(&text)).unwrap();
            }
            _ => {}
        }
        let stats = cp
            .write_delta(&previous, &mut a, &mut old, &mut new)
            .unwrap();
        cp.write_all(&mut b, &mut full).unwrap();
        same_tables(&a, &b, &format!("step {step} op {op}"));
        if op == 0 && stats.entries == 1 && a.settings().ring_size == 4099 {
            single_health_changes.push(stats);
        }
        if op == 6 {
            assert!(stats.is_empty(), "no change writes nothing: {stats:?}");
        }
        previous.copy_from(&cp);
    }
    // One backend's health flip rewrites one backend entry and roughly its share of one ring
    // (a Maglev ring of 4099 over up to 10 backends), never all rings.
    assert!(!single_health_changes.is_empty());
    for s in &single_health_changes {
        assert!(s.rings_rebuilt <= 1, "{s:?}");
        assert!(s.ring_entries < 4099, "{s:?}");
    }
}
