//! The stack table: deduplicates captured stacks into `StackId`s.
//!
//! Thread safety: `intern` looks up without a lock (the common case: the
//! stack was seen before) and locks only to add a new stack (`sys::table`). `get`
//! never locks.
//!
//! Storage: each distinct stack keeps its frames once, delta-encoded
//! (`encode`): frame `i` is stored as the zigzag LEB128 varint of
//! `frames[i] - frames[i - 1]` (wrapping; `frames[-1]` is 0). Return
//! addresses of one stack mostly lie in one binary's text, so a frame takes
//! about 3 bytes instead of 8 (syn's parser at rate 1: 137k stacks, 5.84M
//! frames, 17.8 MB instead of 46.7 MB; see docs/performance.md, "Memory at
//! rate 1"). A prefix tree of frames (one node per distinct (caller node,
//! return address)) would not save more there: the same stacks make 844k
//! distinct nodes, and a node plus its share of a hash index costs 30-50 B.
//! A lookup never decodes: equal stacks are found by their full 64-bit hash
//! alone, in one index probe; only `get` (profile writes) decodes.
//!
//! Invariants: ids are dense, `0..len`; an entry never changes after it is
//! published (code written, then the index slot stored with release); an
//! entry's `bytes` bytes of code decode to exactly `len` frames, whose
//! hash (`finish` of their `frames::fold`) is the entry's `hash` (checked
//! by `validate` as each entry is made, in debug builds); memory comes from
//! the profiler's arena and is never freed. When the table or the arena is
//! full, `intern` returns `None` and the caller counts a dropped sample.

use crate::sys::arena;
use crate::sys::frames::{fold, HASH_START};
use crate::sys::table::Table;

pub(crate) type StackId = u32;

/// At most this many distinct stacks (1 Mi).
const CHUNKS: usize = 256;

#[derive(Clone, Copy)]
struct Entry {
    /// `bytes` bytes of delta-encoded frames (`encode`) in the arena, never
    /// changed or freed.
    code: *const u8,
    /// The stack's full 64-bit hash: equal hashes (and lengths) are taken
    /// as equal stacks, so a lookup never compares frames. Two distinct
    /// stacks of one process share a hash with probability ~n²/2^65 (under
    /// 1e-7 for a million stacks); they would then share a record.
    hash: u64,
    /// Frames (at most `stack::MAX_FRAMES` when captured here).
    len: u16,
    /// Bytes of code (at most `MAX_VARINT` a frame).
    bytes: u16,
    truncated: bool,
}

// SAFETY: `code` points to immutable arena memory that lives forever.
unsafe impl Sync for Entry {}

static TABLE: Table<Entry, CHUNKS> = Table::new();

/// Longest varint of a 64-bit value: 10 groups of 7 bits.
const MAX_VARINT: usize = 10;

/// 64-bit hash of a stack from its frames folded by `frames::fold` (the
/// unwinders fold as they walk), its length and its truncation mark.
fn finish(folded: u64, len: usize, truncated: bool) -> u64 {
    let h = (folded ^ (len as u64) << 1 ^ u64::from(truncated)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 29)
}

/// The hash of `frames` from scratch (for stacks not captured here).
fn fold_all(frames: impl Iterator<Item = usize>) -> u64 {
    frames.fold(HASH_START, fold)
}

/// The zigzag varint of each frame's difference from the one before.
fn deltas(frames: &[usize]) -> impl Iterator<Item = u64> + '_ {
    let mut prev = 0usize;
    frames.iter().map(move |&f| {
        // Sign-extended to 64 bits, so a 32-bit target encodes the same.
        let d = f.wrapping_sub(prev) as isize as i64;
        prev = f;
        ((d << 1) ^ (d >> 63)) as u64
    })
}

fn varint_len(z: u64) -> usize {
    ((64 - z.leading_zeros() as usize).max(1)).div_ceil(7)
}

/// Bytes `encode` writes for `frames`.
fn encoded_len(frames: &[usize]) -> usize {
    deltas(frames).map(varint_len).sum()
}

/// Writes `frames` delta-encoded into `out`, which has exactly
/// `encoded_len(frames)` bytes.
fn encode(frames: &[usize], out: &mut [u8]) {
    let mut i = 0;
    for mut z in deltas(frames) {
        while z >= 0x80 {
            out[i] = z as u8 | 0x80;
            z >>= 7;
            i += 1;
        }
        out[i] = z as u8;
        i += 1;
    }
    debug_assert_eq!(i, out.len());
}

