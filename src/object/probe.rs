//! The check that a store enforces the conditional writes every commit relies on.
//!
//! A commit is ordered by one conditional PUT: `If-None-Match: *` for the first
//! ([`PutMode::Create`]), `If-Match` the version last seen for the others
//! ([`PutMode::Update`]). A server that ignores those headers and answers `200` (several
//! S3-compatible ones have) lets every racing writer "win": updates are lost and
//! [`Error::Conflict`] never fires. So before the first commit to a store, this process
//! asks it once, beside the key being committed:
//!
//! 1. create a fresh probe object with `If-None-Match: *`;
//! 2. create it again the same way: the store must refuse;
//! 3. replace it with `If-Match` a version it never had: the store must refuse;
//! 4. delete it.
//!
//! A store that passes is remembered (the store object, by its address and name, for the
//! life of the process: two clients of one bucket are probed once each); one that
//! accepts step 2 or 3 is [`Error::Refused`] with [`Refusal::ConditionsIgnored`], naming
//! it, and nothing is committed. Each object handle can turn the probe off
//! (`probe_conditional_writes(false)`), for a store known to enforce conditions where
//! the three extra requests of the first commit matter.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion};

use super::store::{delete_quietly, store_error};
use crate::error::{Error, Op, Refusal, Result};

/// The stores that passed: the store object's address, and its `Display` name (which
/// names the bucket), so that a store dropped and another made at its address is
/// probed again unless it is of the same name.
static PASSED: Mutex<BTreeSet<(usize, String)>> = Mutex::new(BTreeSet::new());

/// Checks once per store and process that `store` refuses a repeated create and a stale
/// match, probing with an object beside `near`.
pub(crate) async fn ensure(store: &dyn ObjectStore, near: &ObjectPath) -> Result<()> {
    let name = store.to_string();
    let id = (
        std::ptr::from_ref(store).cast::<()>() as usize,
        name.clone(),
    );
    if PASSED.lock().map(|p| p.contains(&id)).unwrap_or(false) {
        return Ok(());
    }
    let key = ObjectPath::from(format!("{near}.probe-{}", crate::random::uuid_v7()));
    let outcome = probe(store, &key, near).await;
    delete_quietly(store, &key).await;
    match outcome? {
        None => {
            if let Ok(mut passed) = PASSED.lock() {
                passed.insert(id);
            }
            Ok(())
        }
        Some(condition) => Err(Error::Refused {
            path: PathBuf::from(name),
            reason: Refusal::ConditionsIgnored { condition },
        }),
    }
}

/// Steps 1–3 on the probe object `key`: the condition the store ignored, if any. A
/// store error names `near`, the key being committed: the probe's own is the crate's.
async fn probe(
    store: &dyn ObjectStore,
    key: &ObjectPath,
    near: &ObjectPath,
) -> Result<Option<&'static str>> {
    let put = |mode: PutMode| {
        let body = PutPayload::from_static(b"atomic-persist probe of conditional writes\n");
        store.put_opts(key, body, PutOptions::from(mode))
    };
    put(PutMode::Create)
        .await
        .map_err(|e| store_error(Op::Put, near, e))?;
    if refused(put(PutMode::Create).await, near)? {
        let stale = UpdateVersion {
            e_tag: Some("\"atomic-persist-no-such-version\"".into()),
            version: None,
        };
        if refused(put(PutMode::Update(stale)).await, near)? {
            return Ok(None);
        }
        return Ok(Some("If-Match"));
    }
    Ok(Some("If-None-Match: *"))
}

/// Whether a conditional PUT that must fail was refused as a condition refusal; another
/// error names `key`.
fn refused(put: object_store::Result<object_store::PutResult>, key: &ObjectPath) -> Result<bool> {
    match put {
        Ok(_) => Ok(false),
        Err(
            object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. },
        ) => Ok(true),
        Err(e) => Err(store_error(Op::Put, key, e)),
    }
}
