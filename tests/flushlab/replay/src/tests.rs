//! The parser and replayer on logs built here, byte for byte as the kernel lays them out.

use super::*;
use std::io::{Seek, SeekFrom, Write};

const SS: usize = 512;

/// Writes a log the way `dm-log-writes.c` does: super, then per entry a header sector
/// (with a mark's text inline) followed by the data sectors.
#[derive(Default)]
struct Builder {
    body: Vec<u8>,
    count: u64,
}

impl Builder {
    fn entry(&mut self, sector: u64, flags: u64, data: &[u8], mark: &str) -> &mut Self {
        assert_eq!(data.len() % SS, 0, "whole sectors");
        let mut head = vec![0u8; SS];
        head[0..8].copy_from_slice(&sector.to_le_bytes());
        head[8..16].copy_from_slice(&((data.len() / SS) as u64).to_le_bytes());
        head[16..24].copy_from_slice(&flags.to_le_bytes());
        head[24..32].copy_from_slice(&(mark.len() as u64).to_le_bytes());
        head[32..32 + mark.len()].copy_from_slice(mark.as_bytes());
        self.body.extend_from_slice(&head);
        self.body.extend_from_slice(data);
        self.count += 1;
        self
    }
    fn discard(&mut self, sector: u64, sectors: u64) -> &mut Self {
        self.entry(sector, DISCARD, &[], "");
        // A discard counts its sectors but the log holds none of them.
        let head = self.body.len() - SS;
        self.body[head + 8..head + 16].copy_from_slice(&sectors.to_le_bytes());
        self
    }
    fn write(&mut self, sector: u64, fill: u8, sectors: usize) -> &mut Self {
        self.entry(sector, 0, &vec![fill; sectors * SS], "")
    }
    fn flush(&mut self) -> &mut Self {
        self.entry(0, FLUSH, &[], "")
    }
    fn mark(&mut self, text: &str) -> &mut Self {
        self.entry(0, MARK, &[], text)
    }
    fn file(&self, magic: u64, version: u64) -> File {
        let mut f = tempfile();
        let mut sup = vec![0u8; SS];
        sup[0..8].copy_from_slice(&magic.to_le_bytes());
        sup[8..16].copy_from_slice(&version.to_le_bytes());
        sup[16..24].copy_from_slice(&self.count.to_le_bytes());
        sup[24..28].copy_from_slice(&(SS as u32).to_le_bytes());
        f.write_all(&sup).unwrap();
        f.write_all(&self.body).unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        f
    }
    fn log(&self) -> Log {
        Log::parse(self.file(MAGIC, VERSION)).unwrap()
    }
}

fn tempfile() -> File {
    let dir = std::env::temp_dir();
    for n in 0u32.. {
        let path = dir.join(format!("flushlab-test-{}-{n}", std::process::id()));
        if let Ok(f) = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            // Unlinked at once: the open handle is all the test needs.
            std::fs::remove_file(&path).unwrap();
            return f;
        }
    }
    unreachable!()
}

fn image(sectors: usize) -> File {
    let f = tempfile();
    f.set_len((sectors * SS) as u64).unwrap();
    f
}

fn sector_fill(image: &File, sector: u64) -> u8 {
    let mut b = [0u8; SS];
    image.read_exact_at(&mut b, sector * SS as u64).unwrap();
    assert!(b.iter().all(|&x| x == b[0]), "sector {sector} is mixed");
    b[0]
}

#[test]
fn parses_writes_flushes_and_marks_in_order() {
    let log = Builder::default()
        .write(4, 0xaa, 2)
        .flush()
        .mark("ack-1")
        .entry(9, FUA | METADATA, &[0xbb; SS], "")
        .log();
    let kinds: Vec<_> = log
        .entries
        .iter()
        .map(|e| (e.index, e.sector, e.nr_sectors, e.flags, e.mark.clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (1, 4, 2, 0, None),
            (2, 0, 0, FLUSH, None),
            (3, 0, 0, MARK, Some("ack-1".into())),
            (4, 9, 1, FUA | METADATA, None),
        ]
    );
    // Data follows its header sector: entry 4's data is after 1 super + 1 header + 2
    // data + 1 flush header + 1 mark header + its own header.
    assert_eq!(log.entries[3].data_offset, (7 * SS) as u64);
}

#[test]
fn replay_up_to_an_entry_gives_the_disk_at_that_entry() {
    let log = Builder::default()
        .write(0, 1, 1)
        .write(1, 2, 1)
        .flush()
        .write(0, 3, 1)
        .log();
    let img = image(2);
    log.apply_range(0, 2, &img, |_| true).unwrap();
    assert_eq!((sector_fill(&img, 0), sector_fill(&img, 1)), (1, 2));
    log.apply_range(2, 4, &img, |_| true).unwrap();
    assert_eq!((sector_fill(&img, 0), sector_fill(&img, 1)), (3, 2));
}

