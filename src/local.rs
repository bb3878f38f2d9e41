//! What the builders of the two handles on local files ([`Persisted`](crate::Persisted),
//! [`History`](crate::History)) share beyond the [codec](crate::codec): the write
//! options, the wait for the writer lock, the read limit, and their setters
//! ([`local_setters!`]), written once.

use std::time::Duration;

use crate::atomic::WriteOptions;

/// The file side of a local handle's builder.
#[derive(Clone, Debug, Default)]
pub(crate) struct Local {
    pub options: WriteOptions,
    /// `None`: wait as long as it takes.
    pub lock_timeout: Option<Duration>,
    /// `None`: read a file of any size.
    pub max_size: Option<u64>,
}

/// The setters of a builder's [`Local`], kept in its `local` field.
macro_rules! local_setters {
    () => {
        /// How much of a commit must reach stable storage (default
        /// [`Durability::Full`](crate::Durability::Full)). Applies to the current write
        /// options; a later [`write_options`](Self::write_options) replaces it.
        pub fn durability(mut self, durability: crate::Durability) -> Self {
            self.local.options = self.local.options.durability(durability);
            self
        }

        /// All options of the atomic writes: durability, mode, permissions.
        pub fn write_options(mut self, options: crate::WriteOptions) -> Self {
            self.local.options = options;
            self
        }

        /// How long a commit waits for the writer lock before failing with
        /// [`Error::Locked`](crate::Error::Locked) (naming the lock file). By default a
        /// writer waits as long as another holds the lock, as `flock` does: a timeout
        /// that fires under load would turn slowness into errors, and a holder that dies
        /// releases the lock anyway. `Duration::ZERO` tries once and never waits.
        pub fn lock_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.local.lock_timeout = Some(timeout);
            self
        }

        /// Refuse to read a file larger than `bytes`
        /// ([`Error::TooLarge`](crate::Error::TooLarge), before anything is read): a
        /// bound on the memory a load takes when the file may come from someone else.
        /// By default there is no limit.
        pub fn max_size(mut self, bytes: u64) -> Self {
            self.local.max_size = Some(bytes);
            self
        }
    };
}

pub(crate) use local_setters;
