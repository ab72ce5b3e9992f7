//! The monitor: one [`BusWatch`] per bus, and the reports of what they find.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::bus::{BusWatch, Finding};
use super::config::SecurityConfig;
use super::event::{SecurityEvent, SecurityKind};
use crate::decode::TransportRefusal;
use crate::frame::{BusError, CanFrame};
use crate::reading::Timestamp;
use crate::telemetry::Metrics;

/// Buses watched; frames on further buses are counted, not watched.
pub const MAX_BUSES: usize = 8;
/// Findings remembered for holding back repeats; past this, the oldest are forgotten.
const MAX_REMEMBERED: usize = 4096;
/// Reports of one kind on one bus per `report_every`, whatever they are about: a fuzzer
/// makes a new finding with every frame, and the fleet needs to hear of it, not each one.
const REPORTS_PER_KIND: u32 = 8;

/// When a finding was last reported, and how many were held back since.
#[derive(Debug)]
struct Reported {
    at: Duration,
    held_back: u64,
}

/// The J1939 intrusion monitor (see the module's doc).
#[derive(Debug)]
pub struct Monitor {
    config: SecurityConfig,
    buses: Vec<BusWatch>,
    reported: HashMap<(usize, SecurityKind, u32), Reported>,
    /// Per bus and kind: when the window began, reports in it, findings held back past
    /// [`REPORTS_PER_KIND`] (carried by the next report of the kind).
    budget: HashMap<(usize, SecurityKind), (Duration, u32, u64)>,
    findings: Vec<Finding>,
    metrics: Arc<Metrics>,
}

impl Monitor {
    pub fn new(config: SecurityConfig, metrics: Arc<Metrics>) -> Monitor {
        Monitor {
            config,
            buses: Vec::new(),
            reported: HashMap::new(),
            budget: HashMap::new(),
            findings: Vec::new(),
            metrics,
        }
    }

    /// Watches one frame; what it completes is appended to `out`.
    pub fn observe(&mut self, frame: &CanFrame, out: &mut Vec<SecurityEvent>) {
        if !self.config.enabled {
            return;
        }
        let Some(b) = self.bus(&frame.bus, frame.at.mono) else {
            Metrics::inc(&self.metrics.security_frames_unwatched_total);
            return;
        };
        let key = frame.id | if frame.extended { 1 << 31 } else { 0 };
        let mut findings = std::mem::take(&mut self.findings);
        self.buses[b].frame(
            key,
            frame.payload(),
            frame.at.mono,
            &self.config,
            &mut findings,
        );
        self.report(b, frame.at, &mut findings, out);
        self.findings = findings;
    }

    /// Watches an error frame a log recorded.
    pub fn bus_error(&mut self, error: &BusError, out: &mut Vec<SecurityEvent>) {
        if !self.config.enabled {
            return;
        }
        let Some(b) = self.bus(&error.bus, error.at.mono) else {
            return;
        };
        let mut findings = std::mem::take(&mut self.findings);
        self.buses[b].bus_error(error.id, error.at.mono, &self.config, &mut findings);
        self.report(b, error.at, &mut findings, out);
        self.findings = findings;
    }

    /// Watches the transport announcements the decoder refused.
    pub fn refused(&mut self, refusal: &TransportRefusal, out: &mut Vec<SecurityEvent>) {
        if !self.config.enabled {
            return;
        }
        let Some(b) = self.bus(&refusal.bus, refusal.at.mono) else {
            return;
        };
        let mut findings = std::mem::take(&mut self.findings);
        self.buses[b].refused(refusal, &self.config, &mut findings);
        self.report(b, refusal.at, &mut findings, out);
        self.findings = findings;
    }

    /// Judges every bus's second in progress: at the end of a log, so its last second
    /// counts too.
    pub fn finish(&mut self, at: Timestamp, out: &mut Vec<SecurityEvent>) {
        let mut findings = std::mem::take(&mut self.findings);
        for b in 0..self.buses.len() {
            self.buses[b].end_second(&self.config, &mut findings);
            self.report(b, at, &mut findings, out);
        }
        self.findings = findings;
    }

    fn bus(&mut self, name: &Arc<str>, now: Duration) -> Option<usize> {
        if let Some(b) = crate::frame::find_bus(&self.buses, name, |b| &b.name) {
            return Some(b);
        }
        if self.buses.len() >= MAX_BUSES {
            return None;
        }
        self.buses
            .push(BusWatch::new(name.clone(), now, self.config.learn));
        Some(self.buses.len() - 1)
    }

    /// Turns findings into events, holding back a repeat of one reported within
    /// `report_every`.
    fn report(
        &mut self,
        b: usize,
        at: Timestamp,
        findings: &mut Vec<Finding>,
        out: &mut Vec<SecurityEvent>,
    ) {
        for finding in findings.drain(..) {
            Metrics::inc(&self.metrics.security_findings_total);
            let key = (b, finding.kind, finding.subject);
            let every = self.config.report_every;
            let budget = self
                .budget
                .entry((b, finding.kind))
                .or_insert((at.mono, 0, 0));
            if at.mono.saturating_sub(budget.0) >= every {
                *budget = (at.mono, 0, budget.2);
            }
            if budget.1 >= REPORTS_PER_KIND && !self.reported.contains_key(&key) {
                budget.2 += 1;
                continue;
            }
            let count = match self.reported.get_mut(&key) {
                Some(last) if at.mono.saturating_sub(last.at) < self.config.report_every => {
                    last.held_back += 1;
                    continue;
                }
                Some(last) => {
                    let count = last.held_back + 1;
                    *last = Reported {
                        at: at.mono,
                        held_back: 0,
                    };
                    count
                }
                None => {
                    if self.reported.len() >= MAX_REMEMBERED {
                        self.reported
                            .retain(|_, r| at.mono.saturating_sub(r.at) < every);
                    }
                    if self.reported.len() < MAX_REMEMBERED {
                        self.reported.insert(
                            key,
                            Reported {
                                at: at.mono,
                                held_back: 0,
                            },
                        );
                    }
                    1
                }
            };
            let budget = self.budget.get_mut(&(b, finding.kind)).expect("made above");
            budget.1 += 1;
            let count = count + std::mem::take(&mut budget.2);
            Metrics::inc(&self.metrics.security_events_total);
            let bus = self.buses[b].name.clone();
            tracing::warn!(
                event = "security_finding",
                bus = &*bus,
                kind = finding.kind.as_str(),
                severity = %finding.severity,
                count,
                detail = %finding.detail
            );
            out.push(SecurityEvent {
                at,
                bus,
                kind: finding.kind,
                severity: finding.severity,
                sources: finding.sources,
                pgn: finding.pgn,
                can_id: finding.can_id,
                count,
                detail: finding.detail,
            });
        }
    }
}
