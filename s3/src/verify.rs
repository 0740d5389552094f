//! Verifying an object's bytes incrementally, while they stream, against every method its store offers
//! ([`crate::checksum`] describes the methods).
//!
//! [`Verifier::new`] decides from the [`Expectations`] which hashes to run over the whole object and which per
//! part (composite checksums and multipart ETags need the part boundaries); [`Verifier::update`] feeds bytes;
//! [`Verifier::finish`] yields one [`Verification`] per method: a match, a mismatch, or unverifiable with the
//! reason — never a silent pass.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::checksum::{
    Algorithm, ChecksumType, Etag, HashKind, Hasher, ObjectChecksums, PartLayout, StoredChecksum,
    digest_of, parse_etag,
};

/// What the store offers for one object, gathered before its bytes stream.
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    /// Object size.
    pub size: u64,
    /// ETag as returned (quotes removed).
    pub etag: Option<String>,
    /// The ETag is not an MD5 of the content (SSE-KMS, SSE-C) or the user turned ETag checks off.
    pub etag_not_md5: Option<String>,
    /// `x-amz-checksum-*`.
    pub checksums: ObjectChecksums,
    /// Part boundaries, when learned.
    pub layout: Option<PartLayout>,
}

/// How one method turned out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The bytes match.
    Match,
    /// The bytes do not match: the object is damaged (or was replaced by other content under the same name).
    Mismatch,
    /// This method could not be checked, and why.
    Unverifiable(String),
}

/// The result of one verification method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Short method name: `sha256`, `crc32c`, `crc64nvme`, `crc32`, `sha1`, `etag`.
    pub method: &'static str,
    /// Where the expected value came from (`x-amz-checksum-sha256`, `ETag (MD5 of a single-part upload)`).
    pub source: String,
    /// The expected value as the store shows it.
    pub expected: String,
    /// The value computed from the bytes read, in the same notation.
    pub actual: String,
    /// Verdict.
    pub outcome: Outcome,
    /// The verdict depends on a part layout that was inferred, not read; a mismatch must be confirmed by
    /// reading every part's size before it is believed.
    pub layout_inferred: bool,
}

enum Check {
    Full {
        algorithm: Algorithm,
        idx: usize,
        expected: StoredChecksum,
    },
    Composite {
        algorithm: Algorithm,
        part_idx: usize,
        expected: StoredChecksum,
        parts: u32,
    },
    /// No suffix and no type on a multipart CRC: accept the full-object or the composite value.
    Either {
        algorithm: Algorithm,
        idx: usize,
        part_idx: Option<usize>,
        expected: StoredChecksum,
    },
    EtagSingle {
        idx: usize,
        expected: Etag,
    },
    EtagMulti {
        part_idx: usize,
        expected: Etag,
    },
    Unverifiable {
        method: &'static str,
        source: String,
        expected: String,
        reason: String,
    },
}

/// Incremental hashing of one object's bytes for every method its [`Expectations`] allow.
pub struct Verifier {
    full: Vec<(HashKind, Hasher)>,
    part_kinds: Vec<HashKind>,
    part_current: Vec<Hasher>,
    part_digests: Vec<Vec<Vec<u8>>>,
    part_ends: Vec<u64>,
    part_no: usize,
    layout_broken: bool,
    layout_inferred: bool,
    checks: Vec<Check>,
    pos: u64,
}

