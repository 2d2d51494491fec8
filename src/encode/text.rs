//! Go's legacy heap profile text (`debug=1`), as read by `go tool pprof`,
//! google/pprof's legacy parser and gperftools' `pprof`:
//!
//! ```text
//! heap profile: IO: IB [AO: AB] @ heap_v2/<rate>
//!
//! Go writes `@ heap/<2*rate>`; `go tool pprof` reads `heap/2N` and
//! `heap_v2/N` alike (the same Poisson unbiasing, period N), but gperftools'
//! `google-pprof` treats `heap/` as its old version-1 sampling and divides
//! by zero on any record with no objects in use. `heap_v2/` is read the same
//! by both.
//! io: ib [ao: ab] @ 0x<ret> 0x<ret> ...       (one per site, leaf first)
//! #<TAB>0x<ret-1><TAB><function><TAB><file>:<line>   (one per frame, inlined first)
//! ```
//!
//! Readers re-scale each line at read time with Go's `scaleHeapSample`
//! (`count / (1 - e^(-size/R))`, truncated), R taken from the header. Our
//! sites already hold unbiased estimates, possibly sampled at other rates,
//! so each line holds the count that the reader's scaling turns back into
//! our estimate: `round(estimate / scale)`, at least 1 for a nonzero
//! estimate so that no site disappears. The result matches the pprof proto
//! within one scaled sample, and exactly at rate 1 (or 0), where readers do
//! not scale and the estimates are written as they are.
//!
//! Go writes `func+0xoffset` in the frame comments; the symbolizer does not
//! know function entry points, so the offset is left out (readers skip all
//! `#` lines). After the sites come `# memprof` comment lines and a memory
//! map of the executable mappings (`--- Memory map: ---`, `/proc/self/maps`
//! lines), from which readers symbolize position-independent binaries.

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
    // As Go >= 1.23: equal in-use and alloc totals would make readers take
    // the profile for an in-use-only one with two sample types.
    if total[3] == total[1] {
        total[3] += 1;
    }

    let mut w = BufWriter::new(w);
    writeln!(
        w,
        "heap profile: {}: {} [{}: {}] @ heap_v2/{}",
        total[0], total[1], total[2], total[3], rate
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
