//! `flushlab-replay`: the flush lab's command-line replayer (see `tests/flushlab/README.md`).
//!
//! ```text
//! flushlab-replay info LOG                                  # counts of entries, flushes, marks
//! flushlab-replay plan LOG START-MARK TORN SEED             # the points to check, one per line
//! flushlab-replay apply LOG IMAGE FROM TO                   # entries FROM+1..=TO onto IMAGE
//! flushlab-replay torn LOG IMAGE STABLE ENTRY SEED          # a torn point's writes onto IMAGE
//! ```
//!
//! `plan` prints `point ENTRY flush|torn STABLE SEED MARK` (MARK `-` when none). The lab
//! keeps a base image replayed up to the last flush point it needs (`apply`), copies it
//! for each point, and for a torn point adds part of the writes since (`torn`).

use std::fs::File;
use std::path::Path;
use std::process::ExitCode;

use flushlab_replay::{Log, LogError, Point, PointKind, plan, torn_keep};

fn number(s: &str) -> Result<u64, String> {
    s.parse().map_err(|_| format!("not a number: {s:?}"))
}

fn open_image(path: &str) -> Result<File, String> {
    File::options()
        .write(true)
        .open(path)
        .map_err(|e| format!("open the image {path}: {e}"))
}

fn sync(image: &File) -> Result<(), String> {
    // The image is copied or mounted next: its writes must be in the file, not in flight.
    image
        .sync_data()
        .map_err(|e| format!("sync the image: {e}"))
}

fn run(args: &[&str]) -> Result<(), String> {
    let log = |p: &str| Log::open(Path::new(p)).map_err(|e: LogError| format!("{p}: {e}"));
    match args {
        ["info", path] => {
            let log = log(path)?;
            let count = |f: u64| log.entries.iter().filter(|e| e.flags & f != 0).count();
            println!(
                "entries={} sectorsize={} flush={} fua={} discard={} marks={}",
                log.entries.len(),
                log.sectorsize,
                count(flushlab_replay::FLUSH),
                count(flushlab_replay::FUA),
                count(flushlab_replay::DISCARD),
                count(flushlab_replay::MARK),
            );
            Ok(())
        }
        ["plan", path, start, torn, seed] => {
            let log = log(path)?;
            let torn = usize::try_from(number(torn)?).map_err(|e| e.to_string())?;
            for p in plan(&log, Some(start), torn, number(seed)?) {
                let kind = match p.kind {
                    PointKind::Flush => "flush",
                    PointKind::Torn => "torn",
                };
                let mark = p.mark.as_deref().unwrap_or("-");
                println!("point {} {kind} {} {} {mark}", p.entry, p.stable, p.seed);
            }
            Ok(())
        }
        ["apply", path, image, from, to] => {
            let log = log(path)?;
            let image = open_image(image)?;
            log.apply_range(number(from)?, number(to)?, &image, |_| true)
                .map_err(|e| e.to_string())?;
            sync(&image)
        }
        ["torn", path, image, stable, entry, seed] => {
            let log = log(path)?;
            let image = open_image(image)?;
            let point = Point {
                entry: number(entry)?,
                kind: PointKind::Torn,
                stable: number(stable)?,
                mark: None,
                seed: number(seed)?,
            };
            log.apply_range(point.stable, point.entry, &image, torn_keep(&point))
                .map_err(|e| e.to_string())?;
            sync(&image)
        }
        _ => Err(
            "usage: flushlab-replay info LOG | plan LOG START-MARK TORN SEED \
                  | apply LOG IMAGE FROM TO | torn LOG IMAGE STABLE ENTRY SEED"
                .into(),
        ),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flushlab-replay: {e}");
            ExitCode::from(2)
        }
    }
}
