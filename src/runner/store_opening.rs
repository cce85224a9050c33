//! A run's store, opened on a thread of its own while the run builds its engine and compiles
//! its script. Each takes a fraction of a millisecond (SQLite reads the schema and recovers
//! the WAL, or PostgreSQL answers; ~900 functions are registered and the script parsed), and
//! a small run's start was their sum.

use std::sync::Arc;
use std::thread::JoinHandle;

use crate::store::{self, Store, StoreError, StoreLocation};

pub(super) enum StoreOpening {
    /// Nothing to wait for: a run without a store, or one opened already (a resume's).
    Ready(Option<Arc<dyn Store>>),
    Opening(JoinHandle<Result<Arc<dyn Store>, StoreError>>),
}

/// A store that started opening before the run's options were read (`rhaiflow run`, while
/// clap parses the command line: `cli::early_store`).
pub struct EarlyStore {
    location: StoreLocation,
    opening: StoreOpening,
}

impl EarlyStore {
    /// Starts opening the store at `location`; `None` if no thread can be started.
    pub fn start(location: StoreLocation) -> Option<EarlyStore> {
        match StoreOpening::start(&location) {
            Ok(opening @ StoreOpening::Opening(_)) => Some(EarlyStore { location, opening }),
            _ => None,
        }
    }

    /// The opening, if it is of the store at `location` (else it is dropped, unused).
    pub(super) fn of(self, location: &StoreLocation) -> Option<StoreOpening> {
        (self.location == *location).then_some(self.opening)
    }
}

impl StoreOpening {
    /// Starts opening the store at `location`; here and now if no thread can be started.
    pub(super) fn start(location: &StoreLocation) -> Result<StoreOpening, StoreError> {
        let at = location.clone();
        match std::thread::Builder::new().name("rhaiflow-open".into()).spawn(move || store::open(&at)) {
            Ok(opening) => Ok(StoreOpening::Opening(opening)),
            Err(_) => store::open(location).map(|opened| StoreOpening::Ready(Some(opened))),
        }
    }

    /// The store, once open.
    pub(super) fn opened(self) -> Result<Option<Arc<dyn Store>>, StoreError> {
        match self {
            StoreOpening::Ready(store) => Ok(store),
            StoreOpening::Opening(opening) => match opening.join() {
                Ok(opened) => opened.map(Some),
                // A bug while opening: reported as any other, on the command's thread.
                Err(panic) => std::panic::resume_unwind(panic),
            },
        }
    }
}
