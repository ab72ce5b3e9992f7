//! The spool's store on redb: one file, `DIR/store/spool.redb`, with two tables.
//!
//! Changes go into one write transaction that stays open until the spool flushes; the
//! flush commits it with `Durability::Immediate` (fsync), so "flushed" means a committed
//! transaction and a crash rolls back to the last one. redb checks every page against its
//! checksum when the store is opened, so damage anywhere in the file is reported (and the
//! store quarantined) instead of being read as a shorter store.

use std::path::{Path, PathBuf};

use redb::{
    Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, StorageError,
    TableDefinition, TableError, WriteTransaction,
};

use super::{LoadError, StoreError, Tree};
use crate::spool::record::{self, Record, Seq};

/// The store's one file, in the store directory.
pub(crate) const FILE: &str = "spool.redb";

const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
const META: TableDefinition<&[u8], &[u8]> = TableDefinition::new("meta");

/// Changes held in the open transaction at most before it is committed on its own. The
/// flush policy commits appends far sooner; this bounds the memory and the space that
/// acknowledgements (which the policy does not count) hold between two appends.
const MAX_UNCOMMITTED: u64 = 256;

/// Files at most this large are never compacted: compacting costs flash writes, and a
/// new store's file is already about 1 MiB.
const COMPACT_FLOOR: u64 = 4 << 20;

/// The file is compacted when it is this many times larger than the live records. redb
/// rounds a record up to a power of two of 4 KiB pages (a 4 KiB payload takes 8 KiB), so
/// a full spool's file is up to about 2-4 times its live bytes without any free space;
/// compacting then would rewrite everything and give nothing back. Past 8 times, most of
/// the file is free: what is left after a long outage has drained.
const COMPACT_RATIO: u64 = 8;

/// A freshly opened store, and whether its file was there before.
pub(crate) struct Opened {
    pub store: RedbStore,
    pub existed: bool,
}

/// The key-value store under the spool. Changes sit in the open transaction until
/// [`RedbStore::flush`]; only a completed flush makes them durable.
pub(crate) struct RedbStore {
    db: Database,
    /// The store's file; `None` for a store held in memory (see [`open_in_memory`]).
    path: Option<PathBuf>,
    /// The transaction every change goes into until the next flush.
    txn: Option<WriteTransaction>,
    uncommitted: u64,
    /// The file's size after the last compaction: not tried again until it grows past it.
    compacted_at: u64,
}

fn table(tree: Tree) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
    match tree {
        Tree::Records => RECORDS,
        Tree::Meta => META,
    }
}

pub(crate) fn open(dir: &Path, cache_capacity: u64) -> Result<Opened, LoadError> {
    std::fs::create_dir_all(dir).map_err(|e| LoadError::Io(e.to_string()))?;
    let path = dir.join(FILE);
    let existed = path.exists();
    let mut builder = Database::builder();
    builder
        .set_cache_size(cache_capacity as usize)
        .set_check_integrity_on_open(true);
    let opened = if let Some(open_with) = backend_for_tests::take(&path) {
        open_with(&builder)
    } else if existed {
        builder.open(&path)
    } else {
        builder.create(&path)
    };
    let db = opened.map_err(|e| match e {
        DatabaseError::DatabaseAlreadyOpen => {
            LoadError::Locked("another process holds the store's file lock".into())
        }
        // A full disk or no permission says nothing about the file's content: the spool
        // runs in memory and tries again; it never quarantines for one.
        DatabaseError::Storage(StorageError::Io(io)) if not_the_files_fault(&io) => {
            LoadError::Io(io.to_string())
        }
        DatabaseError::Storage(StorageError::Corrupted(what)) => LoadError::Damaged {
            slug: "corrupt",
            detail: format!("redb found the store corrupt: {what}"),
        },
        other => LoadError::Damaged {
            slug: "open-failed",
            detail: format!("redb could not open it: {other}"),
        },
    })?;
    let mut store = RedbStore {
        db,
        path: Some(path),
        txn: None,
        uncommitted: 0,
        // A file left large by an earlier run is compacted at the first flush.
        compacted_at: 0,
    };
    // Both tables exist from the first transaction on, so reads never meet a missing one.
    let damaged = |e: StoreError| LoadError::Damaged {
        slug: "open-failed",
        detail: format!("redb: {e}"),
    };
    let txn = store.txn().map_err(damaged)?;
    txn.open_table(RECORDS).map_err(|e| damaged(e.into()))?;
    txn.open_table(META).map_err(|e| damaged(e.into()))?;
    Ok(Opened { store, existed })
}