/// Decodes `len` frames from `code` (innermost first), without allocating.
/// Stops early, rather than read past `code`, if the code is cut short.
struct Decode<'a> {
    code: &'a [u8],
    left: usize,
    prev: usize,
}

impl Iterator for Decode<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.left == 0 {
            return None;
        }
        let (mut z, mut shift) = (0u64, 0u32);
        loop {
            let (&b, rest) = self.code.split_first()?;
            self.code = rest;
            z |= u64::from(b & 0x7f) << shift.min(63);
            shift += 7;
            if b < 0x80 {
                break;
            }
        }
        let d = ((z >> 1) as i64 ^ -((z & 1) as i64)) as isize as usize;
        self.prev = self.prev.wrapping_add(d);
        self.left -= 1;
        Some(self.prev)
    }
}

fn code_of(e: &Entry) -> &'static [u8] {
    // SAFETY: `code` points to `bytes` bytes in the arena, written before
    // the entry was published and never changed or freed.
    unsafe { core::slice::from_raw_parts(e.code, usize::from(e.bytes)) }
}

fn decode(e: &Entry) -> Decode<'static> {
    Decode {
        code: code_of(e),
        left: usize::from(e.len),
        prev: 0,
    }
}

/// Checks an entry's invariants against the frames it was made from: its
/// code decodes to exactly those frames, using every byte, and hashes to
/// its hash. Allocation-free (it runs on the allocation path, in debug
/// builds, once per new stack).
fn validate(e: &Entry, frames: &[usize], truncated: bool) -> Result<(), &'static str> {
    let mut d = decode(e);
    if !d.by_ref().eq(frames.iter().copied()) {
        return Err("stack code does not decode to its frames");
    }
    if !d.code.is_empty() {
        return Err("stack code has bytes past its last frame");
    }
    if e.truncated != truncated || usize::from(e.len) != frames.len() {
        return Err("stack entry's length or truncation mark is wrong");
    }
    if finish(fold_all(decode(e)), frames.len(), truncated) != e.hash {
        return Err("stack entry's hash is not its frames'");
    }
    Ok(())
}

/// The id of this stack, adding it if new. `None` when the table is full
/// (or the stack has more than 65535 frames, which no unwinder here
/// captures). `folded` is `frames` folded by `frames::fold`
/// (`Captured::hash`).
pub(crate) fn intern(frames: &[usize], truncated: bool, folded: u64) -> Option<StackId> {
    let h64 = finish(folded, frames.len(), truncated);
    let eq =
        |e: &Entry| e.hash == h64 && usize::from(e.len) == frames.len() && e.truncated == truncated;
    TABLE.intern((h64 ^ (h64 >> 32)) as u32, eq, || {
        let len = u16::try_from(frames.len()).ok()?;
        let bytes = encoded_len(frames);
        debug_assert!(bytes <= frames.len() * MAX_VARINT);
        let bytes16 = u16::try_from(bytes).ok()?;
        let code = arena::alloc_zeroed(bytes.max(1), 1);
        if code.is_null() {
            return None;
        }
        // SAFETY: `code` is `bytes` (or 1) fresh bytes of arena memory that
        // are ours until the entry is published.
        encode(frames, unsafe {
            core::slice::from_raw_parts_mut(code, bytes)
        });
        let e = Entry {
            code,
            hash: h64,
            len,
            bytes: bytes16,
            truncated,
        };
        debug_assert_eq!(validate(&e, frames, truncated), Ok(()));
        Some(e)
    })
}

/// The frames of a stack (innermost first) and whether it was truncated.
/// Allocates the `Vec`: for profile writes and test reports, which run
/// with sampling off.
pub(crate) fn get(id: StackId) -> (Vec<usize>, bool) {
    let e = TABLE.get(id);
    (decode(e).collect(), e.truncated)
}

pub(crate) fn lock_for_fork() {
    TABLE.lock_for_fork();
}

