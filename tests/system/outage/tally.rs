//! The fleet's side of the suite: a subscriber that counts every record by `(boot, seq)`, in
//! the order it arrived, and the account of what was delivered, duplicated and lost.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::truck::{Held, Key};
use crate::broker::{Fleet, Pki, record_id};

/// One record message as the fleet received it.
#[derive(Clone, Copy, Debug)]
pub struct Delivery {
    pub key: Key,
    /// Alerts, DM1 and security events: what the spool sends ahead of readings.
    pub alert: bool,
}

pub struct Tally {
    fleet: Fleet,
    /// Record messages in the order they arrived (duplicates too).
    pub deliveries: Vec<Delivery>,
    /// How often each record arrived.
    pub counts: BTreeMap<Key, u32>,
    /// Status messages, parsed.
    pub statuses: Vec<Value>,
}

impl Tally {
    /// Subscribes (persistent session) to everything `thing` publishes.
    pub fn connect(pki: &Pki, port: u16, thing: &str) -> Tally {
        let name = format!("fleet-{thing}");
        let filter = format!("dt/vigil/{thing}/#");
        Tally {
            fleet: Fleet::connect(pki, port, &name, &[&filter]),
            deliveries: Vec::new(),
            counts: BTreeMap::new(),
            statuses: Vec::new(),
        }
    }

    fn take(&mut self, topic: &str, payload: &[u8]) {
        if topic.ends_with("/status") {
            self.statuses
                .push(serde_json::from_slice(payload).expect("a status is JSON"));
            return;
        }
        let (_, boot, seq) = record_id(payload)
            .unwrap_or_else(|| panic!("{topic}: no (thing, boot, seq) in the record"));
        let alert = !topic.ends_with("/readings");
        self.deliveries.push(Delivery {
            key: (boot, seq),
            alert,
        });
        *self.counts.entry((boot, seq)).or_default() += 1;
    }

    /// Takes messages until `done` holds (true) or `limit` passes (false).
    pub fn wait(&mut self, limit: Duration, done: impl Fn(&Tally) -> bool) -> bool {
        let end = Instant::now() + limit;
        loop {
            if done(self) {
                return true;
            }
            let Some(left) = end.checked_duration_since(Instant::now()) else {
                return false;
            };
            if let Some((topic, payload)) = self.fleet.next(left) {
                self.take(&topic, &payload);
            }
        }
    }

    /// Records of boot `boot` delivered at least once.
    pub fn of_boot(&self, boot: u64) -> usize {
        self.counts.range((boot, 0)..=(boot, u64::MAX)).count()
    }

    pub fn has(&self, key: &Key) -> bool {
        self.counts.contains_key(key)
    }
}

/// One run of the agent: its boot id, the first sequence number it handed out, and the
/// last it is known to have handed out: for a run that stopped cleanly, exactly (from the
/// records its summary says it spooled); for one that was killed, at least (from its
/// metrics just before the kill).
#[derive(Clone, Copy, Debug)]
pub struct Boot {
    pub id: u64,
    pub first_seq: u64,
    pub last_seq: Option<u64>,
}

impl Boot {
    /// Records of this run (which stopped cleanly) the fleet does not have.
    pub fn missing(&self, tally: &Tally) -> usize {
        let last = self.last_seq.expect("a run that stopped cleanly");
        (self.first_seq..=last)
            .filter(|&seq| !tally.has(&(self.id, seq)))
            .count()
    }
}

/// What reached the fleet, against what the agent had made durable.
#[derive(Debug, Default)]
pub struct Account {
    /// Distinct records delivered.
    pub delivered: usize,
    /// Deliveries beyond the first of a record (QoS 1 allows them).
    pub duplicates: usize,
    /// Records never delivered that were not yet flushed when a kill came: sequence numbers
    /// the run handed out, above everything it had flushed. (What a killed run appended
    /// between its last metrics and the kill leaves no trace.)
    pub lost_inside: usize,
    /// The most of those in one run.
    pub most_inside_one_run: usize,
    /// Records never delivered that had been flushed: held by the store at a kill, or below
    /// a record that was (a commit makes everything written before it durable).
    pub lost_outside: Vec<Key>,
}

/// Accounts for every run in `boots`, given everything the store held at some kill or at
/// the end (`durable`) and what the fleet received.
pub fn account(boots: &[Boot], durable: &BTreeSet<Held>, tally: &Tally) -> Account {
    let mut account = Account {
        delivered: tally.counts.len(),
        duplicates: tally.counts.values().map(|&n| n as usize - 1).sum(),
        ..Account::default()
    };
    let durable: BTreeSet<Key> = durable.iter().map(|h| h.key).collect();
    for boot in boots {
        let range = (boot.id, 0)..=(boot.id, u64::MAX);
        let max_durable = durable.range(range.clone()).next_back().map(|k| k.1);
        let max_known = tally
            .counts
            .range(range.clone())
            .next_back()
            .map(|(k, _)| k.1)
            .max(max_durable)
            .max(boot.last_seq);
        let Some(max_known) = max_known else { continue };
        let mut inside = 0;
        for seq in boot.first_seq..=max_known {
            let key = (boot.id, seq);
            if tally.has(&key) {
                continue;
            }
            if durable.contains(&key) || max_durable.is_some_and(|d| seq <= d) {
                account.lost_outside.push(key);
            } else {
                inside += 1;
            }
        }
        account.lost_inside += inside;
        account.most_inside_one_run = account.most_inside_one_run.max(inside);
    }
    let runs: BTreeSet<u64> = boots.iter().map(|b| b.id).collect();
    let strangers: Vec<&Key> = tally
        .counts
        .keys()
        .chain(&durable)
        .filter(|k| !runs.contains(&k.0))
        .collect();
    assert!(
        strangers.is_empty(),
        "records of boots no run reported: {strangers:?}"
    );
    account
}
