//! The spool's bookkeeping as a pure state machine: which records are pending, which are in
//! flight, what goes out next, what is evicted when the cap is reached, and whether a new
//! record must be written to flash at all.
//!
//! The ledger never touches a file, a socket or a clock: [`Spool`](super::Spool) applies
//! its decisions to the store, and time comes in as arguments. Everything the spool promises
//! about order and eviction is decided here and unit-tested here.
//!
//! # Order of sending
//!
//! 1. Alerts, oldest first, before any reading (invariant 6).
//! 2. Readings: after a (re)connect, readings appended since the connect ("live") and the
//!    older backlog take turns, oldest first within each, so the fleet sees the present
//!    while the backlog drains.
//!
//! At most `max_in_flight` records are in flight at once (AWS IoT Core allows 100 unacknowledged
//! QoS 1 publishes per connection).
//!
//! # Eviction (invariant 5)
//!
//! The cap counts the bytes of every pending record (key, header, payload), stored or not.
//! A new alert first evicts the oldest alerts beyond `max_alert_bytes`; any record that
//! takes the total beyond `max_bytes` evicts the oldest readings, in flight or not. Alerts
//! are never evicted to make room for readings. A record larger than its kind's budget is
//! refused before it gets a sequence number; [`LedgerConfig::validate`] makes sure that the
//! largest payload always fits.

use std::collections::{BTreeMap, BTreeSet};

use super::record::{RecordKind, Seq};

/// Whether a new record is written to flash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// Every record is written to flash when appended.
    Always,
    /// Readings skip flash while the link is up and the uplink keeps up: fewer than
    /// `max_unstored` of them are waiting only in memory. They are written (spilled) when the
    /// link goes down, when they wait longer than the spool's `spill_after`, and at shutdown.
    /// Alerts are always written. A crash loses at most `max_unstored` unacknowledged readings
    /// more than in `Always` mode: that is the price of the saved flash wear.
    OnlyWhileOffline { max_unstored: usize },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedgerConfig {
    /// Cap on the bytes of all pending records.
    pub max_bytes: u64,
    /// Cap on the bytes of pending alerts (part of `max_bytes`).
    pub max_alert_bytes: u64,
    /// Records handed out and not yet acknowledged, at most.
    pub max_in_flight: usize,
    pub write_mode: WriteMode,
    /// The largest record the spool accepts (key, header and payload).
    pub max_record_bytes: u64,
}

impl LedgerConfig {
    /// Checks that every legal record fits its kind's budget, whatever else is pending.
    pub fn validate(&self) -> Result<(), String> {
        let largest = self.max_record_bytes;
        if self.max_alert_bytes < largest {
            return Err(format!(
                "max_alert_bytes is {} but one alert may take {largest}: raise it to at least {largest}",
                self.max_alert_bytes
            ));
        }
        if self.max_bytes < self.max_alert_bytes + largest {
            return Err(format!(
                "max_bytes is {} but must leave room for one reading batch ({largest}) beyond \
                 max_alert_bytes ({}): raise max_bytes to at least {}",
                self.max_bytes,
                self.max_alert_bytes,
                self.max_alert_bytes + largest
            ));
        }
        if self.max_in_flight == 0 {
            return Err("max_in_flight is 0: nothing could ever be sent; use 1..=100".into());
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    kind: RecordKind,
    bytes: u64,
    created_ms: u64,
    stored: bool,
    in_flight: bool,
}

/// A record the ledger dropped to stay under the cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Eviction {
    pub seq: Seq,
    pub kind: RecordKind,
    /// Whether it is on flash (and must be removed there).
    pub stored: bool,
}

/// The ledger's answer to an append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admission {
    pub seq: Seq,
    /// Write it to flash now (false: keep it in memory, write-only-while-offline mode).
    pub store: bool,
    pub evicted: Vec<Eviction>,
}

/// A record removed by an acknowledgement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Removed {
    pub kind: RecordKind,
    pub stored: bool,
}

