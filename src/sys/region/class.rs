//! Size classes of the small zones: which slot size serves a request.
//!
//! Classes are 16..128 B by 16, then four per doubling up to 64 KiB (at most
//! 15 B lost up to 128 B, under 25% above). A class serves an alignment when
//! its size is a multiple of it: slots start on a 64 KiB boundary, so slot
//! `i` sits at a multiple of `size`.
//!
//! Invariants (checked by the tests below): sizes strictly grow, are
//! multiples of 16, the last is `SMALL_MAX`; `class_for` returns the
//! smallest class that holds the size at the alignment; `RECIP[c]` divides
//! exactly by `class_size(c)` for every offset below 2^48.

/// Largest small block; bigger ones are large runs (`large.rs`).
pub(crate) const SMALL_MAX: usize = 64 * 1024;
/// Largest alignment a small class serves (slots start this aligned).
pub(crate) const DATA_ALIGN: usize = 64 * 1024;

/// Slot sizes: 16..128 by 16, then four classes per doubling up to 64 KiB.
pub(crate) const NCLASSES: usize = 8 + 9 * 4;

/// `class_size`, for a class known only at run time: one load.
const SIZES: [usize; NCLASSES] = {
    let mut t = [0; NCLASSES];
    let mut c = 0;
    while c < NCLASSES {
        t[c] = class_size_of(c);
        c += 1;
    }
    t
};

#[inline]
pub(crate) const fn class_size(c: usize) -> usize {
    SIZES[c]
}

const fn class_size_of(c: usize) -> usize {
    if c < 8 {
        (c + 1) * 16
    } else {
        let group = (c - 8) / 4; // 0 => (128, 256]
        let step = 32 << group;
        (128 << group) + ((c - 8) % 4 + 1) * step
    }
}

/// The smallest class that holds `size` bytes at alignment `align` (a power
/// of two), or `None` for a large block.
#[inline]
pub(crate) fn class_for(size: usize, align: usize) -> Option<usize> {
    if size <= BY16_MAX && align <= 16 {
        // Every class is a multiple of 16: the common case, one load.
        return Some(usize::from(BY16[size.div_ceil(16)]));
    }
    class_for_search(size, align)
}

/// Sizes up to this (at alignment up to 16) find their class in `BY16`.
const BY16_MAX: usize = 1024;

/// The class of sizes `16 * (i - 1) + 1 ..= 16 * i` at alignment up to 16
/// (index 0, size 0, takes the smallest class).
const BY16: [u8; BY16_MAX / 16 + 1] = {
    let mut t = [0u8; BY16_MAX / 16 + 1];
    let mut i = 1;
    let mut c = 0;
    while i < t.len() {
        while class_size_of(c) < i * 16 {
            c += 1;
        }
        t[i] = c as u8;
        i += 1;
    }
    t
};

/// `class_for` past the table: a search.
fn class_for_search(size: usize, align: usize) -> Option<usize> {
    if size > SMALL_MAX || align > DATA_ALIGN {
        return None;
    }
    let need = size.max(align);
    let mut c = if need <= 128 {
        need.max(1).div_ceil(16) - 1
    } else {
        let group = (usize::BITS - 1 - (need - 1).leading_zeros()) as usize - 7; // 128 << group < need <= 256 << group
        let step = 32usize << group;
        8 + group * 4 + (need - (128 << group)).div_ceil(step) - 1
    };
    while c < NCLASSES {
        // `align` is a power of two (Layout guarantees it): mask, do not divide.
        if class_size(c) & (align - 1) == 0 {
            return Some(c);
        }
        c += 1;
    }
    None
}

/// ceil(2^64 / size) per class: `(off * R) >> 64 == off / size` for every
/// offset below 2^48 (the error term `off * (R*size - 2^64)` stays below
/// 2^64), so a free finds its slot with a multiply instead of a divide.
const RECIP: [u64; NCLASSES] = {
    let mut r = [0u64; NCLASSES];
    let mut c = 0;
    while c < NCLASSES {
        let size = class_size(c) as u128;
        r[c] = ((1u128 << 64).div_ceil(size)) as u64;
        c += 1;
    }
    r
};

/// `off / class_size(c)`, for `off < 2^48`.
#[inline]
pub(crate) fn div_by_size(c: usize, off: usize) -> usize {
    ((off as u128 * u128::from(RECIP[c])) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_grow_and_fit() {
        let mut prev = 0;
        for c in 0..NCLASSES {
            let s = class_size(c);
            assert!(s > prev && s.is_multiple_of(16), "class {c} size {s}");
            prev = s;
        }
        assert_eq!(class_size(NCLASSES - 1), SMALL_MAX);
        for size in 1..=SMALL_MAX {
            let c = class_for(size, 8).unwrap();
            assert!(class_size(c) >= size);
            assert!(
                c == 0 || class_size(c - 1) < size,
                "size {size} got class {c}"
            );
        }
        assert_eq!(class_for(100, 64).map(class_size), Some(128));
        assert_eq!(class_for(SMALL_MAX + 1, 8), None);
        assert_eq!(class_for(8, DATA_ALIGN * 2), None);
        for shift in 0..=16 {
            let align = 1usize << shift;
            let c = class_for(1, align).unwrap();
            assert!(class_size(c).is_multiple_of(align), "align {align}");
        }
    }

    #[test]
    fn reciprocal_division_is_exact() {
        for c in 0..NCLASSES {
            let size = class_size(c);
            for off in [
                0usize,
                size - 1,
                size,
                7 * size + 3,
                (1 << 35) - 1,
                (1 << 40) + 12345,
                (1 << 48) - 1,
            ] {
                assert_eq!(div_by_size(c, off), off / size, "class {c} off {off}");
            }
        }
    }
}
