//! The J1939 transport protocol (SAE J1939-21): messages of 9 to 1785 bytes carried as a
//! connection-management frame (TP.CM, PGN 60416) and up to 255 data frames (TP.DT, PGN
//! 60160) of 7 bytes each.
//!
//! [`Reassembler`] is a pure state machine that listens: it never sends a CTS or an abort,
//! it follows both broadcast (BAM) transfers and the RTS/CTS connections other nodes hold
//! with each other, and it is driven only by the frames' monotonic timestamps (no clock of
//! its own), so tests replay any timing exactly.
//!
//! # Invariants
//!
//! - A session is keyed by (bus, source address, destination): one BAM per sender (to the
//!   global address 0xFF) and one connection per sender/receiver pair, as J1939-21 allows.
//!   A new announcement on a key replaces the old session (counted as an abort).
//! - A completed message is exactly as long as its announcement said, never longer.
//! - Capacity is shared fairly, whatever the bus sends: a sender holds at most
//!   [`SESSIONS_PER_SENDER`] sessions on a bus, a bus at most [`SESSIONS_PER_BUS`], and at
//!   most [`MAX_BUSES`] buses are followed, each session holding at most 1785 bytes. On a full
//!   bus a newcomer takes the place of the session whose sender stands worst: a sender that
//!   has sent nothing but transport frames (a spoofed address is one) before a sender the
//!   bus knows, then the sender holding the most sessions, then the longest idle. A newcomer
//!   that stands no better is refused. So one sender, or a crowd of addresses that send
//!   nothing else, cannot take the capacity the engine needs for its DM1. Every refusal is
//!   counted and handed to the caller ([`Reassembler::take_refusals`]), which reports it.
//! - A session that waits longer than the J1939-21 timeout for its next frame is dropped
//!   and counted: T1 (750 ms) between data packets, T2 (1250 ms) from a CTS to its data,
//!   T3 (1250 ms) from an RTS or the end of a window to the next CTS, T4 (1050 ms) after a
//!   CTS that holds the connection open.

use std::sync::Arc;
use std::time::Duration;

use super::j1939::J1939Id;
use crate::reading::Timestamp;
use crate::telemetry::Metrics;

/// TP.CM, connection management.
pub const PGN_TP_CM: u32 = 0xEC00;
/// TP.DT, data transfer.
pub const PGN_TP_DT: u32 = 0xEB00;

/// Longest message the transport protocol carries: 255 packets of 7 bytes.
pub const MAX_SIZE: usize = 1785;
/// Sessions one sender may hold on one bus: a broadcast and three connections.
pub const SESSIONS_PER_SENDER: usize = 4;
/// Sessions held on one bus; a bus that announces more is misbehaving.
pub const SESSIONS_PER_BUS: usize = 32;
/// Buses followed (a gateway has a handful); transfers on further buses are refused.
pub const MAX_BUSES: usize = 8;

/// J1939-21 timeouts.
pub const T1: Duration = Duration::from_millis(750);
pub const T2: Duration = Duration::from_millis(1250);
pub const T3: Duration = Duration::from_millis(1250);
pub const T4: Duration = Duration::from_millis(1050);

const GLOBAL: u8 = 0xFF;
const CM_RTS: u8 = 16;
const CM_CTS: u8 = 17;
const CM_END_OF_MSG_ACK: u8 = 19;
const CM_BAM: u8 = 32;
const CM_ABORT: u8 = 255;

/// A reassembled multi-packet message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpMessage {
    pub bus: Arc<str>,
    /// The parameter group the message carries.
    pub pgn: u32,
    pub source_address: u8,
    /// `None` for a broadcast (BAM), the receiver for an RTS/CTS connection.
    pub destination: Option<u8>,
    pub data: Vec<u8>,
    /// When its last packet arrived.
    pub at: Timestamp,
}

#[derive(Debug)]
enum Mode {
    Bam,
    /// `window_end` is the last packet the latest CTS allowed; 0 while no data may flow.
    Connection {
        window_end: u8,
    },
}

#[derive(Debug)]
struct Session {
    bus: Arc<str>,
    source: u8,
    destination: u8,
    pgn: u32,
    size: usize,
    packets: u8,
    /// The sequence number the next TP.DT must carry (from 1).
    next: u8,
    data: Vec<u8>,
    deadline: Duration,
    /// When its last frame came: the longest idle session goes first on a full bus.
    last: Duration,
    mode: Mode,
}

impl Session {
    fn is(&self, bus: &str, source: u8, destination: u8) -> bool {
        self.source == source && self.destination == destination && &*self.bus == bus
    }
}

