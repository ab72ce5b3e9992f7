//! One bus under watch: what was learned of it, and this second's counts.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use super::config::SecurityConfig;
use super::event::SecurityKind;
use crate::decode::j1939::J1939Id;
use crate::decode::{Refusal, TransportRefusal};
use crate::detect::alert::Severity;

/// Identifiers and parameter groups kept per bus; past this, new ones are counted only.
const MAX_KEPT: usize = 2048;
/// Senders counted one by one per second (requests, TP.CM); a crowd past this is counted
/// on the bus only.
const MAX_COUNTED_SENDERS: usize = 16;

pub(super) const PGN_REQUEST: u32 = 0xEA00;
pub(super) const PGN_ADDRESS_CLAIM: u32 = 0xEE00;
const PGN_TP_DT: u32 = 0xEB00;
const PGN_TP_CM: u32 = 0xEC00;
const PGN_ACKNOWLEDGEMENT: u32 = 0xE800;
const PGN_DM1: u32 = 0xFECA;
const PGN_DM2: u32 = 0xFECB;
/// The null address: a claim from it says "cannot claim".
const NULL_ADDRESS: u8 = 254;
/// How long after a request for address claims a claim counts as an answer (J1939-81
/// gives 250 ms; a slow ECU is allowed more).
const CLAIM_ANSWER: Duration = Duration::from_secs(2);

/// A finding before it is reported.
#[derive(Debug)]
pub(super) struct Finding {
    pub kind: SecurityKind,
    pub severity: Severity,
    /// What it is about, for holding back repeats: a source address or an identifier.
    pub subject: u32,
    pub sources: Vec<u8>,
    pub pgn: Option<u32>,
    pub can_id: Option<u32>,
    pub detail: String,
}

impl Finding {
    fn warning(kind: SecurityKind, subject: u32, detail: String) -> Finding {
        Finding {
            kind,
            severity: Severity::Warning,
            subject,
            sources: Vec::new(),
            pgn: None,
            can_id: None,
            detail,
        }
    }
}

/// An address taken by a claim.
#[derive(Clone, Copy, Debug)]
struct Taken {
    address: u8,
    by: u64,
    /// The NAME that held it, when its claim was heard.
    from: Option<u64>,
    at: Duration,
}

/// A set of source addresses.
#[derive(Clone, Copy, Debug, Default)]
struct Addresses([u64; 4]);

impl Addresses {
    fn insert(&mut self, sa: u8) -> bool {
        let (word, bit) = (sa as usize / 64, 1u64 << (sa % 64));
        let new = self.0[word] & bit == 0;
        self.0[word] |= bit;
        new
    }

    fn contains(&self, sa: u8) -> bool {
        self.0[sa as usize / 64] & (1 << (sa % 64)) != 0
    }

    fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        (0..=255u8).filter(|&sa| self.contains(sa))
    }
}

/// How fast one identifier comes.
#[derive(Debug)]
struct IdRate {
    /// Frames in the current second.
    count: u32,
    /// The most in one learned second.
    most: u32,
    /// Until when its seconds are learned.
    learn_until: Duration,
    /// Its sender is one its parameter group knows (senders are never forgotten): a frame
    /// of this identifier needs no look-up in `groups`, one hash fewer for most frames.
    sender_known: bool,
}

/// Who sends one data parameter group.
#[derive(Debug)]
struct GroupSenders {
    senders: Addresses,
    learn_until: Duration,
}

/// Counts per sender within one second, for the few busiest.
#[derive(Debug, Default)]
struct PerSender {
    counts: Vec<(u8, u32)>,
    total: u32,
}

impl PerSender {
    fn add(&mut self, sa: u8) {
        self.total += 1;
        if let Some((_, n)) = self.counts.iter_mut().find(|(s, _)| *s == sa) {
            *n += 1;
        } else if self.counts.len() < MAX_COUNTED_SENDERS {
            self.counts.push((sa, 1));
        }
    }

    fn busiest(&self) -> Option<(u8, u32)> {
        self.counts.iter().copied().max_by_key(|&(_, n)| n)
    }

    fn clear(&mut self) {
        self.counts.clear();
        self.total = 0;
    }
}

