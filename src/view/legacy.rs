//! Go's legacy heap profile text (`debug=1`, and gperftools' heap
//! profiles), read as google/pprof's legacy parser reads it
//! (`profile/legacy_profile.go`, `parseHeap`):
//!
//! ```text
//! heap profile: IO: IB [AO: AB] @ heap/<2*rate>      (or heap_v2/<rate>, heapprofile)
//! io: ib [ao: ab] @ 0x<ret> 0x<ret> ...                (one per site, leaf first)
//! #<TAB>0x<ret-1><TAB><function>[+0x<off>]<TAB><file>:<line>   (optional)
//! ```
//!
//! What it does, as pprof does:
//! - The header names the sampling: `heap/N` is Poisson sampling at N/2
//!   (Go writes twice its rate there), `heap_v2/N` and `heapz_v2/N` at N,
//!   `heapprofile` is not sampled. Sampled lines are un-sampled: each
//!   count and byte value is multiplied by `1/(1-e^(-avg/rate))`, `avg` the
//!   line's bytes per object, and truncated to an integer (pprof's
//!   `scaleHeapSample`); a rate of 1 or less leaves them as they are.
//! - Four sample types (`alloc_objects alloc_space inuse_objects
//!   inuse_space`) when the header's alloc figures differ from the in-use
//!   ones (and are not 0), else two (`objects space`).
//! - Every return address is moved back by one, onto the call, and the
//!   object size (bytes / count) becomes the `bytes` numeric label.
//! - Reading stops at a memory map (`--- Memory map: ---`).
//!
//! What it does beyond pprof: pprof ignores the `#` lines, so its frames
//! are bare addresses (and `go tool pprof -top` shows all of them as one
//! `<unknown>` node without the binary). Here, when a `#` line names the
//! function at an address (Go and memprof write one per frame, inlined
//! calls first), that address gets those frames; an address no `#` line
//! names is a frame named by its hex address. A stack memprof marks
//! truncated (`#\tmemprof::truncated`) ends in a `memprof::truncated` root
//! frame, as in memprof's pprof files.
//!
//! Invariants: no input panics; numbers that do not fit an `i64` (or a
//! `u64` address) are errors, as in pprof.

use std::collections::HashMap;

use super::error::ReadError;
use super::profile::{address_name, Frame, Frames, Profile, Sample, ValueType};
use crate::encode::TRUNCATED;

/// Whether `data` looks like legacy heap text: its first line holds
/// `heap profile:`.
pub(crate) fn is_heap_text(data: &[u8]) -> bool {
    let first = data.split(|&b| b == b'\n').next().unwrap_or(&[]);
    first.windows(13).any(|w| w == b"heap profile:")
}

/// How the header says the values were sampled.
#[derive(Clone, Copy, PartialEq)]
enum Sampling {
    /// Poisson sampling at this mean (bytes).
    Poisson(i64),
    /// Every allocation, or unknown: values kept as they are.
    None,
}

fn err(line: usize, reason: impl Into<String>) -> ReadError {
    ReadError::Text {
        line,
        reason: reason.into(),
    }
}

/// A cursor over one line, for the few shapes this format has.
struct Cursor<'a> {
    s: &'a str,
}

impl<'a> Cursor<'a> {
    fn skip_ws(&mut self) {
        self.s = self.s.trim_start_matches([' ', '\t']);
    }
    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        match self.s.strip_prefix(c) {
            Some(rest) => {
                self.s = rest;
                true
            }
            None => false,
        }
    }
    /// A decimal integer, possibly negative, as text.
    fn number(&mut self) -> Option<&'a str> {
        self.skip_ws();
        let neg = usize::from(self.s.starts_with('-'));
        let digits = self.s[neg..].bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let (n, rest) = self.s.split_at(neg + digits);
        self.s = rest;
        Some(n)
    }
    /// `A: B [C: D]` as text.
    fn four(&mut self) -> Option<[&'a str; 4]> {
        let a = self.number()?;
        self.eat(':').then_some(())?;
        let b = self.number()?;
        self.eat('[').then_some(())?;
        let c = self.number()?;
        self.eat(':').then_some(())?;
        let d = self.number()?;
        self.eat(']').then_some(())?;
        self.eat('@').then_some(())?;
        Some([a, b, c, d])
    }
}

