//! Restoring one snapshot that arrives as a byte stream — an archive file in a folder, an object in a
//! bucket — the same way whatever the source: tar archives (plain, gzip, zstd) are extracted through
//! [`RestoreSink`] with the hostile-input rules, any other file is kept as one file (a database dump, a disk
//! image) for later checks. Sources differ only in where the bytes come from and which checksums they can
//! offer, so the checks this produces (`archive`/`file`, and the sidecar comparison) read the same for all.

use std::io::{self, Read};
use std::path::Path;

use crate::extract::path::RelPath;
use crate::extract::readahead::read_ahead;
use crate::extract::sink::FileError;
use crate::extract::tar::{TarStream, extract_tar};
use crate::extract::{RestoreError, RestoreSink, SourceState};
use crate::model::{CheckResult, CheckStatus, SnapshotKind};
use crate::units::HumanBytes;

/// The archive kind a file name announces (`.tar`, `.tar.gz`/`.tgz`, `.tar.zst`/`.tzst`).
pub fn archive_kind(name: &str) -> Option<SnapshotKind> {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".tar.zst") || lower.ends_with(".tzst") {
        Some(SnapshotKind::TarZst)
    } else if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
        Some(SnapshotKind::TarGz)
    } else if lower.ends_with(".tar") {
        Some(SnapshotKind::Tar)
    } else {
        None
    }
}

/// Whether `name` is a checksum list beside snapshots (`NAME.sha256`, `SHA256SUMS`), not a snapshot.
pub fn is_sidecar(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".sha256") || matches!(lower.as_str(), "sha256sums" | "sha256sums.txt")
}

/// Restores `src` (the snapshot's bytes, counted by a [`crate::extract::SourceReader`]) into the sink and
/// returns the structural integrity check: `archive` for tar kinds (read to its end-of-archive block,
/// compressed frames complete), `file` for a plain file (every byte read, as many as listed).
///
/// `name` is the snapshot's name as the user knows it; a plain file is written under its last path
/// component. `size` is the plain file's size (required for [`SnapshotKind::File`]).
pub fn restore_stream<R: Read + Send>(
    kind: SnapshotKind,
    name: &str,
    source_path: &Path,
    mut src: R,
    size: Option<u64>,
    sink: &mut RestoreSink,
    state: &SourceState,
) -> Result<CheckResult, RestoreError> {
    let source_io = |e: io::Error| RestoreError::SourceIo {
        path: source_path.to_path_buf(),
        source: e,
    };
    if kind == SnapshotKind::File {
        let file_name = name.rsplit('/').next().unwrap_or(name);
        let rel = RelPath::parse(file_name.as_bytes())?;
        let size = size.unwrap_or(0);
        sink.begin_entry(file_name)?;
        match sink.file(&rel, 0o644, size, &mut src) {
            Ok(()) => {}
            Err(FileError::Sink(e)) => return Err(e),
            Err(FileError::Read(e)) => {
                return Err(source_io(io::Error::new(
                    e.kind(),
                    format!("{e} (was it changing while it was read?)"),
                )));
            }
        }
        return Ok(CheckResult::new(
            "file",
            "integrity",
            CheckStatus::Passed,
            format!("{} read to its end", HumanBytes(size)),
            format!("{} read", HumanBytes(state.bytes())),
            "",
        ));
    }
    let stream = TarStream {
        archive: name,
        source_path,
        source: state,
    };
    let facts = {
        // Decompression runs on a second core while this one parses, hashes and writes.
        let decoder: Box<dyn Read + Send + '_> = match kind {
            SnapshotKind::TarZst => {
                Box::new(zstd::stream::read::Decoder::new(&mut src).map_err(source_io)?)
            }
            SnapshotKind::TarGz => Box::new(flate2::read::MultiGzDecoder::new(&mut src)),
            _ => Box::new(&mut src),
        };
        read_ahead(decoder, |r| extract_tar(r, sink, &stream))?
    };
    let compression = match kind {
        SnapshotKind::TarZst => ", zstd frames complete and checksummed",
        SnapshotKind::TarGz => ", gzip members complete with CRC",
        _ => "",
    };
    Ok(CheckResult::new(
        "archive",
        "integrity",
        CheckStatus::Passed,
        "archive readable to its end-of-archive block",
        format!(
            "{} entries, {} of tar read from {}{compression}",
            facts.entries,
            HumanBytes(facts.tar_bytes),
            HumanBytes(state.bytes())
        ),
        "",
    ))
}

/// Compares a snapshot's SHA-256 with the one its sidecar list gives: `archive checksum` (or `file
/// checksum` for a plain file), failed on a mismatch.
pub fn sidecar_check(
    kind: SnapshotKind,
    name: &str,
    expected: [u8; 32],
    list: &str,
    actual: [u8; 32],
) -> CheckResult {
    let (check, what) = if kind == SnapshotKind::File {
        ("file checksum", "file")
    } else {
        ("archive checksum", "archive")
    };
    let status = if expected == actual {
        CheckStatus::Passed
    } else {
        CheckStatus::Failed
    };
    let message = if status == CheckStatus::Passed {
        String::new()
    } else {
        format!(
            "{what} {name} does not match its checksum in {list}: the file changed after it was written (bit rot, a partial copy or tampering); restore from another copy"
        )
    };
    CheckResult::new(
        check,
        "integrity",
        status,
        format!("sha256 {} (from {list})", hex::encode(expected)),
        format!("sha256 {}", hex::encode(actual)),
        message,
    )
}