impl Verifier {
    /// Plans the hashing for `exp`. SHA-256 of the whole object is always computed (sidecars, evidence).
    pub fn new(exp: &Expectations) -> Self {
        let mut v = Verifier {
            full: vec![(HashKind::Sha256, Hasher::new(HashKind::Sha256))],
            part_kinds: Vec::new(),
            part_current: Vec::new(),
            part_digests: Vec::new(),
            part_ends: Vec::new(),
            part_no: 0,
            layout_broken: false,
            layout_inferred: exp.layout.as_ref().is_some_and(|l| l.inferred),
            checks: Vec::new(),
            pos: 0,
        };
        let etag = exp.etag.as_deref().and_then(parse_etag);
        let etag_parts = etag.as_ref().and_then(|e| e.parts);
        let layout = exp
            .layout
            .as_ref()
            .filter(|l| !l.sizes.is_empty() && l.sizes.iter().sum::<u64>() == exp.size);
        if let Some(l) = layout {
            let mut end = 0u64;
            for s in &l.sizes {
                end += s;
                v.part_ends.push(end);
            }
        }
        let layout_reason = |n: u32| match &exp.layout {
            None => format!(
                "the object was uploaded in {n} parts and the server did not tell their sizes (HEAD ?partNumber=1)"
            ),
            Some(l) if l.sizes.len() as u32 != n => format!(
                "the object was uploaded in {n} parts but the server reports {} parts",
                l.sizes.len()
            ),
            Some(_) => format!(
                "the object was uploaded in {n} parts whose sizes do not add up to the object's size"
            ),
        };
        let layout_ok = |n: u32| layout.is_some_and(|l| l.sizes.len() as u32 == n);
        for c in &exp.checksums.stored {
            let a = c.algorithm;
            let kind = HashKind::of(a);
            let composite_n = c.parts.or(match exp.checksums.kind {
                Some(ChecksumType::Composite) => etag_parts,
                _ => None,
            });
            let full_object = exp.checksums.kind == Some(ChecksumType::FullObject)
                || a == Algorithm::Crc64Nvme
                || (composite_n.is_none() && etag_parts.is_none());
            if full_object && c.parts.is_none() {
                let idx = v.full_hasher(kind);
                v.checks.push(Check::Full {
                    algorithm: a,
                    idx,
                    expected: c.clone(),
                });
            } else if let Some(n) =
                // SHA checksums of multipart uploads are always composite on S3, even without a suffix.
                composite_n.or(etag_parts.filter(|_| !a.is_crc()))
            {
                if layout_ok(n) {
                    let part_idx = v.part_hasher(kind);
                    v.checks.push(Check::Composite {
                        algorithm: a,
                        part_idx,
                        expected: c.clone(),
                        parts: n,
                    });
                } else {
                    v.checks.push(Check::Unverifiable {
                        method: a.name(),
                        source: a.header().to_string(),
                        expected: format!("{} {} (composite of {n} parts)", a.name(), c.shown),
                        reason: layout_reason(n),
                    });
                }
            } else if let Some(n) = etag_parts {
                // A multipart object whose CRC carries neither a suffix nor a type: full object or composite.
                let idx = v.full_hasher(kind);
                let part_idx = layout_ok(n).then(|| v.part_hasher(kind));
                v.checks.push(Check::Either {
                    algorithm: a,
                    idx,
                    part_idx,
                    expected: c.clone(),
                });
            }
        }
        for (a, raw) in &exp.checksums.malformed {
            v.checks.push(Check::Unverifiable {
                method: a.name(),
                source: a.header().to_string(),
                expected: format!("{} {raw:?}", a.name()),
                reason: format!("the server sent a malformed {} header", a.header()),
            });
        }
        match (&exp.etag, etag, &exp.etag_not_md5) {
            (None, _, _) => {}
            (Some(raw), _, Some(why)) => v.checks.push(Check::Unverifiable {
                method: "etag",
                source: "ETag".to_string(),
                expected: format!("ETag {raw}"),
                reason: why.clone(),
            }),
            (Some(raw), None, None) => v.checks.push(Check::Unverifiable {
                method: "etag",
                source: "ETag".to_string(),
                expected: format!("ETag {raw}"),
                reason: "the ETag is not an MD5 (this store computes it differently)".to_string(),
            }),
            (Some(_), Some(e), None) => match e.parts {
                None => {
                    let idx = v.full_hasher(HashKind::Md5);
                    v.checks.push(Check::EtagSingle { idx, expected: e });
                }
                Some(n) if layout_ok(n) => {
                    let part_idx = v.part_hasher(HashKind::Md5);
                    v.checks.push(Check::EtagMulti {
                        part_idx,
                        expected: e,
                    });
                }
                Some(n) => v.checks.push(Check::Unverifiable {
                    method: "etag",
                    source: "ETag".to_string(),
                    expected: format!("ETag {}-{n}", hex::encode(e.md5)),
                    reason: layout_reason(n),
                }),
            },
        }
        v
    }

    fn full_hasher(&mut self, k: HashKind) -> usize {
        if let Some(i) = self.full.iter().position(|(h, _)| *h == k) {
            return i;
        }
        self.full.push((k, Hasher::new(k)));
        self.full.len() - 1
    }

    fn part_hasher(&mut self, k: HashKind) -> usize {
        if let Some(i) = self.part_kinds.iter().position(|h| *h == k) {
            return i;
        }
        self.part_kinds.push(k);
        self.part_current.push(Hasher::new(k));
        self.part_digests.push(Vec::new());
        self.part_kinds.len() - 1
    }

    /// Bytes read so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Feeds the next bytes of the object.
    pub fn update(&mut self, mut data: &[u8]) {
        for (_, h) in &mut self.full {
            h.update(data);
        }
        if self.part_kinds.is_empty() {
            self.pos += data.len() as u64;
            return;
        }
        while !data.is_empty() {
            let Some(end) = self.part_ends.get(self.part_no).copied() else {
                // More bytes than the layout accounts for.
                self.layout_broken = true;
                self.pos += data.len() as u64;
                return;
            };
            let take = ((end - self.pos) as usize).min(data.len());
            for h in &mut self.part_current {
                h.update(&data[..take]);
            }
            self.pos += take as u64;
            data = &data[take..];
            if self.pos == end {
                for (i, h) in self.part_current.iter_mut().enumerate() {
                    let done = std::mem::replace(h, Hasher::new(self.part_kinds[i]));
                    self.part_digests[i].push(done.finish());
                }
                self.part_no += 1;
            }
        }
    }

