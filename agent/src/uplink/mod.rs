//! The uplink: drains the spool to the broker over MQTT 3.1.1 with mutual TLS (AWS IoT Core
//! in service, Mosquitto in tests, an in-process broker in the demo), and brings config
//! (device shadow) and model updates (jobs) back in.
//!
//! # Invariants
//!
//! 1. **A record leaves the spool only on its PUBACK.** The in-flight tracker ([`inflight`])
//!    ties each `Incoming::PubAck(pkid)` to the record that was written with that pkid; only
//!    then is [`SpoolHandle::ack`](crate::spool::SpoolHandle::ack) called.
//! 2. **Every CONNACK re-publishes what was in flight.** Sessions are clean, and rumqttc
//!    drops unacknowledged publishes on a clean reconnect (DESIGN.md); the spool requeues
//!    everything in flight on `link_up`, so it is handed out and published again. Duplicates
//!    are possible (QoS 1); every message carries `(thing, boot, seq)` to drop them.
//! 3. **Within AWS IoT Core's per-connection limits**: at most `max_in_flight` (100)
//!    unacknowledged publishes, control messages included; at most 100 publishes and
//!    512 KiB in any second the broker counts, each counted from its send until a second
//!    after its PUBACK ([`pacer`]); one connect per second at most, backing off with jitter
//!    ([`backoff`]).
//! 4. **Alerts before readings**: the spool hands alerts out first; control messages
//!    (status, shadow reports, job updates) go ahead of both, and are few.
//! 5. **Never plain TCP toward AWS, never a private key others can read**: both refused
//!    when the config is checked, before anything starts.
//! 6. **Only the task owns I/O.** The tracker, pacer, backoff, shadow and job logic are
//!    plain structs and functions tested without sockets or clocks.
//!
//! # Module map
//!
//! - [`config`]: the `[uplink]` section. [`tls`]: PEM files, key permissions, rustls.
//! - [`topics`], [`payload`] (status, alerts, DM1, the spooled envelope), [`readings`]
//!   (the compact readings encoding).
//! - [`inflight`], [`pacer`], [`backoff`]: the pure delivery state machines.
//! - [`shadow`], [`jobs`]: the cloud's side channels. [`task`]: the event loop.

pub mod backoff;
pub mod config;
#[cfg(feature = "demo-broker")]
pub mod demo_broker;
pub mod expiry;
pub(crate) mod inflight;
pub mod jobs;
pub(crate) mod pacer;
pub mod payload;
pub mod readings;
pub(crate) mod shadow;
pub(crate) mod task;
pub mod tls;
pub mod topics;

pub use config::UplinkConfig;
pub use task::{Drain, Uplink, UplinkError};

/// What the cab display and the demo view know of the link: the alarm's type, which the
/// uplink fills with `Some` once it runs (`None` is unknown: no uplink configured).
pub use crate::alarm::LinkStatus;