/// Parses the header line: the sampling and whether alloc figures are
/// present.
fn header(line: &str) -> Result<(Sampling, i64, bool), ReadError> {
    let bad = || err(1, "unrecognized heap profile header");
    let start = line.find("heap profile:").ok_or_else(bad)?;
    let mut c = Cursor {
        s: &line[start + "heap profile:".len()..],
    };
    let [a, b, ac, ab] = c.four().ok_or_else(bad)?;
    c.skip_ws();
    let name_len =
        c.s.bytes()
            .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
            .count();
    let (name, rest) = c.s.split_at(name_len);
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let digits: &str = &rest[..rest.bytes().take_while(u8::is_ascii_digit).count()];
    let period = if digits.is_empty() {
        0
    } else {
        digits.parse::<i64>().map_err(|_| bad())?
    };
    let has_alloc = (ac != a && ac != "0") || (ab != b && ab != "0");
    let (sampling, period) = match name {
        "heapz_v2" | "heap_v2" => (Sampling::Poisson(period), period),
        "heapprofile" => (Sampling::None, 1),
        "heap" => (Sampling::Poisson(period / 2), period / 2),
        "growthz" | "growth" | "fragmentationz" | "fragmentation" => (Sampling::None, 1),
        _ => return Err(bad()),
    };
    let has_alloc = has_alloc
        && !matches!(
            name,
            "growthz" | "growth" | "fragmentationz" | "fragmentation"
        );
    Ok((sampling, period, has_alloc))
}

/// pprof's `scaleHeapSample`: the unsampled estimate of `count` objects of
/// `size` bytes in all, truncated as pprof truncates.
pub(crate) fn scale_heap_sample(count: i64, size: i64, rate: i64) -> (i64, i64) {
    if count == 0 || size == 0 {
        return (0, 0);
    }
    if rate <= 1 {
        return (count, size);
    }
    let avg = size as f64 / count as f64;
    let scale = 1.0 / (1.0 - (-avg / rate as f64).exp());
    ((count as f64 * scale) as i64, (size as f64 * scale) as i64)
}

/// Parses a sample line into its values, object size and return addresses.
fn sample_line(
    line: &str,
    no: usize,
    sampling: Sampling,
    has_alloc: bool,
) -> Result<(Vec<i64>, i64, Vec<u64>), ReadError> {
    let mut c = Cursor { s: line };
    let [ic, ib, ac, ab] = c
        .four()
        .ok_or_else(|| err(no, "not a heap sample (want `N: N [N: N] @ 0x...`)"))?;
    let int = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| err(no, format!("number {s} out of range")))
    };
    let mut values = Vec::with_capacity(4);
    let mut blocksize = 0;
    let mut add = |count: &str, size: &str, what: &str| -> Result<(), ReadError> {
        let (mut count, mut size) = (int(count)?, int(size)?);
        if count == 0 && size != 0 {
            return Err(err(
                no,
                format!("{what} count was 0 but {what} bytes was {size}"),
            ));
        }
        if count != 0 {
            blocksize = size.wrapping_div(count);
            if let Sampling::Poisson(rate) = sampling {
                (count, size) = scale_heap_sample(count, size, rate);
            }
        }
        values.extend([count, size]);
        Ok(())
    };
    if has_alloc {
        if ac.starts_with('-') || ab.starts_with('-') {
            return Err(err(no, "negative allocation figures"));
        }
        add(ac, ab, "allocation")?;
    }
    add(ic, ib, "inuse")?;
    let mut addrs = Vec::new();
    for word in c.s.split_whitespace() {
        let hex = word
            .strip_prefix("0x")
            .ok_or_else(|| err(no, format!("bad address {word:?}")))?;
        let addr =
            u64::from_str_radix(hex, 16).map_err(|_| err(no, format!("bad address {word:?}")))?;
        addrs.push(addr);
    }
    Ok((values, blocksize, addrs))
}

/// Parses a `#` line naming the frame at an address:
/// `#\t0xADDR\tfunction+0xOFF\tfile:line`; `None` for other comments.
fn symbol_line(line: &str) -> Option<(u64, Frame)> {
    let mut parts = line
        .strip_prefix('#')?
        .split('\t')
        .map(str::trim)
        .filter(|p| !p.is_empty());
    let addr = u64::from_str_radix(parts.next()?.strip_prefix("0x")?, 16).ok()?;
    let mut function = parts.next()?;
    if let Some((name, off)) = function.rsplit_once("+0x") {
        if !off.is_empty() && off.bytes().all(|b| b.is_ascii_hexdigit()) {
            function = name;
        }
    }
    let (file, line) = match parts.next() {
        Some(fl) => match fl.rsplit_once(':') {
            Some((f, l)) if l.parse::<i64>().is_ok() => (f, l.parse().unwrap_or(0)),
            _ => (fl, 0),
        },
        None => ("", 0),
    };
    Some((
        addr,
        Frame {
            function: function.to_owned(),
            file: file.to_owned(),
            line,
            inlined: false,
        },
    ))
}

