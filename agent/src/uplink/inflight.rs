//! Ties each PUBACK to what was published, without sockets.
//!
//! rumqttc's `publish` returns no packet id (rumqtt issues 349 and 1007). What it does
//! guarantee is order: requests leave its channel first in, first out, and each QoS 1
//! publish it writes is reported as `Outgoing::Publish(pkid)` in that same order (a publish
//! held back by a packet-id collision is reported when it finally goes out, and nothing
//! after it goes out before it). So the tracker keeps a FIFO of submitted publishes and binds
//! the front one to each `Outgoing::Publish(pkid)`; `Incoming::PubAck(pkid)` then names it.
//!
//! Packet ids are reused (rumqttc cycles through 1..=its inflight setting). A pkid is bound
//! again only after its PUBACK, unless rumqttc's own state was reset by a reconnect; then
//! [`InFlight::reset`] drops every binding and the spool requeues what was in flight.
//! A binding found occupied is reported as displaced (never silently overwritten) so the
//! caller can requeue it.

use std::collections::{HashMap, VecDeque};

use crate::spool::Seq;

/// What a publish carries, as far as delivery is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sent {
    /// A spooled record: acknowledge it in the spool on PUBACK.
    Record { seq: Seq, bytes: usize },
    /// A status, shadow or job message: not spooled, nothing to acknowledge.
    Control { bytes: usize },
}

impl Sent {
    /// The payload's bytes (what the broker's byte rate counts).
    pub fn bytes(self) -> usize {
        match self {
            Sent::Record { bytes, .. } | Sent::Control { bytes } => bytes,
        }
    }
}

/// What a PUBACK or an outgoing report resolved to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// The broker acknowledged this publish.
    Acked(Sent),
    /// A PUBACK for a packet id nothing is bound to (a duplicate, or one from before a reset).
    Unknown(u16),
}

#[derive(Debug)]
pub struct InFlight {
    limit: usize,
    /// Submitted to rumqttc, not yet reported as written.
    submitted: VecDeque<Sent>,
    /// Written with this packet id, waiting for the PUBACK.
    bound: HashMap<u16, Sent>,
}

impl InFlight {
    pub fn new(limit: usize) -> Self {
        InFlight {
            limit,
            submitted: VecDeque::new(),
            bound: HashMap::new(),
        }
    }

    /// Publishes not yet acknowledged (submitted or written).
    pub fn len(&self) -> usize {
        self.submitted.len() + self.bound.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many more may be published now.
    pub fn room(&self) -> usize {
        self.limit.saturating_sub(self.len())
    }

    /// A publish was handed to rumqttc.
    pub fn submitted(&mut self, sent: Sent) {
        self.submitted.push_back(sent);
    }

    /// The event loop wrote the oldest submitted publish with `pkid`. Returns a publish that
    /// was still bound to that pkid (which should not happen between resets): the caller
    /// treats it as lost.
    pub fn written(&mut self, pkid: u16) -> Option<Sent> {
        let sent = self.submitted.pop_front()?;
        self.bound.insert(pkid, sent)
    }

    /// The broker acknowledged `pkid`.
    pub fn acked(&mut self, pkid: u16) -> Resolved {
        match self.bound.remove(&pkid) {
            Some(sent) => Resolved::Acked(sent),
            None => Resolved::Unknown(pkid),
        }
    }

    /// The connection is gone: rumqttc forgets its in-flight publishes on a clean session, so
    /// the tracker does too. Returns the records that were in flight.
    pub fn reset(&mut self) -> Vec<Seq> {
        self.submitted
            .drain(..)
            .chain(self.bound.drain().map(|(_, s)| s))
            .filter_map(|s| match s {
                Sent::Record { seq, .. } => Some(seq),
                Sent::Control { .. } => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: Seq) -> Sent {
        Sent::Record { seq, bytes: 10 }
    }

    #[test]
    fn each_puback_names_the_publish_written_with_its_pkid() {
        let mut f = InFlight::new(3);
        f.submitted(record(7));
        f.submitted(Sent::Control { bytes: 5 });
        f.submitted(record(9));
        assert_eq!(f.room(), 0);
        assert_eq!(f.written(1), None);
        assert_eq!(f.written(2), None);
        assert_eq!(f.written(3), None);
        // Acknowledged out of order.
        assert_eq!(f.acked(3), Resolved::Acked(record(9)));
        assert_eq!(f.acked(1), Resolved::Acked(record(7)));
        assert_eq!(f.acked(2), Resolved::Acked(Sent::Control { bytes: 5 }));
        assert!(f.is_empty());
        assert_eq!(f.acked(2), Resolved::Unknown(2));
    }

    #[test]
    fn a_pkid_is_reused_after_its_puback() {
        let mut f = InFlight::new(100);
        f.submitted(record(1));
        f.written(1);
        assert_eq!(f.acked(1), Resolved::Acked(record(1)));
        f.submitted(record(2));
        assert_eq!(f.written(1), None);
        assert_eq!(f.acked(1), Resolved::Acked(record(2)));
    }

    #[test]
    fn a_pkid_bound_twice_reports_the_displaced_publish() {
        let mut f = InFlight::new(100);
        f.submitted(record(1));
        f.submitted(record(2));
        f.written(5);
        assert_eq!(f.written(5), Some(record(1)));
        assert_eq!(f.acked(5), Resolved::Acked(record(2)));
    }

    #[test]
    fn a_reset_returns_every_record_in_flight_and_forgets_pkids() {
        let mut f = InFlight::new(100);
        for seq in 1..=4 {
            f.submitted(record(seq));
        }
        f.submitted(Sent::Control { bytes: 1 });
        f.written(1);
        f.written(2);
        let mut lost = f.reset();
        lost.sort();
        assert_eq!(lost, vec![1, 2, 3, 4]);
        assert!(f.is_empty());
        // A PUBACK from the old connection names nothing.
        assert_eq!(f.acked(1), Resolved::Unknown(1));
    }
}
