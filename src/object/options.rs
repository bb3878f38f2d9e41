//! The settings both object-store builders share, and their setters, written once.

use std::fmt;
use std::sync::Arc;

use object_store::ObjectStore;
use uuid::Uuid;

use super::store::Multipart;
use crate::error::Result;
use crate::format::AnyFormat;

pub(crate) use crate::payload::Validate;

/// The default bound of `update_retry` ([`ObjectPersisted::update_retry`](super::ObjectPersisted::update_retry),
/// [`ObjectHistory::update_retry`](super::ObjectHistory::update_retry)).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

/// What [`ObjectPersistedBuilder`](super::ObjectPersistedBuilder) and
/// [`ObjectHistoryBuilder`](super::ObjectHistoryBuilder) both set.
pub(crate) struct Options<T> {
    pub store: Arc<dyn ObjectStore>,
    pub key: String,
    pub format: Option<AnyFormat>,
    pub schema_version: u32,
    pub run_id: Option<Uuid>,
    pub validate: Option<Validate<T>>,
    pub max_attempts: u32,
    pub multipart: Multipart,
}

impl<T> Options<T> {
    /// The defaults for `key` in `store`.
    pub fn new(store: Arc<dyn ObjectStore>, key: &str) -> Self {
        Options {
            store,
            key: key.to_owned(),
            format: None,
            schema_version: 0,
            run_id: None,
            validate: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            multipart: Multipart::default(),
        }
    }

    /// The format set, else the one the key's extension names.
    pub fn resolve_format(&self) -> Result<AnyFormat> {
        match self.format {
            Some(f) => Ok(f),
            None => AnyFormat::from_path(&self.key),
        }
    }

    /// Adds the shared fields to a builder's `Debug`.
    pub fn debug_fields(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        d.field("store", &format_args!("{}", self.store))
            .field("key", &self.key)
            .field("format", &self.format)
            .field("schema_version", &self.schema_version)
            .field("run_id", &self.run_id)
            .field("validate", &self.validate.is_some())
            .field("max_attempts", &self.max_attempts)
            .field("multipart", &self.multipart);
    }
}

/// The setters of [`Options`], for a builder that keeps them in its `options` field;
/// `$handle` is the handle's type name, for the links of the docs.
macro_rules! shared_setters {
    ($handle:literal) => {
        /// The format; by default it is chosen from the key's extension (`.json`,
        /// `.toml`, `.bin`).
        pub fn format(mut self, format: impl crate::format::Format) -> Self {
            self.options.format = Some(crate::format::any_of(&format));
            self
        }

        /// The schema version recorded in the envelope of every commit (default 0);
        /// reading a newer one is [`Error::SchemaVersion`](crate::Error::SchemaVersion).
        pub fn schema_version(mut self, version: u32) -> Self {
            self.options.schema_version = version;
            self
        }

        /// The run id recorded in the envelope instead of [`run_id()`](crate::run_id).
        pub fn run_id(mut self, id: uuid::Uuid) -> Self {
            self.options.run_id = Some(id);
            self
        }

        /// A check of the value on every commit and load, as
        /// [`PersistedBuilder::validate`](crate::PersistedBuilder::validate):
        /// [`Error::Invalid`](crate::Error::Invalid) naming the key.
        pub fn validate(
            mut self,
            f: impl Fn(&T) -> std::result::Result<(), String> + Send + Sync + 'static,
        ) -> Self {
            self.options.validate = Some(Box::new(f));
            self
        }

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
