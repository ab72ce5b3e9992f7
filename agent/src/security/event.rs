//! What the intrusion monitor reports.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::detect::alert::Severity;
use crate::reading::{Origin, Timestamp};

/// The kinds of finding, as they are named in messages and replay's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityKind {
    /// An address claim that takes a held address: by a NAME that wins arbitration over the
    /// known holder's (critical), or, once the bus is learned, unasked for an address in use
    /// by a sender whose claim was never heard (warning).
    AddressHijack,
    /// A claim for a held address by a NAME that loses arbitration: the claimant must move.
    AddressConflict,
    /// A "cannot claim" (source address 254): an ECU was left without an address.
    AddressLost,
    /// A data parameter group the bus was learned with, from a sender that did not send it.
    NewSender,
    /// An identifier coming faster than it was learned to.
    RateDrift,
    /// More frames than the bus was learned to carry, or one identifier faster than any
    /// J1939 message is sent.
    Flood,
    /// Many identifiers never seen on the bus within one second.
    Fuzzing,
    /// A frame addressed to its own sender: no node commands itself (identifier 0, the
    /// classic flood, is the engine's torque command addressed from the engine).
    SelfAddressed,
    /// More requests (PGN 59904) in one second than the limit.
    RequestOverload,
    /// More error frames (frames the bus broke off) in one second than the limit: a
    /// sender the bus cannot take, a forced bus-off, or failing wiring.
    BusErrors,
    /// TP.CM frames faster than the limit, from one sender or on the bus, or transport
    /// announcements refused because a sender wanted more than its share.
    TransportAbuse,
}

impl SecurityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityKind::AddressHijack => "address_hijack",
            SecurityKind::AddressConflict => "address_conflict",
            SecurityKind::AddressLost => "address_lost",
            SecurityKind::NewSender => "new_sender",
            SecurityKind::RateDrift => "rate_drift",
            SecurityKind::Flood => "flood",
            SecurityKind::Fuzzing => "fuzzing",
            SecurityKind::SelfAddressed => "self_addressed",
            SecurityKind::RequestOverload => "request_overload",
            SecurityKind::BusErrors => "bus_errors",
            SecurityKind::TransportAbuse => "transport_abuse",
        }
    }
}

impl fmt::Display for SecurityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reported finding.
#[derive(Clone, Debug, PartialEq)]
pub struct SecurityEvent {
    /// When the frame that made it arrived.
    pub at: Timestamp,
    pub bus: Arc<str>,
    pub kind: SecurityKind,
    pub severity: Severity,
    /// The source addresses involved, the suspect first.
    pub sources: Vec<u8>,
    /// The parameter group concerned, where there is one.
    pub pgn: Option<u32>,
    /// The CAN identifier concerned (a flood's, a rate's), where there is one.
    pub can_id: Option<u32>,
    /// Findings this report covers: 1, plus those held back since the last report of the
    /// same finding.
    pub count: u64,
    /// What was seen, in words and figures.
    pub detail: String,
}

impl SecurityEvent {
    /// The senders involved as origins (`can0/sa00`), as alerts name theirs.
    pub fn origins(&self) -> Vec<Origin> {
        self.sources
            .iter()
            .map(|&source_address| Origin::Can {
                bus: self.bus.clone(),
                source_address,
            })
            .collect()
    }
}