/// Why an announcement got no session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Its sender already held [`SESSIONS_PER_SENDER`] sessions on the bus.
    OverShare,
    /// The bus held [`SESSIONS_PER_BUS`] sessions, none of a sender standing worse.
    BusFull,
    /// [`MAX_BUSES`] other buses are followed already.
    TooManyBuses,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::OverShare => "over_share",
            Refusal::BusFull => "bus_full",
            Refusal::TooManyBuses => "too_many_buses",
        }
    }
}

/// An announcement the reassembler refused, for whoever watches the bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportRefusal {
    pub bus: Arc<str>,
    pub source_address: u8,
    pub at: Timestamp,
    pub refusal: Refusal,
}

/// What the reassembler knows of one bus: which addresses have sent something other than
/// transport frames.
#[derive(Debug)]
struct BusSenders {
    name: Arc<str>,
    known: [u64; 4],
}

impl BusSenders {
    fn knows(&self, sa: u8) -> bool {
        self.known[sa as usize / 64] & (1 << (sa % 64)) != 0
    }
}

/// Follows every transport-protocol transfer on the buses it is fed.
#[derive(Debug)]
pub struct Reassembler {
    sessions: Vec<Session>,
    buses: Vec<BusSenders>,
    /// Refusals not yet taken by the caller; bounded, as the caller takes them each batch.
    refusals: Vec<TransportRefusal>,
    metrics: Arc<Metrics>,
}

/// Refusals kept between two [`Reassembler::take_refusals`]: a flood past this is still
/// counted, only not handed on one by one.
const MAX_PENDING_REFUSALS: usize = 256;

/// Why a TP.CM frame opened nothing.
enum Problem {
    /// Not what J1939-21 allows.
    Protocol(&'static str),
    /// Well formed, but over the capacity its sender or bus may have.
    Refused(Refusal),
}

impl From<&'static str> for Problem {
    fn from(problem: &'static str) -> Self {
        Problem::Protocol(problem)
    }
}

