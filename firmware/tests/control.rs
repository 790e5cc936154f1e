//! The firmware's control plane on the host, against the model as its FPGA: health
//! semantics in virtual time, table commits, config apply/reject/persist, management
//! sessions.

use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::rc::Rc;

use fulcrum_firmware::appliance::{Appliance, Buffers, State};
use fulcrum_firmware::health::Probe;
use fulcrum_firmware::persist::{ConfigStore, StoreError};
use fulcrum_firmware::session::{Connection, Scratch};
use fulcrum_mgmt::envelope::{ClientSession, Key};
use fulcrum_mgmt::framing::{FrameReader, encode};
use fulcrum_mgmt::message::{CheckFailure, ErrorCode, EventKind, Request, Response};
use fulcrum_mgmt::{MAX_ENVELOPE, MAX_FRAME};
use fulcrum_model::config::{AdminState, Config};
use fulcrum_model::flow::{FlowEntry, StickyEntry};
use fulcrum_model::pipeline::{Pipeline, Storage};
use fulcrum_model::regmap::RegisterFile;
use fulcrum_model::tables::{BackendState, NO_BACKEND};

/// A pipeline with leaked storage, as the simulated board holds one.
fn pipeline(config: &Config) -> Pipeline<'static> {
    let ft = config.appliance.flow_table;
    let cap = (ft.sets * ft.ways) as usize;
    let ring = 65537 * 16;
    Pipeline::new(Storage {
        flows: Box::leak(vec![FlowEntry::default(); cap].into_boxed_slice()),
        flow_ways: ft.ways as usize,
        sticky: Box::leak(vec![StickyEntry::default(); cap / 4 + 8].into_boxed_slice()),
        sticky_ways: ft.ways as usize,
        ring_active: Box::leak(vec![0u16; ring].into_boxed_slice()),
        ring_shadow: Box::leak(vec![0u16; ring].into_boxed_slice()),
    })
}

/// A config store in memory, shared so a "reboot" can read what was saved.
#[derive(Clone, Default)]
struct MemStore(Rc<RefCell<Option<Vec<u8>>>>);

impl ConfigStore for MemStore {
    fn load(&mut self, buf: &mut [u8]) -> Result<Option<usize>, StoreError> {
        Ok(self.0.borrow().as_ref().map(|r| {
            buf[..r.len()].copy_from_slice(r);
            r.len()
        }))
    }
    fn save(&mut self, record: &[u8]) -> Result<(), StoreError> {
        *self.0.borrow_mut() = Some(record.to_vec());
        Ok(())
    }
}

type Bus = RegisterFile<Pipeline<'static>>;

fn appliance(config: &Config, store: MemStore) -> Appliance<'static, Bus, MemStore> {
    let bufs = Buffers {
        old_ring: Box::leak(vec![0u16; 65537].into_boxed_slice()),
        new_ring: Box::leak(vec![0u16; 65537].into_boxed_slice()),
        record: Box::leak(vec![0u8; 64 * 1024].into_boxed_slice()),
    };
    let state = Box::leak(Box::new(State::new()));
    Appliance::new(RegisterFile::new(pipeline(config)), store, bufs, state, 0)
}

fn config_text(health: &str, backends: usize) -> String {
    let mut s = format!(
        r#"
[appliance]
name = "edge-test"
mac = "02:00:00:00:00:01"
address = "10.0.0.2"
maglev_ring_size = 4099
flow_table = {{ sets = 1024, ways = 4 }}

[[service]]
name = "web"
vip = "10.0.0.100"
protocol = "tcp"
port = 80
mode = "nat"
algorithm = "maglev"
[service.health]
{health}
"#
    );
    for i in 0..backends {
        s.push_str(&format!(
            "[[service.backend]]\nname = \"web-{}\"\naddress = \"10.0.1.{}\"\nport = 8080\nmac = \"02:00:00:00:01:{:02x}\"\n",
            i + 1,
            11 + i,
            11 + i
        ));
    }
    s
}

fn parse(text: &str) -> Config {
    toml::from_str(text).expect("config parses")
}

const CHECK: &str = "kind = \"tcp\"\ninter = 2000\nfastinter = 500\ndowninter = 3000\nrise = 2\nfall = 3\ntimeout = 400\n";

