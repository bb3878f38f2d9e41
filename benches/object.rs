//! What `ObjectPersisted` costs over a bare conditional PUT of the same bytes.
//!
//! Each round commits a changed value once through each variant, in alternating order,
//! so a burst of load on a shared machine hits both alike; medians over rounds are
//! reported, with the ratio to the baseline:
//!
//! - baseline: serialize the value (`serde_json::to_vec`) and `put_opts` it with
//!   `PutMode::Update` on the ETag of the previous PUT: the floor of any ordered
//!   commit on an object store;
//! - `ObjectPersisted::update`, enveloped: validate, serialize with the envelope and its
//!   CRC-32, the same conditional PUT, and bookkeeping. Above the multipart threshold
//!   it uploads a body in parts, PUTs a pointer and deletes the replaced body.
//!
//! The store is `object_store`'s in-memory one (what the crate adds, without a network),
//! and an S3 server when `OBJECT_BENCH_S3` names its endpoint (such as moto on loopback:
//! `moto_server -H 127.0.0.1 -p 5000` and `OBJECT_BENCH_S3=http://127.0.0.1:5000`, bucket
//! `bench` created by the bench; needs the `s3` feature).
//!
//! ```sh
//! cargo bench --bench object --features object-store,json
//! OBJECT_BENCH_ROUNDS=101 cargo bench --bench object --features object-store,json
//! ```

use std::sync::Arc;
use std::time::Instant;

use atomic_persist::object::ObjectPersisted;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Default, Clone)]
struct Value {
    step: u64,
    blob: String,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One size on one store: (baseline, crate) medians in microseconds.
async fn run(store: Arc<dyn ObjectStore>, size: usize, rounds: usize, tag: &str) -> (f64, f64) {
    let bare_key = Path::from(format!("bench/{tag}/{size}/bare.json"));
    let crate_key = format!("bench/{tag}/{size}/crate.json");
    let mut value = Value {
        step: 0,
        blob: "x".repeat(size),
    };
    let first = store
        .put_opts(
            &bare_key,
            PutPayload::from(serde_json::to_vec(&value).unwrap()),
            PutOptions::from(PutMode::Overwrite),
        )
        .await
        .unwrap();
    let mut last = UpdateVersion::from(first);
    let mut p = ObjectPersisted::<Value>::builder(store.clone(), &crate_key)
        .envelope(true)
        .multipart_threshold(32 * 1024 * 1024)
        .part_size(8 * 1024 * 1024)
        .open_or_else(|| value.clone())
        .await
        .unwrap();
    p.commit().await.unwrap();
    let (mut bare, mut ours) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for which in [round % 2, 1 - round % 2] {
            let start = Instant::now();
            if which == 0 {
                value.step += 1;
                let bytes = serde_json::to_vec(&value).unwrap();
                let opts = PutOptions::from(PutMode::Update(last.clone()));
                let put = store
                    .put_opts(&bare_key, PutPayload::from(bytes), opts)
                    .await;
                last = UpdateVersion::from(put.unwrap());
                bare.push(start.elapsed().as_secs_f64() * 1e6);
            } else {
                p.update(|v| v.step += 1).await.unwrap();
                ours.push(start.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    (median(bare), median(ours))
}

#[cfg(feature = "s3")]
async fn s3_store() -> Option<(Arc<dyn ObjectStore>, String)> {
    let endpoint = std::env::var("OBJECT_BENCH_S3").ok()?;
    // Create the bucket with an unsigned PUT (moto accepts it; a real S3 bucket is
    // made beforehand and this request is refused, harmlessly).
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    if let Ok(mut s) = std::net::TcpStream::connect(host) {
        use std::io::{Read, Write};
        let _ = write!(
            s,
            "PUT /bench HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let _ = s.read(&mut [0u8; 64]);
    }
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(endpoint.clone())
        .with_bucket_name("bench")
        .with_region("us-east-1")
        .with_access_key_id("bench")
        .with_secret_access_key("bench")
        .with_allow_http(true)
        .build()
        .ok()?;
    Some((Arc::new(store), endpoint))
}

#[cfg(not(feature = "s3"))]
async fn s3_store() -> Option<(Arc<dyn ObjectStore>, String)> {
    None
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rounds = env_or("OBJECT_BENCH_ROUNDS", 201usize);
    let mut stores: Vec<(Arc<dyn ObjectStore>, String)> =
        vec![(Arc::new(InMemory::new()), "in-memory".into())];
    stores.extend(s3_store().await);
    println!("| store | value | rounds | bare conditional PUT | ObjectPersisted::update | ratio |");
    println!("|---|---|---|---|---|---|");
    for (store, name) in stores {
        for (size, label) in [
            (1 << 10, "1 KiB"),
            (64 << 10, "64 KiB"),
            (4 << 20, "4 MiB"),
            (48 << 20, "48 MiB (multipart)"),
        ] {
            let rounds = if size >= 1 << 20 {
                rounds / 10 + 1
            } else {
                rounds
            };
            let tag = name.replace(|c: char| !c.is_ascii_alphanumeric(), "-");
            let (bare, ours) = run(store.clone(), size, rounds, &tag).await;
            println!(
                "| {name} | {label} | {rounds} | {bare:.1} µs | {ours:.1} µs | {:.2}× |",
                ours / bare
            );
        }
    }
}
