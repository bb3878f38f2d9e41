//! The `tokio` feature: async wrappers that run the synchronous path in one
//! `spawn_blocking`, and what dropping their futures does.
#![cfg(all(feature = "tokio", feature = "json"))]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use atomic_persist::{Error, Persisted, write_atomic_async};

#[tokio::test]
async fn write_atomic_async_replaces_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raw.bin");
    write_atomic_async(&path, b"one".to_vec()).await.unwrap();
    write_atomic_async(&path, &b"two"[..]).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"two");
    // Errors are the synchronous path's, naming the path.
    let bad = dir.path().join("no/such/dir/x");
    match write_atomic_async(&bad, vec![1]).await {
        Err(e) => assert!(e.path().starts_with(dir.path()), "{e}"),
        Ok(()) => panic!("wrote into a missing directory"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn open_commit_update_reload_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.json");
    match Persisted::<u64>::open_async(&path).await {
        Err(Error::NotFound { path: p }) => assert_eq!(p, path),
        other => panic!("{other:?}"),
    }
    let p = Persisted::<u64>::builder(&path)
        .envelope(true)
        .open_or_default_async()
        .await
        .unwrap();
    let (mut p, r) = p
        .update_async(|n| {
            *n += 41;
            "returned"
        })
        .await;
    assert_eq!(r.unwrap(), "returned");
    *p.get_mut() += 1;
    let (p, r) = p.commit_async().await;
    r.unwrap();
    assert_eq!(p.meta().unwrap().generation, 2);

    let other = Persisted::<u64>::builder(&path)
        .envelope(true)
        .open_async()
        .await
        .unwrap();
    assert_eq!(*other, 42);

    drop(p);

    // A failed commit gives the handle back with the error.
    let p = Persisted::<u64>::builder(&path)
        .envelope(true)
        .validate(|n| {
            if *n < 100 {
                Ok(())
            } else {
                Err("too big".into())
            }
        })
        .open_async()
        .await
        .unwrap();
    let (p, r) = p.update_async(|n| *n = 500).await;
    assert!(matches!(r, Err(Error::Invalid { .. })), "{r:?}");
    assert_eq!(*p, 500); // in memory, not on disk
    let (p, r) = p.reload_async().await;
    r.unwrap();
    assert_eq!(*p, 42);
}

/// Dropping the future of a commit that started does not stop or undo it: the file
/// ends up with the new value, complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_future_does_not_roll_back_a_started_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slow.json");
    let started = Arc::new(AtomicBool::new(false));
    let flag = started.clone();
    let p = Persisted::<Vec<u64>>::builder(&path)
        .validate(move |v| {
            if !v.is_empty() {
                flag.store(true, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(300)); // a slow commit
            }
            Ok(())
        })
        .open_or_default_async()
        .await
        .unwrap();
    let task = tokio::spawn(p.update_async(|v| v.extend(0..1000)));
    while !started.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    task.abort(); // the awaiting future is dropped mid-commit
    assert!(task.await.unwrap_err().is_cancelled());
    assert!(!path.exists(), "the commit is still running");
    // The blocking task runs on to the rename.
    for _ in 0..200 {
        if path.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let back = Persisted::<Vec<u64>>::open_async(&path).await.unwrap();
    assert_eq!(*back, (0..1000).collect::<Vec<_>>());
}

/// A future dropped before its first poll spawns nothing and writes nothing.
#[tokio::test]
async fn a_future_never_polled_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("never.json");
    let fut = write_atomic_async(&path, b"x".to_vec());
    drop(fut);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!path.exists());
}

/// `update_locked_async` from several handles (as from several tasks): nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_locked_async_loses_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("counter.json");
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let mut p = Persisted::<u64>::open_or_default_async(&path)
                .await
                .unwrap();
            for _ in 0..25 {
                let (back, r) = p.update_locked_async(|n| *n += 1).await;
                r.unwrap();
                p = back;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*Persisted::<u64>::open_async(&path).await.unwrap(), 100);
}

/// A `Persist` type saves and loads through the same synchronous code on the blocking
/// pool, and gets its value back from `save_async`.
#[tokio::test]
async fn persist_types_save_and_load_async() {
    use atomic_persist::Persist;

    #[derive(serde::Serialize, serde::Deserialize, Default, Debug, PartialEq)]
    struct Jobs {
        done: Vec<u32>,
    }
    impl Persist for Jobs {
        const PATH: &'static str = concat!(env!("CARGO_TARGET_TMPDIR"), "/async_api_jobs.json");
    }

    let _ = std::fs::remove_file(Jobs::PATH);
    assert!(matches!(
        Jobs::load_async().await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        Jobs::load_or_default_async().await.unwrap(),
        Jobs::default()
    );

    let (jobs, saved) = Jobs { done: vec![1, 2] }.save_async().await;
    saved.unwrap();
    assert_eq!(jobs.done, [1, 2], "the value comes back");
    assert_eq!(Jobs::load_async().await.unwrap(), jobs);
    assert_eq!(
        Jobs::load_from(Jobs::PATH).unwrap(),
        jobs,
        "the same file as `load`"
    );
    std::fs::remove_file(Jobs::PATH).unwrap();
}

/// Polls `future` to its end on this thread (no runtime: the one whose blocking pool
/// runs the work is entered by the caller).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

#[test]
fn a_commit_the_shut_down_runtime_drops_gives_the_handle_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.json");
    let mut p = Persisted::<u64>::open_or_default(&path).unwrap();
    p.set(1).unwrap();
    *p.get_mut() = 2;
    // A runtime that has shut down drops every blocking task it is given, unrun.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let handle = rt.handle().clone();
    rt.shutdown_background();
    let _entered = handle.enter();
    let (p, committed) = block_on(p.commit_async());
    match committed {
        Err(Error::Io { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::Interrupted);
        }
        other => panic!("expected the runtime's refusal, got {other:?}"),
    }
    assert_eq!(*p.get(), 2, "the handle keeps its unsaved value");
    assert_eq!(Persisted::<u64>::open(&path).unwrap().into_inner(), 1);
}