    /// Finishes: the object's SHA-256 and one [`Verification`] per method.
    pub fn finish(self) -> ([u8; 32], Vec<Verification>) {
        let full: Vec<Vec<u8>> = self.full.into_iter().map(|(_, h)| h.finish()).collect();
        let mut sha = [0u8; 32];
        if let Some(d) = full.first()
            && d.len() == 32
        {
            sha.copy_from_slice(d);
        }
        let parts_complete = !self.layout_broken && self.part_no == self.part_ends.len();
        let part_digests = self.part_digests;
        let part_kinds = self.part_kinds;
        let composite = |part_idx: usize| -> Option<Vec<u8>> {
            if !parts_complete {
                return None;
            }
            let joined: Vec<u8> = part_digests.get(part_idx)?.concat();
            Some(digest_of(part_kinds[part_idx], &joined))
        };
        let inferred = self.layout_inferred;
        let mut out = Vec::new();
        let verdict = |ok: bool| {
            if ok {
                Outcome::Match
            } else {
                Outcome::Mismatch
            }
        };
        for c in self.checks {
            out.push(match c {
                Check::Full {
                    algorithm,
                    idx,
                    expected,
                } => {
                    let actual = &full[idx];
                    Verification {
                        method: algorithm.name(),
                        source: algorithm.header().to_string(),
                        expected: format!("{} {}", algorithm.name(), expected.shown),
                        actual: format!("{} {}", algorithm.name(), B64.encode(actual)),
                        outcome: verdict(*actual == expected.value),
                        layout_inferred: false,
                    }
                }
                Check::Composite {
                    algorithm,
                    part_idx,
                    expected,
                    parts,
                } => {
                    let shown = format!(
                        "{} {} (composite of {parts} parts)",
                        algorithm.name(),
                        expected.shown
                    );
                    match composite(part_idx) {
                        Some(actual) => Verification {
                            method: algorithm.name(),
                            source: algorithm.header().to_string(),
                            expected: shown,
                            actual: format!("{} {}-{parts}", algorithm.name(), B64.encode(&actual)),
                            outcome: verdict(actual == expected.value),
                            layout_inferred: inferred,
                        },
                        None => unverifiable_layout(algorithm.name(), algorithm.header(), shown),
                    }
                }
                Check::Either {
                    algorithm,
                    idx,
                    part_idx,
                    expected,
                } => {
                    let whole = &full[idx];
                    let comp = part_idx.and_then(composite);
                    let (ok, actual) = if *whole == expected.value {
                        (
                            true,
                            format!("{} {} (full object)", algorithm.name(), B64.encode(whole)),
                        )
                    } else if let Some(c) = comp.filter(|c| *c == expected.value) {
                        (
                            true,
                            format!(
                                "{} {} (composite of the parts)",
                                algorithm.name(),
                                B64.encode(c)
                            ),
                        )
                    } else {
                        (
                            false,
                            format!("{} {} (full object)", algorithm.name(), B64.encode(whole)),
                        )
                    };
                    Verification {
                        method: algorithm.name(),
                        source: algorithm.header().to_string(),
                        expected: format!("{} {}", algorithm.name(), expected.shown),
                        actual,
                        outcome: verdict(ok),
                        layout_inferred: !ok && inferred,
                    }
                }
                Check::EtagSingle { idx, expected } => {
                    let actual = &full[idx];
                    Verification {
                        method: "etag",
                        source: "ETag (MD5 of a single-part upload)".to_string(),
                        expected: format!("md5 {}", hex::encode(expected.md5)),
                        actual: format!("md5 {}", hex::encode(actual)),
                        outcome: verdict(actual[..] == expected.md5[..]),
                        layout_inferred: false,
                    }
                }
                Check::EtagMulti { part_idx, expected } => {
                    let n = expected.parts.unwrap_or(0);
                    let shown = format!("ETag {}-{n}", hex::encode(expected.md5));
                    match composite(part_idx) {
                        Some(actual) => Verification {
                            method: "etag",
                            source: format!("ETag (MD5 of the MD5s of {n} parts)"),
                            expected: shown,
                            actual: format!("ETag {}-{n}", hex::encode(&actual)),
                            outcome: verdict(actual[..] == expected.md5[..]),
                            layout_inferred: inferred,
                        },
                        None => unverifiable_layout("etag", "ETag", shown),
                    }
                }
                Check::Unverifiable {
                    method,
                    source,
                    expected,
                    reason,
                } => Verification {
                    method,
                    source,
                    expected,
                    actual: "not computed".to_string(),
                    outcome: Outcome::Unverifiable(reason),
                    layout_inferred: false,
                },
            });
        }
        (sha, out)
    }
}

fn unverifiable_layout(method: &'static str, source: &str, expected: String) -> Verification {
    Verification {
        method,
        source: source.to_string(),
        expected,
        actual: "not computed".to_string(),
        outcome: Outcome::Unverifiable(
            "the bytes read do not fit the part sizes the server reported".to_string(),
        ),
        layout_inferred: false,
    }
}

#[cfg(test)]
mod tests;