/// Runs the appliance in virtual time from `from` to `to` (ms); `alive(addr, t)` says
/// whether a backend answers a check started at `t`. Probes answer after 2 ms, or fail at
/// their timeout. Returns the probes started as (time, address).
fn run(
    app: &mut Appliance<'static, Bus, MemStore>,
    from: u64,
    to: u64,
    alive: &dyn Fn(Ipv4Addr, u64) -> bool,
) -> Vec<(u64, Ipv4Addr)> {
    let mut started = Vec::new();
    let mut in_flight: Vec<(u64, Probe, bool)> = Vec::new();
    let mut now = from;
    while now <= to {
        in_flight.retain(|(done_at, probe, ok)| {
            if *done_at <= now {
                let outcome = if *ok {
                    Ok(2_000)
                } else {
                    Err(CheckFailure::Timeout)
                };
                app.probe_done(*done_at, probe.ticket, outcome);
                false
            } else {
                true
            }
        });
        while let Some(p) = app.next_probe(now) {
            let ok = alive(p.address, now);
            let done = if ok {
                now + 2
            } else {
                now + u64::from(p.timeout_ms)
            };
            started.push((now, p.address));
            in_flight.push((done, p, ok));
        }
        app.poll(now);
        now += 1;
    }
    started
}

fn ring_members(app: &mut Appliance<'static, Bus, MemStore>) -> Vec<u16> {
    let ring = app.bus().target().ring(0).to_vec();
    let mut m: Vec<u16> = ring.into_iter().filter(|&e| e != NO_BACKEND).collect();
    m.sort();
    m.dedup();
    m
}

#[test]
fn a_dead_backend_leaves_within_fall_times_fastinter_and_returns_after_rise() {
    let config = parse(&config_text(CHECK, 3));
    let mut app = appliance(&config, MemStore::default());
    app.apply(0, &config, false).unwrap();
    let victim = Ipv4Addr::new(10, 0, 1, 12);
    let victim_slot = app.control_plane().backend_slot("web", "web-2").unwrap() as u16;
    // Everyone healthy for 10 s: checks every `inter` (2 s), the ring holds all three.
    let probes = run(&mut app, 0, 10_000, &|_, _| true);
    let victim_checks: Vec<u64> = probes
        .iter()
        .filter(|p| p.1 == victim)
        .map(|p| p.0)
        .collect();
    for w in victim_checks.windows(2).skip(1) {
        assert_eq!(
            w[1] - w[0],
            2000,
            "settled checks run every inter: {victim_checks:?}"
        );
    }
    assert_eq!(ring_members(&mut app).len(), 3);
    let commits_before = app.commits();

    // web-2 dies at t = 10 s.
    let dies = 10_000;
    let probes = run(&mut app, 10_001, 20_000, &|a, t| a != victim || t < dies);
    let first_failed = probes
        .iter()
        .find(|p| p.1 == victim && p.0 >= dies)
        .unwrap()
        .0;
    let down_event = app
        .events()
        .page(0)
        .events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::BackendDown { backend, .. } if backend.as_str() == "web-2" => Some(e.at_ms),
            _ => None,
        })
        .expect("web-2 went down");
    let bound = 3 * 500; // fall × fastinter, timeout (400) ≤ fastinter
    assert!(
        down_event - first_failed <= bound,
        "down {} ms after the first failed check started (bound {bound})",
        down_event - first_failed
    );
    // The failed checks ran at fastinter.
    let fails: Vec<u64> = probes
        .iter()
        .filter(|p| p.1 == victim && p.0 >= dies)
        .map(|p| p.0)
        .collect();
    assert_eq!(fails[1] - fails[0], 500, "{fails:?}");
    assert_eq!(fails[2] - fails[1], 500, "{fails:?}");
    // Once down, checks slow to downinter.
    assert_eq!(fails[4] - fails[3], 3000, "{fails:?}");
    // The data path no longer picks it: not in the ring, state down.
    assert!(!ring_members(&mut app).contains(&victim_slot));
    assert_eq!(
        app.bus()
            .target()
            .backend(victim_slot as usize)
            .unwrap()
            .state,
        BackendState::Down
    );
    // One transition = one commit for the health change.
    assert_eq!(app.commits() - commits_before, 1);

    // It comes back at t = 20 s: up after `rise` (2) successes, fastinter apart.
    let probes = run(&mut app, 20_001, 30_000, &|_, _| true);
    let first_ok = probes.iter().find(|p| p.1 == victim).unwrap().0;
    let up_event = app
        .events()
        .page(0)
        .events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::BackendUp { backend, .. } if backend.as_str() == "web-2" => Some(e.at_ms),
            _ => None,
        })
        .expect("web-2 came back");
    assert_eq!(
        up_event - first_ok,
        500 + 2,
        "second success one fastinter later"
    );
    assert!(ring_members(&mut app).contains(&victim_slot));
}