#[test]
fn a_discard_reads_back_as_zeros_and_carries_no_data() {
    let log = Builder::default()
        .write(0, 7, 2)
        .discard(0, 2)
        .write(1, 8, 1)
        .log();
    assert_eq!(log.entries[1].nr_sectors, 2);
    // super, 1 + 2 sectors of the first write, the discard's header alone, this header.
    assert_eq!(log.entries[2].data_offset, (6 * SS) as u64);
    let img = image(2);
    log.apply_range(0, 3, &img, |_| true).unwrap();
    assert_eq!((sector_fill(&img, 0), sector_fill(&img, 1)), (0, 8));
}

#[test]
fn a_log_with_a_wrong_magic_is_refused() {
    let b = Builder::default().write(0, 1, 1).file(MAGIC ^ 1, VERSION);
    assert!(matches!(Log::parse(b), Err(LogError::BadMagic(m)) if m == MAGIC ^ 1));
}

#[test]
fn a_log_of_another_version_is_refused() {
    let b = Builder::default().write(0, 1, 1).file(MAGIC, 2);
    assert!(matches!(Log::parse(b), Err(LogError::UnknownVersion(2))));
}

#[test]
fn an_entry_with_unknown_flags_is_refused() {
    let b = Builder::default()
        .write(0, 1, 1)
        .entry(0, 1 << 9, &[], "")
        .file(MAGIC, VERSION);
    assert!(matches!(
        Log::parse(b),
        Err(LogError::UnknownFlags {
            entry: 2,
            flags: 512
        })
    ));
}

#[test]
fn a_log_cut_inside_an_entry_is_refused() {
    let f = Builder::default().write(0, 1, 4).file(MAGIC, VERSION);
    f.set_len((SS * 3) as u64).unwrap(); // super, header, one of four data sectors
    assert!(matches!(
        Log::parse(f),
        Err(LogError::Truncated { entry: 1 })
    ));
}

#[test]
fn a_super_block_that_counts_more_entries_than_the_log_holds_is_refused() {
    let mut b = Builder::default();
    b.write(0, 1, 1);
    b.count = 2;
    assert!(matches!(
        Log::parse(b.file(MAGIC, VERSION)),
        Err(LogError::Truncated { entry: 2 })
    ));
}

#[test]
fn plan_checks_every_flush_point_after_the_start_mark() {
    let log = Builder::default()
        .write(0, 1, 1)
        .flush()
        .mark("mkfs")
        .write(0, 2, 1)
        .flush()
        .mark("ack-1")
        .write(1, 3, 1)
        .entry(1, FUA, &[4; SS], "")
        .log();
    let points = plan(&log, Some("mkfs"), 0, 1);
    let seen: Vec<_> = points
        .iter()
        .map(|p| (p.entry, p.kind, p.stable, p.mark.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (5, PointKind::Flush, 2, Some("mkfs".into())),
            (8, PointKind::Flush, 5, Some("ack-1".into())),
        ]
    );
}

#[test]
fn torn_points_are_writes_between_flushes_and_lose_some_of_them() {
    let mut b = Builder::default();
    b.flush();
    for s in 0..64 {
        b.write(s, 9, 1);
    }
    let log = b.log();
    let points = plan(&log, None, 5, 42);
    assert_eq!(points.len(), 6, "one flush point and five torn ones");
    assert!(
        points
            .iter()
            .filter(|p| p.kind == PointKind::Torn)
            .all(|p| p.stable == 1 && p.entry > 1)
    );
    // The last write of the run, rebuilt torn: its own write is kept, and some of the
    // earlier ones since the flush are lost (probability 2^-63 that none is).
    let p = Point {
        entry: 65,
        kind: PointKind::Torn,
        stable: 1,
        mark: None,
        seed: 7,
    };
    let img = image(64);
    log.apply_range(p.stable, p.entry, &img, torn_keep(&p))
        .unwrap();
    let fills: Vec<u8> = (0..64).map(|s| sector_fill(&img, s)).collect();
    assert_eq!(fills[63], 9);
    let lost = fills.iter().filter(|&&f| f == 0).count();
    assert!(lost > 0 && lost < 63, "lost {lost} of 63");
}

#[test]
fn the_same_seed_plans_the_same_points() {
    let mut b = Builder::default();
    for s in 0..32 {
        b.write(s, 1, 1);
    }
    let log = b.log();
    assert_eq!(plan(&log, None, 4, 3), plan(&log, None, 4, 3));
    assert_ne!(plan(&log, None, 4, 3), plan(&log, None, 4, 4));
}
