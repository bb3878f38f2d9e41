//! Watch latency: from another process's commit returning to the value arriving through
//! a watch, against the floor of a bare `notify` watcher that only sees the event.
//!
//! A child process (this binary, run again) commits an enveloped `u64` N times, a pause
//! apart, and prints when each commit returned (the realtime clock, in nanoseconds).
//! Three watchers run at once in the parent on the same file, so each commit is seen by
//! all three: the floor (the raw event for the file's name, nothing read), a watch with
//! the default debounce (10 ms) and a watch with no debounce. Each commit gives one
//! latency per watcher; the table gives their median and 99th percentile, and the
//! median of the per-commit difference to the floor. On a disk the rename comes before
//! the commit's last flush, so a watcher can see the value before the commit returns:
//! a latency can be negative.
//!
//! ```sh
//! cargo bench --bench watch --features watch      # 200 commits on disk and on tmpfs
//! WATCH_COMMITS=50 cargo bench --bench watch --features watch
//! ```
//!
//! Environment: `WATCH_COMMITS` (default 200), `WATCH_PAUSE_MS` (between commits,
//! default 50: more than the debounce, so commits are not coalesced); `BENCH_DIR`,
//! `BENCH_TMPFS_DIR` as for the other benches. Without `--bench` it runs 3 commits on
//! tmpfs and checks that every watcher saw each.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use atomic_persist::Persisted;
use atomic_persist::watch::{Update, WatchOptions};

#[path = "common/env.rs"]
mod env;
#[path = "common/stats.rs"]
mod stats;

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

const WATCHERS: [&str; 3] = [
    "floor: bare notify event, nothing read",
    "watch, default debounce (10 ms)",
    "watch, no debounce",
];

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

fn open(path: &Path) -> atomic_persist::Result<Persisted<u64>> {
    Persisted::<u64>::builder(path)
        .envelope(true)
        .open_or_default()
}

/// The child: commits 1..=n, printing `generation nanoseconds` as each returns.
fn child(path: &Path, n: u64, pause: Duration) -> Res {
    let mut p = open(path)?;
    for g in 1..=n {
        std::thread::sleep(pause);
        p.set(g)?;
        println!("{g} {}", now_ns());
    }
    Ok(())
}

/// Arrival times by generation, from one watcher, sent as `(watcher, generation, ns)`.
type Arrival = (usize, u64, i128);

/// The bare `notify` watcher on the file's directory: the time of every event for its
/// name but reads (which commit it belongs to is settled by time, in [`run`]).
fn floor(path: &Path, tx: mpsc::Sender<Arrival>) -> Res<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let name = path.file_name().unwrap().to_os_string();
    let mut w = notify::recommended_watcher(move |e: notify::Result<notify::Event>| {
        let Ok(e) = e else { return };
        let read = matches!(e.kind, notify::EventKind::Access(_));
        if !read && e.paths.iter().any(|p| p.file_name() == Some(&name)) {
            let _ = tx.send((0, 0, now_ns()));
        }
    })?;
    w.watch(path.parent().unwrap(), notify::RecursiveMode::NonRecursive)?;
    Ok(w)
}

/// A watch of the file on its own thread, sending each arrival.
fn watcher(
    path: &Path,
    which: usize,
    debounce: Duration,
    n: u64,
    tx: mpsc::Sender<Arrival>,
) -> Res {
    let p = open(path)?;
    let mut w = p.watch_with(WatchOptions::new().debounce(debounce))?;
    std::thread::spawn(move || {
        for _ in 0..n {
            match w.next() {
                Some(Ok(Update::Changed { value, .. })) => {
                    let _ = tx.send((which, value, now_ns()));
                }
                other => panic!("watcher {which}: {other:?}"),
            }
        }
    });
    Ok(())
}

