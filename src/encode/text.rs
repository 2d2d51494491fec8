//! Go's legacy heap profile text (`debug=1`), as read by `go tool pprof`
//! (google/pprof's legacy parser) and gperftools' `pprof` (`google-pprof`):
//!
//! ```text
//! heap profile: IO: IB [AO: AB] @ heap_v2/<rate>
//! io: ib [ao: ab] @ 0x<ret> 0x<ret> ...       (one per site, leaf first)
//! #<TAB>0x<ret-1><TAB><function><TAB><file>:<line>   (one per frame, inlined first)
//! ```
//!
//! **Header.** Go writes `@ heap/<2*rate>`. google/pprof reads that as
//! Poisson sampling at `rate`, but gperftools' `pprof` reads it as its old
//! uniform sampling (a different scale) and divides by the in-use count, so
//! it dies on any fully freed site ("Illegal division by zero"; Go's own
//! profiles included). `@ heap_v2/<rate>` means Poisson sampling at `rate`
//! to both readers, so that is what we write; at rate 1 (or 0, profiling
//! off) we write `@ heapprofile`, which both read as "not sampled, do not
//! scale". As Go >= 1.23 does, 1 is added to the header's alloc bytes when
//! they equal the in-use bytes, or readers take the profile for an
//! in-use-only one with two sample types.
//!
//! **Values.** Readers scale each line at read time, `count / (1 -
//! e^(-size/rate))` (Go's `scaleHeapSample`; google/pprof truncates the
//! result). Our sites already hold unbiased estimates, possibly sampled at
//! other rates, so each line holds the count that the reader's scaling turns
//! back into our estimate: `round(estimate / scale)`, at least 1 for a
//! nonzero estimate so that no site disappears. Read back, the values match
//! the pprof proto within one scaled sample, and exactly when not scaled.
//!
//! **The rest.** Go writes `func+0xoffset` in the frame comments; the
//! symbolizer does not know function entry points, so the offset is left
//! out (readers skip `#` lines). A truncated stack gets a `#` line naming
//! [`TRUNCATED`]. Then come `# memprof` comment lines (version, rate,
//! unwinder, dropped samples) and, last, a memory map of the executable
//! mappings (`--- Memory map: ---`, `/proc/self/maps` lines): readers
//! need it to symbolize position-independent binaries, and gperftools'
//! `pprof` reads everything after that marker as the map.

use std::io::{self, BufWriter, Write};

use super::{sites, Site, TRUNCATED};
use crate::mappings;
use crate::snapshot::round;
use crate::symbolize::Symbolizer;
use crate::HeapProfile;

/// Writes `profile` as Go `debug=1` heap profile text.
pub(crate) fn write(profile: &HeapProfile, w: impl Write) -> io::Result<()> {
    let mut sym = Symbolizer::new();
    let mut sites = sites(profile, &mut sym);
    sites.sort_by_key(|s| {
        let v = s.values();
        std::cmp::Reverse((v[3], v[1]))
    });
    let rate = profile.rate as u64;
    let rows: Vec<[u64; 4]> = sites.iter().map(|s| written(s, rate)).collect();
    let mut total = [0u64; 4];
    for row in &rows {
        for (t, v) in total.iter_mut().zip(row) {
            *t += v;
        }
    }
    if total[3] == total[1] {
        total[3] += 1;
    }
    let sampling = if rate > 1 {
        format!("heap_v2/{rate}")
    } else {
        "heapprofile".to_owned()
    };

    let mut w = BufWriter::new(w);
    writeln!(
        w,
        "heap profile: {}: {} [{}: {}] @ {sampling}",
        total[0], total[1], total[2], total[3]
    )?;
    for (site, row) in sites.iter().zip(&rows) {
        write!(w, "{}: {} [{}: {}] @", row[0], row[1], row[2], row[3])?;
        for loc in &site.locs {
            write!(w, " {:#x}", loc.ret)?;
        }
        writeln!(w)?;
        for &loc in &site.locs {
            let frames = sym.frames(loc);
            if frames.is_empty() {
                writeln!(w, "#\t{:#x}", loc.pc())?;
            }
            for f in frames {
                write!(w, "#\t{:#x}\t{}", loc.pc(), f.name)?;
                if let Some(file) = &f.file {
                    write!(w, "\t{}:{}", file, f.line.unwrap_or(0))?;
                }
                writeln!(w)?;
            }
        }
        if site.truncated {
            writeln!(w, "#\t{TRUNCATED}")?;
        }
        writeln!(w)?;
    }
    writeln!(w, "# memprof {}", env!("CARGO_PKG_VERSION"))?;
    writeln!(w, "# rate: {rate}")?;
    writeln!(w, "# unwinder: {}", profile.unwinder)?;
    writeln!(w, "# dropped samples: {}", profile.dropped_samples)?;
    writeln!(w, "\n--- Memory map: ---")?;
    for m in mappings::current() {
        writeln!(
            w,
            "{:x}-{:x} r-xp {:08x} 00:00 0 {}",
            m.start, m.limit, m.offset, m.path
        )?;
    }
    w.flush()
}

/// The values of one text line, `[inuse_objects, inuse_bytes,
/// alloc_objects, alloc_bytes]`, chosen so that the reader's scaling at
/// `rate` gives back the site's estimates.
fn written(site: &Site, rate: u64) -> [u64; 4] {
    let size = site.object_size;
    let inuse = written_count(site.inuse_objects_est, size, rate);
    let alloc = written_count(site.alloc_objects_est, size, rate);
    [inuse, inuse * size, alloc, alloc * size]
}

/// `round(estimate / scale)` with the reader's scale for objects of `size`
/// bytes at `rate`; the estimate itself where readers do not scale.
fn written_count(estimate: f64, size: u64, rate: u64) -> u64 {
    let n = round(estimate);
    if n == 0 || rate <= 1 || size == 0 {
        return n;
    }
    round(estimate / reader_scale(size, rate)).max(1)
}

/// The factor by which readers multiply a text line (`scaleHeapSample`).
pub(crate) fn reader_scale(size: u64, rate: u64) -> f64 {
    1.0 / (1.0 - (-(size as f64) / rate as f64).exp())
}
