//! pprof `profile.proto`, gzip-compressed, in the shape of Go's heap
//! profile (`runtime/pprof` `writeHeapProto`): the same period, sample types
//! and `bytes` label, so every pprof reader treats it as a Go heap profile.
//!
//! Differences from Go, on purpose: values are our unbiased estimates as
//! they are (each sample weighted with the rate in force when it was taken,
//! not rescaled with the current rate); functions carry the demangled name
//! and the mangled `system_name`; mappings say `has_filenames`,
//! `has_line_numbers` and `has_inline_frames` when true; comments give the
//! memprof version, the unwinder, the dropped-sample count and the exact
//! totals beside the estimate ([`crate::ExactTotals`]); a truncated
//! stack ends in a [`TRUNCATED`] frame.
//!
//! As in Go, `duration_nanos` is written only for a delta profile
//! ([`HeapProfile::delta_since`]); a snapshot has none.

use std::collections::HashMap;
use std::io::{self, Write};

use flate2::{write::GzEncoder, Compression};
use prost::Message;

use super::proto;
use super::{sites, TRUNCATED};
use crate::mappings::{self, Mapping};
use crate::symbolize::{LocKey, Symbolizer};
use crate::HeapProfile;

/// Writes `profile` as gzip-compressed `profile.proto`. With
/// `default_sample_type` (e.g. `"alloc_space"` for an allocs profile)
/// readers open on that type; without, on the last one, `inuse_space`.
/// With `symbolize` false, locations carry addresses and mappings only and
/// no debug info is read ([`HeapProfile::write_pprof_unsymbolized`]).
pub(crate) fn write(
    profile: &HeapProfile,
    default_sample_type: Option<&str>,
    symbolize: bool,
    w: impl Write,
) -> io::Result<()> {
    let sym = if symbolize {
        Symbolizer::new()
    } else {
        Symbolizer::off()
    };
    let bytes = build(profile, default_sample_type, mappings::current(), sym);
    // Fastest level, as Go: profiles are written from live processes.
    let mut gz = GzEncoder::new(w, Compression::fast());
    gz.write_all(&bytes)?;
    gz.finish()?.flush()
}

/// Builds the message, encoded: symbolizes, trims and merges the records.
///
/// The samples are encoded as they are made rather than kept as
/// `proto::Sample`s (at 10,000 records those took 2.7 MiB, their encoding
/// a tenth of it); the bytes are those `prost` writes for the whole
/// message, whose fields it writes in tag order: the sample types (1),
/// the samples (2), then the rest.
pub(crate) fn build(
    profile: &HeapProfile,
    default_sample_type: Option<&str>,
    maps: Vec<Mapping>,
    mut sym: Symbolizer,
) -> Vec<u8> {
    let symbolize = sym.is_on();
    let mut b = Builder::new(maps);
    b.p.period_type = Some(b.value_type("space", "bytes"));
    b.p.period = profile.rate as i64;
    b.p.sample_type = [
        ("alloc_objects", "count"),
        ("alloc_space", "bytes"),
        ("inuse_objects", "count"),
        ("inuse_space", "bytes"),
    ]
    .iter()
    .map(|&(t, u)| b.value_type(t, u))
    .collect();
    if let Some(t) = default_sample_type {
        b.p.default_sample_type = b.string(t);
    }
    let bytes_key = b.string("bytes");
    let (age_key, seconds) = (b.string("age"), b.string("seconds"));
    for site in sites(profile, &mut sym, true) {
        let mut location_id: Vec<u64> = site.locs.iter().map(|&k| b.location(&sym, k)).collect();
        if site.truncated {
            location_id.push(b.truncated_location());
        }
        let mut label = Vec::new();
        if site.object_size != 0 {
            label.push(proto::Label {
                key: bytes_key,
                num: site.object_size as i64,
                ..Default::default()
            });
        }
        for (k, v) in site.labels.iter() {
            label.push(proto::Label {
                key: b.string(k),
                str: b.string(v),
                ..Default::default()
            });
        }
        for (age, values) in site.by_age() {
            let mut label = label.clone();
            if let Some(secs) = age {
                label.push(proto::Label {
                    key: age_key,
                    num: secs as i64,
                    num_unit: seconds,
                    ..Default::default()
                });
            }
            let sample = proto::Sample {
                location_id: location_id.clone(),
                value: values.iter().map(|&v| v as i64).collect(),
                label,
            };
            prost::encoding::message::encode(2, &sample, &mut b.samples);
        }
    }
    b.p.time_nanos = profile.time_nanos;
    b.p.duration_nanos = profile.duration_nanos;
    let mut comments = vec![
        format!("memprof {}", env!("CARGO_PKG_VERSION")),
        format!("unwinder: {}", profile.unwinder),
        format!("dropped samples: {}", profile.dropped_samples),
    ];
    comments.extend(super::kind_comment(profile));
    if profile.label_overflow != 0 {
        comments.push(format!(
            "label sets over the limit (counted as memprof.labels=overflow): {}",
            profile.label_overflow
        ));
    }
    if let Some(t) = &profile.exact {
        comments.extend(crate::totals::comments(t));
    }
    if !symbolize {
        comments.push(
            "symbolization: off (unsymbolized profile: addresses and mappings only)".to_string(),
        );
    } else if !crate::symbolize::enabled() {
        comments.push(
            "symbolization: off (forked while another thread was writing a profile)".to_string(),
        );
    }
    for c in comments {
        let i = b.string(&c);
        b.p.comment.push(i);
    }
    let samples = std::mem::take(&mut b.samples);
    let mut p = b.finish();
    let mut out = Vec::with_capacity(samples.len() + p.encoded_len());
    for t in std::mem::take(&mut p.sample_type) {
        prost::encoding::message::encode(1, &t, &mut out);
    }
    out.extend_from_slice(&samples);
    drop(samples);
    p.encode(&mut out).expect("a Vec grows as needed");
    out
}

