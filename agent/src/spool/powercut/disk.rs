//! A disk with a volatile write cache, as a redb [`StorageBackend`], for the power-cut test.
//!
//! The store's real file stands for what the drive has made durable (the medium). Writes
//! and length changes since the last `sync_data` wait in the cache, a log that reads see
//! replayed over the file; `sync_data` writes them to the file. A power cut freezes the
//! disk (every later read, write, length or sync fails, as if the process had died with
//! the power) and decides what of the cache reached the medium:
//!
//! - [`Cut::DropUnsynced`]: none of it (what LazyFS does with its cache at a "crash").
//! - [`Cut::TornSectors`]: any subset of the sectors (4 KiB pages, or 512-byte sectors)
//!   written since the last sync, each in any one of the versions it was written with, in
//!   no particular order; and the length
//!   changes up to any one of them, in order (the filesystem journals its metadata). A
//!   drive with a volatile cache may do all of this; redb's 1-phase commit (checksummed
//!   commit slots, the previous commit's pages kept until the next one is durable) is meant
//!   to survive it.
//!
//! `sync_data` does not `fdatasync` the file: the test reads the file back through the
//! same kernel, so only what this model put in the file counts, and an fsync would only
//! make the test slower.
//!
//! File locks go straight to redb's own [`FileBackend`], so the store is locked as in
//! production; a cut leaves them to the close (a dead process holds no lock).

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt;
use std::io;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

use super::Rng;

/// A page of the kernel's page cache, and redb's page size: the unit the kernel writes.
pub(super) const PAGE: u64 = 4096;

/// What a power cut keeps of the writes not yet synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Cut {
    /// Nothing.
    DropUnsynced,
    /// Any sectors of this many bytes, each in any of its versions, and the length changes
    /// up to any one.
    TornSectors { sector: u64 },
}

impl fmt::Display for Cut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cut::DropUnsynced => f.write_str("drop every unsynced write"),
            Cut::TornSectors { sector } => {
                write!(
                    f,
                    "keep a random subset of the unsynced {sector}-byte sectors"
                )
            }
        }
    }
}

/// What the cache held when the power went, and what of it reached the medium.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct CutReport {
    /// Writes and length changes in the cache.
    pub cached_ops: u64,
    /// Distinct sectors those writes touched (4 KiB pages when the cache is dropped).
    pub dirty_sectors: u64,
    /// Sectors that reached the medium ([`Cut::TornSectors`] only)...
    pub kept_sectors: u64,
    /// ...of which in an older version than the last one written.
    pub kept_older: u64,
    /// The file's first sector (redb's header, with the commit slots) reached the medium in
    /// its last version, and some other unsynced sector did not: a commit torn in two.
    pub header_without_all_pages: bool,
}

/// One change waiting in the cache.
enum Op {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

impl Op {
    /// Applies this change to `buf`, which holds the bytes from `at` on.
    fn apply(&self, at: u64, buf: &mut [u8]) {
        let end = at + buf.len() as u64;
        match *self {
            Op::Write { offset, ref data } => {
                let from = offset.max(at);
                let to = (offset + data.len() as u64).min(end);
                if from < to {
                    buf[(from - at) as usize..(to - at) as usize]
                        .copy_from_slice(&data[(from - offset) as usize..(to - offset) as usize]);
                }
            }
            // A file grown again after shrinking reads zeros where it was cut.
            Op::SetLen(len) if len < end => buf[(len.max(at) - at) as usize..].fill(0),
            Op::SetLen(_) => {}
        }
    }
}

/// The planned moment of a cut: after this many more writes, length changes or syncs.
struct Armed {
    after: u64,
    cut: Cut,
    seed: u64,
}

struct State {
    file: FileBackend,
    /// The file's length: what the medium holds.
    durable_len: u64,
    /// The length the program sees.
    len: u64,
    cache: Vec<Op>,
    armed: Option<Armed>,
    cut: Option<CutReport>,
    /// Writes, length changes and syncs since the disk was opened.
    changes: u64,
}

/// The disk; clones share it, so the test keeps one to cut the power under redb's feet.
#[derive(Clone)]
pub(super) struct Disk(Arc<Mutex<State>>);

impl fmt::Debug for Disk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("power-cut disk")
    }
}

fn power_is_off() -> io::Error {
    io::Error::other("the power is off")
}

