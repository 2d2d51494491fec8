//! The stack table: deduplicates captured stacks into `StackId`s.
//!
//! Thread safety: `intern` looks up without a lock (the common case: the
//! stack was seen before) and locks only to add a new stack (`sys::table`). `get`
//! never locks.
//!
//! Storage: frames are delta-encoded (`encode`): frame `i` is stored as
//! the zigzag LEB128 varint of `frames[i] - frames[i - 1]` (wrapping;
//! `frames[-1]` is 0). Return addresses of one stack mostly lie in one
//! binary's text, so a frame takes about 3 bytes instead of 8. And a stack
//! deeper than `TAIL` frames keeps only its innermost frames (1 to `TAIL`)
//! in its own code; its outermost `TAIL * j` frames are a tail entry,
//! interned like a stack (so shared by every stack with those outer
//! frames), which keeps its own outer frames in a tail in turn. This is a
//! prefix tree of frames (heaptrack's trace tree) with `TAIL` frames a
//! node: one node per frame measured worse (syn's parser at rate 1 makes
//! 844k distinct (caller, return address) nodes, each with its share of a
//! hash index 30-50 B; docs/performance.md, "Memory at rate 1").
//! A lookup never decodes: a stack seen before is found by its full 64-bit
//! hash alone, in one index probe, never through its tails; only a new
//! stack interns its tails, and only `get` (profile writes) decodes.
//!
//! Invariants: ids are dense, `0..len`; an entry never changes after it is
//! published (code written, then the index slot stored with release); a
//! tail is published before any entry that names it, holds exactly the
//! entry's outer frames and is shorter than it (so a decode ends); an
//! entry's `bytes` bytes of code decode to exactly `len` frames less its
//! tail's, and its whole decode (code, then tails) hashes (`finish` of
//! their `frames::fold`) to its `hash` (checked by `validate` as each
//! entry is made, in debug builds); memory comes from
//! the profiler's arena and is never freed. When the table or the arena is
//! full, `intern` returns `None` and the caller counts a dropped sample.

use crate::sys::arena;
use crate::sys::frames::{fold, HASH_START};
use crate::sys::table::Table;

pub(crate) type StackId = u32;

/// At most this many entries (1 Mi): distinct stacks and their tails.
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
    /// The entry holding this stack's outer frames (`NO_TAIL`: none): its
    /// code holds only the frames before them (see `intern`).
    tail: StackId,
    /// Bytes of code (at most `MAX_VARINT` a frame).
    bytes: u16,
    /// Frames, the tail's included (at most `stack::MAX_FRAMES` when
    /// captured here).
    len: u8,
    truncated: bool,
}

/// No tail: the entry's code holds all its frames.
const NO_TAIL: StackId = StackId::MAX;

/// A stack deeper than this keeps its outermost `TAIL * j` frames (the
/// largest such tail that leaves it at least one frame of its own) in a
/// tail entry, interned like a stack, which in turn keeps its outer frames
/// in a tail of its own, and so on. Tails are counted from the outermost
/// frame, so stacks that share their outer frames (recursive descent)
/// share tail entries whatever their depth.
const TAIL: usize = 16;

// SAFETY: `code` points to immutable arena memory that lives forever.
unsafe impl Sync for Entry {}

static TABLE: Table<Entry, CHUNKS> = Table::new();

/// Longest varint of a 64-bit value: 10 groups of 7 bits.
const MAX_VARINT: usize = 10;

/// 64-bit hash of a stack from its frames folded by `frames::fold` (the
/// unwinders fold as they walk), its length and its truncation mark: the
/// stack's identity (`Entry::hash`), and the key records are found by.
#[inline]
pub(crate) fn finish(folded: u64, len: usize, truncated: bool) -> u64 {
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

/// Decodes an entry's frames (innermost first), its own code and then its
/// tails', without allocating. Stops early, rather than read past a code,
/// if one is cut short.
struct Decode<'a> {
    code: &'a [u8],
    /// Frames left in `code`.
    left: usize,
    prev: usize,
    /// Where to go on when `code` is done.
    tail: StackId,
    /// A code had bytes left when its frames were done (`validate`).
    leftover: bool,
}