#[test]
fn a_flapping_backend_does_not_thrash_the_tables() {
    let config = parse(&config_text(CHECK, 3));
    let mut app = appliance(&config, MemStore::default());
    app.apply(0, &config, false).unwrap();
    run(&mut app, 0, 5_000, &|_, _| true);
    let commits = app.commits();
    let flapper = Ipv4Addr::new(10, 0, 1, 13);
    // Answers every other check: never `fall` (3) failures in a row.
    let counter = std::cell::Cell::new(0u32);
    run(&mut app, 5_001, 60_000, &|a, _| {
        if a != flapper {
            return true;
        }
        counter.set(counter.get() + 1);
        counter.get().is_multiple_of(2)
    });
    assert!(
        counter.get() > 20,
        "it was checked often ({})",
        counter.get()
    );
    assert_eq!(
        app.commits(),
        commits,
        "no table commit for a flapping backend"
    );
    let slot = app.control_plane().backend_slot("web", "web-3").unwrap();
    assert_eq!(
        app.bus().target().backend(slot).unwrap().state,
        BackendState::Up
    );
}

#[test]
fn a_backend_that_is_dead_at_start_goes_down_on_its_first_failure() {
    let config = parse(&config_text(CHECK, 2));
    let mut app = appliance(&config, MemStore::default());
    app.apply(0, &config, false).unwrap();
    let checked = app.checker().checked();
    assert!(checked >= 2, "{checked} backends checked");
    assert_eq!(
        app.checker().unconfirmed(),
        checked,
        "before their first checks every backend is unconfirmed"
    );
    let dead = Ipv4Addr::new(10, 0, 1, 11);
    let probes = run(&mut app, 0, 3_000, &|a, _| a != dead);
    assert_eq!(
        app.checker().unconfirmed(),
        0,
        "each first check ended, passed or failed"
    );
    let first = probes.iter().find(|p| p.1 == dead).unwrap().0;
    let slot = app.control_plane().backend_slot("web", "web-1").unwrap();
    assert_eq!(
        app.bus().target().backend(slot).unwrap().state,
        BackendState::Down
    );
    let down = app.checker().status(slot).unwrap().since_ms;
    assert_eq!(down, first + 400, "down when its first check timed out");
}

#[test]
fn slow_start_ramps_the_weight_in_ten_steps() {
    let check = format!("{CHECK}slowstart = 10000\n");
    let config = parse(
        &config_text(&check, 2).replace("name = \"web-1\"\n", "name = \"web-1\"\nweight = 100\n"),
    );
    let mut app = appliance(&config, MemStore::default());
    app.apply(0, &config, false).unwrap();
    let dead = Ipv4Addr::new(10, 0, 1, 11);
    run(&mut app, 0, 5_000, &|a, _| a != dead);
    let slot = app.control_plane().backend_slot("web", "web-1").unwrap();
    run(&mut app, 5_001, 9_000, &|_, _| true);
    let up_at = app.checker().status(slot).unwrap().since_ms;
    assert!(app.checker().status(slot).unwrap().up);
    let mut weights = Vec::new();
    let mut t = 9_001;
    while t < up_at + 12_000 {
        run(&mut app, t, t + 499, &|_, _| true);
        weights.push(app.bus().target().backend(slot).unwrap().weight);
        t += 500;
    }
    weights.dedup();
    assert_eq!(
        weights,
        vec![10, 20, 30, 40, 50, 60, 70, 80, 90, 100][10 - weights.len()..].to_vec()
    );
    assert!(weights.len() >= 8, "{weights:?}");
}