impl Reassembler {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Reassembler {
            sessions: Vec::new(),
            buses: Vec::new(),
            refusals: Vec::new(),
            metrics,
        }
    }

    /// Notes that `sa` sent a frame other than a transport frame on `bus`: such a sender
    /// stands before one that sends nothing else when a bus is full.
    #[inline]
    pub fn note_sender(&mut self, bus: &Arc<str>, sa: u8) {
        if let Some(b) = self.bus(bus) {
            self.buses[b].known[sa as usize / 64] |= 1 << (sa % 64);
        }
    }

    /// The refusals since the last call, oldest first.
    #[inline]
    pub fn take_refusals(&mut self, out: &mut Vec<TransportRefusal>) {
        out.append(&mut self.refusals);
    }

    /// The index of `bus` in the bus table, added if there is room.
    #[inline]
    fn bus(&mut self, bus: &Arc<str>) -> Option<usize> {
        if let Some(b) = crate::frame::find_bus(&self.buses, bus, |b| &b.name) {
            return Some(b);
        }
        if self.buses.len() >= MAX_BUSES {
            return None;
        }
        self.buses.push(BusSenders {
            name: bus.clone(),
            known: [0; 4],
        });
        Some(self.buses.len() - 1)
    }

    /// Makes room on bus `b` for a new session of `sa`, or says why there is none.
    fn admit(&mut self, b: usize, sa: u8) -> Result<(), Refusal> {
        let bus = &self.buses[b];
        let mut held = [0u8; 256];
        let mut on_bus = 0;
        for s in self.sessions.iter().filter(|s| *s.bus == *bus.name) {
            held[s.source as usize] += 1;
            on_bus += 1;
        }
        if held[sa as usize] as usize >= SESSIONS_PER_SENDER {
            return Err(Refusal::OverShare);
        }
        if on_bus < SESSIONS_PER_BUS {
            return Ok(());
        }
        // Worse standing compares greater: unknown before known, then more sessions held.
        let standing = |source: u8, held: u8| (!bus.knows(source), held);
        let newcomer = standing(sa, held[sa as usize] + 1);
        let victim = self
            .sessions
            .iter()
            .enumerate()
            .filter(|(_, s)| *s.bus == *bus.name)
            .max_by_key(|(_, s)| {
                (
                    standing(s.source, held[s.source as usize]),
                    std::cmp::Reverse(s.last),
                )
            })
            .filter(|(_, s)| standing(s.source, held[s.source as usize]) > newcomer)
            .map(|(i, _)| i);
        match victim {
            Some(i) => {
                let gone = self.sessions.swap_remove(i);
                Metrics::inc(&self.metrics.tp_sessions_evicted_total);
                tracing::debug!(
                    event = "tp_session_evicted",
                    bus = &*gone.bus,
                    sa = gone.source,
                    for_sa = sa
                );
                Ok(())
            }
            None => Err(Refusal::BusFull),
        }
    }

    /// Sessions in progress.
    #[cfg(test)]
    pub fn open_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Drops the sessions whose deadline passed before `now` (monotonic), counting each as a
    /// timeout. [`Reassembler::on_frame`] calls it; a caller with a quiet bus may too.
    #[inline]
    pub fn expire(&mut self, now: Duration) -> usize {
        // Called for every frame: most of the time no transfer is open.
        if self.sessions.is_empty() {
            return 0;
        }
        let before = self.sessions.len();
        self.sessions.retain(|s| s.deadline >= now);
        let expired = before - self.sessions.len();
        if expired > 0 {
            Metrics::add(&self.metrics.tp_timeouts_total, expired as u64);
        }
        expired
    }

    /// Feeds one frame. Frames of other PGNs than TP.CM and TP.DT are ignored. Returns the
    /// message this frame completes, if any.
    pub fn on_frame(
        &mut self,
        bus: &Arc<str>,
        id: J1939Id,
        data: &[u8],
        at: Timestamp,
    ) -> Option<TpMessage> {
        self.expire(at.mono);
        let result = match id.pgn {
            PGN_TP_CM => self.on_cm(bus, id, data, at.mono).map(|()| None),
            PGN_TP_DT => self.on_dt(bus, id, data, at).map_err(Problem::Protocol),
            _ => Ok(None),
        };
        match result {
            Ok(message) => message,
            Err(Problem::Refused(refusal)) => {
                Metrics::inc(&self.metrics.tp_sessions_refused_total);
                tracing::debug!(
                    event = "tp_session_refused",
                    bus = &**bus,
                    sa = id.source_address,
                    refusal = refusal.as_str()
                );
                if self.refusals.len() < MAX_PENDING_REFUSALS {
                    self.refusals.push(TransportRefusal {
                        bus: bus.clone(),
                        source_address: id.source_address,
                        at,
                        refusal,
                    });
                }
                None
            }
            Err(Problem::Protocol(problem)) => {
                Metrics::inc(&self.metrics.tp_errors_total);
                tracing::debug!(
                    event = "tp_frame_rejected",
                    bus = &**bus,
                    sa = id.source_address,
                    problem
                );
                None
            }
        }
    }

    fn find(&self, bus: &str, source: u8, destination: u8) -> Option<usize> {
        self.sessions
            .iter()
            .position(|s| s.is(bus, source, destination))
    }

    fn on_cm(
        &mut self,
        bus: &Arc<str>,
        id: J1939Id,
        data: &[u8],
        now: Duration,
    ) -> Result<(), Problem> {
        let data: &[u8; 8] = data.try_into().map_err(|_| "TP.CM is not 8 bytes long")?;
        let sa = id.source_address;
        let da = id.destination.unwrap_or(GLOBAL);
        let pgn = u32::from_le_bytes([data[5], data[6], data[7], 0]);
        match data[0] {
            CM_BAM | CM_RTS => {
                let bam = data[0] == CM_BAM;
                if bam != (da == GLOBAL) {
                    return Err("BAM must go to the global address and RTS to one node".into());
                }
                let size = u16::from_le_bytes([data[1], data[2]]) as usize;
                let packets = data[3];
                if !(9..=MAX_SIZE).contains(&size) || packets as usize != size.div_ceil(7) {
                    return Err(
                        "announced size and packet count disagree or are out of range".into(),
                    );
                }
                if let Some(i) = self.find(bus, sa, da) {
                    self.sessions.swap_remove(i);
                    Metrics::inc(&self.metrics.tp_aborts_total);
                }
                let b = self
                    .bus(bus)
                    .ok_or(Problem::Refused(Refusal::TooManyBuses))?;
                self.admit(b, sa).map_err(Problem::Refused)?;
                let (mode, deadline) = if bam {
                    (Mode::Bam, now + T1)
                } else {
                    (Mode::Connection { window_end: 0 }, now + T3)
                };
                self.sessions.push(Session {
                    bus: bus.clone(),
                    source: sa,
                    destination: da,
                    pgn,
                    size,
                    packets,
                    next: 1,
                    data: Vec::with_capacity(size),
                    deadline,
                    last: now,
                    mode,
                });
                Metrics::inc(&self.metrics.tp_sessions_opened_total);
                Ok(())
            }
            CM_CTS => {
                // Sent by the receiver back to the originator.
                let i = self.find(bus, da, sa).ok_or("CTS outside any connection")?;
                let s = &mut self.sessions[i];
                let (count, next) = (data[1], data[2]);
                if s.pgn != pgn || matches!(s.mode, Mode::Bam) {
                    self.sessions.swap_remove(i);
                    return Err("CTS for another PGN than the connection's".into());
                }
                s.last = now;
                if count == 0 {
                    s.mode = Mode::Connection { window_end: 0 };
                    s.deadline = now + T4;
                    return Ok(());
                }
                // A CTS may ask to resend from an earlier packet, never skip one.
                if next == 0 || next > s.next || next > s.packets {
                    self.sessions.swap_remove(i);
                    return Err("CTS asks for a packet out of sequence".into());
                }
                s.next = next;
                s.data.truncate((next as usize - 1) * 7);
                s.mode = Mode::Connection {
                    window_end: (next as u16 + count as u16 - 1).min(s.packets as u16) as u8,
                };
                s.deadline = now + T2;
                Ok(())
            }
            CM_END_OF_MSG_ACK => {
                // Normally the message was delivered at its last packet and the session is
                // gone; an acknowledgement of an incomplete transfer ends it undelivered.
                match self.find(bus, da, sa) {
                    Some(i) => {
                        self.sessions.swap_remove(i);
                        Err("end-of-message acknowledgement before the last packet".into())
                    }
                    None => Ok(()),
                }
            }
            CM_ABORT => {
                // Either side of a connection may abort it.
                let found = self
                    .find(bus, sa, da)
                    .or_else(|| self.find(bus, da, sa))
                    .filter(|&i| self.sessions[i].pgn == pgn);
                if let Some(i) = found {
                    self.sessions.swap_remove(i);
                    Metrics::inc(&self.metrics.tp_aborts_total);
                }
                Ok(())
            }
            _ => Err("unknown TP.CM control byte".into()),
        }
    }

    fn on_dt(
        &mut self,
        bus: &Arc<str>,
        id: J1939Id,
        data: &[u8],
        at: Timestamp,
    ) -> Result<Option<TpMessage>, &'static str> {
        let sa = id.source_address;
        let da = id.destination.unwrap_or(GLOBAL);
        let i = self.find(bus, sa, da).ok_or("TP.DT outside any transfer")?;
        let s = &mut self.sessions[i];
        let Some((&seq, bytes)) = data.split_first() else {
            self.sessions.swap_remove(i);
            return Err("empty TP.DT");
        };
        let allowed = match s.mode {
            Mode::Bam => s.packets,
            Mode::Connection { window_end } => window_end,
        };
        if seq != s.next || seq > allowed {
            self.sessions.swap_remove(i);
            return Err("TP.DT out of sequence or beyond what the CTS allowed");
        }
        let wanted = (s.size - s.data.len()).min(7);
        if bytes.len() < wanted {
            self.sessions.swap_remove(i);
            return Err("TP.DT too short for the bytes still announced");
        }
        s.data.extend_from_slice(&bytes[..wanted]);
        if seq == s.packets {
            let s = self.sessions.swap_remove(i);
            if s.data.len() != s.size {
                return Err("transfer ended with fewer bytes than announced");
            }
            Metrics::inc(&self.metrics.tp_messages_total);
            return Ok(Some(TpMessage {
                bus: s.bus,
                pgn: s.pgn,
                source_address: s.source,
                destination: (s.destination != GLOBAL).then_some(s.destination),
                data: s.data,
                at,
            }));
        }
        s.next += 1;
        s.last = at.mono;
        s.deadline = at.mono
            + match s.mode {
                Mode::Connection { window_end } if seq == window_end => T3,
                _ => T1,
            };
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame to feed: milliseconds since start, CAN id, data.
    type Step = (u64, u32, &'static [u8]);

    fn run(steps: &[Step]) -> (Vec<TpMessage>, crate::telemetry::MetricsSnapshot, usize) {
        let metrics = Arc::new(Metrics::default());
        let mut r = Reassembler::new(metrics.clone());
        let bus: Arc<str> = Arc::from("can1");
        let mut out = Vec::new();
        for &(ms, id, data) in steps {
            let at = Timestamp {
                wall_us: ms as i64 * 1000,
                mono: Duration::from_millis(ms),
            };
            out.extend(r.on_frame(&bus, J1939Id::from_can_id(id), data, at));
        }
        (out, metrics.snapshot(), r.open_sessions())
    }

    /// The DM1 broadcast of the real truck log, with its real timing.
    const BAM: [Step; 4] = [
        (
            0,
            0x1CECFF00,
            &[0x20, 0x12, 0x00, 0x03, 0xFF, 0xCA, 0xFE, 0x00],
        ),
        (
            59,
            0x1CEBFF00,
            &[0x01, 0x43, 0xFF, 0xD4, 0x03, 0x09, 0x7E, 0x90],
        ),
        (
            119,
            0x1CEBFF00,
            &[0x02, 0x0C, 0x14, 0x02, 0x61, 0x02, 0x09, 0x01],
        ),
        (
            179,
            0x1CEBFF00,
            &[0x03, 0x61, 0x02, 0x0C, 0x03, 0xFF, 0xFF, 0xFF],
        ),
    ];

    #[test]
    fn a_bam_from_the_real_log_reassembles_to_its_announced_18_bytes() {
        let (out, m, open) = run(&BAM);
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].pgn, out[0].source_address, out[0].destination),
            (65226, 0, None)
        );
        assert_eq!(
            out[0].data,
            [
                0x43, 0xFF, 0xD4, 0x03, 0x09, 0x7E, 0x90, 0x0C, 0x14, 0x02, 0x61, 0x02, 0x09, 0x01,
                0x61, 0x02, 0x0C, 0x03
            ]
        );
        assert_eq!(out[0].at.mono, Duration::from_millis(179));
        assert_eq!((m.tp_messages_total, m.tp_errors_total, open), (1, 0, 0));
    }

    #[test]
    fn a_bam_gap_longer_than_t1_times_out() {
        let mut steps = BAM;
        steps[2].0 = 59 + 751;
        steps[3].0 = 59 + 811;
        let (out, m, _) = run(&steps);
        assert!(out.is_empty());
        // Packet 2 arrives after the session expired: one timeout, then two orphans.
        assert_eq!((m.tp_timeouts_total, m.tp_errors_total), (1, 2));
        // Exactly T1 is still in time.
        steps[2].0 = 59 + 750;
        steps[3].0 = 59 + 800;
        assert_eq!(run(&steps).0.len(), 1);
    }

    #[test]
    fn out_of_order_and_repeated_packets_end_the_transfer() {
        let (out, m, open) = run(&[BAM[0], BAM[1], BAM[1], BAM[2], BAM[3]]);
        assert!(out.is_empty());
        assert_eq!((m.tp_errors_total, open), (3, 0));
    }

    #[test]
    fn a_new_bam_from_the_same_sender_replaces_the_old_one() {
        let (out, m, _) = run(&[
            BAM[0],
            BAM[1],
            (100, BAM[0].1, BAM[0].2),
            (110, BAM[1].1, BAM[1].2),
            BAM[2],
            BAM[3],
        ]);
        assert_eq!(out.len(), 1);
        assert_eq!(m.tp_aborts_total, 1);
    }

    #[test]
    fn two_senders_are_two_sessions() {
        // The same DM1 from SA 0x00 and SA 0x03, packets interleaved.
        let from3 = |id: u32| (id & !0xFF) | 0x03;
        let steps: Vec<Step> = BAM
            .iter()
            .flat_map(|&(ms, id, d)| [(ms, id, d), (ms + 1, from3(id), d)])
            .collect();
        let (out, _, _) = run(&steps);
        assert_eq!(
            out.iter().map(|m| m.source_address).collect::<Vec<_>>(),
            [0x00, 0x03]
        );
        assert_eq!(out[0].data, out[1].data);
    }

    // RTS/CTS between 0x00 (originator) and 0xF9 (a service tool), 20 bytes in 3 packets,
    // sent as windows of 2 then 1, with one packet asked again.
    const RTS: Step = (0, 0x1CECF900, &[16, 20, 0, 3, 2, 0xCA, 0xFE, 0x00]);
    const CTS_1: Step = (10, 0x1CEC00F9, &[17, 2, 1, 0xFF, 0xFF, 0xCA, 0xFE, 0x00]);
    const DT_1: Step = (20, 0x1CEBF900, &[1, 1, 2, 3, 4, 5, 6, 7]);
    const DT_2: Step = (30, 0x1CEBF900, &[2, 8, 9, 10, 11, 12, 13, 14]);
    const CTS_2_AGAIN: Step = (40, 0x1CEC00F9, &[17, 2, 2, 0xFF, 0xFF, 0xCA, 0xFE, 0x00]);
    const DT_2_AGAIN: Step = (50, 0x1CEBF900, &[2, 8, 9, 10, 11, 12, 13, 14]);
    const DT_3: Step = (60, 0x1CEBF900, &[3, 15, 16, 17, 18, 19, 20, 0xFF]);
    const ACK: Step = (70, 0x1CEC00F9, &[19, 20, 0, 3, 0xFF, 0xCA, 0xFE, 0x00]);

    #[test]
    fn an_rts_cts_connection_is_followed_including_a_resend() {
        let (out, m, open) = run(&[RTS, CTS_1, DT_1, DT_2, CTS_2_AGAIN, DT_2_AGAIN, DT_3, ACK]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].destination, Some(0xF9));
        assert_eq!(out[0].data, (1..=20).collect::<Vec<u8>>());
        assert_eq!((m.tp_errors_total, open), (0, 0));
    }

    #[test]
    fn data_without_a_cts_or_beyond_its_window_is_refused() {
        let (out, m, _) = run(&[RTS, DT_1]);
        assert!(out.is_empty());
        assert_eq!(m.tp_errors_total, 1);
        let (out, m, _) = run(&[RTS, CTS_1, DT_1, DT_2, DT_3]);
        assert!(out.is_empty());
        assert_eq!(m.tp_errors_total, 1);
    }

    #[test]
    fn connection_timeouts_follow_t2_t3_and_t4() {
        // T2: no data 1250 ms after a CTS.
        let late = |s: Step, ms| (ms, s.1, s.2);
        let (_, m, _) = run(&[RTS, CTS_1, late(DT_1, 10 + 1251)]);
        assert_eq!(m.tp_timeouts_total, 1);
        // T3: no CTS 1250 ms after the RTS.
        let (_, m, _) = run(&[RTS, late(CTS_1, 1251)]);
        assert_eq!(m.tp_timeouts_total, 1);
        // T4: a hold (CTS for 0 packets) keeps the connection 1050 ms, not 1250.
        const HOLD: Step = (10, 0x1CEC00F9, &[17, 0, 1, 0xFF, 0xFF, 0xCA, 0xFE, 0x00]);
        let (_, m, _) = run(&[RTS, HOLD, late(CTS_1, 10 + 1051)]);
        assert_eq!(m.tp_timeouts_total, 1);
        let (out, m, _) = run(&[
            RTS,
            HOLD,
            late(CTS_1, 1000),
            late(DT_1, 1010),
            late(DT_2, 1020),
            late(CTS_2_AGAIN, 1030),
            late(DT_2_AGAIN, 1040),
            late(DT_3, 1050),
        ]);
        assert_eq!((out.len(), m.tp_timeouts_total), (1, 0));
    }

    #[test]
    fn an_abort_from_either_side_ends_the_connection() {
        const ABORT_BY_RECEIVER: Step = (
            25,
            0x1CEC00F9,
            &[255, 3, 0xFF, 0xFF, 0xFF, 0xCA, 0xFE, 0x00],
        );
        let (out, m, open) = run(&[RTS, CTS_1, DT_1, ABORT_BY_RECEIVER, DT_2]);
        assert!(out.is_empty());
        assert_eq!((m.tp_aborts_total, m.tp_errors_total, open), (1, 1, 0));
    }

    #[test]
    fn bad_announcements_are_refused() {
        for data in [
            &[0x20, 0x12, 0x00, 0x04, 0xFF, 0xCA, 0xFE, 0x00][..], // 18 bytes is 3 packets, not 4
            &[0x20, 0x08, 0x00, 0x02, 0xFF, 0xCA, 0xFE, 0x00],     // 8 bytes fit one frame
            &[0x20, 0xFA, 0x06, 0xFF, 0xFF, 0xCA, 0xFE, 0x00],     // 1786 bytes
            &[0x20, 0x12, 0x00, 0x03, 0xFF, 0xCA, 0xFE],           // 7-byte TP.CM
            &[0x42, 0x12, 0x00, 0x03, 0xFF, 0xCA, 0xFE, 0x00],     // no such control byte
        ] {
            let (_, m, open) = run(&[(0, 0x1CECFF00, data)]);
            assert_eq!((m.tp_errors_total, open), (1, 0), "{data:02X?}");
        }
        // A BAM sent to one node instead of the global address.
        let (_, m, _) = run(&[(0, 0x1CEC0300, BAM[0].2)]);
        assert_eq!(m.tp_errors_total, 1);
    }

    /// A BAM announcement of 18 bytes (3 packets) from `sa` on `bus`.
    fn announce(r: &mut Reassembler, bus: &Arc<str>, sa: u8, ms: u64) {
        r.on_frame(
            bus,
            J1939Id::from_can_id(0x1CECFF00 | sa as u32),
            BAM[0].2,
            at_ms(ms),
        );
    }

    fn at_ms(ms: u64) -> Timestamp {
        Timestamp {
            wall_us: ms as i64 * 1000,
            mono: Duration::from_millis(ms),
        }
    }

    /// Feeds the engine's real DM1 broadcast (SA 0x00) starting at `start` ms, with
    /// `between` called before each of its frames; returns what it completed.
    fn engine_dm1(
        r: &mut Reassembler,
        bus: &Arc<str>,
        start: u64,
        mut between: impl FnMut(&mut Reassembler, u64),
    ) -> Vec<TpMessage> {
        let mut out = Vec::new();
        for &(ms, id, data) in &BAM {
            between(r, start + ms);
            out.extend(r.on_frame(bus, J1939Id::from_can_id(id), data, at_ms(start + ms)));
        }
        out
    }

    #[test]
    fn one_sender_holds_its_share_and_the_engine_still_gets_its_dm1_through() {
        let metrics = Arc::new(Metrics::default());
        let mut r = Reassembler::new(metrics.clone());
        let bus: Arc<str> = Arc::from("can1");
        r.note_sender(&bus, 0x00);
        // A service tool at 0xF9 opens a connection to every address (one RTS each).
        let rts = |r: &mut Reassembler, ms: u64| {
            for da in 0..=0xFEu8 {
                r.on_frame(
                    &bus,
                    J1939Id::from_can_id(0x1CEC00F9 | (da as u32) << 8),
                    &[16, 20, 0, 3, 2, 0xCA, 0xFE, 0x00],
                    at_ms(ms),
                );
            }
        };
        rts(&mut r, 0);
        assert_eq!(r.open_sessions(), SESSIONS_PER_SENDER);
        let mut refusals = Vec::new();
        r.take_refusals(&mut refusals);
        assert_eq!(refusals.len(), 255 - SESSIONS_PER_SENDER);
        assert!(
            refusals
                .iter()
                .all(|f| f.refusal == Refusal::OverShare && f.source_address == 0xF9)
        );
        // It keeps re-sending all of them while the engine broadcasts its DM1.
        let out = engine_dm1(&mut r, &bus, 100, |r, ms| rts(r, ms));
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].pgn, out[0].source_address), (65226, 0x00));
        assert_eq!(metrics.snapshot().tp_sessions_evicted_total, 0);
    }

    #[test]
    fn spoofed_addresses_that_send_nothing_else_give_way_to_the_engine() {
        let metrics = Arc::new(Metrics::default());
        let mut r = Reassembler::new(metrics.clone());
        let bus: Arc<str> = Arc::from("can1");
        r.note_sender(&bus, 0x00);
        // 64 addresses that send nothing but 1785-byte announcements, each every 500 ms
        // (one every 7 ms, as in the attack this was measured with).
        let flood = |r: &mut Reassembler, from: u64, to: u64| {
            for ms in from..to {
                let slot = ms % 500;
                if slot % 7 == 0 && slot / 7 < 64 {
                    let sa = 0x80 + (slot / 7) as u8;
                    r.on_frame(
                        &bus,
                        J1939Id::from_can_id(0x1CECFF00 | sa as u32),
                        &[0x20, 0xF9, 0x06, 0xFF, 0xFF, 0xCA, 0xFE, 0x00],
                        at_ms(ms),
                    );
                }
            }
        };
        flood(&mut r, 0, 1000);
        assert_eq!(r.open_sessions(), SESSIONS_PER_BUS);
        let mut last = 1000;
        let out = engine_dm1(&mut r, &bus, 1000, |r, ms| {
            flood(r, last, ms);
            last = ms;
        });
        assert_eq!(out.len(), 1, "the engine's DM1 got through the flood");
        assert!(r.open_sessions() <= SESSIONS_PER_BUS);
        let s = metrics.snapshot();
        assert!(s.tp_sessions_evicted_total >= 1);
        assert!(s.tp_sessions_refused_total > 0);
    }

    #[test]
    fn a_full_bus_refuses_a_stranger_and_another_bus_keeps_its_own_capacity() {
        let metrics = Arc::new(Metrics::default());
        let mut r = Reassembler::new(metrics.clone());
        let (can0, can1): (Arc<str>, Arc<str>) = (Arc::from("can0"), Arc::from("can1"));
        // can1 full of broadcasts from 32 senders it knows.
        for sa in 0..SESSIONS_PER_BUS as u8 {
            r.note_sender(&can1, 0x40 + sa);
            announce(&mut r, &can1, 0x40 + sa, 0);
        }
        announce(&mut r, &can1, 0x90, 1);
        let mut refusals = Vec::new();
        r.take_refusals(&mut refusals);
        assert_eq!(
            refusals.iter().map(|f| f.refusal).collect::<Vec<_>>(),
            [Refusal::BusFull]
        );
        // can0's engine is not affected by can1's crowd.
        r.note_sender(&can0, 0x00);
        assert_eq!(engine_dm1(&mut r, &can0, 2, |_, _| {}).len(), 1);
        // Buses past the table are refused, by name.
        for n in 0..MAX_BUSES {
            announce(&mut r, &Arc::from(format!("vcan{n}")), 0x00, 3);
        }
        r.take_refusals(&mut refusals);
        assert_eq!(refusals.last().unwrap().refusal, Refusal::TooManyBuses);
        assert_eq!(metrics.snapshot().tp_sessions_refused_total, 1 + 2);
    }
}