/// One bus: what was learned, and the second being counted.
#[derive(Debug)]
pub(super) struct BusWatch {
    pub name: Arc<str>,
    start: Duration,
    /// The second being counted, from the bus's first frame.
    second: u64,
    learn: Duration,
    learned_until: Duration,
    /// Frames in the current second, and the most in one learned second.
    frames: u32,
    busiest: u32,
    /// Keyed by the CAN id, with bit 31 set for an extended one.
    ids: HashMap<u32, IdRate>,
    /// Ids counted this second, so the end of a second visits only those.
    touched: Vec<u32>,
    new_ids: u32,
    groups: HashMap<u32, GroupSenders>,
    /// Who holds each address by its claim.
    names: Box<[Option<u64>; 256]>,
    /// Addresses that have sent anything but a claim.
    active: Addresses,
    claim_requested: Option<Duration>,
    /// The last address taken by a claim: a "cannot claim" soon after is most likely its
    /// holder's.
    last_taken: Option<Taken>,
    requests: PerSender,
    /// Where this second's requests went, for the busiest requester.
    request_target: Option<u8>,
    tp_cm: PerSender,
    refused: PerSender,
    /// Error frames this second, by the sender of the broken frame when it is known.
    errors: PerSender,
    /// The identifier of the last broken frame whose identifier is known.
    error_id: Option<u32>,
}

impl BusWatch {
    pub fn new(name: Arc<str>, start: Duration, learn: Duration) -> BusWatch {
        BusWatch {
            name,
            start,
            second: 0,
            learn,
            learned_until: start + learn,
            frames: 0,
            busiest: 0,
            ids: HashMap::new(),
            touched: Vec::new(),
            new_ids: 0,
            groups: HashMap::new(),
            names: Box::new([None; 256]),
            active: Addresses::default(),
            claim_requested: None,
            last_taken: None,
            requests: PerSender::default(),
            request_target: None,
            tp_cm: PerSender::default(),
            refused: PerSender::default(),
            errors: PerSender::default(),
            error_id: None,
        }
    }

    fn learned(&self, now: Duration) -> bool {
        now >= self.learned_until
    }

    /// One frame (`key`: the id, bit 31 set for an extended one) at `now`.
    pub fn frame(
        &mut self,
        key: u32,
        data: &[u8],
        now: Duration,
        config: &SecurityConfig,
        out: &mut Vec<Finding>,
    ) {
        self.roll(now, config, out);
        self.frames += 1;
        let sender_known = self.count_id(key, now);
        if key & (1 << 31) == 0 {
            return;
        }
        let id = J1939Id::from_can_id(key & 0x1FFF_FFFF);
        let sa = id.source_address;
        if id.destination == Some(sa) {
            out.push(Finding {
                sources: vec![sa],
                pgn: Some(id.pgn),
                can_id: Some(key & 0x1FFF_FFFF),
                ..Finding::warning(
                    SecurityKind::SelfAddressed,
                    u32::MAX,
                    format!(
                        "identifier {} is PGN {} from 0x{sa:02X} addressed to 0x{sa:02X} itself",
                        id_text(key),
                        id.pgn
                    ),
                )
            });
        }
        match id.pgn {
            PGN_ADDRESS_CLAIM => return self.claim(sa, data, now, out),
            PGN_REQUEST => {
                self.requests.add(sa);
                self.request_target = id.destination;
                if data.len() >= 3
                    && u32::from_le_bytes([data[0], data[1], data[2], 0]) == PGN_ADDRESS_CLAIM
                {
                    self.claim_requested = Some(now);
                }
            }
            PGN_TP_CM => self.tp_cm.add(sa),
            PGN_TP_DT | PGN_ACKNOWLEDGEMENT => {}
            // Fault reports come from whichever controller has a fault to report.
            PGN_DM1 | PGN_DM2 => {}
            pgn => {
                if !sender_known
                    && self.sender(pgn, key & 0x1FFF_FFFF, sa, now, out)
                    && let Some(rate) = self.ids.get_mut(&key)
                {
                    rate.sender_known = true;
                }
            }
        }
        self.active.insert(sa);
    }

    /// A transport announcement the decoder refused.
    pub fn refused(
        &mut self,
        refusal: &TransportRefusal,
        config: &SecurityConfig,
        out: &mut Vec<Finding>,
    ) {
        self.roll(refusal.at.mono, config, out);
        if refusal.refusal == Refusal::OverShare {
            self.refused.add(refusal.source_address);
        }
    }

