//! The fingerprint of a payload: what tells "unchanged since the last commit" without
//! keeping the bytes. Length, the CRC-32 the envelope needs anyway, and XXH64: 96 bits
//! that an accidental change does not collide in, computed at memory speed (SipHash,
//! std's only hasher, cost a large commit a fifth of its time).

use std::io::{self, Write};

/// The identity of a payload's bytes, without keeping them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    len: u64,
    crc: u32,
    xxh: u64,
}

impl Fingerprint {
    /// How many bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The fingerprint of bytes in memory.
    pub(crate) fn of(bytes: &[u8]) -> Fingerprint {
        let mut h = Hashing::new(io::sink());
        let _ = h.write_all(bytes);
        h.fingerprint()
    }
}

/// Hashes the bytes that pass through: CRC-32 for the checksum, XXH64 and length for the
/// fingerprint. Keeps the writer's first I/O error.
pub(crate) struct Hashing<W> {
    inner: W,
    pub crc: crc32fast::Hasher,
    xxh: Xxh64,
    pub error: Option<io::Error>,
}

impl<W: Write> Hashing<W> {
    pub(crate) fn new(inner: W) -> Self {
        Hashing {
            inner,
            crc: crc32fast::Hasher::new(),
            xxh: Xxh64::new(),
            error: None,
        }
    }

    pub(crate) fn fingerprint(&self) -> Fingerprint {
        Fingerprint {
            len: self.xxh.len,
            crc: self.crc.clone().finalize(),
            xxh: self.xxh.finish(),
        }
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match self.inner.write(buf) {
            Ok(n) => n,
            Err(e) => {
                self.error
                    .get_or_insert(io::Error::new(e.kind(), e.to_string()));
                return Err(e);
            }
        };
        self.crc.update(&buf[..n]);
        self.xxh.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

/// XXH64 with seed 0, fed in pieces of any size (the published algorithm; the tests
/// check its reference values).
#[derive(Clone)]
struct Xxh64 {
    acc: [u64; 4],
    /// Bytes of an unfinished 32-byte stripe.
    buf: [u8; 32],
    buffered: usize,
    len: u64,
}

fn round(acc: u64, lane: u64) -> u64 {
    acc.wrapping_add(lane.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

fn merge(h: u64, acc: u64) -> u64 {
    (h ^ round(0, acc)).wrapping_mul(P1).wrapping_add(P4)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl Xxh64 {
    fn new() -> Xxh64 {
        Xxh64 {
            acc: [P1.wrapping_add(P2), P2, 0, 0u64.wrapping_sub(P1)],
            buf: [0; 32],
            buffered: 0,
            len: 0,
        }
    }

    fn stripe(&mut self, s: &[u8]) {
        for (i, acc) in self.acc.iter_mut().enumerate() {
            *acc = round(*acc, u64_at(s, i * 8));
        }
    }

    fn update(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if self.buffered > 0 {
            let take = (32 - self.buffered).min(bytes.len());
            self.buf[self.buffered..self.buffered + take].copy_from_slice(&bytes[..take]);
            self.buffered += take;
            bytes = &bytes[take..];
            if self.buffered < 32 {
                return;
            }
            let stripe = self.buf;
            self.stripe(&stripe);
            self.buffered = 0;
        }
        let mut stripes = bytes.chunks_exact(32);
        for s in &mut stripes {
            self.stripe(s);
        }
        let rest = stripes.remainder();
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buffered = rest.len();
    }

    fn finish(&self) -> u64 {
        let [v1, v2, v3, v4] = self.acc;
        let mut h = match self.len >= 32 {
            true => {
                let h = v1
                    .rotate_left(1)
                    .wrapping_add(v2.rotate_left(7))
                    .wrapping_add(v3.rotate_left(12))
                    .wrapping_add(v4.rotate_left(18));
                [v1, v2, v3, v4].into_iter().fold(h, merge)
            }
            false => P5,
        };
        h = h.wrapping_add(self.len);
        let mut rest = &self.buf[..self.buffered];
        while rest.len() >= 8 {
            h ^= round(0, u64_at(rest, 0));
            h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
            rest = &rest[8..];
        }
        if rest.len() >= 4 {
            let k = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as u64;
            h ^= k.wrapping_mul(P1);
            h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
            rest = &rest[4..];
        }
        for &b in rest {
            h ^= (b as u64).wrapping_mul(P5);
            h = h.rotate_left(11).wrapping_mul(P1);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(P2);
        h ^= h >> 29;
        h = h.wrapping_mul(P3);
        h ^ (h >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xxh64(bytes: &[u8]) -> u64 {
        let mut x = Xxh64::new();
        x.update(bytes);
        x.finish()
    }

    #[test]
    fn matches_the_reference_values() {
        assert_eq!(xxh64(b""), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"a"), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(xxh64(b"abc"), 0x44BC_2CF5_AD77_0999);
        // 39 bytes: the 32-byte stripes and the merge are in it too.
        let long = b"Nobody inspects the spammish repetition";
        assert_eq!(xxh64(long), 0xFBCE_A83C_8A37_8BF1);
    }

    #[test]
    fn pieces_of_any_size_hash_as_the_whole() {
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for piece in [1, 3, 8, 31, 32, 33, 100, 999] {
            let mut x = Xxh64::new();
            bytes.chunks(piece).for_each(|c| x.update(c));
            assert_eq!(x.finish(), xxh64(&bytes), "pieces of {piece}");
        }
    }

    #[test]
    fn one_changed_byte_changes_the_fingerprint() {
        let bytes = vec![7u8; 4096];
        let base = Fingerprint::of(&bytes);
        for at in [0, 31, 32, 2048, 4095] {
            let mut other = bytes.clone();
            other[at] ^= 1;
            assert_ne!(Fingerprint::of(&other), base, "byte {at}");
        }
    }
}