#[test]
fn a_bad_config_is_rejected_whole_and_the_tables_stay() {
    let good = parse(&config_text("kind = \"none\"\n", 3));
    let store = MemStore::default();
    let mut app = appliance(&good, store.clone());
    let report = app.apply(0, &good, false).unwrap();
    assert_eq!(report.generation, 1);
    assert!(report.changed && report.words_written > 0);
    let commits = app.commits();
    let ring_before = app.bus().target().ring(0).to_vec();

    // Same config again: nothing written, same generation.
    let again = app.apply(1, &good, false).unwrap();
    assert!(!again.changed);
    assert_eq!(again.generation, 1);
    assert_eq!(app.commits(), commits);

    // A duplicate backend name and a weight over the limit: both reported, nothing changed.
    let bad_text = config_text("kind = \"none\"\n", 3)
        .replace("name = \"web-3\"", "name = \"web-1\"")
        .replace(
            "port = 8080\nmac = \"02:00:00:00:01:0c\"",
            "port = 8080\nweight = 5000\nmac = \"02:00:00:00:01:0c\"",
        );
    let err = app.apply(2, &parse(&bad_text), false).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidConfig);
    assert!(err.details.len() >= 2, "{err:?}");
    assert!(err.details.iter().any(|d| d.contains("weight")), "{err:?}");
    assert_eq!(app.commits(), commits);
    assert_eq!(app.generation(), 1);
    assert_eq!(app.bus().target().ring(0), &ring_before[..]);

    // A dry run of a real change reports it but changes nothing.
    let bigger = parse(&config_text("kind = \"none\"\n", 4));
    let dry = app.apply(3, &bigger, true).unwrap();
    assert!(dry.changed && dry.dry_run);
    assert_eq!(app.generation(), 1);
    assert_eq!(app.commits(), commits);

    // A real change: generation 2, a delta (not every ring entry) written.
    let applied = app.apply(4, &bigger, false).unwrap();
    assert_eq!(applied.generation, 2);
    assert!(
        applied.ring_entries_written > 0 && applied.ring_entries_written < 4099,
        "{applied:?}"
    );

    // After a "reboot" the saved config (generation 2) is back in the tables.
    let mut rebooted = appliance(&bigger, store.clone());
    assert!(rebooted.boot(0, &mut Config::empty()));
    assert_eq!(rebooted.generation(), 2);
    assert_eq!(rebooted.config(), Some(&bigger));
    assert_eq!(rebooted.bus().target().ring(0), app.bus().target().ring(0));

    // A torn record is ignored: the board boots without a config rather than half of one.
    if let Some(r) = store.0.borrow_mut().as_mut() {
        let n = r.len();
        r[n - 3] ^= 0xFF;
    }
    let mut torn = appliance(&bigger, store);
    assert!(!torn.boot(0, &mut Config::empty()));
    assert_eq!(torn.generation(), 0);
}

#[test]
fn drain_and_disable_follow_into_the_tables_and_the_saved_config() {
    let good = parse(&config_text("kind = \"none\"\n", 3));
    let store = MemStore::default();
    let mut app = appliance(&good, store.clone());
    app.apply(0, &good, false).unwrap();
    app.set_admin(1, "web", "web-2", AdminState::Drain).unwrap();
    let slot = app.control_plane().backend_slot("web", "web-2").unwrap();
    assert_eq!(
        app.bus().target().backend(slot).unwrap().state,
        BackendState::Drain
    );
    assert!(!ring_members(&mut app).contains(&(slot as u16)));
    let err = app
        .set_admin(2, "web", "web-9", AdminState::Disabled)
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    let mut rebooted = appliance(app.config().unwrap(), store);
    rebooted.boot(0, &mut Config::empty());
    let running = rebooted.config().unwrap();
    let b = &running.backends(&running.services[0])[1];
    assert_eq!(b.state, AdminState::Drain);
}

/// A client speaking to a [`Connection`] in memory.
struct Client {
    session: ClientSession,
    reader: FrameReader<MAX_FRAME>,
}

impl Client {
    fn exchange(
        &mut self,
        conn: &mut Connection,
        app: &mut Appliance<'static, Bus, MemStore>,
        envelope: &[u8],
    ) -> Vec<u8> {
        let mut framed = vec![0u8; MAX_FRAME + 1];
        let n = encode(envelope, &mut framed).unwrap();
        let mut scratch = Box::new(Scratch::new());
        let mut input = &framed[..n];
        let mut answer = Vec::new();
        while !input.is_empty() {
            let (used, len) = conn.on_bytes(app, 0, input, 0x5e55_1011, &mut scratch);
            input = &input[used..];
            answer.extend_from_slice(&scratch.out[..len]);
        }
        let (_, outcome) = self.reader.feed(&answer);
        let len = outcome.expect("one answer").expect("answer decodes");
        self.reader.frame()[..len].to_vec()
    }

