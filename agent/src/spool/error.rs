//! The spool's errors. Each message says what the operator or the caller should do next.

use std::io;
use std::path::PathBuf;

use super::record::RecordKind;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("invalid spool settings: {0}")]
    Config(String),

    #[error(
        "cannot create the spool directory {path}: {source}; check that its disk is mounted and \
         writable by the agent's user"
    )]
    CreateDir { path: PathBuf, source: io::Error },

    #[error(
        "the spool store {path} is in use by another process ({detail}); stop the other vigil \
         (or use `vigil spool inspect`, which reads a copy) and try again"
    )]
    Locked { path: PathBuf, detail: String },

    #[error(
        "cannot open a spool store at {path} ({reason}); check free space, the owner and the \
         permissions on that disk, or point the spool at another directory"
    )]
    Open { path: PathBuf, reason: String },

    #[error(
        "cannot move the damaged spool store {path} aside: {source}; move or delete it by hand, \
         then restart the agent"
    )]
    Quarantine { path: PathBuf, source: io::Error },

    #[error(
        "the spool store failed while {op}: {source}; the disk may be full or failing (check `df` \
         and the kernel log): records already flushed are kept, and the spool holds new ones in \
         memory until the disk takes writes again"
    )]
    Store {
        op: &'static str,
        #[source]
        source: StoreError,
    },

    #[error(
        "a {kind} payload of {bytes} bytes is over the limit of {limit} bytes; split it into \
         smaller messages (AWS IoT Core takes at most 128 KB)"
    )]
    PayloadTooLarge {
        kind: RecordKind,
        bytes: usize,
        limit: u64,
    },

    #[error("no spool store at {path}; check the path (the agent's spool directory)")]
    NotFound { path: PathBuf },

    #[error("cannot read the spool directory {path}: {source}; check the path and permissions")]
    Read { path: PathBuf, source: io::Error },

    #[error(
        "the spool task has stopped (the agent is shutting down, or the spool failed: see the \
         error logged before this)"
    )]
    Stopped,

    #[error("writing the soak report failed: {0}; the reader of its output has gone away")]
    Report(#[source] io::Error),
}

/// An error of the store underneath the spool, whichever it is.
pub type StoreError = Box<dyn std::error::Error + Send + Sync>;

impl SpoolError {
    pub(crate) fn store<E: Into<StoreError>>(op: &'static str) -> impl FnOnce(E) -> SpoolError {
        move |source| SpoolError::Store {
            op,
            source: source.into(),
        }
    }
}