impl Disk {
    /// The disk over the store file at `path`, which must exist.
    pub(super) fn open(path: &Path) -> io::Result<Disk> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        let len = file.metadata()?.len();
        let file = FileBackend::new(file).map_err(io::Error::other)?;
        Ok(Disk(Arc::new(Mutex::new(State {
            file,
            durable_len: len,
            len,
            cache: Vec::new(),
            armed: None,
            cut: None,
            changes: 0,
        }))))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic in another holder leaves the state as consistent as any cut would.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The power goes at the `after`-th write, length change or sync from now (0: the next
    /// one), which fails and never happens.
    pub(super) fn arm(&self, after: u64, cut: Cut, seed: u64) {
        self.state().armed = Some(Armed { after, cut, seed });
    }

    /// The power goes now, between two calls.
    pub(super) fn cut_now(&self, cut: Cut, seed: u64) -> io::Result<CutReport> {
        self.state().power_cut(cut, seed)
    }

    /// What the cut found, once the power is off.
    pub(super) fn cut(&self) -> Option<CutReport> {
        self.state().cut
    }

    /// Writes, length changes and syncs made so far: where [`Disk::arm`] can aim.
    pub(super) fn changes(&self) -> u64 {
        self.state().changes
    }

    /// The state, while the power is on.
    fn powered(&self) -> io::Result<MutexGuard<'_, State>> {
        let state = self.state();
        match state.cut {
            Some(_) => Err(power_is_off()),
            None => Ok(state),
        }
    }

    /// The state for a change, unless the armed cut falls on it.
    fn changing(&self) -> io::Result<MutexGuard<'_, State>> {
        let mut state = self.powered()?;
        state.changes += 1;
        match state.armed.as_mut() {
            Some(armed) if armed.after == 0 => {
                let (cut, seed) = (armed.cut, armed.seed);
                state.power_cut(cut, seed)?;
                Err(power_is_off())
            }
            Some(armed) => {
                armed.after -= 1;
                Ok(state)
            }
            None => Ok(state),
        }
    }
}

impl State {
    /// The medium's bytes from `at` (zeros past its length, and past `shrunk_to`).
    fn read_medium(&self, at: u64, buf: &mut [u8], shrunk_to: u64) -> io::Result<()> {
        let there = self.durable_len.min(shrunk_to).saturating_sub(at);
        let there = there.min(buf.len() as u64) as usize;
        if there > 0 {
            self.file.read(at, &mut buf[..there])?;
        }
        buf[there..].fill(0);
        Ok(())
    }

    fn power_cut(&mut self, cut: Cut, seed: u64) -> io::Result<CutReport> {
        if let Some(report) = self.cut {
            return Ok(report);
        }
        let cache = std::mem::take(&mut self.cache);
        let sector = match cut {
            Cut::DropUnsynced => PAGE,
            Cut::TornSectors { sector } => sector,
        };
        let versions = self.sector_versions(&cache, sector)?;
        let mut report = CutReport {
            cached_ops: cache.len() as u64,
            dirty_sectors: versions.len() as u64,
            ..CutReport::default()
        };
        if let Cut::TornSectors { .. } = cut {
            let mut rng = Rng::new(seed);
            let lens: Vec<u64> = cache
                .iter()
                .filter_map(|op| match op {
                    Op::SetLen(len) => Some(*len),
                    Op::Write { .. } => None,
                })
                .collect();
            let applied = &lens[..rng.below(lens.len() as u64 + 1) as usize];
            for &len in applied {
                self.file.set_len(len)?;
            }
            let len = applied.last().copied().unwrap_or(self.durable_len);
            // One cut keeps few sectors, another most: a quarter, a half, ... of them.
            let keep_in_4 = rng.below(5);
            let mut header_kept = false;
            for (index, written) in versions {
                if rng.below(4) >= keep_in_4 {
                    continue;
                }
                // The last version half the time, else any.
                let last = written.len() - 1;
                let pick = if rng.below(2) == 0 {
                    last
                } else {
                    rng.below(written.len() as u64) as usize
                };
                let at = index * sector;
                if at >= len {
                    continue; // past the end the metadata kept
                }
                let n = (len - at).min(sector) as usize;
                self.file.write(at, &written[pick][..n])?;
                report.kept_sectors += 1;
                report.kept_older += u64::from(pick != last);
                header_kept |= index == 0 && pick == last;
            }
            report.header_without_all_pages =
                header_kept && report.kept_sectors < report.dirty_sectors;
        }
        self.cut = Some(report);
        self.armed = None;
        Ok(report)
    }

    /// Every version of every sector the cached writes produced, in the order written.
    fn sector_versions(
        &self,
        cache: &[Op],
        sector: u64,
    ) -> io::Result<BTreeMap<u64, Vec<Vec<u8>>>> {
        let mut now: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut versions: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
        let mut shrunk_to = u64::MAX;
        for op in cache {
            match op {
                Op::Write { offset, data } if !data.is_empty() => {
                    let last = (offset + data.len() as u64 - 1) / sector;
                    for index in offset / sector..=last {
                        let bytes = match now.entry(index) {
                            Entry::Occupied(e) => e.into_mut(),
                            Entry::Vacant(e) => {
                                let mut bytes = vec![0; sector as usize];
                                self.read_medium(index * sector, &mut bytes, shrunk_to)?;
                                e.insert(bytes)
                            }
                        };
                        op.apply(index * sector, bytes);
                        versions.entry(index).or_default().push(bytes.clone());
                    }
                }
                Op::Write { .. } => {}
                Op::SetLen(len) => {
                    shrunk_to = shrunk_to.min(*len);
                    for (index, bytes) in &mut now {
                        op.apply(index * sector, bytes);
                    }
                }
            }
        }
        Ok(versions)
    }
}