    fn hello(
        &mut self,
        conn: &mut Connection,
        app: &mut Appliance<'static, Bus, MemStore>,
    ) -> Result<(), String> {
        let mut env = vec![0u8; MAX_ENVELOPE];
        let n = self.session.hello(&mut env).unwrap();
        let answer = self.exchange(conn, app, &env[..n]);
        self.session
            .accept_hello(&answer)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn request(
        &mut self,
        conn: &mut Connection,
        app: &mut Appliance<'static, Bus, MemStore>,
        request: &Request,
    ) -> Result<Response, String> {
        let mut env = vec![0u8; MAX_ENVELOPE];
        let n = self.session.request(&mut env, request).unwrap();
        let answer = self.exchange(conn, app, &env[..n]);
        self.session.accept(&answer).map_err(|e| e.to_string())
    }
}

#[test]
fn management_sessions_authenticate_and_count_refusals() {
    let config = parse(&config_text("kind = \"none\"\n", 3));
    let mut app = appliance(&config, MemStore::default());
    let key = Key::new(b"lab key").unwrap();
    let mut conn = Connection::new(Some(key.clone()), true);
    let mut client = Client {
        session: ClientSession::new(Some(key.clone()), 77),
        reader: FrameReader::new(),
    };
    client.hello(&mut conn, &mut app).unwrap();
    match client.request(
        &mut conn,
        &mut app,
        &Request::Apply {
            config: config.clone(),
            dry_run: false,
        },
    ) {
        Ok(Response::Applied(r)) => assert_eq!(r.generation, 1),
        other => panic!("{other:?}"),
    }
    match client.request(&mut conn, &mut app, &Request::Status { page: 0 }) {
        Ok(Response::Status(s)) => {
            assert_eq!(s.name.as_str(), "edge-test");
            assert_eq!(s.services[0].backends.len(), 3);
        }
        other => panic!("{other:?}"),
    }

    // A client with the wrong key: refused on Hello (the answer does not verify) and on
    // requests (the appliance refuses the tag); nothing is applied.
    let mut conn2 = Connection::new(Some(key.clone()), true);
    let mut intruder = Client {
        session: ClientSession::new(Some(Key::new(b"guess").unwrap()), 5),
        reader: FrameReader::new(),
    };
    let err = intruder.hello(&mut conn2, &mut app).unwrap_err();
    assert!(err.contains("wrong management key"), "{err}");
    let smaller = parse(&config_text("kind = \"none\"\n", 1));
    let err = intruder
        .request(
            &mut conn2,
            &mut app,
            &Request::Apply {
                config: smaller,
                dry_run: false,
            },
        )
        .unwrap_err();
    assert!(err.contains("AuthFailed"), "{err}");
    assert_eq!(app.generation(), 1);

    // No key at all on the network: refused.
    let mut plain = Client {
        session: ClientSession::new(None, 9),
        reader: FrameReader::new(),
    };
    let err = plain
        .request(&mut conn2, &mut app, &Request::GetConfig)
        .unwrap_err();
    assert!(err.contains("AuthRequired"), "{err}");

    // Garbage on the line is answered and counted, never fatal.
    let mut scratch = Box::new(Scratch::new());
    let (_, n) = conn2.on_bytes(&mut app, 0, b"\x01\x02\x03garbage\x00", 3, &mut scratch);
    assert!(n > 0);
    let status = match client.request(&mut conn, &mut app, &Request::Status { page: 0 }) {
        Ok(Response::Status(s)) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(status.management.auth_failures, 2);
    assert_eq!(status.management.malformed, 1);
    let events = match client.request(&mut conn, &mut app, &Request::Events { after: 0 }) {
        Ok(Response::Events(e)) => e,
        other => panic!("{other:?}"),
    };
    assert!(
        events
            .events
            .iter()
            .any(|e| e.kind == EventKind::AuthFailure)
    );

    // The serial console works without a key.
    let mut serial = Connection::new(None, false);
    let mut console = Client {
        session: ClientSession::new(None, 1),
        reader: FrameReader::new(),
    };
    match console.request(&mut serial, &mut app, &Request::GetConfig) {
        Ok(Response::Config(Some(c))) => assert_eq!(c, config),
        other => panic!("{other:?}"),
    }
}

#[test]
fn response_times_reach_least_response_time_services_in_batches() {
    let text = config_text(CHECK, 2).replace(
        "algorithm = \"maglev\"",
        "algorithm = \"least_response_time\"",
    );
    let config = parse(&text);
    let mut app = appliance(&config, MemStore::default());
    app.apply(0, &config, false).unwrap();
    let commits = app.commits();
    let slow = Ipv4Addr::new(10, 0, 1, 12);
    let mut in_flight: Vec<(u64, Probe)> = Vec::new();
    let mut checks = 0;
    for now in 0..20_000u64 {
        in_flight.retain(|(done, p)| {
            if *done <= now {
                let us = if p.address == slow { 5_000 } else { 1_000 };
                app.probe_done(now, p.ticket, Ok(us));
                false
            } else {
                true
            }
        });
        while let Some(p) = app.next_probe(now) {
            checks += 1;
            in_flight.push((now + 3, p));
        }
        app.poll(now);
    }
    let rtt = |app: &mut Appliance<'static, Bus, MemStore>, name: &str| {
        let slot = app.control_plane().backend_slot("web", name).unwrap();
        app.bus().target().backend(slot).unwrap().rtt_us
    };
    assert_eq!(rtt(&mut app, "web-1"), 1_000);
    assert_eq!(rtt(&mut app, "web-2"), 5_000);
    // The first measurements are written (a few batched commits), then nothing: stable
    // response times cost no table writes.
    let used = app.commits() - commits;
    assert!(checks >= 18, "{checks} checks");
    assert!(used <= 4, "{used} commits for {checks} checks");
}

#[test]
fn l7_response_times_feed_least_response_time_like_checks() {
    let text = config_text(CHECK, 2).replace(
        "algorithm = \"maglev\"",
        "algorithm = \"least_response_time\"",
    );
    let config = parse(&text);
    let mut app = appliance(&config, MemStore::default());
    app.apply(0, &config, false).unwrap();
    // Checks settle both backends at 1 ms.
    run(&mut app, 0, 5_000, &|_, _| true);
    let slot = |app: &Appliance<'static, Bus, MemStore>, name: &str| {
        app.control_plane().backend_slot("web", name).unwrap()
    };
    let rtt = |app: &mut Appliance<'static, Bus, MemStore>, s: usize| {
        app.bus().target().backend(s).unwrap().rtt_us
    };
    let (w1, w2) = (slot(&app, "web-1"), slot(&app, "web-2"));
    assert_eq!(rtt(&mut app, w2), 2_000);
    // The proxy measures web-2 at 20 ms per request: the smoothed value climbs (α = 1/4)
    // and reaches the data path at the next batched write; web-1 is untouched.
    for i in 0..12u64 {
        app.observe_response_time(w2, 20_000);
        app.poll(5_000 + i * (fulcrum_firmware::appliance::RTT_BATCH_MS + 1));
    }
    let slow = rtt(&mut app, w2);
    assert!((15_000..=20_000).contains(&slow), "{slow}");
    assert_eq!(rtt(&mut app, w1), 2_000);

    // A service that does not balance by response time gets no writes from it.
    let maglev = parse(&config_text(CHECK, 2));
    let mut app = appliance(&maglev, MemStore::default());
    app.apply(0, &maglev, false).unwrap();
    run(&mut app, 0, 5_000, &|_, _| true);
    let w2 = slot(&app, "web-2");
    let commits = app.commits();
    for i in 0..12u64 {
        app.observe_response_time(w2, 20_000);
        app.poll(5_000 + i * (fulcrum_firmware::appliance::RTT_BATCH_MS + 1));
    }
    assert_eq!(app.commits(), commits);
    assert_eq!(rtt(&mut app, w2), 0);
}

