//! VRRP elections in virtual time: two and three routers on a simulated Ethernet segment
//! with loss, partitions and crashes. Every router sees every frame the others send
//! (a multicast segment); time only moves when something is due, so a minute of 10 ms
//! adverts runs in milliseconds and every run is the same.

use std::net::Ipv4Addr;

use fulcrum_firmware::vrrp::{
    ARP_FRAME_LEN, Cause, MAX_ADVERT_FRAME, Role, RoleChange, Router, RouterConfig,
};

/// xorshift64*: a seeded generator, enough for loss decisions.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }
}

struct Node {
    router: Router,
    alive: bool,
    /// Partition group: frames only reach nodes of the same group.
    group: u8,
    changes: Vec<RoleChange>,
    garps: usize,
}

struct Segment {
    nodes: Vec<Node>,
    /// (deliver at, from, IPv4 packet)
    in_flight: Vec<(u64, usize, Vec<u8>)>,
    now: u64,
    loss: f64,
    delay_ms: u64,
    rng: Rng,
}

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);

fn config(index: u8, priority: u8, preempt: bool, interval_cs: u16) -> RouterConfig {
    RouterConfig {
        vrid: 7,
        priority,
        preempt,
        advert_interval_cs: interval_cs,
        primary: Ipv4Addr::new(10, 0, 0, 10 + index),
        addresses: [VIP, Ipv4Addr::new(10, 0, 0, 101)].into_iter().collect(),
        hold_preempt_until_synced: false,
    }
}

impl Segment {
    fn new(configs: Vec<RouterConfig>, seed: u64) -> Segment {
        Segment {
            nodes: configs
                .into_iter()
                .map(|c| Node {
                    router: Router::new(c),
                    alive: false,
                    group: 0,
                    changes: Vec::new(),
                    garps: 0,
                })
                .collect(),
            in_flight: Vec::new(),
            now: 0,
            loss: 0.0,
            delay_ms: 1,
            rng: Rng(seed | 1),
        }
    }

    fn start(&mut self, i: usize) {
        self.nodes[i].alive = true;
        self.nodes[i].router.startup(self.now);
        self.flush(i);
    }

    /// A crash: no release advert, nothing more from this node.
    fn crash(&mut self, i: usize) {
        self.nodes[i].alive = false;
        self.nodes[i].router = Router::new(self.nodes[i].router.config().clone());
    }

    /// A clean stop: the release advert goes out.
    fn shutdown(&mut self, i: usize) {
        self.nodes[i].router.shutdown(self.now);
        self.flush(i);
        self.nodes[i].alive = false;
    }

    fn flush(&mut self, i: usize) {
        let mut buf = [0u8; MAX_ADVERT_FRAME];
        while let Some(len) = self.nodes[i].router.poll_transmit(&mut buf) {
            let frame = &buf[..len];
            if len == ARP_FRAME_LEN && frame[12..14] == [0x08, 0x06] {
                self.nodes[i].garps += 1;
                continue;
            }
            assert_eq!(frame[12..14], [0x08, 0x00], "adverts are IPv4");
            let at = self.now + self.delay_ms;
            self.in_flight.push((at, i, frame[14..].to_vec()));
        }
        while let Some(change) = self.nodes[i].router.poll_event() {
            self.nodes[i].changes.push(change);
        }
    }

    /// Runs until `until` (inclusive).
    fn run_until(&mut self, until: u64) {
        loop {
            let next_timer = self
                .nodes
                .iter()
                .filter(|n| n.alive)
                .filter_map(|n| n.router.poll_timeout())
                .min();
            let next_frame = self.in_flight.iter().map(|f| f.0).min();
            let Some(next) = [next_timer, next_frame].into_iter().flatten().min() else {
                self.now = until;
                return;
            };
            if next > until {
                self.now = until;
                return;
            }
            self.now = self.now.max(next);
            let now = self.now;
            let due: Vec<_> = {
                let (due, rest) = std::mem::take(&mut self.in_flight)
                    .into_iter()
                    .partition(|f| f.0 <= now);
                self.in_flight = rest;
                due
            };
            for (_, from, packet) in due {
                for to in 0..self.nodes.len() {
                    if to == from
                        || !self.nodes[to].alive
                        || self.nodes[to].group != self.nodes[from].group
                    {
                        continue;
                    }
                    if self.loss > 0.0 && self.rng.chance(self.loss) {
                        continue;
                    }
                    let _ = self.nodes[to].router.handle_ipv4(now, &packet);
                    self.flush(to);
                }
            }
            for i in 0..self.nodes.len() {
                if self.nodes[i].alive {
                    self.nodes[i].router.handle_timeout(now);
                    self.flush(i);
                }
            }
        }
    }