/// How well the locations of one mapping were symbolized: decides its
/// `has_*` flags (vacuously true for a mapping without locations).
#[derive(Default)]
struct MapStats {
    locations: usize,
    named: usize,
    with_files: usize,
    with_lines: usize,
}

/// Interns strings, functions and locations; ids count from 1 in order of
/// first use.
struct Builder {
    p: proto::Profile,
    strings: HashMap<String, i64>,
    functions: HashMap<(i64, i64, i64), u64>,
    locations: HashMap<LocKey, u64>,
    truncated: Option<u64>,
    /// The samples so far, encoded (field 2 of `Profile`).
    samples: Vec<u8>,
    maps: Vec<Mapping>,
    stats: Vec<MapStats>,
}

impl Builder {
    fn new(maps: Vec<Mapping>) -> Self {
        let mut b = Builder {
            p: proto::Profile::default(),
            strings: HashMap::new(),
            functions: HashMap::new(),
            locations: HashMap::new(),
            truncated: None,
            samples: Vec::new(),
            stats: maps.iter().map(|_| MapStats::default()).collect(),
            maps,
        };
        b.string(""); // index 0 must be "".
        b
    }

    fn string(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = self.p.string_table.len() as i64;
        self.p.string_table.push(s.to_owned());
        self.strings.insert(s.to_owned(), i);
        i
    }

    fn value_type(&mut self, t: &str, unit: &str) -> proto::ValueType {
        proto::ValueType {
            r#type: self.string(t),
            unit: self.string(unit),
        }
    }

    fn function(&mut self, name: &str, system_name: &str, file: &str) -> u64 {
        let key = (
            self.string(name),
            self.string(system_name),
            self.string(file),
        );
        let next = self.p.function.len() as u64 + 1;
        let id = *self.functions.entry(key).or_insert(next);
        if id == next {
            self.p.function.push(proto::Function {
                id,
                name: key.0,
                system_name: key.1,
                filename: key.2,
                start_line: 0,
            });
        }
        id
    }

    /// The location of one trimmed address: its shown frames as lines,
    /// innermost first, and the mapping holding the call instruction.
    fn location(&mut self, sym: &Symbolizer, key: LocKey) -> u64 {
        if let Some(&id) = self.locations.get(&key) {
            return id;
        }
        let pc = key.pc() as u64;
        let map = self.maps.iter().position(|m| m.start <= pc && pc < m.limit);
        let frames = sym.frames(key);
        let line = frames
            .iter()
            .map(|f| proto::Line {
                function_id: self.function(
                    &f.name,
                    &f.system_name,
                    f.file.as_deref().unwrap_or(""),
                ),
                line: f.line.map_or(0, i64::from),
            })
            .collect();
        if let Some(m) = map {
            let st = &mut self.stats[m];
            st.locations += 1;
            st.named += usize::from(!frames.is_empty());
            st.with_files +=
                usize::from(!frames.is_empty() && frames.iter().all(|f| f.file.is_some()));
            st.with_lines +=
                usize::from(!frames.is_empty() && frames.iter().all(|f| f.line.is_some()));
        }
        let id = self.p.location.len() as u64 + 1;
        self.p.location.push(proto::Location {
            id,
            mapping_id: map.map_or(0, |m| m as u64 + 1),
            address: pc,
            line,
            is_folded: false,
        });
        self.locations.insert(key, id);
        id
    }