/// One run of `n` commits in `dir`: latencies in ms, by watcher, per generation.
fn run(dir: &Path, n: u64, pause: Duration) -> Res<Vec<Vec<f64>>> {
    let path = dir.join("watched.json");
    let _ = std::fs::remove_file(&path);
    let (tx, rx) = mpsc::channel();
    let _floor = floor(&path, tx.clone())?;
    watcher(&path, 1, Duration::from_millis(10), n, tx.clone())?;
    watcher(&path, 2, Duration::ZERO, n, tx)?;
    let mut child = Command::new(std::env::current_exe()?)
        .env("WATCH_BENCH_CHILD", &path)
        .env("WATCH_BENCH_N", n.to_string())
        .env("WATCH_BENCH_PAUSE_MS", pause.as_millis().to_string())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut returned = HashMap::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line?;
        let (g, t) = line.split_once(' ').ok_or("a bad line from the child")?;
        returned.insert(g.parse::<u64>()?, t.parse::<i128>()?);
    }
    if !child.wait()?.success() {
        return Err("the committing child failed".into());
    }
    let mut arrived: HashMap<(usize, u64), i128> = HashMap::new();
    let mut floor_events = Vec::new();
    while arrived.len() < 2 * n as usize || floor_of(&floor_events, &returned, n, pause).is_none() {
        let (w, g, t) = rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| format!("only {} of {} arrivals", arrived.len(), 2 * n))?;
        match w {
            0 => floor_events.push(t),
            _ => {
                arrived.entry((w, g)).or_insert(t);
            }
        }
    }
    let floor = floor_of(&floor_events, &returned, n, pause).unwrap();
    let mut latencies = vec![
        (1..=n)
            .map(|g| (floor[&g] - returned[&g]) as f64 / 1e6)
            .collect(),
    ];
    for w in 1..3 {
        latencies.push(
            (1..=n)
                .map(|g| (arrived[&(w, g)] - returned[&g]) as f64 / 1e6)
                .collect(),
        );
    }
    Ok(latencies)
}

/// The floor's time for each commit: its first event after the previous commit
/// returned and half a pause passed (the child sleeps a pause before each commit, so
/// no event of the previous one comes that late); `None` until every commit has one.
fn floor_of(
    events: &[i128],
    returned: &HashMap<u64, i128>,
    n: u64,
    pause: Duration,
) -> Option<HashMap<u64, i128>> {
    let half = pause.as_nanos() as i128 / 2;
    (1..=n)
        .map(|g| {
            let after = returned.get(&(g - 1)).map_or(i128::MIN, |t| t + half);
            let t = events.iter().copied().filter(|&t| t > after).min()?;
            Some((g, t))
        })
        .collect()
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn report(title: &str, lat: &[Vec<f64>]) {
    println!("\n{title}: {} commits\n", lat[0].len());
    println!("| watcher | median (ms) | p99 (ms) | median over the floor (ms, 95% CI) |");
    println!("|---|---:|---:|---:|");
    for (w, name) in WATCHERS.iter().enumerate() {
        let over: Vec<f64> = lat[w].iter().zip(&lat[0]).map(|(a, f)| a - f).collect();
        let (m, lo, hi) = stats::median_ci(over);
        println!(
            "| {name} | {:.2} | {:.2} | {m:.2} ({lo:.2}–{hi:.2}) |",
            percentile(&lat[w], 0.5),
            percentile(&lat[w], 0.99)
        );
    }
}

fn main() -> Res {
    if let Some(path) = std::env::var_os("WATCH_BENCH_CHILD") {
        let n = env::usize_or("WATCH_BENCH_N", 1) as u64;
        let pause = Duration::from_millis(env::usize_or("WATCH_BENCH_PAUSE_MS", 50) as u64);
        return child(&PathBuf::from(path), n, pause);
    }
    let pause = Duration::from_millis(env::usize_or("WATCH_PAUSE_MS", 50) as u64);
    if !env::timing() {
        let dir = tempfile::tempdir_in(env::tmpfs_base())?;
        let lat = run(dir.path(), 3, pause)?;
        assert!(lat.iter().all(|l| l.len() == 3));
        println!("watch bench: smoke run ok (every watcher saw 3 commits)");
        return Ok(());
    }
    let n = env::usize_or("WATCH_COMMITS", 200) as u64;
    for (title, base) in [("disk", env::disk_base()), ("tmpfs", env::tmpfs_base())] {
        std::fs::create_dir_all(&base)?;
        let dir = tempfile::tempdir_in(&base)?;
        let lat = run(dir.path(), n, pause)?;
        report(&format!("{title} ({})", base.display()), &lat);
    }
    Ok(())
}