/// What could be read of a quarantined store.
#[derive(Debug, Default)]
pub(crate) struct ReadBack {
    /// Records whose own checksum held, in sequence order.
    pub records: Vec<Record>,
    /// Records that failed their checksum.
    pub damaged: u64,
    /// The first reason a pass stopped before the end, if one did...
    pub stopped: Option<String>,
    /// ...and how many damaged stretches were stepped over.
    pub skips: u64,
}

/// Reads what can be read of a store that was quarantined: opened read-only (never
/// repaired: the evidence stays as it was) without redb's integrity check, keeping only
/// the records whose own checksum holds. A page redb cannot read (an error, or a panic
/// deep in its cursor) ends one pass; the next starts past it, probing sequence numbers
/// further and further on, so one damaged page loses the records on it and no more.
pub(crate) fn read_back(path: &Path, cache_capacity: u64) -> Result<ReadBack, String> {
    let db = Database::builder()
        .set_cache_size(cache_capacity as usize)
        .open_read_only(path)
        .map_err(|e| format!("redb cannot open it even read-only: {e}"))?;
    let read = db.begin_read().map_err(|e| e.to_string())?;
    let table = read
        .open_table(RECORDS)
        .map_err(|e| format!("its records table cannot be read: {e}"))?;
    let mut back = ReadBack::default();
    let mut from: Seq = 0;
    loop {
        let pass = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            read_from(&table, from, &mut back)
        }))
        .unwrap_or_else(|_| Err("redb panicked on a damaged page".into()));
        let Err(why) = pass else { return Ok(back) };
        back.stopped.get_or_insert(why);
        let last = back.records.last().map_or(from, |r| r.seq + 1).max(from);
        match (0..48).map(|k| last.saturating_add(1 << k)).find(|&probe| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let key = record::key(probe);
                matches!(
                    table.range::<&[u8]>(key.as_slice()..).map(|mut r| r.next()),
                    Ok(Some(Ok(_)))
                )
            }))
            .unwrap_or(false)
        }) {
            Some(probe) => {
                back.skips += 1;
                from = probe;
            }
            None => return Ok(back),
        }
    }
}

/// One pass of [`read_back`] from sequence number `from` to the end or the first error.
fn read_from(
    table: &redb::ReadOnlyTable<&[u8], &[u8]>,
    from: Seq,
    back: &mut ReadBack,
) -> Result<(), String> {
    let key = record::key(from);
    for item in table
        .range::<&[u8]>(key.as_slice()..)
        .map_err(|e| e.to_string())?
    {
        let (k, v) = item.map_err(|e| e.to_string())?;
        match record::decode(k.value(), v.value()) {
            Ok(record) => back.records.push(record),
            Err(_) => back.damaged += 1,
        }
    }
    Ok(())
}

/// Whether an I/O error comes from the disk or the rights on it rather than the file.
fn not_the_files_fault(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        error.kind(),
        PermissionDenied | StorageFull | QuotaExceeded | ReadOnlyFilesystem | FileTooLarge
    )
}

/// A store in memory, for when the disk store cannot be had (a spool folder the agent may
/// not open, a regular file in its place): the same records and caps, lost at exit.
pub(crate) fn open_in_memory(cache_capacity: u64) -> Result<Opened, LoadError> {
    let db = Database::builder()
        .set_cache_size(cache_capacity as usize)
        .create_with_backend(redb::backends::InMemoryBackend::new())
        .map_err(|e| LoadError::Io(format!("cannot create a store in memory: {e}")))?;
    let mut store = RedbStore {
        db,
        path: None,
        txn: None,
        uncommitted: 0,
        compacted_at: 0,
    };
    let txn = store
        .txn()
        .map_err(|e| LoadError::Io(format!("cannot create a store in memory: {e}")))?;
    for table in [RECORDS, META] {
        txn.open_table(table)
            .map_err(|e| LoadError::Io(format!("cannot create a store in memory: {e}")))?;
    }
    Ok(Opened {
        store,
        existed: false,
    })
}

impl RedbStore {
    fn txn(&mut self) -> Result<&mut WriteTransaction, StoreError> {
        if self.txn.is_none() {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(Durability::Immediate)?;
            self.txn = Some(txn);
        }
        Ok(self.txn.as_mut().expect("just set"))
    }

    /// Counts a change; commits when the open transaction holds too many.
    fn changed(&mut self) -> Result<(), StoreError> {
        self.uncommitted += 1;
        if self.uncommitted >= MAX_UNCOMMITTED {
            self.flush()?;
        }
        Ok(())
    }

