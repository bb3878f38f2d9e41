//! Checkpoint a job's progress to S3, resuming where the last run stopped; then keep
//! the last three checkpoints as a history.
//!
//! Runs against a local S3 API server on loopback (never another host):
//!
//! ```text
//! pip install 'moto[server]'
//! moto_server -H 127.0.0.1 -p 5000 &
//! cargo run --example checkpoint_s3 --features s3,json
//! cargo run --example checkpoint_s3 --features s3,json    # resumes from the checkpoint
//! ```
//!
//! `S3_PORT` picks another port of 127.0.0.1. The example creates its bucket with one
//! unsigned request (moto accepts it; a real bucket is made once, by its owner).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use atomic_persist::Error;
use atomic_persist::{ObjectHistory, ObjectPersisted};
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Default, Debug)]
struct Job {
    next_item: u64,
    processed: Vec<u64>,
}

const BUCKET: &str = "checkpoints";
const KEY: &str = "runs/demo/checkpoint.json";
const HISTORY_KEY: &str = "runs/demo/history.json";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::var("S3_PORT").map_or(Ok(5000), |p| p.parse())?;
    create_bucket(port)?;
    let store: Arc<dyn ObjectStore> = Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(format!("http://127.0.0.1:{port}"))
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_bucket_name(BUCKET)
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()?,
    );

    let open = || {
        ObjectPersisted::<Job>::builder(store.clone(), KEY)
            .envelope(true)
            .open_or_default()
    };
    let mut job = open().await?;
    match job.meta() {
        Some(m) => println!(
            "resuming at item {} (generation {}, written {} by run {})",
            job.next_item, m.generation, m.written_at, m.run_id
        ),
        None => println!("no checkpoint in s3://{BUCKET}/{KEY}: starting fresh"),
    }

    for _ in 0..3 {
        let item = job.next_item;
        // ... process `item` ...
        // One conditional PUT per checkpoint; on a lost race, reload and apply again.
        job.update_retry(|j| {
            j.processed.push(j.next_item);
            j.next_item += 1;
        })
        .await?;
        let meta = job.meta().unwrap();
        let etag = job
            .version()
            .and_then(|v| v.e_tag.as_deref())
            .unwrap_or("-");
        println!(
            "checkpointed item {item}: generation {}, etag {etag}",
            meta.generation
        );
    }

    // A second writer that loaded before the last checkpoint cannot overwrite it.
    let mut stale = open().await?;
    job.update(|j| j.next_item += 1).await?;
    match stale.update(|j| j.next_item = 0).await {
        Err(Error::Conflict {
            expected, found, ..
        }) => {
            println!("stale writer refused: it saw generation {expected}, the store has {found}")
        }
        other => println!("unexpected: {other:?}"),
    }

    // With history: every checkpoint a version of its own, the newest three kept,
    // any of them readable (or rolled back to) later.
    let mut history = ObjectHistory::<Job>::builder(store.clone(), HISTORY_KEY)
        .keep(3)
        .open_or_default()
        .await?;
    history
        .update_retry(|j| j.next_item = job.next_item)
        .await?;
    for v in history.versions().await? {
        let old = history.version(v.generation).await?;
        println!(
            "version {} ({}, {} bytes): next item {}",
            v.generation, v.written_at, v.size, old.next_item
        );
    }
    Ok(())
}

/// `PUT /BUCKET` on 127.0.0.1: creates the bucket if moto does not have it yet.
fn create_bucket(port: u16) -> std::io::Result<()> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("no S3 server on 127.0.0.1:{port} ({e}); start one: moto_server -H 127.0.0.1 -p {port}"),
        )
    })?;
    write!(
        s,
        "PUT /{BUCKET} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    s.read_to_end(&mut response)?;
    Ok(())
}