pub(crate) fn unlock_after_fork() {
    TABLE.unlock_after_fork();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intern_all(frames: &[usize], truncated: bool) -> StackId {
        intern(frames, truncated, fold_all(frames.iter().copied())).unwrap()
    }

    #[test]
    fn same_stack_same_id_and_distinct_stacks_differ() {
        let a = [0x1000usize, 0x2000, 0x3000];
        let b = [0x1000usize, 0x2000, 0x3001];
        let ia = intern_all(&a, false);
        assert_eq!(intern(&a, false, fold_all(a.iter().copied())), Some(ia));
        let ib = intern_all(&b, false);
        assert_ne!(ia, ib);
        let it = intern_all(&a, true);
        assert_ne!(ia, it);
        assert_eq!(get(ia), (a.to_vec(), false));
        assert_eq!(get(ib), (b.to_vec(), false));
        assert_eq!(get(it), (a.to_vec(), true));
        assert!(TABLE.len() >= 3);
    }

    /// Stacks that share their outer frames (a recursive descent) stay
    /// distinct, and each decodes to its own frames.
    #[test]
    fn shared_prefixes_round_trip() {
        let base: Vec<usize> = (0..60).map(|i| 0x5555_0000_1000 + i * 0x137).collect();
        let mut ids = Vec::new();
        for leaf in 0..20usize {
            let mut s = vec![0x5555_0000_9000 + leaf * 8, 0x7f00_0000_0040];
            s.extend_from_slice(&base[leaf..]);
            ids.push((intern_all(&s, false), s));
        }
        for (id, s) in &ids {
            assert_eq!(get(*id), (s.clone(), false));
            assert_eq!(intern_all(s, false), *id);
        }
        let mut distinct: Vec<_> = ids.iter().map(|(id, _)| *id).collect();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), ids.len());
    }

    /// Extreme deltas (wrapping both ways, the largest varints), the empty
    /// stack and a full-depth one round-trip exactly.
    #[test]
    fn encoding_round_trips_extremes() {
        let cases: Vec<Vec<usize>> = vec![
            vec![],
            vec![0],
            vec![usize::MAX],
            vec![
                usize::MAX,
                0,
                usize::MAX,
                1,
                isize::MIN as usize,
                isize::MAX as usize,
            ],
            vec![0x7fff_ffff_f000, 0x5555_5555_0000, 0x7fff_ffff_f008, 0x10],
            (0..crate::stack::MAX_FRAMES)
                .map(|i: usize| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                .collect(),
        ];
        for frames in &cases {
            let n = encoded_len(frames);
            assert!(n <= frames.len() * MAX_VARINT);
            let mut code = vec![0u8; n];
            encode(frames, &mut code);
            let d = Decode {
                code: &code,
                left: frames.len(),
                prev: 0,
            };
            assert_eq!(d.collect::<Vec<_>>(), *frames);
            for truncated in [false, true] {
                let id = intern_all(frames, truncated);
                assert_eq!(get(id), (frames.clone(), truncated));
                assert_eq!(validate(TABLE.get(id), frames, truncated), Ok(()));
            }
        }
        // A cut code stops instead of reading past its end.
        let frames = [0x7fff_ffff_f000usize, 0x10];
        let mut code = vec![0u8; encoded_len(&frames)];
        encode(&frames, &mut code);
        let cut = Decode {
            code: &code[..code.len() - 1],
            left: 2,
            prev: 0,
        };
        assert_eq!(cut.count(), 1);
    }

    /// Nearby return addresses (one binary's text) take a few bytes each,
    /// not eight.
    #[test]
    fn nearby_frames_are_small() {
        let frames: Vec<usize> = (0..100)
            .map(|i| 0x5555_5555_0000 + (i * 7919) % 0x10_0000)
            .collect();
        assert!(
            encoded_len(&frames) <= 7 + 99 * 3,
            "{}",
            encoded_len(&frames)
        );
    }

    #[test]
    fn validate_catches_a_wrong_entry() {
        let a = [0x1000usize, 0x2000, 0x3000];
        let id = intern_all(&a, false);
        let e = *TABLE.get(id);
        assert_eq!(validate(&e, &a, false), Ok(()));
        assert!(validate(&e, &[0x1000, 0x2000, 0x3008], false).is_err());
        assert!(validate(&e, &a, true).is_err());
        let short = Entry {
            bytes: e.bytes - 1,
            ..e
        };
        assert!(validate(&short, &a, false).is_err());
        let wrong_hash = Entry {
            hash: e.hash ^ 1,
            ..e
        };
        assert!(validate(&wrong_hash, &a, false).is_err());
    }
}
