//! A real S3 API server on loopback: faults of the server and of the writer.

use std::time::Duration;

use atomic_persist::Error;
use atomic_persist::object::ObjectPersisted;

use crate::common;
use crate::common::stores::Checkpoint;
use crate::large::{LARGE, bodies, open_large};
use crate::open;
use common::stores::moto::{BUCKET, client, free_port, http, maker, start};
use std::process::Stdio;

/// The stores' errors are typed and name the key.
fn assert_io(r: Result<impl std::fmt::Debug, Error>, op: atomic_persist::Op, key: &str) -> Error {
    match r {
        Err(e @ Error::Io { .. }) => {
            let Error::Io { op: o, path, .. } = &e else {
                unreachable!()
            };
            assert_eq!(*o, op, "{e}");
            assert_eq!(path.to_str(), Some(key), "{e}");
            assert!(e.to_string().contains(key), "{e}");
            e
        }
        other => panic!("expected Error::Io about {key}: {other:?}"),
    }
}

#[tokio::test]
async fn unreachable_endpoint_is_a_typed_error_naming_the_key() {
    let Some(moto) = start(
        "s3_faults::unreachable_endpoint_is_a_typed_error_naming_the_key",
        &[],
    ) else {
        return;
    };
    let key = "unreachable.json";
    let mut p = open(&maker(moto.port), key).await;
    drop(moto); // the server is gone: nothing listens on its port (loopback only)
    let e = assert_io(p.update(|c| c.step = 1).await, atomic_persist::Op::Put, key);
    eprintln!("unreachable endpoint, PUT: {e}");
    let store = client(free_port(), BUCKET, "test");
    let r = ObjectPersisted::<Checkpoint>::open_or_default(store, key).await;
    let e = assert_io(r, atomic_persist::Op::Get, key);
    eprintln!("unreachable endpoint, GET: {e}");
}

#[tokio::test]
async fn missing_bucket_is_a_typed_error_naming_the_key() {
    let Some(moto) = start(
        "s3_faults::missing_bucket_is_a_typed_error_naming_the_key",
        &[],
    ) else {
        return;
    };
    let key = "state/missing-bucket.json";
    // GET: not NotFound, which open_or_default would take for "start fresh".
    let store = client(moto.port, "no-such-bucket", "test");
    let r = ObjectPersisted::<Checkpoint>::open_or_default(store, key).await;
    let e = assert_io(r, atomic_persist::Op::Get, key);
    let Error::Io { source, .. } = &e else {
        unreachable!()
    };
    assert_eq!(source.kind(), std::io::ErrorKind::NotFound, "{e}");
    eprintln!("missing bucket, GET: {e}");
    // PUT: the bucket is deleted under an open handle.
    let mut p = open(&maker(moto.port), key).await;
    assert_eq!(http(moto.port, "DELETE", &format!("/{BUCKET}")), Some(204));
    let e = assert_io(p.update(|c| c.step = 1).await, atomic_persist::Op::Put, key);
    eprintln!("missing bucket, PUT: {e}");
}

#[tokio::test]
async fn bad_credentials_are_a_typed_error_naming_the_key() {
    // With INITIAL_NO_AUTH_ACTION_COUNT=2 moto lets the bucket creation and the
    // first GET through unauthenticated, and checks the credentials of every later
    // request: "AKIAWRONG..." is no IAM access key it knows.
    let Some(moto) = start(
        "s3_faults::bad_credentials_are_a_typed_error_naming_the_key",
        &[("INITIAL_NO_AUTH_ACTION_COUNT", "2")],
    ) else {
        return;
    };
    let store = client(moto.port, BUCKET, "AKIAWRONGWRONGWRONG0");
    let key = "secret/state.json";
    let mut p = ObjectPersisted::<Checkpoint>::open_or_default(store.clone(), key)
        .await
        .unwrap();
    let e = assert_io(p.update(|c| c.step = 1).await, atomic_persist::Op::Put, key);
    eprintln!("bad credentials, PUT: {e}");
    let r = ObjectPersisted::<Checkpoint>::open_or_default(store, key).await;
    let e = assert_io(r, atomic_persist::Op::Get, key);
    let Error::Io { source, .. } = &e else {
        unreachable!()
    };
    assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
    eprintln!("bad credentials, GET: {e}");
}

/// A writer process SIGKILLed in the middle of PUTs of 8 MiB objects leaves the old
/// complete object or a new complete one, never part of one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_writer_leaves_no_partial_object() {
    killed_writer("s3_faults::killed_writer_leaves_no_partial_object", false).await;
}

/// The same with 12 MiB values committed as multipart bodies behind a pointer:
/// each kill lands in an upload, between the upload and the pointer PUT, or in
/// the pointer PUT; the value stays whole, and the bodies the kills left behind
/// are orphans that `sweep_bodies` removes, leaving only the live one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_multipart_writer_leaves_no_partial_object() {
    killed_writer(
        "s3_faults::killed_multipart_writer_leaves_no_partial_object",
        true,
    )
    .await;
}

async fn killed_writer(test: &str, multipart: bool) {
    let key = if multipart {
        "killed-large.json"
    } else {
        "killed.json"
    };
    let size = if multipart { LARGE } else { 8 * 1024 * 1024 };
    let fill = |step: u64| ["a", "b", "c"][step as usize % 3];
    let open_on = async |port: u16| match multipart {
        true => open_large(&maker(port), key).await,
        false => open(&maker(port), key).await,
    };
    if common::role().as_deref() == Some("writer") {
        let port: u16 = std::env::var("MOTO_PORT").unwrap().parse().unwrap();
        let mut p = open_on(port).await;
        loop {
            p.update_retry(|c| {
                c.step += 1;
                c.blob = fill(c.step).repeat(size);
            })
            .await
            .unwrap();
            println!("ack {}", p.step);
        }
    }
    let Some(moto) = start(test, &[]) else {
        return;
    };
    let mut seen = Vec::new();
    for delay_ms in common::stores::kill_delays(&[0, 250, 700, 1300, 2000], 2500) {
        let mut child = common::child(test, "writer")
            .env("MOTO_PORT", moto.port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Killed `delay_ms` after its first commit, in the middle of later ones.
        let delay = Duration::from_millis(delay_ms);
        let acknowledged = common::kill_after_first_ack(&mut child, delay, "the S3 writer");
        let p = open_on(moto.port).await;
        assert_eq!(p.blob.len(), size, "after a kill at {delay_ms} ms");
        let whole = p.blob.bytes().all(|b| b == fill(p.step).as_bytes()[0]);
        assert!(whole, "after a kill at {delay_ms} ms: mixed contents");
        // The last acknowledged commit, or the one after it (applied, not yet
        // acknowledged): nothing acknowledged is lost.
        assert!(
            (acknowledged..=acknowledged + 1).contains(&p.step),
            "after a kill at {delay_ms} ms: step {} with {acknowledged} acknowledged",
            p.step
        );
        seen.push(p.step);
    }
    let mut orphans = 0;
    if multipart {
        let p = open_on(moto.port).await;
        orphans = p.sweep_bodies(Duration::ZERO).await.unwrap();
        assert_eq!(bodies(&*maker(moto.port)(), key).await.len(), 1);
        assert_eq!(
            open_on(moto.port).await.step,
            p.step,
            "the sweep kept the live body"
        );
    }
    common::report(&format!(
        "killed writer (S3, multipart {multipart}): {} kills, 0 partial or mixed values, \
         0 acknowledged commits lost; steps seen after each kill: {seen:?}; orphan \
         bodies swept: {orphans}",
        seen.len()
    ));
}