impl StorageBackend for Disk {
    fn len(&self) -> io::Result<u64> {
        Ok(self.powered()?.len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let state = self.powered()?;
        if offset + out.len() as u64 > state.len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end of the file",
            ));
        }
        state.read_medium(offset, out, u64::MAX)?;
        for op in &state.cache {
            op.apply(offset, out);
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.changing()?;
        state.cache.push(Op::SetLen(len));
        state.len = len;
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut state = self.changing()?;
        for op in std::mem::take(&mut state.cache) {
            match op {
                Op::Write { offset, data } => state.file.write(offset, &data)?,
                Op::SetLen(len) => state.file.set_len(len)?,
            }
        }
        state.durable_len = state.len;
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut state = self.changing()?;
        state.len = state.len.max(offset + data.len() as u64);
        state.cache.push(Op::Write {
            offset,
            data: data.to_vec(),
        });
        Ok(())
    }

    fn close(&self) -> io::Result<()> {
        self.state().file.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.state().file.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.state().file.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.state().file.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.state().file.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.state().file.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.state().file.query_lock_range(start, end)
    }
}

/// The disk model itself: reads see the cache, a sync makes it the file's, a cut drops or
/// tears it.
#[test]
fn the_disk_keeps_only_what_was_synced_or_what_the_cut_chose() {
    use std::collections::BTreeSet;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file");
    let init = |path: &Path| std::fs::write(path, vec![1u8; 3 * PAGE as usize]).unwrap();

    init(&path);
    let d = Disk::open(&path).unwrap();
    d.write(10, &[2; 5000]).unwrap();
    d.set_len(20_000).unwrap();
    let mut buf = vec![0; 20_000];
    d.read(0, &mut buf).unwrap();
    assert_eq!((buf[9], buf[10], buf[5009], buf[5010]), (1, 2, 2, 1));
    assert_eq!(buf[19_999], 0, "a file grows with zeros");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        vec![1u8; 12_288],
        "not synced"
    );
    d.sync_data().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), buf, "synced");
    d.write(0, &[3; 100]).unwrap();
    let report = d.cut_now(Cut::DropUnsynced, 1).unwrap();
    assert_eq!((report.cached_ops, report.dirty_sectors), (1, 1));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        buf,
        "the unsynced write is gone"
    );
    assert!(d.read(0, &mut buf[..1]).is_err(), "the power is off");
    assert!(d.write(0, &[4]).is_err());

    // A torn cut keeps each sector in one of its versions, or not at all.
    let mut kept = BTreeSet::new();
    for seed in 0..64 {
        init(&path);
        let d = Disk::open(&path).unwrap();
        d.write(0, &[5; 8192]).unwrap();
        d.write(0, &[6; 100]).unwrap();
        d.arm(0, Cut::TornSectors { sector: PAGE }, seed);
        assert!(d.sync_data().is_err(), "the armed cut falls on the sync");
        let after = std::fs::read(&path).unwrap();
        assert_eq!(after.len(), 12_288);
        let first: &[u8] = &after[..4096];
        let version = if first == [1; 4096] {
            "old"
        } else if first == [5; 4096] {
            "first write"
        } else {
            assert!(first[..100] == [6; 100] && first[100..] == [5; 3996]);
            "second write"
        };
        kept.insert((version, after[4096], after[8192]));
    }
    for version in ["old", "first write", "second write"] {
        assert!(kept.iter().any(|k| k.0 == version), "{version}: {kept:?}");
    }
    assert!(kept.iter().any(|k| k.1 == 1) && kept.iter().any(|k| k.1 == 5));
    assert!(kept.iter().all(|k| k.2 == 1), "an unwritten sector stays");

    // With 512-byte sectors a page can reach the medium in part, but never a sector.
    let mut torn_pages = 0;
    for seed in 0..64 {
        init(&path);
        let d = Disk::open(&path).unwrap();
        d.write(0, &[7; 4096]).unwrap();
        d.cut_now(Cut::TornSectors { sector: 512 }, seed).unwrap();
        let page = std::fs::read(&path).unwrap();
        let new: Vec<bool> = page[..4096]
            .chunks(512)
            .map(|s| {
                assert!(s == [1; 512] || s == [7; 512], "a sector is never torn");
                s[0] == 7
            })
            .collect();
        torn_pages += usize::from(new.contains(&true) && new.contains(&false));
    }
    assert!(torn_pages > 0, "some pages reach the medium in part");
}