/// Parses legacy heap text (the caller checked [`is_heap_text`]).
pub(crate) fn parse(data: &[u8]) -> Result<Profile, ReadError> {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    let (sampling, period, has_alloc) = header(lines.next().unwrap_or(""))?;
    let vt = |k: &str, u: &str| ValueType {
        kind: k.to_owned(),
        unit: u.to_owned(),
    };
    let sample_types = if has_alloc {
        vec![
            vt("alloc_objects", "count"),
            vt("alloc_space", "bytes"),
            vt("inuse_objects", "count"),
            vt("inuse_space", "bytes"),
        ]
    } else {
        vec![vt("objects", "count"), vt("space", "bytes")]
    };

    // (values, blocksize, adjusted addresses) per sample, and the frames
    // `#` lines give each adjusted address (first sample naming it wins).
    let mut raw: Vec<(Vec<i64>, i64, Vec<u64>, bool)> = Vec::new();
    let mut symbols: HashMap<u64, Vec<Frame>> = HashMap::new();
    let mut current: HashMap<u64, Vec<Frame>> = HashMap::new();
    let flush = |current: &mut HashMap<u64, Vec<Frame>>, symbols: &mut HashMap<u64, Vec<Frame>>| {
        for (addr, frames) in current.drain() {
            symbols.entry(addr).or_insert(frames);
        }
    };
    for (i, line) in lines.enumerate() {
        let no = i + 2;
        let line = line.trim();
        if line.contains("--- Memory map: ---") || line.contains("MAPPED_LIBRARIES:") {
            break;
        }
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if comment.trim() == TRUNCATED {
                if let Some(last) = raw.last_mut() {
                    last.3 = true;
                }
            } else if let Some((addr, frame)) = symbol_line(line) {
                current.entry(addr).or_default().push(frame);
            }
            continue;
        }
        flush(&mut current, &mut symbols);
        let (values, blocksize, addrs) = sample_line(line, no, sampling, has_alloc)?;
        // Return addresses point after the call: back up onto it.
        let addrs = addrs.into_iter().map(|a| a.wrapping_sub(1)).collect();
        raw.push((values, blocksize, addrs, false));
    }
    flush(&mut current, &mut symbols);

    let mut frames = Frames::default();
    let mut address_frames: HashMap<u64, Vec<u32>> = HashMap::new();
    let mut samples = Vec::with_capacity(raw.len());
    for (values, blocksize, addrs, truncated) in raw {
        let mut stack = Vec::with_capacity(addrs.len());
        for addr in addrs {
            if let Some(ids) = address_frames.get(&addr) {
                stack.extend_from_slice(ids);
                continue;
            }
            let mut named = symbols.remove(&addr).unwrap_or_else(|| {
                vec![Frame {
                    function: address_name(addr),
                    file: String::new(),
                    line: 0,
                    inlined: false,
                }]
            });
            // All but the last line of an address were inlined into it.
            let last = named.len().saturating_sub(1);
            for f in &mut named[..last] {
                f.inlined = true;
            }
            let ids = named
                .into_iter()
                .map(|f| frames.id(f))
                .collect::<Result<Vec<_>, _>>()?;
            stack.extend_from_slice(&ids);
            address_frames.insert(addr, ids);
        }
        if truncated {
            stack.push(frames.id(Frame {
                function: TRUNCATED.to_owned(),
                file: String::new(),
                line: 0,
                inlined: false,
            })?);
        }
        samples.push(Sample {
            stack,
            values,
            labels: Vec::new(),
            num_labels: vec![("bytes".to_owned(), blocksize, String::new())],
        });
    }

    Ok(Profile {
        sample_types,
        default_sample_type: None,
        period_type: Some(vt("space", "bytes")),
        period,
        time_nanos: 0,
        duration_nanos: 0,
        comments: Vec::new(),
        frames: frames.frames,
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Profile, ReadError> {
        Profile::from_bytes(text.as_bytes())
    }

    #[test]
    fn go_header_is_twice_the_rate_and_values_are_unsampled() {
        let p =
            read("heap profile: 1: 1024 [2: 2048] @ heap/1048576\n1: 1024 [2: 2048] @ 0x11 0x22\n")
                .expect("read");
        assert_eq!(p.period, 524288);
        let (c, b) = scale_heap_sample(2, 2048, 524288);
        let (ic, ib) = scale_heap_sample(1, 1024, 524288);
        assert_eq!(p.samples[0].values, vec![c, b, ic, ib]);
        // 1024 bytes at 512 KiB: sampled with probability ~0.2%.
        assert!(b > 1_000_000, "{b}");
        assert_eq!(
            p.samples[0].num_labels,
            vec![("bytes".into(), 1024, String::new())]
        );
        // Addresses are moved back onto the call.
        let names: Vec<&str> = p.samples[0]
            .stack
            .iter()
            .map(|&f| p.frames[f as usize].function.as_str())
            .collect();
        assert_eq!(names, ["0000000000000010", "0000000000000021"]);
    }

    #[test]
    fn heap_v2_and_heapprofile_headers() {
        let v2 =
            read("heap profile: 1: 10 [1: 10] @ heap_v2/4096\n1: 10 [1: 10] @ 0x5\n").expect("v2");
        assert_eq!(v2.period, 4096);
        assert_eq!(
            v2.sample_types.len(),
            2,
            "alloc figures equal in-use: two types"
        );
        let (c, b) = scale_heap_sample(1, 10, 4096);
        assert_eq!(v2.samples[0].values, vec![c, b]);
        let exact = read("heap profile: 1: 10 [3: 30] @ heapprofile\n1: 10 [3: 30] @ 0x5\n")
            .expect("exact");
        assert_eq!(exact.samples[0].values, vec![3, 30, 1, 10]);
    }

    #[test]
    fn symbol_lines_name_frames_inlined_first() {
        let p = read(
            "heap profile: 1: 8 [1: 8] @ heapprofile\n\
             1: 8 [1: 8] @ 0x11 0x21\n\
             #\t0x10\tinner+0x4\ta.rs:3\n\
             #\t0x10\touter+0x10\ta.rs:9\n\
             #\t0x20\tmain.main+0x27\t\tmain.go:20\n",
        )
        .expect("read");
        let frames: Vec<(&str, &str, i64, bool)> = p.samples[0]
            .stack
            .iter()
            .map(|&f| {
                let f = &p.frames[f as usize];
                (f.function.as_str(), f.file.as_str(), f.line, f.inlined)
            })
            .collect();
        assert_eq!(
            frames,
            [
                ("inner", "a.rs", 3, true),
                ("outer", "a.rs", 9, false),
                ("main.main", "main.go", 20, false)
            ]
        );
    }

    #[test]
    fn bad_lines_are_errors_with_their_number() {
        let e =
            read("heap profile: 1: 8 [1: 8] @ heapprofile\n1: 8 [1: 8] @ 0x11\nfoo\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 3: not a heap sample (want `N: N [N: N] @ 0x...`)"
        );
        let e = read("heap profile: 1: 8 [1: 8] @ heapprofile\n0: 8 [0: 8] @ 0x11\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: inuse count was 0 but inuse bytes was 8"
        );
        let e = read("heap profile: 1: 8 [1: 8] @ cpu/1\n").unwrap_err();
        assert_eq!(e.to_string(), "line 1: unrecognized heap profile header");
        let e =
            read("heap profile: 1: 8 [1: 8] @ heapprofile\n1: 8 [1: 8] @ 0x1ffffffffffffffff\n")
                .unwrap_err();
        assert!(e.to_string().starts_with("line 2: bad address"), "{e}");
        let e =
            read("heap profile: 1: 8 [1: 8] @ heapprofile\n99999999999999999999: 8 [1: 8] @ 0x1\n")
                .unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
    }

    #[test]
    fn extreme_numbers_do_not_panic() {
        for line in [
            "-1: -9223372036854775808 [0: 0] @ 0x1",
            "9223372036854775807: 9223372036854775807 [9223372036854775807: 9223372036854775807] @ 0x0",
            "-9223372036854775808: -1 [1: 1] @ 0xffffffffffffffff",
        ] {
            for header in ["heap_v2/1", "heap/1048576", "heapprofile"] {
                let text = format!("heap profile: 1: 2 [3: 4] @ {header}\n{line}\n");
                if let Ok(p) = read(&text) {
                    let _ = super::super::Top::new(&p, &Default::default()).map(|t| t.render());
                }
            }
        }
    }

    #[test]
    fn reading_stops_at_the_memory_map() {
        let p = read(
            "heap profile: 1: 8 [1: 8] @ heapprofile\n1: 8 [1: 8] @ 0x11\n\n\
             --- Memory map: ---\n00400000-00401000 r-xp 00000000 00:00 0 /bin/x\n",
        )
        .expect("read");
        assert_eq!(p.samples.len(), 1);
    }
}
