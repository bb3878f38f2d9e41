//! Object stores for the object-store tests: [`MakeStore`] (fresh clients of one store,
//! one per racing writer, as separate processes would have), an in-memory store, and
//! (feature `s3`) a moto S3 server on loopback, started and stopped by each test.
#![cfg(feature = "object-store")]

use std::sync::{Arc, Mutex};

use futures_util::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// The value both object-store suites commit: a step counter, the writer that wrote
/// it, and a payload whose size and fill the tests choose.
#[derive(serde::Serialize, serde::Deserialize, Default, Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub step: u64,
    pub writer: u32,
    pub blob: String,
}

/// Makes fresh clients of one store (each racing writer gets its own, as separate
/// processes would).
pub type MakeStore = Arc<dyn Fn() -> Arc<dyn ObjectStore> + Send + Sync>;

/// One `InMemory` store.
pub fn in_memory() -> MakeStore {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    Arc::new(move || store.clone())
}

/// A store over `inner` with faults a test turns on: it applies every PUT of `key` and
/// then, when `fail` is armed, answers it with an error (a conditional PUT whose
/// response was lost and that the client retried: the retry is refused, `412`; or an
/// error of another kind after the PUT was applied); with `ignore_conditions` it
/// applies every PUT as an unconditional one, as some S3-compatible servers do. It
/// counts the multipart uploads started through it.
#[derive(Debug)]
pub struct FaultyStore {
    pub inner: Arc<dyn ObjectStore>,
    pub key: ObjectPath,
    pub fail: Arc<Mutex<Option<Failure>>>,
    pub multipart_uploads: Arc<std::sync::atomic::AtomicUsize>,
    pub ignore_conditions: bool,
    /// Ignore only `If-Match` (a PUT conditional on a version replaces whatever is there).
    pub ignore_if_match: bool,
}

impl FaultyStore {
    /// `inner` with no fault on.
    pub fn over(inner: Arc<dyn ObjectStore>) -> FaultyStore {
        FaultyStore {
            inner,
            key: ObjectPath::from("-"),
            fail: Default::default(),
            multipart_uploads: Default::default(),
            ignore_conditions: false,
            ignore_if_match: false,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Failure {
    Precondition,
    Other,
}

impl std::fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FaultyStore(ignore_conditions={}, ignore_if_match={}, {})",
            self.ignore_conditions, self.ignore_if_match, self.inner
        )
    }
}

