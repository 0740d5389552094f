//! Goodbye tables: the binary-search-tree layout and their verification against what was actually read.
//!
//! Every directory ends with a GOODBYE item listing its children by name hash, with the distance back to each
//! child and its size, so random-access readers can find a name without scanning (§4.4). A sequential restore
//! does not need the table, but a table that disagrees with the directory it closes is damage (or a crafted
//! archive that would show different contents to a random-access reader than to an extractor), so lifeboat
//! checks every item: count, hashes, BST order, offsets, sizes and the tail marker. Memory is one small record
//! per child of the directory being read; the table itself is streamed, never loaded by its declared size.

use std::io::Read;

use super::error::{PxarError, invalid};
use super::format::{GOODBYE_ITEM_SIZE, Header, PXAR_GOODBYE_TAIL_MARKER, le_u64};
use super::reader::PosReader;

/// The goodbye-table permutation of `n` hash-sorted items (§4.4, upstream pxar `binary_tree_array.rs` `copy`):
/// `result[i]` is the index, in the sorted list, of the item stored at table position `i`. Position `i` has its
/// smaller subtree at `2i + 1` and its larger one at `2i + 2`.
pub fn bst_permutation(n: usize) -> Vec<usize> {
    let mut out = vec![0usize; n];
    if n > 0 {
        // e = floor(log2 n)
        let e = (usize::BITS - 1 - n.leading_zeros()) as usize;
        copy_inner(&mut out, n, 0, e, 0);
    }
    out
}

/// One subtree of [`bst_permutation`]: `n` sorted items starting at `o`, height exponent `e`, rooted at table
/// position `i` (§4.4 `copy_inner`). Depth is at most log2(n); all indices stay below `n`.
fn copy_inner(out: &mut [usize], n: usize, o: usize, e: usize, i: usize) {
    let p = 1usize << e;
    let t = p + (p >> 1) - 1;
    let m = if n > t { p - 1 } else { p - 1 - (t - n) };
    if let Some(slot) = out.get_mut(i) {
        *slot = o + m;
    }
    let e = e.saturating_sub(1);
    if m > 0 {
        copy_inner(out, m, o, e, 2 * i + 1);
    }
    if m + 1 < n {
        copy_inner(out, n - m - 1, o + m + 1, e, 2 * i + 2);
    }
}

/// What the decoder saw of one child, to check its goodbye item against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Child {
    /// `hash_filename` of its name.
    pub hash: u64,
    /// Position of its FILENAME header.
    pub start: u64,
    /// Bytes from the FILENAME header to the child's end in the archive stream.
    pub size: u64,
    /// Split archives, files with a PAYLOAD_REF: the encoder may record `size + file size` instead (§4.4 quirk).
    pub alt_size: Option<u64>,
}