    /// The shared root-most location that marks truncated stacks.
    fn truncated_location(&mut self) -> u64 {
        if let Some(id) = self.truncated {
            return id;
        }
        let function_id = self.function(TRUNCATED, TRUNCATED, "");
        let id = self.p.location.len() as u64 + 1;
        self.p.location.push(proto::Location {
            id,
            line: vec![proto::Line {
                function_id,
                line: 0,
            }],
            ..Default::default()
        });
        self.truncated = Some(id);
        id
    }

    fn finish(mut self) -> proto::Profile {
        let maps = std::mem::take(&mut self.maps);
        let stats = std::mem::take(&mut self.stats);
        for (i, (m, st)) in maps.iter().zip(&stats).enumerate() {
            let all = |n: usize| n == st.locations;
            let mapping = proto::Mapping {
                id: i as u64 + 1,
                memory_start: m.start,
                memory_limit: m.limit,
                file_offset: m.offset,
                filename: self.string(&m.path),
                build_id: self.string(&m.build_id),
                has_functions: all(st.named),
                has_filenames: all(st.with_files),
                has_line_numbers: all(st.with_lines),
                // Line numbers come from DWARF, which also has the inlining.
                has_inline_frames: all(st.with_lines),
            };
            self.p.mapping.push(mapping);
        }
        self.p
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};
    use std::io::Read;

    use super::*;
    use crate::encode::tests::{go_pprof_raw, profile, stacks, temp_path, weight};