#[async_trait::async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        mut opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if self.ignore_conditions
            || (self.ignore_if_match && matches!(opts.mode, PutMode::Update(_)))
        {
            opts.mode = PutMode::Overwrite;
        }
        let put = self.inner.put_opts(location, payload, opts).await?;
        let armed = match *location == self.key {
            true => self.fail.lock().unwrap().take(),
            false => None,
        };
        match armed {
            Some(Failure::Precondition) => Err(object_store::Error::Precondition {
                path: location.to_string(),
                source: "the retry of an applied PUT".into(),
            }),
            Some(Failure::Other) => Err(object_store::Error::Generic {
                store: "test",
                source: "connection reset after the PUT was applied".into(),
            }),
            None => Ok(put),
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        (self.multipart_uploads).fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// One test per behaviour `async fn name(MakeStore)` of the calling file, over each
/// store: `in_memory::name` over [`in_memory`], and with the `s3` feature `s3::name` over
/// a moto server of its own ([`moto::start`]; skipped loudly without moto) and
/// `ministack::name` over a MiniStack server of its own, a second S3 implementation
/// ([`ministack::start`]; skipped loudly without it).
#[allow(unused_macros)] // not every test file runs a suite
macro_rules! behaviour_suite {
    ($($name:ident),* $(,)?) => {
        mod in_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(crate::common::stores::in_memory()).await;
                }
            )*
        }

        #[cfg(feature = "s3")]
        mod s3 {
            use crate::common::stores::moto;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let test = concat!("s3::", stringify!($name));
                    let Some(server) = moto::start(test, &[]) else {
                        return;
                    };
                    super::$name(moto::maker(server.port)).await;
                }
            )*
        }

        #[cfg(feature = "s3")]
        mod ministack {
            use crate::common::stores::{ministack, moto};
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let test = concat!("ministack::", stringify!($name));
                    let Some(server) = ministack::start(test) else {
                        return;
                    };
                    super::$name(moto::maker(server.port)).await;
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use behaviour_suite;

/// The delays (ms after the writer's first acknowledged commit) at which a kill test
/// SIGKILLs its writers: `fixed`, then random ones below `max_ms` up to
/// `ATOMIC_PERSIST_OBJECT_KILLS` kills in all (a soak; RELIABILITY.md).
pub fn kill_delays(fixed: &[u64], max_ms: u64) -> Vec<u64> {
    let kills: usize = std::env::var("ATOMIC_PERSIST_OBJECT_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(fixed.len());
    let mut rng = super::Rng::from_clock();
    let random = std::iter::repeat_with(|| rng.below(max_ms));
    fixed
        .iter()
        .copied()
        .chain(random)
        .take(kills.max(fixed.len()))
        .collect()
}

/// moto's S3 server on 127.0.0.1 (see [`moto::start`]).
#[cfg(feature = "s3")]
pub mod moto {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use object_store::aws::AmazonS3Builder;
    use object_store::{ClientOptions, RetryConfig};

    pub const BUCKET: &str = "atomic-persist-test";

    /// An S3 server (moto's or MiniStack's) on 127.0.0.1, killed on drop.
    pub struct Server {
        pub(super) child: Child,
        pub port: u16,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// A port nobody listens on right now.
    pub fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// moto's own `moto_server` entry point, served one request at a time.
    ///
    /// moto 5's threaded server checks `If-Match` / `If-None-Match` and then stores the
    /// object as two steps without a lock (`s3/responses.py`, `put_object`), so two
    /// PUTs racing with the same condition can both pass, which real S3 never lets
    /// happen. Serving requests one by one restores S3's atomicity, so that "exactly one
    /// writer wins" tests this crate and not moto's thread timing. It is still
    /// `moto_server`'s `main` (same options, same S3 implementation), with `threaded`
    /// turned off.
    const MOTO_SERIAL: &str = "import sys, moto.server as m\n\
        run = m.run_simple\n\
        m.run_simple = lambda *a, **k: run(*a, **{**k, 'threaded': False})\n\
        m.main(sys.argv[1:])";

    /// The Python that runs moto: `ATOMIC_PERSIST_PYTHON`, else `python3`.
    fn python() -> String {
        std::env::var("ATOMIC_PERSIST_PYTHON").unwrap_or_else(|_| "python3".into())
    }

    /// Starts moto's S3 server on 127.0.0.1 with `env`, waits until it answers and
    /// creates the test bucket; `None` (after a visible skip) when moto is not
    /// installed.
    pub fn start(test: &str, env: &[(&str, &str)]) -> Option<Server> {
        let found =
            succeeds(Command::new(python()).args(["-c", "import moto.server, flask, werkzeug"]));
        if !found {
            crate::common::skip(
                test,
                "moto's server is not installed (pip install 'moto[server]'; \
                 ATOMIC_PERSIST_PYTHON names the interpreter when it is not python3)",
            );
            return None;
        }
        let (child, port) = serve("moto's server", |port| {
            Command::new(python())
                .args([
                    "-c",
                    MOTO_SERIAL,
                    "-H",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                ])
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn moto's server")
        });
        Some(Server { child, port })
    }

    /// Whether `command` runs and exits 0 (how a test asks if a server is installed).
    pub fn succeeds(command: &mut Command) -> bool {
        command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts an S3 server on a free port with `spawn`, waits until it answers and
    /// creates the test bucket; a server that dies first (its port taken meanwhile) is
    /// started again on another port.
    pub fn serve(what: &str, mut spawn: impl FnMut(u16) -> Child) -> (Child, u16) {
        for _ in 0..5 {
            let port = free_port();
            let mut child = spawn(port);
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(30) {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // it died (port taken?): try another port
                }
                if http(port, "PUT", &format!("/{BUCKET}")).is_some_and(|s| s == 200) {
                    return (child, port);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("{what} did not start on 127.0.0.1");
    }

    /// One unsigned HTTP/1.1 request to 127.0.0.1:`port`; its status code.
    pub fn http(port: u16, method: &str, path: &str) -> Option<u16> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).ok()?;
        std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
    }

    /// An S3 client of `bucket` on 127.0.0.1:`port`, with few retries so that error
    /// tests are quick.
    pub fn client(port: u16, bucket: &str, key_id: &str) -> Arc<dyn ObjectStore> {
        let retry = RetryConfig {
            max_retries: 2,
            retry_timeout: Duration::from_secs(5),
            ..Default::default()
        };
        Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(format!("http://127.0.0.1:{port}"))
                .with_allow_http(true)
                .with_region("us-east-1")
                .with_bucket_name(bucket)
                .with_access_key_id(key_id)
                .with_secret_access_key("secret")
                .with_retry(retry)
                .with_client_options(
                    ClientOptions::new()
                        .with_allow_http(true)
                        .with_connect_timeout(Duration::from_secs(2))
                        .with_timeout(Duration::from_secs(60)),
                )
                .build()
                .unwrap(),
        )
    }

    pub fn maker(port: u16) -> MakeStore {
        Arc::new(move || client(port, BUCKET, "test"))
    }
}

/// MiniStack's S3 (PyPI `ministack`) on 127.0.0.1: a second S3 implementation beside
/// moto, written apart from it, so that the suites do not rest on one emulator's reading
/// of S3's conditional writes.
#[cfg(feature = "s3")]
pub mod ministack {
    use std::process::{Command, Stdio};

    use super::moto::{Server, serve, succeeds};

    /// The `ministack` command: `ATOMIC_PERSIST_MINISTACK`, else `ministack` on the
    /// `PATH` (`.ci/run` installs it in a virtual environment of its own: it pins a
    /// botocore that moto's may not match).
    fn command() -> String {
        std::env::var("ATOMIC_PERSIST_MINISTACK").unwrap_or_else(|_| "ministack".into())
    }

    /// Starts MiniStack with only S3 on a free port, waits until it answers and creates
    /// the test bucket; `None` (after a visible skip) when it is not installed.
    pub fn start(test: &str) -> Option<Server> {
        if !succeeds(Command::new(command()).arg("--help")) {
            crate::common::skip(
                test,
                "MiniStack is not installed (pip install ministack; \
                 ATOMIC_PERSIST_MINISTACK names the command when it is not on the PATH)",
            );
            return None;
        }
        let (child, port) = serve("MiniStack", |port| {
            Command::new(command())
                .env("GATEWAY_PORT", port.to_string())
                .env("MINISTACK_HOST", "127.0.0.1")
                .env("SERVICES", "s3")
                .env("LOG_LEVEL", "WARNING")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn MiniStack")
        });
        Some(Server { child, port })
    }
}