#[cfg(test)]
mod properties {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    /// TP frames among a few nodes, with control bytes and sizes near the interesting ones,
    /// mixed with arbitrary bytes.
    fn frame() -> impl Strategy<Value = (u64, u32, Vec<u8>)> {
        let node = prop::sample::select(vec![0x00u8, 0x03, 0xF9, 0xFF]);
        let control = prop::sample::select(vec![16u8, 17, 19, 32, 255, 0]);
        let cm = (
            control,
            0u16..1800,
            0u8..=255,
            any::<u8>(),
            prop::sample::select(vec![0xFECAu32, 0xFEE3, 0x1234]),
        )
            .prop_map(|(c, size, packets, b4, pgn)| {
                let s = size.to_le_bytes();
                let p = pgn.to_le_bytes();
                vec![c, s[0], s[1], packets, b4, p[0], p[1], p[2]]
            });
        let dt = (1u8..8, prop::collection::vec(any::<u8>(), 0..8)).prop_map(|(seq, mut rest)| {
            rest.insert(0, seq);
            rest
        });
        let data = prop_oneof![cm, dt, prop::collection::vec(any::<u8>(), 0..=8)];
        (0u64..900, prop::bool::ANY, node.clone(), node, data).prop_map(
            |(gap, is_cm, sa, da, data)| {
                let pf = if is_cm { 0xEC } else { 0xEB };
                (
                    gap,
                    0x1C00_0000 | pf << 16 | (da as u32) << 8 | sa as u32,
                    data,
                )
            },
        )
    }

