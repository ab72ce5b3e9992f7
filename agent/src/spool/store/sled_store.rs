//! The spool's store on sled 0.34 (kept for the side-by-side measurement with redb).

use std::path::Path;

use super::{Backend, LoadError, Opened, StoreError, Tree};

pub(crate) struct SledStore {
    db: sled::Db,
    records: sled::Tree,
    meta: sled::Tree,
}

pub(crate) fn config(dir: &Path, cache_capacity: u64) -> sled::Config {
    // cache_capacity: sled's default is 1 GiB. flush_every_ms(None): durability only where
    // the flush policy says. LowSpace: rewrite more to keep the files compact.
    sled::Config::new()
        .path(dir)
        .cache_capacity(cache_capacity)
        .flush_every_ms(None)
        .mode(sled::Mode::LowSpace)
}

pub(crate) fn open(dir: &Path, cache_capacity: u64) -> Result<Opened, LoadError> {
    let existed = dir.join("conf").exists();
    let db = config(dir, cache_capacity).open().map_err(|e| match e {
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            LoadError::Locked(io.to_string())
        }
        sled::Error::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            LoadError::Io(io.to_string())
        }
        other => LoadError::Damaged {
            slug: "open-failed",
            detail: format!("sled could not open it: {other}"),
        },
    })?;
    let damaged = |e: sled::Error| LoadError::Damaged {
        slug: "open-failed",
        detail: format!("sled: {e}"),
    };
    let records = db.open_tree("records").map_err(damaged)?;
    let meta = db.open_tree("meta").map_err(damaged)?;
    Ok(Opened {
        store: Box::new(SledStore { db, records, meta }),
        existed,
    })
}

impl SledStore {
    fn tree(&self, tree: Tree) -> &sled::Tree {
        match tree {
            Tree::Records => &self.records,
            Tree::Meta => &self.meta,
        }
    }
}

impl Backend for SledStore {
    fn get(&mut self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree(tree).get(key)?.map(|v| v.to_vec()))
    }

    fn insert(&mut self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.tree(tree).insert(key, value)?;
        Ok(())
    }

    fn remove(&mut self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        self.tree(tree).remove(key)?;
        Ok(())
    }

    fn scan(&mut self, tree: Tree, f: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), StoreError> {
        for item in self.tree(tree).iter() {
            let (k, v) = item?;
            f(&k, &v);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    /// sled has no way to give space back.
    fn reclaim(&mut self, _live_bytes: u64) -> Result<(), StoreError> {
        Ok(())
    }
}