/// Reads and verifies the goodbye table `h` of a directory whose children are `children` (in archive order,
/// so sorted by `start`) and whose ENTRY header is at `entry_pos` (0 for the root: the encoder counts the root
/// from the archive start, FORMAT_VERSION and PRELUDE included, §4.4). Returns, per table item, the index of
/// the child it describes.
pub(crate) fn verify_goodbye<R: Read>(
    r: &mut PosReader<R>,
    h: Header,
    children: &[Child],
    entry_pos: u64,
) -> Result<Vec<usize>, PxarError> {
    let n = children.len();
    let expected_len = (n as u64)
        .checked_add(1)
        .and_then(|k| k.checked_mul(GOODBYE_ITEM_SIZE));
    if expected_len != Some(h.content_size()) {
        return Err(invalid(
            h.pos,
            format!(
                "a goodbye table of {n} child items plus the tail item ({} content bytes) for the {n} children read",
                expected_len.map_or_else(|| "too many".to_string(), |l| l.to_string())
            ),
            format!("{} content bytes", h.content_size()),
        ));
    }
    let mut sorted: Vec<usize> = (0..n).collect();
    sorted.sort_by_key(|&i| children.get(i).map_or(0, |c| c.hash));
    let expected_hashes: Vec<u64> = bst_permutation(n)
        .into_iter()
        .map(|k| {
            sorted
                .get(k)
                .and_then(|&i| children.get(i))
                .map_or(0, |c| c.hash)
        })
        .collect();
    let mut seen = vec![false; n];
    let mut order = Vec::with_capacity(n);
    let mut item = [0u8; GOODBYE_ITEM_SIZE as usize];
    for (i, expected_hash) in expected_hashes.iter().enumerate() {
        let at = r.pos();
        r.read_exact(&mut item, "a goodbye table item")?;
        let (hash, offset, size) = (le_u64(&item, 0), le_u64(&item, 8), le_u64(&item, 16));
        if hash != *expected_hash {
            return Err(invalid(
                at,
                format!(
                    "goodbye item {i} to hold name hash {expected_hash:016x} (children's name hashes in binary \
                     search tree order)"
                ),
                format!("hash {hash:016x}"),
            ));
        }
        let start = h.pos.checked_sub(offset).filter(|_| offset > 0);
        let idx = start.and_then(|s| children.binary_search_by_key(&s, |c| c.start).ok());
        let Some((idx, child)) = idx.and_then(|k| children.get(k).map(|c| (k, c))) else {
            return Err(invalid(
                at,
                format!("goodbye item {i} to point back at a child's FILENAME item"),
                format!(
                    "offset {offset} (byte {})",
                    start.map_or_else(|| "before the archive".to_string(), |s| s.to_string())
                ),
            ));
        };
        if child.hash != hash {
            return Err(invalid(
                at,
                format!(
                    "goodbye item {i} for the child at byte {} to hold its name hash {:016x}",
                    child.start, child.hash
                ),
                format!("hash {hash:016x}"),
            ));
        }
        match seen.get_mut(idx) {
            Some(s) if !*s => *s = true,
            _ => {
                return Err(invalid(
                    at,
                    format!("goodbye item {i} to describe a child not described before"),
                    format!("a second item for the child at byte {}", child.start),
                ));
            }
        }
        if size != child.size && Some(size) != child.alt_size {
            return Err(invalid(
                at,
                format!(
                    "goodbye item {i} for the child at byte {} to give its size {}{}",
                    child.start,
                    child.size,
                    child
                        .alt_size
                        .map_or_else(String::new, |a| format!(" (or {a} with its payload)"))
                ),
                format!("size {size}"),
            ));
        }
        order.push(idx);
    }
    let at = r.pos();
    r.read_exact(&mut item, "the goodbye tail item")?;
    let (hash, offset, size) = (le_u64(&item, 0), le_u64(&item, 8), le_u64(&item, 16));
    let want_offset = h.pos.saturating_sub(entry_pos);
    if hash != PXAR_GOODBYE_TAIL_MARKER || offset != want_offset || size != h.full_size {
        return Err(invalid(
            at,
            format!(
                "the goodbye tail item {{hash {PXAR_GOODBYE_TAIL_MARKER:016x}, offset {want_offset} (back to the \
                 directory's entry at byte {entry_pos}), size {}}}",
                h.full_size
            ),
            format!("{{hash {hash:016x}, offset {offset}, size {size}}}"),
        ));
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_vectors_from_the_spec() {
        // §4.4 / §5.1, [PX] binary_tree_array.rs::test_binary_search_tree
        assert_eq!(bst_permutation(5), [3, 1, 4, 0, 2]);
        assert_eq!(bst_permutation(8), [4, 2, 6, 1, 3, 5, 7, 0]);
        assert_eq!(
            bst_permutation(17),
            [9, 5, 13, 3, 7, 11, 15, 1, 4, 6, 8, 10, 12, 14, 16, 0, 2]
        );
        assert!(bst_permutation(0).is_empty());
        assert_eq!(bst_permutation(1), [0]);
    }

    #[test]
    fn permutation_doc_example() {
        // [PX] binary_tree_array.rs doc comment: sorted input → BST array
        let sorted = [0, 1, 2, 2, 2, 3, 4, 5, 6, 6, 7, 8, 8, 8];
        let tree: Vec<i32> = bst_permutation(sorted.len())
            .into_iter()
            .map(|i| sorted[i])
            .collect();
        assert_eq!(tree, [5, 2, 8, 1, 3, 6, 8, 0, 2, 2, 4, 6, 7, 8]);
    }

    #[test]
    fn permutation_is_a_search_tree_for_every_size() {
        for n in 0..600usize {
            let p = bst_permutation(n);
            let mut seen = p.clone();
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>(), "n={n} is a permutation");
            // in-order traversal of the implicit tree yields 0..n
            fn inorder(p: &[usize], i: usize, out: &mut Vec<usize>) {
                if i < p.len() {
                    inorder(p, 2 * i + 1, out);
                    out.push(p[i]);
                    inorder(p, 2 * i + 2, out);
                }
            }
            let mut out = Vec::new();
            inorder(&p, 0, &mut out);
            assert_eq!(out, (0..n).collect::<Vec<_>>(), "n={n} in order");
        }
    }
}