    /// A BAM transfer, mostly well formed: its announcement and packets, some packets
    /// short, repeated or missing, with gaps that sometimes exceed T1.
    fn transfer() -> impl Strategy<Value = Vec<(u64, u32, Vec<u8>)>> {
        (
            9usize..120,
            prop::sample::select(vec![0x00u8, 0x03]),
            any::<bool>(),
        )
            .prop_flat_map(|(size, sa, honest)| {
                let packets = size.div_ceil(7) as u8 + if honest { 0 } else { 1 };
                let s = (size as u16).to_le_bytes();
                let cm = vec![CM_BAM, s[0], s[1], packets, 0xFF, 0xCA, 0xFE, 0x00];
                let dts = prop::collection::vec(
                    (0u64..800, 0u8..=2, 1usize..=8),
                    packets as usize..=packets as usize + 2,
                );
                dts.prop_map(move |dts| {
                    let mut frames = vec![(0, 0x1CECFF00 | sa as u32, cm.clone())];
                    for (i, (gap, repeat, len)) in dts.into_iter().enumerate() {
                        let seq = (i as u8 + 1).saturating_sub(repeat / 2);
                        let data: Vec<u8> = std::iter::once(seq)
                            .chain(std::iter::repeat_n(0xA5, len - 1))
                            .collect();
                        frames.push((
                            gap / 4 + if gap > 790 { 760 } else { 0 },
                            0x1CEBFF00 | sa as u32,
                            data,
                        ));
                    }
                    frames
                })
            })
    }

