//! No input makes the decoder panic: deterministic pseudo-random flips, truncations, insertions and
//! overwrites with boundary values, in every vector archive (and its payload stream).

use super::support::{decode_quiet, vector};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A position biased towards structure: the big file in the middle of tree.pxar / tree.ppxar is plain data,
/// so most picks land in the first and last 8 KiB.
fn position(rng: &mut Rng, len: usize) -> usize {
    match rng.below(8) {
        0 => rng.below(len),
        1..=3 => rng.below(len.min(8192)),
        _ => len - 1 - rng.below(len.min(8192)),
    }
}

fn mutate(rng: &mut Rng, data: &mut Vec<u8>) {
    let len = data.len();
    let at = position(rng, len);
    match rng.below(5) {
        0 => data[at] ^= (rng.below(255) + 1) as u8,
        1 => data.truncate(at),
        2 => {
            let n = rng.below(24) + 1;
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            data.splice(at..at, bytes);
        }
        3 => {
            let values = [
                0u64,
                1,
                15,
                16,
                17,
                24,
                40,
                4097,
                len as u64,
                u64::MAX,
                u64::MAX - 15,
            ];
            let v = values[rng.below(values.len())];
            let at = at.min(len.saturating_sub(8));
            data[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        _ => {
            let n = rng.below(64).min(len - at);
            data.drain(at..at + n);
        }
    }
}

#[test]
fn mutated_archives_never_panic() {
    let cases: [(&str, Option<&str>); 4] = [
        ("extras.pxar", None),
        ("tree.pxar", None),
        ("tree.mpxar", Some("tree.ppxar")),
        ("tree-prelude.mpxar", Some("tree-prelude.ppxar")),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut runs = 0;
    let mut errors = 0;
    for (meta_name, payload_name) in cases {
        let meta = vector(meta_name);
        let payload = payload_name.map(vector);
        for i in 0..800 {
            let mut m = meta.clone();
            let mut p = payload.clone();
            let rounds = 1 + rng.below(3);
            for _ in 0..rounds {
                match p.as_mut() {
                    Some(p) if i % 4 == 3 => mutate(&mut rng, p),
                    _ => mutate(&mut rng, &mut m),
                }
            }
            runs += 1;
            if decode_quiet(&m, p.as_deref()).is_err() {
                errors += 1;
            }
        }
    }
    assert_eq!(runs, 3200);
    // almost every mutation of structure is detected (some land in file data, which pxar does not checksum)
    assert!(errors > runs / 2, "{errors} of {runs} mutations detected");
}