    pub(crate) fn get(&mut self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(txn) = &self.txn {
            let t = txn.open_table(table(tree))?;
            return Ok(t.get(key)?.map(|v| v.value().to_vec()));
        }
        let read = self.db.begin_read()?;
        let t = match read.open_table(table(tree)) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(t.get(key)?.map(|v| v.value().to_vec()))
    }

    pub(crate) fn insert(
        &mut self,
        tree: Tree,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), StoreError> {
        self.txn()?.open_table(table(tree))?.insert(key, value)?;
        self.changed()
    }

    pub(crate) fn remove(&mut self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        self.txn()?.open_table(table(tree))?.remove(key)?;
        self.changed()
    }

    pub(crate) fn scan(
        &mut self,
        tree: Tree,
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), StoreError> {
        let t = self.txn()?.open_table(table(tree))?;
        for item in t.iter()? {
            let (k, v) = item?;
            f(k.value(), v.value());
        }
        Ok(())
    }

    pub(crate) fn flush(&mut self) -> Result<(), StoreError> {
        if let Some(txn) = self.txn.take() {
            txn.commit()?;
        }
        self.uncommitted = 0;
        Ok(())
    }

    /// The file's size; 0 for a store in memory.
    pub(crate) fn size_on_disk(&self) -> Result<u64, StoreError> {
        match &self.path {
            Some(path) => Ok(std::fs::metadata(path)?.len()),
            None => Ok(0),
        }
    }

    /// Compacts when the file is mostly free space (see [`COMPACT_RATIO`]) and past the
    /// floor, and has grown since the last compaction (which may not get all the way down).
    pub(crate) fn reclaim(&mut self, live_bytes: u64) -> Result<(), StoreError> {
        let len = self.size_on_disk()?;
        if len <= COMPACT_FLOOR.max(COMPACT_RATIO * live_bytes) || len <= self.compacted_at {
            return Ok(());
        }
        self.flush()?;
        let started = std::time::Instant::now();
        self.db.compact()?;
        self.compacted_at = self.size_on_disk()?;
        tracing::info!(
            before = len,
            after = self.compacted_at,
            took_ms = started.elapsed().as_millis() as u64,
            "spool store compacted"
        );
        Ok(())
    }
}

impl RedbStore {
    /// Lets go of a store that failed: the open transaction is dropped uncommitted (redb
    /// refuses every write after an I/O error until the file is opened again).
    pub(crate) fn abandon(mut self) {
        self.txn = None;
        self.uncommitted = 0;
    }
}

impl Drop for RedbStore {
    /// A spool dropped without `close` (a panic unwinding through its task) still commits
    /// what it wrote. A crash commits nothing: that is the loss window.
    fn drop(&mut self) {
        if self.uncommitted > 0
            && let Err(e) = self.flush()
        {
            tracing::error!(error = %e, "spool: committing at drop failed");
        }
    }
}

/// The power-cut test (`spool/powercut.rs`) runs the real [`super::Spool::open`] on a redb
/// backend of its own: it registers the backend here, by the store file's path, and the
/// next open of that file goes through it (with the same settings) instead of the file.
#[cfg(test)]
pub(crate) mod backend_for_tests {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    use redb::{Builder, Database, DatabaseError, StorageBackend};

    type OpenWith = Box<dyn FnOnce(&Builder) -> Result<Database, DatabaseError> + Send>;

    static NEXT: Mutex<Vec<(PathBuf, OpenWith)>> = Mutex::new(Vec::new());

    /// The next open of the store in `store_dir` goes through `backend`.
    pub(crate) fn open_next_with(store_dir: &Path, backend: impl StorageBackend) {
        let open: OpenWith = Box::new(move |builder| builder.create_with_backend(backend));
        let mut next = NEXT.lock().unwrap_or_else(|e| e.into_inner());
        next.push((store_dir.join(super::FILE), open));
    }

    pub(super) fn take(path: &Path) -> Option<OpenWith> {
        let mut next = NEXT.lock().unwrap_or_else(|e| e.into_inner());
        let i = next.iter().position(|(p, _)| p == path)?;
        Some(next.swap_remove(i).1)
    }
}

#[cfg(not(test))]
mod backend_for_tests {
    type OpenWith = fn(&redb::Builder) -> Result<redb::Database, redb::DatabaseError>;

    /// Outside tests, the store is always its file.
    pub(super) fn take(_: &std::path::Path) -> Option<OpenWith> {
        None
    }
}