    fn roles(&self) -> Vec<Role> {
        self.nodes.iter().map(|n| n.router.role()).collect()
    }

    fn masters(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive && self.nodes[i].router.role() == Role::Master)
            .collect()
    }

    /// When node `i` last became master.
    fn became_master_at(&self, i: usize) -> Option<u64> {
        self.nodes[i]
            .changes
            .iter()
            .rev()
            .find(|c| c.to == Role::Master)
            .map(|c| c.at)
    }
}

#[test]
fn higher_priority_wins_and_a_crash_is_taken_over_within_master_down_interval() {
    let mut seg = Segment::new(
        vec![config(0, 200, true, 100), config(1, 100, true, 100)],
        1,
    );
    seg.start(0);
    seg.start(1);
    seg.run_until(10_000);
    assert_eq!(seg.masters(), vec![0]);
    assert_eq!(
        seg.nodes[1].router.master(),
        Some(Ipv4Addr::new(10, 0, 0, 10))
    );
    // Node 1 became master never; node 0 once, with one GARP per address.
    assert_eq!(seg.became_master_at(1), None);
    assert_eq!(seg.nodes[0].garps, 2);
    // Crash the master just after an advert: the backup needs Master_Down_Interval
    // (3 × 1 s + (256 − 100) / 256 s = 3609 ms) after the last advert it heard.
    seg.crash(0);
    let crash_at = seg.now;
    seg.run_until(20_000);
    assert_eq!(seg.masters(), vec![1]);
    let last = seg.nodes[1].router.last_advert_at().unwrap();
    let took = seg.became_master_at(1).unwrap();
    assert_eq!(took - last, 3609);
    assert!(took - crash_at <= 3609);
    assert_eq!(seg.nodes[1].garps, 2);
}

#[test]
fn ten_ms_adverts_take_over_in_under_50_ms() {
    // Crash the master at many phases of its advert cycle; the worst takeover counts.
    let mut worst = 0;
    for phase in 0..10 {
        let mut seg = Segment::new(vec![config(0, 200, true, 1), config(1, 100, true, 1)], 7);
        seg.start(0);
        seg.start(1);
        seg.run_until(1000 + phase);
        assert_eq!(seg.masters(), vec![0]);
        seg.crash(0);
        let crash_at = seg.now;
        seg.run_until(2000);
        assert_eq!(seg.masters(), vec![1]);
        let takeover = seg.became_master_at(1).unwrap() - crash_at;
        // 3 × 10 ms + (256 − 100) × 10 / 256 ms = 36 ms after the last advert heard.
        assert_eq!(seg.nodes[1].router.master_down_interval_ms(), 36);
        worst = worst.max(takeover);
    }
    println!("10 ms adverts: worst takeover {worst} ms in virtual time");
    assert!(worst < 50, "takeover took {worst} ms");
}

#[test]
fn priority_zero_release_is_taken_over_after_skew_time() {
    let mut seg = Segment::new(
        vec![config(0, 200, true, 100), config(1, 100, true, 100)],
        3,
    );
    seg.start(0);
    seg.start(1);
    seg.run_until(5_000);
    seg.shutdown(0);
    let at = seg.now;
    seg.run_until(6_000);
    assert_eq!(seg.masters(), vec![1]);
    // Skew_Time = (256 − 100) × 1000 / 256 = 609 ms, plus the 1 ms link delay.
    assert_eq!(seg.became_master_at(1).unwrap() - at, 610);
    let change = seg.nodes[0].changes.last().unwrap();
    assert_eq!((change.to, change.cause), (Role::Initialize, Cause::Admin));
}

