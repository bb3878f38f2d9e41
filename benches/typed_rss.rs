//! Peak memory of committing a large value: `Persisted` streaming straight into the
//! atomic file, next to serializing into a `Vec` and then writing it.
//!
//! Each measurement runs in a child process: it builds the value, resets the kernel's
//! peak-RSS counter (`/proc/self/clear_refs`), saves, and reports `VmHWM` from
//! `/proc/self/status`. The overhead is the peak minus the resident size before the save.
//!
//! ```sh
//! cargo bench --bench typed_rss --all-features              # 64 MiB and 1 GiB
//! TYPED_RSS_SIZES_MIB=64 cargo bench --bench typed_rss      # just 64 MiB
//! ```

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use atomic_persist::{Json, Persisted};

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// The value: `mib` MiB of `u64`s (about 0.9 bytes of JSON per byte of value).
fn value(mib: u64) -> Vec<u64> {
    let n = mib * 1024 * 1024 / 8;
    (0..n)
        .map(|i| i.wrapping_mul(2_654_435_761) % 1_000_000)
        .collect()
}

fn child(mode: &str, mib: u64, dir: &Path) {
    let path = dir.join(format!("value-{mode}-{mib}.json"));
    let _ = std::fs::remove_file(&path);
    let v = value(mib);
    // Reset the peak to the current resident size, so the peak measures only the save.
    std::fs::write("/proc/self/clear_refs", "5").expect("reset peak RSS (Linux 4.0+)");
    let before = status_kib("VmRSS:");
    let start = Instant::now();
    match mode {
        "streamed" => {
            let mut p = Persisted::<Vec<u64>>::builder(&path)
                .format(Json)
                .envelope(true)
                .open_or_else(|| v)
                .unwrap();
            p.commit().unwrap();
        }
        "to_vec" => {
            let bytes = serde_json::to_vec(&v).unwrap();
            atomic_persist::write_atomic(&path, &bytes).unwrap();
        }
        other => panic!("unknown mode {other}"),
    }
    let secs = start.elapsed().as_secs_f64();
    let peak = status_kib("VmHWM:");
    let file = std::fs::metadata(&path).unwrap().len();
    std::fs::remove_file(&path).unwrap();
    println!("{before} {peak} {file} {secs}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::env::var_os("TYPED_RSS_DIR")
        .map(Into::into)
        .unwrap_or_else(std::env::temp_dir);
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1], args[i + 2].parse().unwrap(), &dir);
        return;
    }
    let sizes: Vec<u64> = std::env::var("TYPED_RSS_SIZES_MIB")
        .unwrap_or_else(|_| "64,1024".into())
        .split(',')
        .map(|s| s.trim().parse().expect("sizes in MiB"))
        .collect();
    let exe = std::env::current_exe().unwrap();
    println!("| value | save | file | RSS before | peak RSS | overhead | time |");
    println!("|---|---|---|---|---|---|---|");
    for &mib in &sizes {
        for mode in ["streamed", "to_vec"] {
            let out = Command::new(&exe)
                .args(["--child", mode, &mib.to_string()])
                .output()
                .expect("run the child");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let line = String::from_utf8(out.stdout).unwrap();
            let f: Vec<f64> = line
                .split_whitespace()
                .map(|x| x.parse().unwrap())
                .collect();
            let (before, peak, file, secs) = (f[0], f[1], f[2], f[3]);
            let label = match mode {
                "streamed" => "`Persisted::commit` (streamed, enveloped)",
                _ => "`serde_json::to_vec` + `write_atomic`",
            };
            println!(
                "| {mib} MiB `Vec<u64>` | {label} | {:.0} MiB | {:.0} MiB | {:.0} MiB | **{:.1} MiB** | {secs:.2} s |",
                file / 1048576.0,
                before / 1024.0,
                peak / 1024.0,
                (peak - before) / 1024.0,
            );
        }
    }
}