    /// Writes `p` and decodes it back, checking the gzip framing.
    fn roundtrip(p: &HeapProfile, default_sample_type: Option<&str>) -> proto::Profile {
        let mut gz = Vec::new();
        write(p, default_sample_type, true, &mut gz).unwrap();
        assert_eq!(gz[..2], [0x1f, 0x8b], "not gzip");
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut raw)
            .unwrap();
        proto::Profile::decode(&raw[..]).unwrap()
    }

    /// google/pprof's `CheckValid`, plus the string table rules.
    fn check_valid(p: &proto::Profile) {
        assert_eq!(p.string_table[0], "");
        let strings = p.string_table.len() as i64;
        let ids = |v: Vec<u64>, what: &str| {
            let set: HashSet<u64> = v.iter().copied().collect();
            assert_eq!(set.len(), v.len(), "duplicate {what} ids");
            assert!(!set.contains(&0), "zero {what} id");
            set
        };
        let maps = ids(p.mapping.iter().map(|m| m.id).collect(), "mapping");
        let funcs = ids(p.function.iter().map(|f| f.id).collect(), "function");
        let locs = ids(p.location.iter().map(|l| l.id).collect(), "location");
        for f in &p.function {
            for i in [f.name, f.system_name, f.filename] {
                assert!((0..strings).contains(&i));
            }
        }
        for l in &p.location {
            assert!(l.mapping_id == 0 || maps.contains(&l.mapping_id));
            assert!(l.line.iter().all(|line| funcs.contains(&line.function_id)));
        }
        for s in &p.sample {
            assert_eq!(s.value.len(), p.sample_type.len());
            assert!(s.location_id.iter().all(|id| locs.contains(id)));
            assert!(!s.location_id.is_empty());
        }
        for i in p.comment.iter().chain([&p.default_sample_type]) {
            assert!((0..strings).contains(i));
        }
    }

    fn str(p: &proto::Profile, i: i64) -> &str {
        &p.string_table[i as usize]
    }

    /// The sample with this `bytes` label.
    fn by_size(p: &proto::Profile, size: i64) -> &proto::Sample {
        let key = p.string_table.iter().position(|s| s == "bytes").unwrap() as i64;
        let found: Vec<_> = p
            .sample
            .iter()
            .filter(|s| s.label.iter().any(|l| l.key == key && l.num == size))
            .collect();
        assert_eq!(found.len(), 1, "samples of size {size}");
        found[0]
    }

    fn function_names<'p>(p: &'p proto::Profile, loc: &proto::Location) -> Vec<&'p str> {
        let by_id: HashMap<u64, &proto::Function> = p.function.iter().map(|f| (f.id, f)).collect();
        loc.line
            .iter()
            .map(|l| str(p, by_id[&l.function_id].name))
            .collect()
    }

    #[test]
    fn has_go_heap_shape() {
        let s = stacks();
        let p = roundtrip(&profile(&s, 524288), None);
        check_valid(&p);
        let vt = |v: &proto::ValueType| (str(&p, v.r#type), str(&p, v.unit));
        assert_eq!(vt(p.period_type.as_ref().unwrap()), ("space", "bytes"));
        assert_eq!(p.period, 524288);
        let types: Vec<_> = p.sample_type.iter().map(vt).collect();
        assert_eq!(
            types,
            [
                ("alloc_objects", "count"),
                ("alloc_space", "bytes"),
                ("inuse_objects", "count"),
                ("inuse_space", "bytes")
            ]
        );
        assert_eq!(p.default_sample_type, 0);
        assert_eq!(p.time_nanos, 1_700_000_000_123_456_789);
        let comments: Vec<_> = p.comment.iter().map(|&i| str(&p, i)).collect();
        let version = format!("memprof {}", env!("CARGO_PKG_VERSION"));
        assert_eq!(
            comments,
            [version.as_str(), "unwinder: libgcc", "dropped samples: 7"]
        );
        assert_eq!(p.duration_nanos, 0);

        let mut with_exact = profile(&s, 524288);
        with_exact.exact = Some(crate::totals::tests::sample());
        let p = roundtrip(&with_exact, None);
        check_valid(&p);
        let comments: Vec<_> = p.comment.iter().map(|&i| str(&p, i)).collect();
        let mut want = vec![
            version.clone(),
            "unwinder: libgcc".to_string(),
            "dropped samples: 7".to_string(),
        ];
        want.extend(crate::totals::comments(&with_exact.exact.unwrap()));
        assert_eq!(comments, want);
        assert!(comments.contains(&"allocated bytes: 1288490189 (exact)"));

        let allocs = roundtrip(&profile(&s, 524288), Some("alloc_space"));
        assert_eq!(str(&allocs, allocs.default_sample_type), "alloc_space");
    }

    #[test]
    fn samples_encoded_as_made_give_prosts_bytes_for_the_whole_message() {
        let s = stacks();
        let mut p = profile(&s, 524288);
        p.exact = Some(crate::totals::tests::sample());
        let bytes = build(&p, Some("alloc_space"), Vec::new(), Symbolizer::new());
        let decoded = proto::Profile::decode(&bytes[..]).unwrap();
        assert!(decoded.sample.len() > 1 && !decoded.sample_type.is_empty());
        assert_eq!(decoded.encode_to_vec(), bytes);
    }

    #[test]
    fn delta_profile_has_its_duration() {
        let s = stacks();
        let mut earlier = profile(&s, 524288);
        earlier.time_nanos -= 2_000_000_000;
        let later = profile(&s, 524288);
        let delta = later.delta_since(&earlier);
        let p = roundtrip(&delta, None);
        check_valid(&p);
        assert_eq!(p.time_nanos, later.time_nanos);
        assert_eq!(p.duration_nanos, 2_000_000_000);
        // Nothing grew: alloc columns are 0, in-use is the later state.
        let merged = by_size(&p, 1024);
        assert_eq!(merged.value[..2], [0, 0]);
        assert_eq!(
            merged.value[2..],
            roundtrip(&later, None).sample[0].value[2..]
        );
    }

    #[test]
    fn values_are_the_estimates_merged_and_unscaled() {
        let s = stacks();
        for rate in [1u64, 524288] {
            let p = roundtrip(&profile(&s, rate), None);
            // 7 records: two merge, one is all zero.
            assert_eq!(p.sample.len(), 5, "rate {rate}");
            let est = |n: u64, size: u64, r: u64| n as f64 * weight(size, r);
            let want = |alloc: f64, inuse: f64, size: u64| {
                let round = |x: f64| (x + 0.5) as i64;
                let z = size as f64;
                vec![
                    round(alloc),
                    round(alloc * z),
                    round(inuse),
                    round(inuse * z),
                ]
            };
            let merged = want(est(43, 1024, rate), est(31, 1024, rate), 1024);
            assert_eq!(by_size(&p, 1024).value, merged);
            let freed = &by_size(&p, 368640).value;
            assert_eq!(freed[2..], [0, 0], "fully freed site keeps alloc only");
            assert!(freed[0] >= 1);
            let other_rate = want(est(5, 4096, 65536), est(4, 4096, 65536), 4096);
            assert_eq!(by_size(&p, 4096).value, other_rate);
            if rate == 1 {
                assert_eq!(merged, [43, 43 * 1024, 31, 31 * 1024]);
            }
        }
    }

    #[test]
    fn locations_are_symbolized_trimmed_and_marked_truncated() {
        let s = stacks();
        let p = roundtrip(&profile(&s, 524288), None);
        let locs: HashMap<u64, &proto::Location> = p.location.iter().map(|l| (l.id, l)).collect();
        let main = &p.mapping[0];
        let exe = std::env::current_exe().unwrap();
        assert_eq!(std::path::Path::new(str(&p, main.filename)), exe);
        assert!(!str(&p, main.build_id).is_empty());
        assert!(main.has_functions && main.has_filenames && main.has_line_numbers);

        let sample = by_size(&p, 1024);
        let leaf = locs[&sample.location_id[0]];
        assert_eq!(
            function_names(&p, leaf),
            ["memprof::symbolize::tests::capture"]
        );
        assert!(
            s.outer.contains(&(leaf.address as usize + 1)),
            "address = return address - 1"
        );
        assert_eq!(leaf.mapping_id, main.id);
        assert!(main.memory_start <= leaf.address && leaf.address < main.memory_limit);
        let inlined = locs[&sample.location_id[1]];
        assert_eq!(
            function_names(&p, inlined),
            [
                "memprof::symbolize::tests::inlined_site",
                "memprof::symbolize::tests::outer_site"
            ]
        );
        let by_id: HashMap<u64, &proto::Function> = p.function.iter().map(|f| (f.id, f)).collect();
        let outer = by_id[&inlined.line[1].function_id];
        assert!(
            str(&p, outer.system_name).starts_with("_ZN7memprof"),
            "mangled system_name"
        );
        assert!(str(&p, outer.filename).ends_with("src/symbolize.rs"));
        assert!(inlined.line.iter().all(|l| l.line > 0));

        for l in &p.location {
            for name in function_names(&p, l) {
                assert!(
                    !name.starts_with("backtrace::"),
                    "profiler frame left: {name}"
                );
            }
        }
        let truncated = by_size(&p, 32);
        let root = locs[truncated.location_id.last().unwrap()];
        assert_eq!(function_names(&p, root), [super::TRUNCATED]);
        assert_eq!((root.address, root.mapping_id), (0, 0));
        assert!(
            p.sample
                .iter()
                .filter(|s| s.location_id.contains(&root.id))
                .count()
                == 1
        );
    }

    #[test]
    fn go_tool_pprof_reads_the_same_values() {
        let s = stacks();
        let p = profile(&s, 524288);
        let path = temp_path("proto.pb.gz");
        write(&p, None, true, std::fs::File::create(&path).unwrap()).unwrap();
        let raw = go_pprof_raw(&path);
        std::fs::remove_file(&path).unwrap();
        let decoded = roundtrip(&p, None);
        assert_eq!(raw.period, 524288);
        assert_eq!(
            raw.sample_types,
            "alloc_objects/count alloc_space/bytes inuse_objects/count inuse_space/bytes"
        );
        assert_eq!(raw.samples.len(), decoded.sample.len());
        for want in &decoded.sample {
            let size = want.label[0].num;
            let got = raw.samples.iter().find(|r| r.bytes == Some(size)).unwrap();
            assert_eq!(got.values, want.value, "size {size}");
            assert_eq!(got.addresses.len(), want.location_id.len());
        }
        for name in [
            "memprof::symbolize::tests::outer_site",
            "memprof::symbolize::tests::inlined_site",
            "memprof::truncated",
            "Comment: dropped samples: 7",
        ] {
            assert!(
                raw.text.contains(name),
                "{name} missing from:\n{}",
                raw.text
            );
        }
    }
}