/// A refused append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLarge {
    pub bytes: u64,
    pub budget: u64,
}

/// Pending records and bytes of one kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KindDepth {
    pub records: u64,
    pub bytes: u64,
}

/// What the ledger holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Depth {
    pub alerts: KindDepth,
    pub readings: KindDepth,
    pub in_flight: u64,
    /// Records waiting only in memory (write-only-while-offline mode).
    pub unstored: u64,
}

impl Depth {
    pub fn records(&self) -> u64 {
        self.alerts.records + self.readings.records
    }

    pub fn bytes(&self) -> u64 {
        self.alerts.bytes + self.readings.bytes
    }
}

#[derive(Debug)]
pub struct Ledger {
    config: LedgerConfig,
    next_seq: Seq,
    entries: BTreeMap<Seq, Entry>,
    /// Pending records of each kind (indexed by `RecordKind::index`), in flight or not.
    pending: [BTreeSet<Seq>; 2],
    /// Pending records of each kind that are not in flight.
    queued: [BTreeSet<Seq>; 2],
    bytes: [u64; 2],
    in_flight: usize,
    unstored: usize,
    online: bool,
    /// Readings from this sequence number on were appended since the last connect.
    live_from: Seq,
    /// Whose turn it is among readings when both live and backlog are queued.
    backlog_turn: bool,
}

impl Ledger {
    /// An empty ledger whose first record will get `next_seq`. The link starts down.
    pub fn new(config: LedgerConfig, next_seq: Seq) -> Self {
        Ledger {
            config,
            next_seq,
            entries: BTreeMap::new(),
            pending: Default::default(),
            queued: Default::default(),
            bytes: [0; 2],
            in_flight: 0,
            unstored: 0,
            online: false,
            live_from: next_seq,
            backlog_turn: true,
        }
    }

    /// The sequence number the next append gets.
    pub fn next_seq(&self) -> Seq {
        self.next_seq
    }

    pub fn is_online(&self) -> bool {
        self.online
    }

    /// Takes back a record found on flash at startup. Call [`Ledger::enforce_caps`] after
    /// the last one, in case the caps shrank since it was written.
    pub fn restore(&mut self, seq: Seq, kind: RecordKind, bytes: u64, created_ms: u64) {
        self.take_back(seq, kind, bytes, created_ms);
        self.live_from = self.next_seq;
    }

    /// Takes back a record that was on a store the spool went back to after running in
    /// memory: it joins the backlog in its place by sequence number.
    pub fn take_back(&mut self, seq: Seq, kind: RecordKind, bytes: u64, created_ms: u64) {
        self.insert(
            seq,
            Entry {
                kind,
                bytes,
                created_ms,
                stored: true,
                in_flight: false,
            },
        );
        self.next_seq = self.next_seq.max(seq + 1);
    }

    /// Whether `seq` is pending (queued or in flight).
    pub fn contains(&self, seq: Seq) -> bool {
        self.entries.contains_key(&seq)
    }

    /// Pending records that are in the store (not kept only in memory), ascending.
    pub fn stored(&self) -> Vec<Seq> {
        self.entries
            .iter()
            .filter(|(_, e)| e.stored)
            .map(|(&s, _)| s)
            .collect()
    }

    /// New caps (the spool runs in memory with smaller ones); evicts until they hold.
    pub fn set_caps(&mut self, max_bytes: u64, max_alert_bytes: u64) -> Vec<Eviction> {
        self.config.max_bytes = max_bytes;
        self.config.max_alert_bytes = max_alert_bytes;
        self.enforce_caps()
    }

    /// Never hands out a sequence number below `seq` (the store's lease, see `store.rs`).
    pub fn resume_at(&mut self, seq: Seq) {
        self.next_seq = self.next_seq.max(seq);
        self.live_from = self.next_seq;
    }