#[test]
fn learned_macs_survive_a_config_change() {
    let text = config_text("kind = \"none\"\n", 2).replace("mac = \"02:00:00:00:01:0b\"\n", "");
    let config = parse(&text);
    let mut app = appliance(&config, MemStore::default());
    app.apply(0, &config, false).unwrap();
    let slot = app.control_plane().backend_slot("web", "web-1").unwrap();
    assert_eq!(
        app.bus().target().backend(slot).unwrap().mac,
        [0; 6],
        "no MAC configured"
    );
    app.learn_neighbor(Ipv4Addr::new(10, 0, 1, 11), [2, 0xaa, 0, 0, 0, 11]);
    app.poll(1);
    assert_eq!(
        app.bus().target().backend(slot).unwrap().mac,
        [2, 0xaa, 0, 0, 0, 11]
    );
    let changed = parse(&text.replacen("port = 8080\n", "port = 8080\nweight = 4\n", 1));
    app.apply(2, &changed, false).unwrap();
    assert_eq!(app.bus().target().backend(slot).unwrap().weight, 4);
    assert_eq!(
        app.bus().target().backend(slot).unwrap().mac,
        [2, 0xaa, 0, 0, 0, 11],
        "still resolved"
    );
}

/// Filter requests through a management session: refused as unsupported without the
/// `filters` feature; with it, a module uploaded in two chunks (borrowed from the frame)
/// is installed, listed and removed, and a wrong digest is refused.
#[test]
fn filter_requests_through_a_session() {
    let config = parse(&config_text("kind = \"none\"\n", 1));
    let mut app = appliance(&config, MemStore::default());
    let mut conn = Connection::new(None, false);
    let mut client = Client {
        session: ClientSession::new(None, 5),
        reader: FrameReader::new(),
    };
    client.hello(&mut conn, &mut app).unwrap();
    let list = client.request(&mut conn, &mut app, &Request::FilterList);
    #[cfg(not(feature = "filters"))]
    {
        let error = list.unwrap_err();
        assert!(
            error.contains("built without WebAssembly filters"),
            "{error}"
        );
    }
    #[cfg(feature = "filters")]
    {
        use fulcrum_mgmt::message::FilterInfo;
        assert!(matches!(list, Ok(Response::Filters(l)) if l.is_empty()));
        let wasm = wat::parse_str(
            r#"(module (memory (export "memory") 1)
                (func (export "fulcrum_abi_version") (result i32) i32.const 1)
                (func (export "fulcrum_input") (result i32) i32.const 0)
                (func (export "fulcrum_input_capacity") (result i32) i32.const 4096)
                (func (export "fulcrum_output") (result i32) i32.const 4096)
                (func (export "fulcrum_output_capacity") (result i32) i32.const 64)
                (func (export "fulcrum_on_request") (param i32) (result i32)
                    i32.const 4096 i32.const 0 i32.store16 i32.const 2))"#,
        )
        .unwrap();
        let digest = fulcrum_firmware::filter::sha256(&wasm);
        let mut upload = |sha256: [u8; 32]| -> Result<FilterInfo, String> {
            let web = "web".try_into().unwrap();
            let length = wasm.len() as u32;
            let begin = Request::FilterBegin {
                service: web,
                length,
                sha256,
            };
            assert!(matches!(
                client.request(&mut conn, &mut app, &begin),
                Ok(Response::Done)
            ));
            let half = wasm.len() / 2;
            for (offset, part) in [(0, &wasm[..half]), (half, &wasm[half..])] {
                let chunk = Request::FilterChunk {
                    offset: offset as u32,
                    data: heapless::Vec::from_slice(part).unwrap(),
                };
                assert!(matches!(
                    client.request(&mut conn, &mut app, &chunk),
                    Ok(Response::Done)
                ));
            }
            match client.request(&mut conn, &mut app, &Request::FilterCommit)? {
                Response::FilterInstalled(info) => Ok(info),
                other => Err(format!("{other:?}")),
            }
        };
        let error = upload([0; 32]).unwrap_err();
        assert!(error.contains("SHA-256"), "{error}");
        let info = upload(digest).unwrap();
        assert_eq!(info.sha256, digest);
        assert!(app.filters().get("web").is_some());
        match client.request(&mut conn, &mut app, &Request::FilterList) {
            Ok(Response::Filters(l)) => assert_eq!(l.len(), 1),
            other => panic!("{other:?}"),
        }
        let remove = Request::FilterRemove {
            service: "web".try_into().unwrap(),
        };
        assert!(matches!(
            client.request(&mut conn, &mut app, &remove),
            Ok(Response::Done)
        ));
        let error = client.request(&mut conn, &mut app, &remove).unwrap_err();
        assert!(error.contains("no filter"), "{error}");
    }
}
