//! The workload of the power-cut lab (`tests/powercut/`): it runs as the only program of a
//! small Linux guest under qemu, which is then killed at a random moment.
//!
//! ```text
//! powercut_workload run FILE full|data|none   # rewrite FILE forever, "ACK <gen>" after each commit
//! powercut_workload sweep DIR                 # after the cut: remove temp debris, print the count
//! powercut_workload expect GEN                # print the file a generation must have (for tests)
//! ```
//!
//! The file checks itself, so that the checker on the host needs nothing from this crate:
//!
//! ```text
//! apwl1 gen=<n> len=<L> sum=<16 hex digits>\n<L payload bytes>
//! ```
//!
//! The payload length and bytes are a pure function of the generation (`payload(n)`), and
//! `sum` is FNV-1a 64 of the payload. The checker (`tests/powercut/check.py`) recomputes
//! both, so a file that is short, mixes blocks of two generations, or names the wrong
//! generation is caught even where the sum would happen to hold.
//!
//! Switching to `Persisted<T>` with the envelope is meant to be a small change: make the
//! value `struct Sample { generation: u64, payload: Vec<u8> }`, replace `encode` and the
//! `write` call with `p.set(sample)?` (the envelope adds its own generation and checksum),
//! and let the checker call `atomic-persist verify` / `inspect --json` on the exported
//! file in place of `parse` in `check.py`; the ACK protocol and the lab stay as they are.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use atomic_persist::{Durability, WriteOptions};

/// SplitMix64: a tiny, well-known generator that `check.py` reimplements bit for bit.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The payload of generation `n`: its length varies from a few bytes (inside one block)
/// to 256 KiB (many blocks, more than one extent), so both small and large files are cut.
fn payload(n: u64) -> Vec<u8> {
    let mut state = n;
    let pick = splitmix(&mut state);
    let len = match pick % 4 {
        0 => (pick >> 2) & 0xff,         // under one sector
        1 => (pick >> 2) % 4096,         // under one page
        2 => (pick >> 2) % (64 * 1024),  // a few pages
        _ => (pick >> 2) % (256 * 1024), // many pages
    } as usize
        + 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&splitmix(&mut state).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The whole file of generation `n`.
fn encode(n: u64) -> Vec<u8> {
    let body = payload(n);
    let mut out = format!(
        "apwl1 gen={n} len={} sum={:016x}\n",
        body.len(),
        fnv1a64(&body)
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

fn run(path: &Path, durability: Durability) -> ExitCode {
    let options = WriteOptions::new().durability(durability);
    let stdout = std::io::stdout();
    println!("START durability={durability:?} path={}", path.display());
    for n in 1u64.. {
        let bytes = encode(n);
        if let Err(e) = options.write(path, &bytes) {
            println!("ERROR gen={n} {e}");
            return ExitCode::FAILURE;
        }
        // Only now is the commit acknowledged: the host counts a generation as promised
        // once this line reached the serial console.
        let mut out = stdout.lock();
        let _ = writeln!(out, "ACK {n}");
        let _ = out.flush();
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["run", file, durability] => {
            let durability = match *durability {
                "full" => Durability::Full,
                "data" => Durability::Data,
                "none" => Durability::None,
                other => {
                    eprintln!("unknown durability {other:?}: full, data or none");
                    return ExitCode::from(2);
                }
            };
            run(Path::new(file), durability)
        }
        ["sweep", dir] => match atomic_persist::sweep(dir) {
            Ok(n) => {
                println!("SWEEP removed={}", n.count());
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("SWEEP error={e}");
                ExitCode::FAILURE
            }
        },
        ["expect", n] => {
            let Ok(n) = n.parse::<u64>() else {
                eprintln!("not a generation: {n}");
                return ExitCode::from(2);
            };
            let _ = std::io::stdout().write_all(&encode(n));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("usage: powercut_workload run FILE full|data|none | sweep DIR | expect GEN");
            ExitCode::from(2)
        }
    }
}