#[test]
fn preemption_on_and_off() {
    for preempt in [true, false] {
        let mut seg = Segment::new(
            vec![config(0, 200, preempt, 10), config(1, 100, preempt, 10)],
            11,
        );
        seg.start(1);
        seg.run_until(2_000);
        assert_eq!(seg.masters(), vec![1]);
        // The higher-priority node comes (back): with preemption it takes over after its
        // Master_Down_Interval, ignoring the lower master; without, it stays backup.
        seg.start(0);
        let joined = seg.now;
        seg.run_until(10_000);
        if preempt {
            assert_eq!(seg.masters(), vec![0]);
            // 3 × 100 + (256 − 200) × 100 / 256 = 321 ms.
            assert_eq!(seg.became_master_at(0).unwrap() - joined, 321);
            let last = seg.nodes[1].changes.last().unwrap();
            assert_eq!((last.to, last.cause), (Role::Backup, Cause::BetterMaster));
        } else {
            assert_eq!(seg.masters(), vec![1]);
            assert_eq!(seg.became_master_at(0), None);
        }
    }
}

#[test]
fn a_recovered_node_holds_off_preemption_until_synchronised() {
    let mut c0 = config(0, 200, true, 10);
    c0.hold_preempt_until_synced = true;
    let mut seg = Segment::new(vec![c0, config(1, 100, true, 10)], 5);
    seg.start(1);
    seg.run_until(1_000);
    seg.start(0);
    seg.run_until(5_000);
    // Not synchronised: it follows the lower master.
    assert_eq!(seg.masters(), vec![1]);
    assert_eq!(seg.roles()[0], Role::Backup);
    seg.nodes[0].router.set_synced(5_000, true);
    seg.run_until(6_000);
    assert_eq!(seg.masters(), vec![0]);
    let took = seg.became_master_at(0).unwrap();
    assert!(
        (5_000..=5_000 + 321 + 100).contains(&took),
        "took over at {took}"
    );
    // A held-off node still takes over when nobody else is master.
    let mut c0 = config(0, 200, true, 10);
    c0.hold_preempt_until_synced = true;
    let mut seg = Segment::new(vec![c0, config(1, 100, true, 10)], 5);
    seg.start(0);
    seg.run_until(1_000);
    assert_eq!(seg.masters(), vec![0]);
}

#[test]
fn split_brain_heals_deterministically() {
    for (p0, p1, winner) in [(150, 100, 0), (100, 150, 1), (100, 100, 1)] {
        let mut seg = Segment::new(vec![config(0, p0, false, 10), config(1, p1, false, 10)], 9);
        seg.start(0);
        seg.start(1);
        seg.run_until(1_000);
        seg.nodes[1].group = 1;
        seg.run_until(3_000);
        assert_eq!(seg.masters(), vec![0, 1], "partitioned: both masters");
        seg.nodes[1].group = 0;
        let healed = seg.now;
        seg.run_until(4_000);
        // Equal priorities: 10.0.0.11 > 10.0.0.10 wins. Within one advert interval
        // plus the link delay, preemption off or not.
        assert_eq!(seg.masters(), vec![winner], "priorities {p0}/{p1}");
        let loser = 1 - winner;
        let stepped = seg.nodes[loser].changes.last().unwrap();
        assert_eq!(
            (stepped.to, stepped.cause),
            (Role::Backup, Cause::BetterMaster)
        );
        assert!(stepped.at - healed <= 101);
    }
}

#[test]
fn three_routers_take_over_in_priority_order() {
    let mut seg = Segment::new(
        vec![
            config(0, 150, true, 1),
            config(1, 100, true, 1),
            config(2, 50, true, 1),
        ],
        13,
    );
    for i in 0..3 {
        seg.start(i);
    }
    seg.run_until(1_000);
    assert_eq!(seg.masters(), vec![0]);
    seg.crash(0);
    let crash = seg.now;
    seg.run_until(2_000);
    assert_eq!(seg.masters(), vec![1], "the next priority takes over");
    assert_eq!(seg.became_master_at(2), None, "the lowest never did");
    assert!(seg.became_master_at(1).unwrap() - crash < 50);
    seg.crash(1);
    seg.run_until(3_000);
    assert_eq!(seg.masters(), vec![2]);
    // The first node comes back and preempts everyone.
    seg.start(0);
    seg.run_until(4_000);
    assert_eq!(seg.masters(), vec![0]);
    assert_eq!(seg.roles()[2], Role::Backup);
}