impl Iterator for Decode<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.left == 0 {
            if self.tail == NO_TAIL {
                return None;
            }
            self.leftover |= !self.code.is_empty();
            *self = decode(TABLE.get(self.tail)).with_leftover(self.leftover);
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

impl<'a> Decode<'a> {
    fn with_leftover(mut self, leftover: bool) -> Self {
        self.leftover = leftover;
        self
    }
}

/// Frames in an entry's own code (its length less its tail's).
fn own_len(e: &Entry) -> usize {
    let tail = if e.tail == NO_TAIL {
        0
    } else {
        usize::from(TABLE.get(e.tail).len)
    };
    usize::from(e.len).saturating_sub(tail)
}

fn decode(e: &Entry) -> Decode<'static> {
    Decode {
        code: code_of(e),
        left: own_len(e),
        prev: 0,
        tail: e.tail,
        leftover: false,
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
    if d.leftover || !d.code.is_empty() {
        return Err("stack code has bytes past its last frame");
    }
    if e.truncated != truncated || usize::from(e.len) != frames.len() {
        return Err("stack entry's length or truncation mark is wrong");
    }
    if e.tail != NO_TAIL && own_len(e) + usize::from(TABLE.get(e.tail).len) != frames.len() {
        return Err("stack entry's tail is longer than the entry");
    }
    if finish(fold_all(decode(e)), frames.len(), truncated) != e.hash {
        return Err("stack entry's hash is not its frames'");
    }
    Ok(())
}

/// The table's 32-bit key of a 64-bit stack hash.
fn key(h64: u64) -> u32 {
    (h64 ^ (h64 >> 32)) as u32
}

/// The id of this stack, adding it if new. `None` when the table is full
/// (or the stack has more than 255 frames, which no unwinder here
/// captures). `folded` is `frames` folded by `frames::fold`
/// (`Captured::hash`).
///
/// A stack seen before is found by its full hash in one lookup, as if it
/// had no tails; only a new stack interns its tails, outermost first.
#[cfg(test)]
pub(crate) fn intern(frames: &[usize], truncated: bool, folded: u64) -> Option<StackId> {
    intern_hashed(frames, truncated, finish(folded, frames.len(), truncated))
}

/// `intern` for a stack whose full hash (`finish`) the caller has.
pub(crate) fn intern_hashed(frames: &[usize], truncated: bool, h64: u64) -> Option<StackId> {
    let found = TABLE.find(key(h64), |e| {
        e.hash == h64 && usize::from(e.len) == frames.len() && e.truncated == truncated
    });
    found.or_else(|| intern_new(frames, truncated, h64))
}

#[cold]
fn intern_new(frames: &[usize], truncated: bool, h64: u64) -> Option<StackId> {
    let n = frames.len();
    let tails = n.saturating_sub(1) / TAIL;
    let mut tail = NO_TAIL;
    for j in 1..=tails {
        let start = n - TAIL * j;
        let suffix = &frames[start..];
        let h = finish(fold_all(suffix.iter().copied()), suffix.len(), false);
        tail = add(suffix, TAIL, false, h, tail)?;
    }
    add(frames, n - TAIL * tails, truncated, h64, tail)
}

/// The id of `frames` with hash `h64`, adding it if new with its first
/// `own` frames in its code and the rest in the entry `tail` (which holds
/// exactly `frames[own..]`).
fn add(frames: &[usize], own: usize, truncated: bool, h64: u64, tail: StackId) -> Option<StackId> {
    let eq =
        |e: &Entry| e.hash == h64 && usize::from(e.len) == frames.len() && e.truncated == truncated;
    TABLE.intern(key(h64), eq, || {
        let len = u8::try_from(frames.len()).ok()?;
        let own = &frames[..own];
        let bytes = encoded_len(own);
        debug_assert!(bytes <= own.len() * MAX_VARINT);
        let bytes16 = u16::try_from(bytes).ok()?;
        let code = arena::alloc_zeroed(bytes.max(1), 1);
        if code.is_null() {
            return None;
        }
        // SAFETY: `code` is `bytes` (or 1) fresh bytes of arena memory that
        // are ours until the entry is published.
        encode(own, unsafe { core::slice::from_raw_parts_mut(code, bytes) });
        let e = Entry {
            code,
            hash: h64,
            tail,
            bytes: bytes16,
            len,
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
                tail: NO_TAIL,
                leftover: false,
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
            tail: NO_TAIL,
            leftover: false,
        };
        assert_eq!(cut.count(), 1);
    }

    /// Deep stacks that share their outer frames share tail entries,
    /// whatever their depth, and still decode to their own frames.
    #[test]
    fn deep_stacks_share_tails() {
        let outer: Vec<usize> = (0..48).map(|i| 0x5555_0100_0000 + i * 0x2a1).collect();
        let with_inner = |inner: &[usize]| {
            let mut s = inner.to_vec();
            s.extend_from_slice(&outer);
            s
        };
        let a = with_inner(&[0x7f00_0000_1000, 0x5555_0200_0000, 0x5555_0200_0100]);
        let b = with_inner(&[0x7f00_0000_1000, 0x5555_0200_0000, 0x5555_0200_0200]);
        let c = with_inner(&[0x7f00_0000_1000; 9]);
        let (ia, ib, ic) = (
            intern_all(&a, false),
            intern_all(&b, false),
            intern_all(&c, true),
        );
        let (ea, eb, ec) = (TABLE.get(ia), TABLE.get(ib), TABLE.get(ic));
        assert_ne!(ea.tail, NO_TAIL);
        assert_eq!(ea.tail, eb.tail);
        assert_eq!(ea.tail, ec.tail);
        // The shared tail is the outer 48 frames, itself in tails of 16.
        assert_eq!(get(ea.tail), (outer.clone(), false));
        assert!(usize::from(TABLE.get(ea.tail).bytes) <= 7 + 15 * 3);
        assert_eq!(own_len(ea), 3);
        assert_eq!(own_len(ec), 9);
        assert_eq!(get(ia), (a.clone(), false));
        assert_eq!(get(ib), (b, false));
        assert_eq!(get(ic), (c.clone(), true));
        // Seen before: the same ids; the tail is a stack of its own too.
        assert_eq!(intern_all(&a, false), ia);
        assert_eq!(intern_all(&c, true), ic);
        assert_eq!(intern_all(&outer, false), ea.tail);
        // Exactly 16 frames: no tail; 17: a tail of 16.
        assert_eq!(TABLE.get(intern_all(&outer[..16], false)).tail, NO_TAIL);
        let e17 = TABLE.get(intern_all(&outer[..17], false));
        assert_eq!(get(e17.tail), (outer[1..17].to_vec(), false));
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