    /// Evicts until the caps hold (after a restore under smaller caps).
    pub fn enforce_caps(&mut self) -> Vec<Eviction> {
        let mut evicted = Vec::new();
        self.evict_until(RecordKind::Alert, 0, &mut evicted);
        self.evict_until(RecordKind::Readings, 0, &mut evicted);
        evicted
    }

    /// Gives a new record its sequence number, decides whether it goes to flash, and evicts
    /// what must go to make room.
    pub fn admit(
        &mut self,
        kind: RecordKind,
        bytes: u64,
        now_ms: u64,
    ) -> Result<Admission, TooLarge> {
        let budget = match kind {
            RecordKind::Alert => self.config.max_alert_bytes,
            RecordKind::Readings => self.config.max_bytes - self.config.max_alert_bytes,
        };
        if bytes > budget {
            return Err(TooLarge { bytes, budget });
        }
        let mut evicted = Vec::new();
        self.evict_until(kind, bytes, &mut evicted);
        let store = match (kind, self.config.write_mode) {
            (RecordKind::Alert, _) | (_, WriteMode::Always) => true,
            (RecordKind::Readings, WriteMode::OnlyWhileOffline { max_unstored }) => {
                !(self.online && self.unstored < max_unstored)
            }
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.insert(
            seq,
            Entry {
                kind,
                bytes,
                created_ms: now_ms,
                stored: store,
                in_flight: false,
            },
        );
        Ok(Admission {
            seq,
            store,
            evicted,
        })
    }

    /// Makes room for `incoming` more bytes of `kind`.
    fn evict_until(&mut self, kind: RecordKind, incoming: u64, evicted: &mut Vec<Eviction>) {
        if kind == RecordKind::Alert {
            while self.bytes[0] + incoming > self.config.max_alert_bytes {
                let Some(&seq) = self.pending[0].first() else {
                    break;
                };
                evicted.push(self.evict(seq));
            }
        }
        while self.bytes[0] + self.bytes[1] + incoming > self.config.max_bytes {
            let Some(&seq) = self.pending[1].first() else {
                break;
            };
            evicted.push(self.evict(seq));
        }
    }

    fn evict(&mut self, seq: Seq) -> Eviction {
        let e = self.remove(seq).expect("evicting a pending record");
        Eviction {
            seq,
            kind: e.kind,
            stored: e.stored,
        }
    }

    fn insert(&mut self, seq: Seq, e: Entry) {
        let k = e.kind.index();
        self.pending[k].insert(seq);
        self.queued[k].insert(seq);
        self.bytes[k] += e.bytes;
        if !e.stored {
            self.unstored += 1;
        }
        self.entries.insert(seq, e);
    }

    fn remove(&mut self, seq: Seq) -> Option<Entry> {
        let e = self.entries.remove(&seq)?;
        let k = e.kind.index();
        self.pending[k].remove(&seq);
        self.queued[k].remove(&seq);
        self.bytes[k] -= e.bytes;
        if e.in_flight {
            self.in_flight -= 1;
        }
        if !e.stored {
            self.unstored -= 1;
        }
        Some(e)
    }

    /// Hands out up to `max` records to send, in priority order, and marks them in flight.
    pub fn next_to_send(&mut self, max: usize) -> Vec<Seq> {
        let room = self.config.max_in_flight.saturating_sub(self.in_flight);
        let mut out = Vec::new();
        while out.len() < max.min(room) {
            let Some(seq) = self.pick() else { break };
            let e = self
                .entries
                .get_mut(&seq)
                .expect("queued records are pending");
            e.in_flight = true;
            self.queued[e.kind.index()].remove(&seq);
            self.in_flight += 1;
            out.push(seq);
        }
        out
    }

    fn pick(&mut self) -> Option<Seq> {
        if let Some(&seq) = self.queued[0].first() {
            return Some(seq);
        }
        let readings = &self.queued[1];
        let backlog = readings.first().copied().filter(|&s| s < self.live_from);
        let live = readings.range(self.live_from..).next().copied();
        match (backlog, live) {
            (Some(b), Some(l)) => {
                let take_backlog = self.backlog_turn;
                self.backlog_turn = !self.backlog_turn;
                Some(if take_backlog { b } else { l })
            }
            (b, l) => b.or(l),
        }
    }

    /// The broker acknowledged `seq`: it leaves the spool. `None` if it was not pending
    /// (evicted meanwhile, or acknowledged twice).
    pub fn ack(&mut self, seq: Seq) -> Option<Removed> {
        self.remove(seq).map(|e| Removed {
            kind: e.kind,
            stored: e.stored,
        })
    }

    /// Drops a record that turned out unreadable on flash.
    pub fn forget(&mut self, seq: Seq) -> bool {
        self.remove(seq).is_some()
    }

    /// Puts every in-flight record back in the queue (their publishes may never have
    /// arrived). Their place in the order is their sequence number, as before.
    pub fn requeue_all(&mut self) {
        for (&seq, e) in self.entries.iter_mut().filter(|(_, e)| e.in_flight) {
            e.in_flight = false;
            self.queued[e.kind.index()].insert(seq);
        }
        self.in_flight = 0;
    }

    /// The link is up (CONNACK): what is appended from now on is live.
    pub fn link_up(&mut self) {
        self.online = true;
        self.live_from = self.next_seq;
        self.backlog_turn = true;
        self.requeue_all();
    }

    /// The link is down: everything in flight is requeued, and the records kept only in memory
    /// are returned; they must be written to flash now (then [`Ledger::mark_stored`]).
    pub fn link_down(&mut self) -> Vec<Seq> {
        self.online = false;
        self.requeue_all();
        self.unstored()
    }

    /// Records kept only in memory, oldest first.
    pub fn unstored(&self) -> Vec<Seq> {
        self.unstored_older_than(u64::MAX)
    }

    /// Records kept only in memory and appended before `cutoff_ms`.
    pub fn unstored_older_than(&self, cutoff_ms: u64) -> Vec<Seq> {
        if self.unstored == 0 {
            return Vec::new();
        }
        self.entries
            .iter()
            .filter(|(_, e)| !e.stored && e.created_ms < cutoff_ms)
            .map(|(&s, _)| s)
            .collect()
    }

    /// A record kept in memory has been written to flash.
    pub fn mark_stored(&mut self, seq: Seq) {
        if let Some(e) = self.entries.get_mut(&seq)
            && !e.stored
        {
            e.stored = true;
            self.unstored -= 1;
        }
    }

    pub fn depth(&self) -> Depth {
        let kd = |k: usize| KindDepth {
            records: self.pending[k].len() as u64,
            bytes: self.bytes[k],
        };
        Depth {
            alerts: kd(0),
            readings: kd(1),
            in_flight: self.in_flight as u64,
            unstored: self.unstored as u64,
        }
    }

    /// When the oldest pending record was appended (wall-clock ms).
    pub fn oldest_created_ms(&self) -> Option<u64> {
        self.entries.values().next().map(|e| e.created_ms)
    }

    /// Pending sequence numbers, ascending.
    #[cfg(test)]
    pub fn pending(&self) -> impl Iterator<Item = Seq> + '_ {
        self.entries.keys().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RecordKind::{Alert, Readings};

    const BIG: u64 = 1 << 40;

    fn config(max_bytes: u64, max_alert_bytes: u64) -> LedgerConfig {
        LedgerConfig {
            max_bytes,
            max_alert_bytes,
            max_in_flight: 100,
            write_mode: WriteMode::Always,
            max_record_bytes: 20,
        }
    }

    fn ledger() -> Ledger {
        Ledger::new(config(BIG, BIG / 2), 0)
    }

    fn admit(l: &mut Ledger, kind: RecordKind, bytes: u64) -> Admission {
        l.admit(kind, bytes, 0).expect("fits")
    }

    #[test]
    fn sequence_numbers_increase_from_the_start_and_after_restore() {
        let mut l = Ledger::new(config(BIG, BIG / 2), 7);
        assert_eq!(admit(&mut l, Readings, 10).seq, 7);
        assert_eq!(admit(&mut l, Alert, 10).seq, 8);
        let mut l = Ledger::new(config(BIG, BIG / 2), 0);
        l.restore(40, Readings, 10, 0);
        l.restore(12, Alert, 10, 0);
        assert_eq!(admit(&mut l, Readings, 10).seq, 41);
        l.resume_at(1000);
        assert_eq!(admit(&mut l, Readings, 10).seq, 1000);
        l.resume_at(5);
        assert_eq!(admit(&mut l, Readings, 10).seq, 1001);
    }

    #[test]
    fn alerts_go_out_before_readings() {
        let mut l = ledger();
        admit(&mut l, Readings, 10); // 0
        admit(&mut l, Readings, 10); // 1
        admit(&mut l, Alert, 10); // 2
        admit(&mut l, Readings, 10); // 3
        admit(&mut l, Alert, 10); // 4
        assert_eq!(l.next_to_send(3), vec![2, 4, 0]);
        admit(&mut l, Alert, 10); // 5
        assert_eq!(l.next_to_send(10), vec![5, 1, 3]);
        assert!(l.next_to_send(10).is_empty());
    }

    #[test]
    fn live_readings_and_backlog_take_turns_after_a_connect() {
        let mut l = ledger();
        for _ in 0..3 {
            admit(&mut l, Readings, 10); // 0, 1, 2: backlog
        }
        l.link_up();
        for _ in 0..2 {
            admit(&mut l, Readings, 10); // 3, 4: live
        }
        assert_eq!(l.next_to_send(10), vec![0, 3, 1, 4, 2]);
    }

    #[test]
    fn in_flight_is_capped_and_ack_frees_room() {
        let mut l = Ledger::new(
            LedgerConfig {
                max_in_flight: 2,
                ..config(BIG, BIG / 2)
            },
            0,
        );
        for _ in 0..4 {
            admit(&mut l, Readings, 10);
        }
        assert_eq!(l.next_to_send(10), vec![0, 1]);
        assert!(l.next_to_send(10).is_empty());
        assert_eq!(
            l.ack(0),
            Some(Removed {
                kind: Readings,
                stored: true
            })
        );
        assert_eq!(l.next_to_send(10), vec![2]);
        assert_eq!(l.depth().in_flight, 2);
    }

    #[test]
    fn a_record_leaves_only_on_ack_and_disconnect_requeues_in_order() {
        let mut l = ledger();
        for _ in 0..3 {
            admit(&mut l, Readings, 10);
        }
        assert_eq!(l.next_to_send(2), vec![0, 1]);
        assert_eq!(l.depth().readings.records, 3);
        assert!(l.ack(1).is_some());
        assert_eq!(l.ack(1), None, "a second ack finds nothing");
        assert_eq!(l.link_down(), Vec::<Seq>::new());
        assert_eq!(l.depth().in_flight, 0);
        assert_eq!(l.pending().collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(l.next_to_send(10), vec![0, 2]);
    }

    #[test]
    fn the_oldest_readings_are_evicted_first_and_alerts_are_kept() {
        // 100 bytes in all, 40 for alerts.
        let mut l = Ledger::new(config(100, 40), 0);
        admit(&mut l, Alert, 20); // 0
        for _ in 0..4 {
            admit(&mut l, Readings, 20); // 1..=4, total 100
        }
        let a = admit(&mut l, Readings, 20); // 5 evicts 1
        assert_eq!(a.evicted.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1]);
        // An alert that fits its cap pushes out the oldest reading, not an alert.
        let a = admit(&mut l, Alert, 20); // 6 evicts 2
        assert_eq!(
            a.evicted,
            vec![Eviction {
                seq: 2,
                kind: Readings,
                stored: true
            }]
        );
        // An alert beyond the alert cap pushes out the oldest alert.
        let a = admit(&mut l, Alert, 20); // 7 evicts 0
        assert_eq!(a.evicted.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![0]);
        assert_eq!(l.pending().collect::<Vec<_>>(), vec![3, 4, 5, 6, 7]);
        assert_eq!(l.depth().alerts.bytes, 40);
        assert_eq!(l.depth().bytes(), 100);
    }

    #[test]
    fn an_evicted_in_flight_record_is_gone_and_its_late_ack_is_harmless() {
        let mut l = Ledger::new(config(60, 20), 0);
        admit(&mut l, Readings, 20);
        admit(&mut l, Readings, 20);
        assert_eq!(l.next_to_send(1), vec![0]);
        admit(&mut l, Readings, 20);
        let a = admit(&mut l, Readings, 20);
        assert_eq!(a.evicted[0].seq, 0);
        assert_eq!(l.depth().in_flight, 0);
        assert_eq!(l.ack(0), None);
    }

    #[test]
    fn a_record_larger_than_its_budget_is_refused_without_a_sequence_number() {
        let mut l = Ledger::new(config(100, 40), 0);
        assert_eq!(
            l.admit(Alert, 41, 0),
            Err(TooLarge {
                bytes: 41,
                budget: 40
            })
        );
        assert_eq!(
            l.admit(Readings, 61, 0),
            Err(TooLarge {
                bytes: 61,
                budget: 60
            })
        );
        assert_eq!(admit(&mut l, Readings, 60).seq, 0);
    }

    #[test]
    fn shrunken_caps_are_enforced_after_restore() {
        let mut l = Ledger::new(config(100, 40), 0);
        for seq in 0..8 {
            l.restore(seq, if seq < 3 { Alert } else { Readings }, 20, 0);
        }
        let ev: Vec<Seq> = l.enforce_caps().iter().map(|e| e.seq).collect();
        assert_eq!(ev, vec![0, 3, 4]);
        assert_eq!(l.depth().alerts.bytes, 40);
        assert_eq!(l.depth().bytes(), 100);
    }

    #[test]
    fn write_only_while_offline_keeps_readings_in_memory_while_the_uplink_keeps_up() {
        let mut l = Ledger::new(
            LedgerConfig {
                write_mode: WriteMode::OnlyWhileOffline { max_unstored: 2 },
                ..config(BIG, BIG / 2)
            },
            0,
        );
        assert!(admit(&mut l, Readings, 10).store, "offline: written");
        l.link_up();
        assert!(!l.admit(Readings, 10, 100).unwrap().store); // 1
        assert!(admit(&mut l, Alert, 10).store, "alerts are always written");
        assert!(!l.admit(Readings, 10, 200).unwrap().store); // 3
        assert!(admit(&mut l, Readings, 10).store, "uplink behind: written");
        assert_eq!(l.depth().unstored, 2);
        assert_eq!(l.unstored_older_than(150), vec![1]);
        assert_eq!(l.next_to_send(10), vec![2, 0, 1, 3, 4]);
        assert!(l.ack(1).is_some());
        assert_eq!(l.depth().unstored, 1);
        assert!(!admit(&mut l, Readings, 10).store, "room again");
        assert_eq!(l.link_down(), vec![3, 5]);
        l.mark_stored(3);
        l.mark_stored(5);
        assert_eq!(l.depth().unstored, 0);
        assert!(admit(&mut l, Readings, 10).store, "offline again");
    }

    #[test]
    fn config_validation_says_what_to_raise() {
        let largest = 20;
        assert!(config(3 * largest, largest).validate().is_ok());
        let e = config(3 * largest, largest - 1).validate().unwrap_err();
        assert!(e.contains("raise it"), "{e}");
        let e = config(2 * largest - 1, largest).validate().unwrap_err();
        assert!(e.contains("raise max_bytes"), "{e}");
    }
}