#[test]
fn lossy_link_flaps_are_rare_and_resolve_within_an_interval() {
    // 10 % loss on every delivery, 10 ms adverts, a minute: a backup takes over only when
    // three adverts in a row are lost (p ≈ 1/1000 per interval), and the real master's next
    // advert makes it step down.
    let mut seg = Segment::new(vec![config(0, 200, true, 1), config(1, 100, true, 1)], 42);
    seg.loss = 0.10;
    seg.start(0);
    seg.start(1);
    seg.run_until(60_000);
    assert_eq!(seg.masters(), vec![0]);
    let flaps: Vec<_> = seg.nodes[1]
        .changes
        .iter()
        .filter(|c| c.to == Role::Master)
        .collect();
    println!(
        "10% loss, 60 s of 10 ms adverts: {} spurious takeovers",
        flaps.len()
    );
    assert!(
        !flaps.is_empty() && flaps.len() < 30,
        "{} flaps",
        flaps.len()
    );
    for f in flaps {
        let back = seg.nodes[1]
            .changes
            .iter()
            .find(|c| c.at >= f.at && c.to == Role::Backup)
            .expect("stepped down again");
        // Resolved once an advert of node 0 gets through (each lost with p = 0.1).
        assert!(
            back.at - f.at <= 60,
            "dual master for {} ms",
            back.at - f.at
        );
    }
    // Without loss, no flap at all.
    let mut seg = Segment::new(vec![config(0, 200, true, 1), config(1, 100, true, 1)], 42);
    seg.start(0);
    seg.start(1);
    seg.run_until(60_000);
    assert_eq!(seg.nodes[1].router.stats().became_master, 0);
}

#[test]
fn operator_promote_and_demote() {
    let mut seg = Segment::new(vec![config(0, 200, true, 10), config(1, 100, true, 10)], 17);
    seg.start(0);
    seg.start(1);
    seg.run_until(1_000);
    seg.nodes[1].router.promote(seg.now);
    seg.flush(1);
    seg.run_until(2_000);
    assert_eq!(seg.masters(), vec![1]);
    assert_eq!(seg.nodes[1].router.priority(), 254);
    seg.nodes[1].router.clear_admin(seg.now);
    seg.flush(1);
    seg.run_until(3_000);
    assert_eq!(seg.masters(), vec![0], "node 0 preempts again");
    seg.nodes[0].router.demote(seg.now);
    seg.flush(0);
    let at = seg.now;
    seg.run_until(4_000);
    assert_eq!(seg.masters(), vec![1]);
    // The release advert lets node 1 take over after its skew time (609 × 100/1000 ms).
    assert!(seg.became_master_at(1).unwrap() - at <= 62);
}

#[test]
fn router_settings_come_from_the_config_file() {
    let text = r#"
[appliance]
name = "edge-1"
mac = "02:00:00:00:00:01"
address = "10.0.0.2"

[appliance.ha]
vrid = 51
priority = 150
preempt = false
advert_interval = "10ms"
peers = ["10.0.0.3"]

[[service]]
name = "web"
vip = "10.0.0.100"
protocol = "tcp"
port = 80
mode = "nat"
algorithm = "round_robin"
"#;
    let config: fulcrum_model::config::Config = toml::from_str(text).unwrap();
    config.validate().unwrap();
    let c = RouterConfig::from_config(&config).unwrap();
    assert_eq!(
        (c.vrid, c.priority, c.preempt, c.advert_interval_cs),
        (51, 150, false, 1)
    );
    assert_eq!(c.primary, Ipv4Addr::new(10, 0, 0, 2));
    assert_eq!(c.addresses.as_slice(), &[Ipv4Addr::new(10, 0, 0, 100)]);
    assert!(c.hold_preempt_until_synced);
    let mut plain = config.clone();
    plain.appliance.ha = None;
    assert_eq!(RouterConfig::from_config(&plain), None);
}
