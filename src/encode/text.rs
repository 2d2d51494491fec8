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
    let mut sites = sites(profile, &mut sym, false);
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
    if profile.label_overflow != 0 {
        writeln!(
            w,
            "# label sets over the limit (counted as memprof.labels=overflow): {}",
            profile.label_overflow
        )?;
    }
    if let Some(c) = super::kind_comment(profile) {
        writeln!(w, "# {c}")?;
    }
    // The oldest live sites: the leak suspects, oldest first.
    let mut oldest: Vec<(u64, &Site, u64)> = sites
        .iter()
        .zip(&rows)
        .filter_map(|(s, row)| Some((s.ages.as_ref()?.oldest_ns, s, row[1])))
        .filter(|&(_, s, _)| s.inuse_objects_est > 0.0)
        .collect();
    oldest.sort_by_key(|&(age, _, bytes)| std::cmp::Reverse((age, bytes)));
    for (age, site, _) in oldest.into_iter().take(10) {
        let frames: Vec<_> = site.locs.iter().flat_map(|&l| sym.frames(l)).collect();
        let f = frames
            .iter()
            .find(|f| !crate::top::is_plumbing_name(&f.name))
            .or(frames.first());
        write!(
            w,
            "# oldest live: {:.3} s, {} B in use, ",
            age as f64 / 1e9,
            round(site.inuse_objects_est * site.object_size as f64)
        )?;
        match f {
            Some(f) => writeln!(
                w,
                "{} ({}:{})",
                f.name,
                f.file.as_deref().unwrap_or("?"),
                f.line.unwrap_or(0)
            )?,
            None => writeln!(w, "?")?,
        }
    }
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

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::encode::tests::{go_pprof_raw, profile, record, stacks, temp_path, RawSample};

    fn text_of(p: &HeapProfile) -> String {
        let mut out = Vec::new();
        write(p, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Parses `io: ib [ao: ab] @ ...` into `[io, ib, ao, ab]`.
    fn counts(line: &str) -> [u64; 4] {
        let nums: Vec<u64> = line
            .split(" @")
            .next()
            .unwrap()
            .split(|c: char| !c.is_ascii_digit())
            .filter(|t| !t.is_empty())
            .map(|t| t.parse().unwrap())
            .collect();
        nums.try_into().unwrap()
    }

    #[test]
    fn writes_go_text_layout() {
        let s = stacks();
        let text = text_of(&profile(&s, 1));
        let lines: Vec<&str> = text.lines().collect();
        let records: Vec<[u64; 4]> = lines[1..]
            .iter()
            .take_while(|l| !l.starts_with("# memprof"))
            .filter(|l| l.contains(" @ 0x"))
            .map(|l| counts(l))
            .collect();
        assert_eq!(records.len(), 5);
        let mut total = [0; 4];
        for r in &records {
            (0..4).for_each(|i| total[i] += r[i]);
        }
        assert!(lines[0].ends_with(" @ heapprofile"), "{}", lines[0]);
        assert_eq!(counts(lines[0]), total);
        assert!(
            records.windows(2).all(|w| w[0][1] >= w[1][1]),
            "sorted by in-use bytes"
        );
        // Rate 1: the exact counts, merged records summed.
        assert!(records.contains(&[31, 31 * 1024, 43, 43 * 1024]));
        assert!(records.contains(&[0, 0, 1, 368640]));
        assert!(text.contains("\tmemprof::symbolize::tests::inlined_site\t"));
        let frame = lines
            .iter()
            .find(|l| l.contains("tests::outer_site"))
            .unwrap();
        let f: Vec<&str> = frame.split('\t').collect();
        assert_eq!(f[0], "#");
        let pc = usize::from_str_radix(f[1].trim_start_matches("0x"), 16).unwrap();
        assert!(s.outer.contains(&(pc + 1)));
        assert!(f[3].contains("src/symbolize.rs:"), "{frame}");
        assert!(!text.contains("\tbacktrace::"), "profiler frames left");
        assert!(text.contains(&format!("#\t{TRUNCATED}\n")));
        for l in [
            "# rate: 1",
            "# unwinder: libgcc",
            "# dropped samples: 7",
            "--- Memory map: ---",
        ] {
            assert!(lines.contains(&l), "{l} missing");
        }
        let exe = std::env::current_exe().unwrap();
        assert!(text.contains(&format!(" {}\n", exe.display())));

        let sampled = text_of(&profile(&s, 524288));
        assert!(
            sampled.starts_with("heap profile: ")
                && sampled
                    .lines()
                    .next()
                    .unwrap()
                    .ends_with(" @ heap_v2/524288")
        );
    }

    #[test]
    fn equal_totals_get_one_more_alloc_byte() {
        let s = stacks();
        let mut p = profile(&s, 1);
        p.records = vec![record(&s.other, 100, 3, 0, 1)];
        assert!(text_of(&p).starts_with("heap profile: 3: 300 [3: 301] @ heapprofile\n"));
        p.records.clear();
        assert!(text_of(&p).starts_with("heap profile: 0: 0 [0: 1] @ heapprofile\n"));
    }

    #[test]
    fn written_counts_invert_the_reader_scaling() {
        let scale = reader_scale(1024, 524288);
        assert!((scale - 512.5).abs() < 0.1);
        assert_eq!(written_count(41.0 * scale, 1024, 524288), 41);
        // A site sampled at a smaller rate still shows up.
        assert_eq!(written_count(3.0, 1024, 524288), 1);
        assert_eq!(written_count(0.2, 1024, 524288), 0);
        assert_eq!(written_count(7.0, 1024, 1), 7);
        assert_eq!(written_count(7.0, 1024, 0), 7);
    }

    /// A sample's stack (without the truncation mark) and size, its values.
    type Keyed = ((Vec<u64>, i64), Vec<i64>);

    /// Samples keyed by stack and size, sorted.
    fn keyed(samples: &[RawSample]) -> Vec<Keyed> {
        let mut v: Vec<_> = samples
            .iter()
            .map(|s| {
                let addrs = s.addresses.iter().copied().filter(|&a| a != 0).collect();
                ((addrs, s.bytes.unwrap()), s.values.clone())
            })
            .collect();
        v.sort();
        v
    }

    /// `go tool pprof -raw` on the text and on the proto of one profile.
    fn read_both(
        p: &HeapProfile,
        name: &str,
    ) -> (crate::encode::tests::Raw, crate::encode::tests::Raw) {
        let txt = temp_path(&format!("{name}.txt"));
        let pb = temp_path(&format!("{name}.pb.gz"));
        write(p, std::fs::File::create(&txt).unwrap()).unwrap();
        crate::encode::pprof::write(p, None, true, std::fs::File::create(&pb).unwrap()).unwrap();
        let both = (go_pprof_raw(&txt), go_pprof_raw(&pb));
        std::fs::remove_file(txt).unwrap();
        std::fs::remove_file(pb).unwrap();
        both
    }

    #[test]
    fn go_tool_pprof_reads_rate_one_text_exactly_as_the_proto() {
        let s = stacks();
        let mut p = profile(&s, 1);
        // Leave out the record sampled at another rate: its estimate is not
        // a whole number of objects, which a text line cannot hold.
        p.records.retain(|r| r.object_size != 4096);
        let (text, proto) = read_both(&p, "rate1");
        assert_eq!(text.period, 1);
        assert_eq!(text.sample_types, proto.sample_types);
        assert_eq!(keyed(&text.samples), keyed(&proto.samples));
        // Symbolized from the binary through the memory map.
        assert!(
            text.text.contains("outer_site") && text.text.contains("other_site"),
            "{}",
            text.text
        );
    }

    #[test]
    fn go_tool_pprof_reads_sampled_text_within_one_sample_of_the_proto() {
        let s = stacks();
        let (text, proto) = read_both(&profile(&s, 524288), "rate512k");
        assert_eq!(text.period, 524288);
        let (text, proto) = (keyed(&text.samples), keyed(&proto.samples));
        assert_eq!(text.len(), proto.len());
        for ((key, got), (want_key, want)) in text.iter().zip(&proto) {
            assert_eq!(key, want_key);
            let size = key.1;
            let scale = reader_scale(size as u64, 524288);
            for i in 0..4 {
                let slack = if i % 2 == 0 {
                    scale
                } else {
                    scale * size as f64 + 1.0
                };
                let diff = (got[i] - want[i]).abs() as f64;
                assert!(
                    diff <= slack,
                    "size {size} value {i}: text {got:?} proto {want:?}"
                );
            }
        }
        // The 1024-byte site was sampled at this rate: as close as truncation allows.
        let (_, got) = text.iter().find(|(k, _)| k.1 == 1024).unwrap();
        let (_, want) = proto.iter().find(|(k, _)| k.1 == 1024).unwrap();
        assert!(
            (got[0] - want[0]).abs() <= 1 && (got[2] - want[2]).abs() <= 1,
            "{got:?} {want:?}"
        );
    }

    /// `google-pprof --text --show_bytes <type>` total, and the report.
    fn google_pprof_total(path: &std::path::Path, kind: &str) -> (f64, String) {
        let out = Command::new("google-pprof")
            .args(["--text", "--show_bytes", kind])
            .arg(std::env::current_exe().unwrap())
            .arg(path)
            .output()
            .expect("google-pprof (Debian google-perftools) must be installed for this test");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "google-pprof failed: {err}\n{text}");
        let total = text
            .lines()
            .find_map(|l| l.strip_prefix("Total: "))
            .unwrap_or_else(|| panic!("no total in: {err}\n{text}"));
        (
            total.split_whitespace().next().unwrap().parse().unwrap(),
            text,
        )
    }

    #[test]
    fn google_pprof_reads_text_with_the_same_totals() {
        let s = stacks();
        for rate in [1u64, 524288] {
            let p = profile(&s, rate);
            let path = temp_path(&format!("gperf-{rate}.txt"));
            write(&p, std::fs::File::create(&path).unwrap()).unwrap();
            let go = go_pprof_raw(&path);
            let kinds = [
                "--alloc_objects",
                "--alloc_space",
                "--inuse_objects",
                "--inuse_space",
            ];
            for (i, kind) in kinds.iter().enumerate() {
                let (total, report) = google_pprof_total(&path, kind);
                let want: i64 = go.samples.iter().map(|s| s.values[i]).sum();
                // gperftools keeps fractions where Go truncates each sample.
                let slack = if rate == 1 {
                    0.5
                } else {
                    go.samples.len() as f64
                };
                assert!(
                    (total - want as f64).abs() <= slack,
                    "rate {rate} {kind}: {total} vs {want}"
                );
                assert!(
                    report.contains("memprof::symbolize::tests::capture"),
                    "{report}"
                );
            }
            std::fs::remove_file(path).unwrap();
        }
    }
}
