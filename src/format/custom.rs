//! A format of your own: [`CustomFormat`], and the erased form a handle keeps of it.
//!
//! A handle holds its format as an [`AnyFormat`] value, chosen at run time, while serde's
//! serializers and deserializers are generic. So a user's format is kept behind a trait
//! object ([`Erased`]) whose methods take serde values and deserializers erased by
//! `erased-serde`; the blanket implementation below turns any [`CustomFormat`] into one,
//! so the user writes plain generic serde code and never sees the erasure.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::panic::RefUnwindSafe;

use serde::Serialize;
use serde::de::{DeserializeOwned, DeserializeSeed};

use super::{AnyFormat, FormatResult, deserialize_error, serialize_error};
use crate::error::BoxError;

/// A format of your own, such as MessagePack or CBOR, for every handle: the envelope,
/// history, locks and object storage work with it as with the built-in ones.
///
/// Give it to a builder as `&'static`: `.format(&MessagePack)` (a unit struct is a
/// constant, so the reference is `'static`), or name it with [`AnyFormat::custom`],
/// which is `const` (for [`Persist::FORMAT`](crate::Persist::FORMAT)). It is never
/// chosen by extension: a file's extension names only the built-in formats.
///
/// # What a format must guarantee
///
/// - **Deterministic bytes**: the same value serializes to the same bytes every time. A
///   commit whose bytes did not change is skipped, and a value whose bytes vary (a
///   `HashMap`'s order, a time stamp) is written on every commit.
/// - **A complete document**: `deserialize` reads what `serialize` wrote, and fails
///   (rather than returning a value) on bytes that are not one. The envelope's checksum
///   catches damage whatever the format does.
/// - **A unique name**: the name is the format's identity ([`AnyFormat`] compares and
///   hashes custom formats by it) and appears in errors.
///
/// (`Send + Sync + RefUnwindSafe`: a format is shared by every handle, and an
/// [`AnyFormat`] holding it stays safe to use across `catch_unwind`.)
///
/// # The envelope
///
/// An enveloped file of a custom format is in the framed layout the binary format uses
/// (magic, version, payload, meta, magic: see the [envelope](crate::envelope) docs), so
/// the format needs no place of its own for the meta. The file is then not a bare
/// document of the format; with the envelope off it is.
///
/// MessagePack through `rmp-serde`, in a few lines:
///
/// ```
/// use std::io::Write;
/// use atomic_persist::{BoxError, CustomFormat, Persisted};
///
/// struct MessagePack;
///
/// impl CustomFormat for MessagePack {
///     fn name(&self) -> &'static str {
///         "msgpack"
///     }
///
///     fn serialize<T: serde::Serialize + ?Sized, W: Write>(
///         &self,
///         value: &T,
///         mut out: W,
///     ) -> Result<(), BoxError> {
///         // Field names kept, so that fields can be added later.
///         Ok(value.serialize(&mut rmp_serde::Serializer::new(&mut out).with_struct_map())?)
///     }
///
///     fn deserialize<'de, S: serde::de::DeserializeSeed<'de>>(
///         &self,
///         bytes: &'de [u8],
///         seed: S,
///     ) -> Result<S::Value, BoxError> {
///         Ok(seed.deserialize(&mut rmp_serde::Deserializer::from_read_ref(bytes))?)
///     }
/// }
///
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("state.msgpack");
/// let mut p = Persisted::<Vec<u32>>::builder(&path)
///     .format(&MessagePack)
///     .envelope(true)
///     .open_or_default()?;
/// p.set(vec![1, 2, 3])?;
/// let back = Persisted::<Vec<u32>>::builder(&path).format(&MessagePack).envelope(true).open()?;
/// assert_eq!(back.get(), &[1, 2, 3]);
/// assert_eq!(back.meta().unwrap().generation, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait CustomFormat: Send + Sync + RefUnwindSafe + 'static {
    /// The format's name, in errors and as its identity (see the trait docs).
    fn name(&self) -> &'static str;

    /// Writes `value` as a complete document into `out`.
    ///
    /// # Errors
    ///
    /// Any error; a handle reports it as [`Error::Serialize`](crate::Error::Serialize)
    /// naming the file (an I/O error of `out` included).
    fn serialize<T: Serialize + ?Sized, W: Write>(&self, value: &T, out: W)
    -> Result<(), BoxError>;

    /// Reads one document from `bytes`, giving its deserializer to `seed` (which returns
    /// the value): `seed.deserialize(&mut MyDeserializer::from_slice(bytes))`.
    ///
    /// # Errors
    ///
    /// Any error; a handle reports it as [`Error::Deserialize`](crate::Error::Deserialize)
    /// naming the file and the format (no line or column).
    fn deserialize<'de, S: DeserializeSeed<'de>>(
        &self,
        bytes: &'de [u8],
        seed: S,
    ) -> Result<S::Value, BoxError>;
}

