//! The ordered map under the engine: atomic batches, range scans. Two implementations: sled
//! 0.34 on disk, and a `BTreeMap` in memory. Nothing above this file knows which.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use super::model::StoreError;

/// One write of a batch: insert (`Some`) or remove (`None`).
pub type Op = (Vec<u8>, Option<Vec<u8>>);
/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// An ordered byte map with atomic batches.
pub trait Kv: Send + Sync + 'static {
    /// The value at `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Up to `limit` entries with `start <= key < end`, in key order.
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError>;
    /// The last entry with `start <= key < end`.
    fn last(&self, start: &[u8], end: &[u8]) -> Result<Option<Entry>, StoreError>;
    /// How many keys lie in `start <= key < end`.
    fn count(&self, start: &[u8], end: &[u8]) -> Result<u64, StoreError>;
    /// Applies every write, all or none.
    fn apply(&self, batch: Vec<Op>) -> Result<(), StoreError>;
    /// Makes everything applied so far durable.
    fn sync(&self) -> Result<(), StoreError>;
}

/// sled 0.34, one tree.
pub struct SledKv {
    db: sled::Db,
    tree: sled::Tree,
    path: PathBuf,
}

fn sled_err(e: sled::Error) -> StoreError {
    StoreError::Io(format!("sled: {e}"))
}

impl SledKv {
    /// Opens (or creates) the database in `dir`.
    ///
    /// sled locks its file, and a store closed a moment ago in this process may still hold
    /// the lock while sled's background threads finish; opening waits up to five seconds for
    /// it. Another live process holding the store is refused after that wait.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let config = sled::Config::new().path(dir).flush_every_ms(Some(500));
        let mut tries = 0;
        let db = loop {
            match config.open() {
                // sled wraps the `WouldBlock` of its `flock` into an `Other` error.
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock") && tries < 250 =>
                {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other.map_err(sled_err)?,
            }
        };
        let tree = db.open_tree("truc").map_err(sled_err)?;
        Ok(SledKv {
            db,
            tree,
            path: dir.to_owned(),
        })
    }
}

impl Kv for SledKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(key).map_err(sled_err)?.map(|v| v.to_vec()))
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError> {
        self.tree
            .range(start..end)
            .take(limit)
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(sled_err))
            .collect()
    }

    fn last(&self, start: &[u8], end: &[u8]) -> Result<Option<Entry>, StoreError> {
        self.tree
            .range(start..end)
            .next_back()
            .transpose()
            .map(|o| o.map(|(k, v)| (k.to_vec(), v.to_vec())))
            .map_err(sled_err)
    }

    fn count(&self, start: &[u8], end: &[u8]) -> Result<u64, StoreError> {
        let mut n = 0;
        for r in self.tree.range(start..end) {
            r.map_err(sled_err)?;
            n += 1;
        }
        Ok(n)
    }

    fn apply(&self, batch: Vec<Op>) -> Result<(), StoreError> {
        let mut b = sled::Batch::default();
        for (k, v) in batch {
            match v {
                Some(v) => b.insert(k, v),
                None => b.remove(k),
            }
        }
        self.tree.apply_batch(b).map_err(sled_err)
    }

    /// sled's `flush` (which on Linux only `sync_file_range`s its log), then `fdatasync` of
    /// its `db` file so that the device cache is flushed too.
    fn sync(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(sled_err)?;
        std::fs::File::open(self.path.join("db"))?.sync_data()?;
        Ok(())
    }
}

/// A `BTreeMap`: the in-memory store.
#[derive(Default)]
pub struct MemKv {
    map: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemKv {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl Kv for MemKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read().get(key).cloned())
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError> {
        Ok(self
            .read()
            .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn last(&self, start: &[u8], end: &[u8]) -> Result<Option<Entry>, StoreError> {
        Ok(self
            .read()
            .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
            .next_back()
            .map(|(k, v)| (k.clone(), v.clone())))
    }

    fn count(&self, start: &[u8], end: &[u8]) -> Result<u64, StoreError> {
        Ok(self
            .read()
            .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
            .count() as u64)
    }

    fn apply(&self, batch: Vec<Op>) -> Result<(), StoreError> {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        for (k, v) in batch {
            match v {
                Some(v) => map.insert(k, v),
                None => map.remove(&k),
            };
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