    proptest! {
        #[test]
        fn arbitrary_frames_never_panic_nor_overrun_the_announcement(
            frames in prop::collection::vec(prop_oneof![frame().prop_map(|f| vec![f]), transfer()], 0..40)
                .prop_map(|v| v.into_iter().flatten().collect::<Vec<_>>())
        ) {
            let mut r = Reassembler::new(Arc::default());
            let bus: Arc<str> = Arc::from("can0");
            let mut now = 0u64;
            // The last announced size per (sender, receiver).
            let mut announced: HashMap<(u8, u8), usize> = HashMap::new();
            for (gap, id, data) in frames {
                now += gap;
                let j = J1939Id::from_can_id(id);
                if j.pgn == PGN_TP_CM && data.len() == 8 && (data[0] == CM_BAM || data[0] == CM_RTS) {
                    announced.insert((j.source_address, j.destination.unwrap_or(GLOBAL)), u16::from_le_bytes([data[1], data[2]]) as usize);
                }
                let at = Timestamp { wall_us: now as i64 * 1000, mono: Duration::from_millis(now) };
                if let Some(m) = r.on_frame(&bus, j, &data, at) {
                    let size = announced[&(m.source_address, m.destination.unwrap_or(GLOBAL))];
                    prop_assert_eq!(m.data.len(), size);
                    prop_assert!(m.data.len() <= MAX_SIZE);
                }
                prop_assert!(r.open_sessions() <= SESSIONS_PER_BUS);
            }
        }
    }
}