    /// An error frame: a frame the bus broke off, with its identifier when known.
    pub fn bus_error(
        &mut self,
        id: Option<(u32, bool)>,
        now: Duration,
        config: &SecurityConfig,
        out: &mut Vec<Finding>,
    ) {
        self.roll(now, config, out);
        match id {
            Some((id, true)) => {
                self.errors.add((id & 0xFF) as u8);
                self.error_id = Some(id);
            }
            _ => self.errors.total += 1,
        }
    }

    /// Counts a frame of `key`; whether its sender is known for its group already.
    fn count_id(&mut self, key: u32, now: Duration) -> bool {
        if let Some(rate) = self.ids.get_mut(&key) {
            if rate.count == 0 {
                self.touched.push(key);
            }
            rate.count += 1;
            return rate.sender_known;
        }
        if self.learned(now) {
            self.new_ids += 1;
        }
        if self.ids.len() < MAX_KEPT {
            self.ids.insert(
                key,
                IdRate {
                    count: 1,
                    most: 0,
                    learn_until: self.learned_until.max(now + self.learn),
                    sender_known: false,
                },
            );
            self.touched.push(key);
        }
        false
    }

    /// A data parameter group from `sa`: a sender it was not learned with is a finding.
    /// Returns whether `sa` is now one of the group's senders (not when the table is full).
    fn sender(
        &mut self,
        pgn: u32,
        can_id: u32,
        sa: u8,
        now: Duration,
        out: &mut Vec<Finding>,
    ) -> bool {
        let learn_until = self.learned_until.max(now + self.learn);
        if self.groups.len() >= MAX_KEPT && !self.groups.contains_key(&pgn) {
            return false;
        }
        let group = self.groups.entry(pgn).or_insert(GroupSenders {
            senders: Addresses::default(),
            learn_until,
        });
        if group.senders.contains(sa) {
            return true;
        }
        if now < group.learn_until {
            group.senders.insert(sa);
            return true;
        }
        let known: Vec<u8> = group.senders.iter().collect();
        group.senders.insert(sa);
        let mut detail = format!(
            "PGN {pgn} (0x{pgn:04X}) from source address 0x{sa:02X}, which did not send it while the bus was learned; known sender"
        );
        let _ = write!(
            detail,
            "{} {}",
            if known.len() == 1 { "" } else { "s" },
            known
                .iter()
                .map(|s| format!("0x{s:02X}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if !self.active.contains(sa) {
            detail.push_str("; the address had sent nothing before");
        }
        let mut sources = vec![sa];
        sources.extend(known);
        out.push(Finding {
            sources,
            pgn: Some(pgn),
            can_id: Some(can_id),
            ..Finding::warning(SecurityKind::NewSender, (pgn << 8) | sa as u32, detail)
        });
        true
    }

    /// An address claim (PGN 60928) from `sa` carrying a NAME.
    fn claim(&mut self, sa: u8, data: &[u8], now: Duration, out: &mut Vec<Finding>) {
        let Ok(bytes) = <[u8; 8]>::try_from(data) else {
            return;
        };
        let name = u64::from_le_bytes(bytes);
        let held = |names: &[Option<u64>; 256]| names.iter().position(|n| *n == Some(name));
        if sa == NULL_ADDRESS {
            let recent = self
                .last_taken
                .filter(|taken| now.saturating_sub(taken.at) <= CLAIM_ANSWER);
            let (detail, address) = match (held(&self.names), recent) {
                (Some(address), _) => (
                    format!(
                        "the ECU with NAME 0x{name:016X}, which held address 0x{address:02X}, cannot claim an address"
                    ),
                    Some(address as u8),
                ),
                (None, Some(taken)) => (
                    format!(
                        "the ECU with NAME 0x{name:016X} cannot claim an address, {} ms after NAME 0x{:016X} took address 0x{:02X}{}",
                        now.saturating_sub(taken.at).as_millis(),
                        taken.by,
                        taken.address,
                        if taken.from == Some(name) {
                            ", which it held"
                        } else {
                            ": most likely its own"
                        }
                    ),
                    Some(taken.address),
                ),
                (None, None) => (
                    format!(
                        "an ECU with NAME 0x{name:016X} cannot claim an address: the one it wanted was taken"
                    ),
                    None,
                ),
            };
            out.push(Finding {
                severity: Severity::Critical,
                sources: address.into_iter().collect(),
                pgn: Some(PGN_ADDRESS_CLAIM),
                ..Finding::warning(SecurityKind::AddressLost, name as u32, detail)
            });
            return;
        }
        let answer = self
            .claim_requested
            .is_some_and(|asked| now.saturating_sub(asked) <= CLAIM_ANSWER);
        let finding = match self.names[sa as usize] {
            Some(holder) if holder == name => None,
            Some(holder) if name < holder => Some((
                SecurityKind::AddressHijack,
                Severity::Critical,
                format!(
                    "NAME 0x{name:016X} claimed address 0x{sa:02X}, held by NAME 0x{holder:016X}, and wins arbitration: the holder must give the address up"
                ),
            )),
            Some(holder) => Some((
                SecurityKind::AddressConflict,
                Severity::Warning,
                format!(
                    "NAME 0x{name:016X} claimed address 0x{sa:02X}, held by NAME 0x{holder:016X}, and loses arbitration: the claimant must move"
                ),
            )),
            None if self.active.contains(sa) && self.learned(now) && !answer => Some((
                SecurityKind::AddressHijack,
                Severity::Warning,
                format!(
                    "NAME 0x{name:016X} claimed address 0x{sa:02X}, in use by a sender whose claim was never heard, without being asked"
                ),
            )),
            None => None,
        };
        if let Some((kind, severity, detail)) = finding {
            if kind == SecurityKind::AddressHijack {
                self.last_taken = Some(Taken {
                    address: sa,
                    by: name,
                    from: self.names[sa as usize],
                    at: now,
                });
            }
            out.push(Finding {
                severity,
                sources: vec![sa],
                pgn: Some(PGN_ADDRESS_CLAIM),
                ..Finding::warning(kind, sa as u32, detail)
            });
        }
        if self.names[sa as usize].is_none_or(|holder| name < holder) {
            // The NAME moved: its old address is free.
            if let Some(old) = held(&self.names) {
                self.names[old] = None;
            }
            self.names[sa as usize] = Some(name);
        }
    }

    /// Ends every second before the one `now` falls in.
    fn roll(&mut self, now: Duration, config: &SecurityConfig, out: &mut Vec<Finding>) {
        let second = now.saturating_sub(self.start).as_secs();
        if second > self.second {
            self.end_second(config, out);
            self.second = second;
        }
    }

    /// Judges the second being counted and starts the next.
    pub fn end_second(&mut self, config: &SecurityConfig, out: &mut Vec<Finding>) {
        let end = self.start + Duration::from_secs(self.second + 1);
        let learning = end <= self.learned_until;
        let mut loudest: Option<(u32, u32)> = None;
        for key in self.touched.drain(..) {
            let Some(rate) = self.ids.get_mut(&key) else {
                continue;
            };
            let count = std::mem::take(&mut rate.count);
            // The flood's likeliest source: the identifier most above what it was learned at.
            let excess = count.saturating_sub(rate.most);
            if loudest.is_none_or(|(_, n)| excess > n) {
                loudest = Some((key, excess));
            }
            let id = key & 0x1FFF_FFFF;
            if count > config.id_flood {
                out.push(Finding {
                    can_id: Some(id),
                    sources: source_of(key),
                    ..Finding::warning(
                        SecurityKind::Flood,
                        key,
                        format!(
                            "identifier {} sent {count} times in one second on {} (no J1939 message comes more than 100 times a second)",
                            id_text(key),
                            self.name
                        ),
                    )
                });
            } else if end <= rate.learn_until {
                rate.most = rate.most.max(count);
            } else if f64::from(count) > f64::from(rate.most) * config.rate_factor + 5.0 {
                out.push(Finding {
                    can_id: Some(id),
                    sources: source_of(key),
                    ..Finding::warning(
                        SecurityKind::RateDrift,
                        key,
                        format!(
                            "identifier {} sent {count} times in one second, learned at most {}",
                            id_text(key),
                            rate.most
                        ),
                    )
                });
            }
        }
        let frames = std::mem::take(&mut self.frames);
        if learning {
            self.busiest = self.busiest.max(frames);
        } else if f64::from(frames) > f64::from(self.busiest) * config.bus_flood_factor + 100.0 {
            let (key, n) = loudest.unwrap_or_default();
            out.push(Finding {
                can_id: loudest.map(|(key, _)| key & 0x1FFF_FFFF),
                sources: source_of(key),
                ..Finding::warning(
                    SecurityKind::Flood,
                    u32::MAX,
                    format!(
                        "{frames} frames in one second on {}, learned at most {}; identifier {} sent {n} more than it was learned to",
                        self.name,
                        self.busiest,
                        id_text(key)
                    ),
                )
            });
        }
        let new_ids = std::mem::take(&mut self.new_ids);
        if new_ids > config.new_ids {
            out.push(Finding::warning(
                SecurityKind::Fuzzing,
                u32::MAX,
                format!(
                    "{new_ids} identifiers never seen on {} came in one second",
                    self.name
                ),
            ));
        }
        if self.requests.total > config.requests {
            let (sa, n) = self.requests.busiest().unwrap_or_default();
            let target = self
                .request_target
                .map_or("everyone".to_owned(), |da| format!("0x{da:02X}"));
            out.push(Finding {
                sources: vec![sa],
                pgn: Some(PGN_REQUEST),
                ..Finding::warning(
                    SecurityKind::RequestOverload,
                    sa as u32,
                    format!(
                        "{} requests in one second on {} (limit {}); 0x{sa:02X} sent {n}, the last to {target}",
                        self.requests.total, self.name, config.requests
                    ),
                )
            });
        }
        for (sa, n) in &self.tp_cm.counts {
            if *n > config.tp_cm_per_sender {
                out.push(Finding {
                    sources: vec![*sa],
                    pgn: Some(PGN_TP_CM),
                    ..Finding::warning(
                        SecurityKind::TransportAbuse,
                        *sa as u32,
                        format!(
                            "0x{sa:02X} sent {n} transport-protocol control frames in one second (limit {})",
                            config.tp_cm_per_sender
                        ),
                    )
                });
            }
        }
        if self.tp_cm.total > config.tp_cm_per_bus {
            // The busiest first.
            let mut counts = self.tp_cm.counts.clone();
            counts.sort_unstable_by_key(|&(sa, n)| (std::cmp::Reverse(n), sa));
            let senders: Vec<u8> = counts.iter().map(|&(sa, _)| sa).collect();
            out.push(Finding {
                sources: senders,
                pgn: Some(PGN_TP_CM),
                ..Finding::warning(
                    SecurityKind::TransportAbuse,
                    u32::MAX,
                    format!(
                        "{} transport-protocol control frames in one second on {} from {} or more senders (limit {})",
                        self.tp_cm.total,
                        self.name,
                        self.tp_cm.counts.len(),
                        config.tp_cm_per_bus
                    ),
                )
            });
        }
        for (sa, n) in &self.refused.counts {
            out.push(Finding {
                sources: vec![*sa],
                pgn: Some(PGN_TP_CM),
                ..Finding::warning(
                    SecurityKind::TransportAbuse,
                    1 << 16 | *sa as u32,
                    format!(
                        "0x{sa:02X} announced {n} transport sessions beyond its share of {} in one second; they were refused",
                        self.name
                    ),
                )
            });
        }
        if self.errors.total > config.bus_errors {
            let mut detail = format!(
                "{} frames broken off by the bus in one second on {} (limit {})",
                self.errors.total, self.name, config.bus_errors
            );
            let busiest = self.errors.busiest();
            if let (Some((sa, n)), Some(id)) = (busiest, self.error_id) {
                let _ = write!(
                    detail,
                    "; {n} of them from 0x{sa:02X}, the last with identifier {id:08X}"
                );
            }
            out.push(Finding {
                sources: busiest.map(|(sa, _)| vec![sa]).unwrap_or_default(),
                can_id: self.error_id,
                ..Finding::warning(SecurityKind::BusErrors, u32::MAX, detail)
            });
        }
        self.requests.clear();
        self.tp_cm.clear();
        self.refused.clear();
        self.errors.clear();
        self.error_id = None;
    }
}

/// The sender of an extended identifier, as a list of sources.
fn source_of(key: u32) -> Vec<u8> {
    if key & (1 << 31) != 0 {
        vec![(key & 0xFF) as u8]
    } else {
        Vec::new()
    }
}

/// An identifier as candump writes it.
fn id_text(key: u32) -> String {
    if key & (1 << 31) != 0 {
        format!("{:08X}", key & 0x1FFF_FFFF)
    } else {
        format!("{:03X}", key)
    }
}
