//! Striped locks that serialize what happens to one service name's git repository: a
//! create (row, then `git init`) and a delete (row, then the directory) of the same name
//! never interleave, so a delete cannot remove the repository of the service created
//! again under its name, nor pull a directory out from under a running `git init`.
//! Striped (a fixed set, chosen by hash) so that memory stays bounded however many
//! names are tried. Within one slipwayd process; the rows themselves are protected by
//! the database's unique index.

use std::hash::{DefaultHasher, Hash, Hasher};

const STRIPES: usize = 64;

#[derive(Debug)]
pub struct NameLocks {
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl Default for NameLocks {
    fn default() -> Self {
        NameLocks { stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect() }
    }
}

impl NameLocks {
    /// Holds the lock of `name` (and of the names sharing its stripe) until dropped.
    pub async fn lock(&self, name: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let mut hasher = DefaultHasher::new();
        name.hash(&mut hasher);
        self.stripes[(hasher.finish() as usize) % STRIPES].lock().await
    }
}
