//! The settings both object-store builders share, and their setters, written once
//! (the codec's with the local builders', in [`codec`]).

use std::fmt;
use std::sync::Arc;

use super::store::Multipart;
use crate::codec;
use object_store::ObjectStore;

/// The default bound of `update_retry` ([`ObjectPersisted::update_retry`](super::ObjectPersisted::update_retry),
/// [`ObjectHistory::update_retry`](super::ObjectHistory::update_retry)).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

/// What [`ObjectPersistedBuilder`](super::ObjectPersistedBuilder) and
/// [`ObjectHistoryBuilder`](super::ObjectHistoryBuilder) both set.
pub(crate) struct Options<T> {
    pub store: Arc<dyn ObjectStore>,
    pub key: String,
    pub codec: codec::Settings<T>,
    pub max_attempts: u32,
    pub multipart: Multipart,
    /// Whether the first commit checks the store enforces conditional writes.
    pub probe: bool,
}

impl<T> Options<T> {
    /// The defaults for `key` in `store`.
    pub fn new(store: Arc<dyn ObjectStore>, key: &str) -> Self {
        Options {
            store,
            key: key.to_owned(),
            codec: codec::Settings::default(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            multipart: Multipart::default(),
            probe: true,
        }
    }

    /// Adds the shared fields to a builder's `Debug`.
    pub fn debug_fields(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        d.field("store", &format_args!("{}", self.store))
            .field("key", &self.key);
        self.codec.debug_fields(d);
        d.field("max_attempts", &self.max_attempts)
            .field("multipart", &self.multipart)
            .field("probe", &self.probe);
    }
}

/// The setters of [`Options`], for a builder that keeps them in its `options` field;
/// `$handle` is the handle's type name, for the links of the docs.
macro_rules! shared_setters {
    ($handle:literal) => {
        crate::codec::codec_setters!($handle, options.codec);

        #[doc = concat!("How many times [`update_retry`](", $handle, "::update_retry)")]
        /// applies its change and tries the conditional PUT before it gives up with the
        /// last [`Error::Conflict`](crate::Error::Conflict) (default
        /// [`DEFAULT_MAX_ATTEMPTS`](crate::object::DEFAULT_MAX_ATTEMPTS), at least 1).
        pub fn max_attempts(mut self, n: u32) -> Self {
            self.options.max_attempts = n.max(1);
            self
        }

        /// Serialized objects larger than this many bytes are uploaded in parts, to a
        /// key of their own (see [Large values](crate::object#large-values)); default
        /// [`DEFAULT_MULTIPART_THRESHOLD`](crate::object::DEFAULT_MULTIPART_THRESHOLD).
        pub fn multipart_threshold(mut self, bytes: u64) -> Self {
            self.options.multipart.threshold = bytes;
            self
        }

        /// Check, before the first commit to the store, that it enforces the
        /// conditional writes commits are ordered by (default `true`; once per store and
        /// process; see [`Refusal::ConditionsIgnored`](crate::Refusal::ConditionsIgnored)).
        pub fn probe_conditional_writes(mut self, on: bool) -> Self {
            self.options.probe = on;
            self
        }

        /// The size of each part of a multipart upload but the last (default
        /// [`DEFAULT_PART_SIZE`](crate::object::DEFAULT_PART_SIZE), at least 1). S3 refuses
        /// parts under 5 MiB.
        pub fn part_size(mut self, bytes: usize) -> Self {
            self.options.multipart.part_size = bytes.max(1);
            self
        }
    };
}

pub(crate) use shared_setters;
