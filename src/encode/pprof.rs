//! pprof `profile.proto`, gzip-compressed, in the shape of Go's heap
//! profile (`runtime/pprof` `writeHeapProto`): the same period, sample types
//! and `bytes` label, so every pprof reader treats it as a Go heap profile.
//!
//! Differences from Go, on purpose: values are our unbiased estimates as
//! they are (each sample weighted with the rate in force when it was taken,
//! not rescaled with the current rate); functions carry the demangled name
//! and the mangled `system_name`; mappings say `has_filenames`,
//! `has_line_numbers` and `has_inline_frames` when true; comments give the
//! memprof version, the unwinder and the dropped-sample count; a truncated
//! stack ends in a [`TRUNCATED`] frame.

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
pub(crate) fn write(
    profile: &HeapProfile,
    default_sample_type: Option<&str>,
    w: impl Write,
) -> io::Result<()> {
    let bytes = build(profile, default_sample_type, mappings::current()).encode_to_vec();
    // Fastest level, as Go: profiles are written from live processes.
    let mut gz = GzEncoder::new(w, Compression::fast());
    gz.write_all(&bytes)?;
    gz.finish()?.flush()
}

/// Builds the message: symbolizes, trims and merges the records.
pub(crate) fn build(
    profile: &HeapProfile,
    default_sample_type: Option<&str>,
    maps: Vec<Mapping>,
) -> proto::Profile {
    let mut sym = Symbolizer::new();
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
    for site in sites(profile, &mut sym) {
        let mut location_id: Vec<u64> = site.locs.iter().map(|&k| b.location(&sym, k)).collect();
        if site.truncated {
            location_id.push(b.truncated_location());
        }
        let label = if site.object_size == 0 {
            Vec::new()
        } else {
            vec![proto::Label {
                key: bytes_key,
                num: site.object_size as i64,
                ..Default::default()
            }]
        };
        b.p.sample.push(proto::Sample {
            location_id,
            value: site.values().iter().map(|&v| v as i64).collect(),
            label,
        });
    }
    b.p.time_nanos = profile.time_nanos;
    for c in [
        format!("memprof {}", env!("CARGO_PKG_VERSION")),
        format!("unwinder: {}", profile.unwinder),
        format!("dropped samples: {}", profile.dropped_samples),
    ] {
        let i = b.string(&c);
        b.p.comment.push(i);
    }
    b.finish()
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
