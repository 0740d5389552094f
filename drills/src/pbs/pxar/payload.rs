//! The payload stream (`.ppxar`) of a split archive, read forward in step with the metadata archive.
//!
//! Split archives (format 2) keep file contents out of the metadata archive: each regular file ends with a
//! PAYLOAD_REF `{offset, size}` pointing at a PAYLOAD item in this stream (§4.5). The upstream encoder never
//! writes a reference before the current payload position, so a single forward pass over both streams
//! suffices; bytes between payloads (chunks reused by change detection) are skipped. The stream starts with a
//! PAYLOAD_START_MARKER header and ends with a PAYLOAD_TAIL_MARKER header, both checked here.

use std::io::Read;

use super::error::{PxarError, StreamKind, invalid, invalid_payload};
use super::format::{
    HEADER_SIZE, Header, PXAR_PAYLOAD, PXAR_PAYLOAD_START_MARKER, PXAR_PAYLOAD_TAIL_MARKER, le_u64,
    type_name,
};
use super::reader::{PosReader, check_header};

/// Forward reader over a payload stream.
pub(crate) struct PayloadStream<P> {
    pub(crate) r: PosReader<P>,
}

impl<P: Read> PayloadStream<P> {
    pub(crate) fn new(inner: P) -> Self {
        PayloadStream {
            r: PosReader::new(inner, StreamKind::Payload),
        }
    }

    /// The 16-byte start marker `{PXAR_PAYLOAD_START_MARKER, 16}` (§4.5).
    pub(crate) fn read_start(&mut self) -> Result<(), PxarError> {
        let h = self.r.read_header("the PAYLOAD_START_MARKER header")?;
        if h.htype != PXAR_PAYLOAD_START_MARKER || h.full_size != HEADER_SIZE {
            return Err(invalid_payload(
                h.pos,
                "the PAYLOAD_START_MARKER header {marker, size 16}",
                format!("{} with size {}", type_name(h.htype), h.full_size),
            ));
        }
        Ok(())
    }

    /// Follows the PAYLOAD_REF item `item` (in the archive) saying `{offset, size}`: skips forward to
    /// `offset`, reads the PAYLOAD header there and checks its size. Returns the header; the `size` content
    /// bytes follow.
    pub(crate) fn open_ref(
        &mut self,
        item: &Header,
        offset: u64,
        size: u64,
    ) -> Result<Header, PxarError> {
        let here = self.r.pos();
        let Some(gap) = offset.checked_sub(here) else {
            return Err(invalid(
                item.content_pos(),
                format!(
                    "a payload reference at or after byte {here} of the payload stream (where the previous file's \
                     payload ends; references never go backwards)"
                ),
                format!("offset {offset}"),
            ));
        };
        self.r
            .skip(gap, "the PAYLOAD item referenced by the archive")?;
        let h = self.r.read_header("the referenced PAYLOAD header")?;
        if h.htype != PXAR_PAYLOAD {
            return Err(invalid_payload(
                h.pos,
                format!(
                    "a PAYLOAD header (referenced by the PAYLOAD_REF at byte {} of the archive)",
                    item.pos
                ),
                format!("{} header", type_name(h.htype)),
            ));
        }
        check_header(&h, StreamKind::Payload)?;
        if h.content_size() != size {
            return Err(invalid_payload(
                h.pos,
                format!(
                    "a PAYLOAD of {size} bytes, as the PAYLOAD_REF at byte {} of the archive says",
                    item.pos
                ),
                format!("{} bytes", h.content_size()),
            ));
        }
        Ok(h)
    }

    /// Reads the rest of the stream: unreferenced bytes may precede the tail marker (§4.5), so only the last 16
    /// bytes are kept, and they must be `{PXAR_PAYLOAD_TAIL_MARKER, 16}`.
    pub(crate) fn read_end(&mut self) -> Result<(), PxarError> {
        let mut tail = [0u8; 16];
        let mut tail_len = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = self.r.read_some(&mut buf)?;
            if n == 0 {
                break;
            }
            let chunk = buf.get(..n).unwrap_or_default();
            if let Some(last) = chunk.last_chunk::<16>() {
                tail = *last;
                tail_len = 16;
            } else {
                // fewer than 16 new bytes: keep the newest `16 - n` old ones in front of them
                let keep = (16 - n).min(tail_len);
                let mut next = [0u8; 16];
                let old = tail.get(tail_len - keep..tail_len).unwrap_or_default();
                next[..keep].copy_from_slice(old);
                next[keep..keep + n].copy_from_slice(chunk);
                tail = next;
                tail_len = keep + n;
            }
        }
        let end = self.r.pos();
        if tail_len < 16 {
            return Err(PxarError::Truncated {
                stream: StreamKind::Payload,
                offset: end,
                expected: "the PAYLOAD_TAIL_MARKER header".to_string(),
            });
        }
        let (htype, size) = (le_u64(&tail, 0), le_u64(&tail, 8));
        if htype != PXAR_PAYLOAD_TAIL_MARKER || size != HEADER_SIZE {
            return Err(invalid_payload(
                end.saturating_sub(16),
                "the PAYLOAD_TAIL_MARKER header {marker, size 16} as the last 16 bytes",
                format!("{} with size {size}", type_name(htype)),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail_of(chunks: &[&[u8]]) -> Result<(), PxarError> {
        // a reader that hands out the given pieces one read at a time
        struct Pieces(Vec<Vec<u8>>);
        impl Read for Pieces {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0.is_empty() {
                    return Ok(0);
                }
                let p = self.0.remove(0);
                buf[..p.len()].copy_from_slice(&p);
                Ok(p.len())
            }
        }
        let mut s = PayloadStream::new(Pieces(chunks.iter().map(|c| c.to_vec()).collect()));
        s.read_end()
    }

    #[test]
    fn tail_marker_found_across_small_reads() {
        let mut marker = PXAR_PAYLOAD_TAIL_MARKER.to_le_bytes().to_vec();
        marker.extend_from_slice(&16u64.to_le_bytes());
        assert!(tail_of(&[&marker]).is_ok());
        assert!(tail_of(&[b"gap bytes", &marker[..5], &marker[5..9], &marker[9..]]).is_ok());
        assert!(tail_of(&[&marker[..15]]).is_err());
        assert!(tail_of(&[&marker, b"x"]).is_err());
        assert!(tail_of(&[]).is_err());
    }
}
