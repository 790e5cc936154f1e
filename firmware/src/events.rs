//! The appliance's event log: a ring of the last [`CAPACITY`] events with sequence
//! numbers, read by `fulcrum logs` / `fulcrum watch` through the management protocol.

use fulcrum_mgmt::message::{EVENTS_PER_PAGE, Event, EventKind, EventPage};

/// Events kept.
pub const CAPACITY: usize = 128;

/// A ring of events.
pub struct EventLog {
    ring: heapless::Deque<Event, CAPACITY>,
    newest: u32,
}

impl Default for EventLog {
    fn default() -> Self {
        Self::new()
    }
}

impl EventLog {
    /// Empty.
    pub const fn new() -> Self {
        EventLog {
            ring: heapless::Deque::new(),
            newest: 0,
        }
    }

    /// Appends an event at `now`; the oldest is dropped when full.
    pub fn push(&mut self, now: u64, kind: EventKind) {
        self.newest = self.newest.wrapping_add(1);
        if self.ring.is_full() {
            self.ring.pop_front();
        }
        let _ = self.ring.push_back(Event {
            seq: self.newest,
            at_ms: now,
            kind,
        });
    }

    /// The newest sequence number.
    pub fn newest(&self) -> u32 {
        self.newest
    }

    /// Events after `after`, oldest first, at most a page.
    pub fn page(&self, after: u32) -> EventPage {
        let mut page = EventPage {
            events: heapless::Vec::new(),
            lost: 0,
            newest: self.newest,
        };
        let oldest = self.ring.front().map_or(self.newest + 1, |e| e.seq);
        if after + 1 < oldest && after < self.newest {
            page.lost = oldest - after - 1;
        }
        for e in self
            .ring
            .iter()
            .filter(|e| e.seq > after)
            .take(EVENTS_PER_PAGE)
        {
            let _ = page.events.push(e.clone());
        }
        page
    }
}