/// A [`CustomFormat`] as a handle keeps it: see the [module docs](self).
pub(crate) trait Erased: Send + Sync + RefUnwindSafe {
    fn name(&self) -> &'static str;

    fn serialize(
        &self,
        value: &dyn erased_serde::Serialize,
        out: &mut dyn Write,
    ) -> Result<(), BoxError>;

    /// Gives the document's deserializer, erased, to `visit`.
    fn deserialize<'de>(
        &self,
        bytes: &'de [u8],
        visit: &mut dyn FnMut(&mut dyn erased_serde::Deserializer<'de>) -> erased_serde::Result<()>,
    ) -> Result<(), BoxError>;
}

impl<F: CustomFormat> Erased for F {
    fn name(&self) -> &'static str {
        CustomFormat::name(self)
    }

    fn serialize(
        &self,
        value: &dyn erased_serde::Serialize,
        out: &mut dyn Write,
    ) -> Result<(), BoxError> {
        CustomFormat::serialize(self, value, out)
    }

    fn deserialize<'de>(
        &self,
        bytes: &'de [u8],
        visit: &mut dyn FnMut(&mut dyn erased_serde::Deserializer<'de>) -> erased_serde::Result<()>,
    ) -> Result<(), BoxError> {
        CustomFormat::deserialize(self, bytes, Visit(visit))
    }
}

/// The seed that hands the format's deserializer, erased, to a visit.
struct Visit<'v, 'de>(
    &'v mut dyn FnMut(&mut dyn erased_serde::Deserializer<'de>) -> erased_serde::Result<()>,
);

impl<'de> DeserializeSeed<'de> for Visit<'_, 'de> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let mut erased = <dyn erased_serde::Deserializer>::erase(d);
        (self.0)(&mut erased).map_err(serde::de::Error::custom)
    }
}

/// A custom format as an [`AnyFormat`] holds it ([`AnyFormat::Custom`]): compared and
/// hashed by name.
#[derive(Clone, Copy)]
pub struct Custom(&'static dyn Erased);

impl Custom {
    /// The format's [`name`](CustomFormat::name).
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    pub(super) fn serialize<T: Serialize + ?Sized, W: Write>(
        &self,
        value: &T,
        mut out: W,
    ) -> FormatResult<()> {
        self.0
            .serialize(&value, &mut out)
            .map_err(|e| serialize_error(self.name(), e))
    }

    pub(super) fn deserialize<T: DeserializeOwned>(&self, bytes: &[u8]) -> FormatResult<T> {
        let mut value = None;
        let mut visit = |d: &mut dyn erased_serde::Deserializer<'_>| {
            value = Some(erased_serde::deserialize::<T>(d)?);
            Ok(())
        };
        let read = self.0.deserialize(bytes, &mut visit);
        match (read, value) {
            (Ok(()), Some(value)) => Ok(value),
            (Err(e), _) => Err(deserialize_error(self.name(), None, e)),
            (Ok(()), None) => Err(deserialize_error(
                self.name(),
                None,
                "the format returned without deserializing a value",
            )),
        }
    }
}

impl fmt::Debug for Custom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Custom").field(&self.name()).finish()
    }
}

impl PartialEq for Custom {
    fn eq(&self, other: &Custom) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Custom {}

impl Hash for Custom {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl AnyFormat {
    /// The custom format `format` as a value (`const`, for
    /// [`Persist::FORMAT`](crate::Persist::FORMAT)); the same as `AnyFormat::from(format)`.
    pub const fn custom<F: CustomFormat>(format: &'static F) -> AnyFormat {
        AnyFormat::Custom(Custom(format))
    }
}

impl<F: CustomFormat> From<&'static F> for AnyFormat {
    fn from(format: &'static F) -> AnyFormat {
        AnyFormat::custom(format)
    }
}
