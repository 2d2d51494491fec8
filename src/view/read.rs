//! Reading a profile file into the [`Profile`] model: gzip or raw
//! `profile.proto` (ours, Go's, any pprof writer's) and Go's legacy heap
//! text (`heap profile: ...`, in [`legacy`](super::legacy)).
//!
//! Invariants: the input is untrusted. Every index the file holds (string,
//! location, function) is checked before use, gzip output is capped at
//! [`MAX_DECOMPRESSED`] bytes, and no input makes these functions panic;
//! whatever is wrong comes back as a one-line [`ReadError`]. A `Profile`
//! returned satisfies the invariants of [`Profile`]: one value per sample
//! type, every `FrameId` in range.
//!
//! As `go tool pprof` shows them, stacks are leaf first and a location's
//! inlined calls become frames of their own, innermost first. Frames with
//! no function keep their address, in hex, as the name. The leaf-side run
//! of allocator plumbing (`__rust_alloc`, `alloc::alloc::realloc`, ...) that
//! a profile may hold is dropped, never the whole stack (see
//! [`drop_alloc_plumbing`]).

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use prost::Message;

use super::error::{ReadError, MAX_DECOMPRESSED};
use super::profile::{address_name, Frame, FrameId, Frames, Profile, Sample, ValueType};
use crate::encode::proto;

fn malformed(msg: impl Into<String>) -> ReadError {
    ReadError::Malformed(msg.into())
}

impl Profile {
    /// Reads a profile file (see [`from_bytes`](Self::from_bytes)).
    pub fn read(path: impl AsRef<Path>) -> Result<Profile, ReadError> {
        let bytes = std::fs::read(path)?;
        Profile::from_bytes(&bytes)
    }

    /// Reads a profile from its bytes: gzip-compressed or raw
    /// `profile.proto`, or Go's legacy heap text (`debug=1`), itself
    /// possibly gzip-compressed.
    ///
    /// ```
    /// # #[cfg(feature = "cli")] {
    /// use memprof::view::Profile;
    /// let text = b"heap profile: 1: 64 [2: 128] @ heapprofile\n1: 64 [2: 128] @ 0x1000\n";
    /// let p = Profile::from_bytes(text)?;
    /// assert_eq!(p.samples[0].values, vec![2, 128, 1, 64]);
    /// assert!(Profile::from_bytes(b"hello").is_err());
    /// # }
    /// # Ok::<(), memprof::view::ReadError>(())
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> Result<Profile, ReadError> {
        let inflated;
        let data = if bytes.starts_with(&[0x1f, 0x8b]) {
            inflated = gunzip(bytes)?;
            &inflated[..]
        } else {
            bytes
        };
        if data.is_empty() {
            return Err(ReadError::Empty);
        }
        let mut profile = if super::legacy::is_heap_text(data) {
            super::legacy::parse(data)?
        } else {
            let decoded = proto::Profile::decode(data).map_err(|_| ReadError::NotAProfile)?;
            from_proto(&decoded)?
        };
        drop_alloc_plumbing(&mut profile);
        Ok(profile)
    }

    /// The model of a profile the library holds, for the live page: the
    /// profile as [`HeapProfile::write_pprof`](crate::HeapProfile::write_pprof)
    /// writes it (symbolized), read back.
    pub fn from_heap(heap: &crate::HeapProfile) -> Result<Profile, ReadError> {
        let mut buf = Vec::new();
        heap.write_pprof(&mut buf)?;
        Profile::from_bytes(&buf)
    }
}

/// Inflates a gzip stream (several members are read as one, as Go does),
/// at most [`MAX_DECOMPRESSED`] bytes.
fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, ReadError> {
    gunzip_capped(bytes, MAX_DECOMPRESSED)
}

fn gunzip_capped(bytes: &[u8], cap: u64) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    let decoder = flate2::read::MultiGzDecoder::new(bytes);
    match decoder.take(cap + 1).read_to_end(&mut out) {
        Ok(n) if n as u64 > cap => Err(ReadError::TooLarge),
        Ok(_) => Ok(out),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(ReadError::TruncatedGzip),
        Err(e) => Err(ReadError::CorruptGzip(e.to_string())),
    }
}

/// The name `go tool pprof` gives a location without lines in a mapping
/// with a file: `[libc.so.6]`, the file's base name in brackets. At its
/// default granularity (functions, no addresses) every such location of
/// one module is one node. `None` without a file name.
fn objfile_name(file: Option<&str>) -> Option<String> {
    let base = file?.rsplit('/').next().filter(|b| !b.is_empty())?;
    Some(format!("[{base}]"))
}

/// Checked access to `string_table`.
struct Strings<'a>(&'a [String]);

impl Strings<'_> {
    fn get(&self, index: i64) -> Result<&str, ReadError> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.0.get(i))
            .map(String::as_str)
            .ok_or_else(|| malformed(format!("string index {index} out of range")))
    }
}

fn value_type(s: &Strings<'_>, v: &proto::ValueType) -> Result<ValueType, ReadError> {
    Ok(ValueType {
        kind: s.get(v.r#type)?.to_owned(),
        unit: s.get(v.unit)?.to_owned(),
    })
}

/// Converts a decoded `profile.proto`, checking every index.
fn from_proto(p: &proto::Profile) -> Result<Profile, ReadError> {
    let s = Strings(&p.string_table);
    match p.string_table.first() {
        Some(first) if first.is_empty() => {}
        Some(_) => return Err(malformed("string table entry 0 is not empty")),
        None => return Err(ReadError::NotAProfile),
    }
    if p.sample_type.is_empty() {
        return Err(malformed("no sample types"));
    }
    let sample_types = p
        .sample_type
        .iter()
        .map(|v| value_type(&s, v))
        .collect::<Result<Vec<_>, _>>()?;
    let default_sample_type = if p.default_sample_type != 0 {
        let name = s.get(p.default_sample_type)?;
        sample_types.iter().position(|t| t.kind == name)
    } else {
        None
    };
    let period_type = p
        .period_type
        .as_ref()
        .map(|v| value_type(&s, v))
        .transpose()?;
    let comments = p
        .comment
        .iter()
        .map(|&c| s.get(c).map(str::to_owned))
        .collect::<Result<Vec<_>, _>>()?;

    let mut functions: HashMap<u64, (&str, &str)> = HashMap::with_capacity(p.function.len());
    for f in &p.function {
        if f.id == 0 {
            return Err(malformed("function id 0"));
        }
        let entry = (s.get(f.name)?, s.get(f.filename)?);
        if functions.insert(f.id, entry).is_some() {
            return Err(malformed(format!("duplicate function id {}", f.id)));
        }
    }

    // Mapping files, for locations the profile left unnamed.
    let mut objfiles: HashMap<u64, &str> = HashMap::with_capacity(p.mapping.len());
    for m in &p.mapping {
        objfiles.insert(m.id, s.get(m.filename)?);
    }

    let mut frames = Frames::default();
    let mut locations: HashMap<u64, Vec<FrameId>> = HashMap::with_capacity(p.location.len());
    for l in &p.location {
        if l.id == 0 {
            return Err(malformed("location id 0"));
        }
        let mut ids = Vec::with_capacity(l.line.len().max(1));
        for (i, line) in l.line.iter().enumerate() {
            let inlined = i + 1 < l.line.len();
            let frame = if line.function_id == 0 {
                Frame {
                    function: address_name(l.address),
                    file: String::new(),
                    line: line.line,
                    inlined,
                }
            } else {
                let (name, file) = functions
                    .get(&line.function_id)
                    .ok_or_else(|| malformed(format!("function {} not found", line.function_id)))?;
                Frame {
                    function: if name.is_empty() {
                        address_name(l.address)
                    } else {
                        (*name).to_owned()
                    },
                    file: (*file).to_owned(),
                    line: line.line,
                    inlined,
                }
            };
            ids.push(frames.id(frame)?);
        }
        if ids.is_empty() {
            ids.push(
                frames.id(Frame {
                    function: objfile_name(objfiles.get(&l.mapping_id).copied())
                        .unwrap_or_else(|| address_name(l.address)),
                    file: String::new(),
                    line: 0,
                    inlined: false,
                })?,
            );
        }
        if locations.insert(l.id, ids).is_some() {
            return Err(malformed(format!("duplicate location id {}", l.id)));
        }
    }

    let mut samples = Vec::with_capacity(p.sample.len());
    for sample in &p.sample {
        if sample.value.len() != sample_types.len() {
            return Err(malformed(format!(
                "sample has {} values, want {}",
                sample.value.len(),
                sample_types.len()
            )));
        }
        let mut stack = Vec::with_capacity(sample.location_id.len());
        for id in &sample.location_id {
            let ids = locations
                .get(id)
                .ok_or_else(|| malformed(format!("location {id} not found")))?;
            stack.extend_from_slice(ids);
        }
        let mut labels = Vec::new();
        let mut num_labels = Vec::new();
        for label in &sample.label {
            let key = s.get(label.key)?.to_owned();
            if label.str != 0 {
                labels.push((key, s.get(label.str)?.to_owned()));
            } else {
                num_labels.push((key, label.num, s.get(label.num_unit)?.to_owned()));
            }
        }
        samples.push(Sample {
            stack,
            values: sample.value.clone(),
            labels,
            num_labels,
        });
    }

    Ok(Profile {
        sample_types,
        default_sample_type,
        period_type,
        period: p.period,
        time_nanos: p.time_nanos,
        duration_nanos: p.duration_nanos,
        comments,
        frames: frames.frames,
        samples,
    })
}

/// Drops, from each sample, the leaf-side run of allocator plumbing frames
/// (`__rust_alloc`, `alloc::alloc::realloc`, ...), which only say "this
/// allocated", but never a sample's last frame.
/// memprof trims these when it writes a profile; files written before it
/// did, or by other Rust profilers, still have them.
pub(crate) fn drop_alloc_plumbing(profile: &mut Profile) {
    drop_leaf_run(profile, crate::symbolize::is_alloc_plumbing);
}

/// Drops the leaf-side run of frames `drop` names from each sample, but
/// never a sample's last frame.
fn drop_leaf_run(profile: &mut Profile, drop: impl Fn(&str) -> bool) {
    let plumbing: Vec<bool> = profile.frames.iter().map(|f| drop(&f.function)).collect();
    if !plumbing.contains(&true) {
        return;
    }
    for sample in &mut profile.samples {
        let run = sample
            .stack
            .iter()
            .take_while(|&&id| plumbing.get(id as usize).copied().unwrap_or(false))
            .count()
            .min(sample.stack.len().saturating_sub(1));
        sample.stack.drain(..run);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const GO_HEAP: &[u8] = include_bytes!("../../tests/data/go1.19-heap-rate512k.pb.gz");
    const GO_ALLOCS: &[u8] = include_bytes!("../../tests/data/go1.19-allocs-rate512k.pb.gz");
    const GO_TEXT: &[u8] = include_bytes!("../../tests/data/go1.19-heap-rate512k.txt");

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).expect("gzip");
        e.finish().expect("gzip")
    }

    fn raw(gz: &[u8]) -> Vec<u8> {
        gunzip(gz).expect("gunzip")
    }

    fn decoded(gz: &[u8]) -> proto::Profile {
        proto::Profile::decode(&raw(gz)[..]).expect("decode")
    }

    fn encode(p: &proto::Profile) -> Vec<u8> {
        p.encode_to_vec()
    }

    /// A tiny xorshift, so the corruption is the same on every run.
    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn reads_go_heap_profiles_gzip_and_raw() {
        let p = Profile::from_bytes(GO_HEAP).expect("gzip");
        assert_eq!(p.sample_types.len(), 4);
        assert_eq!(p.sample_types[3].kind, "inuse_space");
        assert_eq!(p.period, 524288);
        assert!(p.frames.iter().any(|f| f.function == "main.allocA"));
        assert_eq!(Profile::from_bytes(&raw(GO_HEAP)).expect("raw"), p);
        for s in &p.samples {
            assert_eq!(s.values.len(), 4);
            assert!(s.stack.iter().all(|&f| (f as usize) < p.frames.len()));
        }
        let allocs = Profile::from_bytes(GO_ALLOCS).expect("allocs");
        assert_eq!(allocs.default_sample_type, Some(1), "alloc_space");
    }

    #[test]
    fn inline_frames_expand_innermost_first() {
        let mut p = decoded(GO_HEAP);
        // Give the first location a second (inlined) line: function 1
        // inlined into whatever the location was.
        let f = p.function[0].id;
        let loc = &mut p.location[0];
        let outer = loc.line[0].function_id;
        loc.line.insert(
            0,
            proto::Line {
                function_id: f,
                line: 7,
            },
        );
        let id = loc.id;
        let read = Profile::from_bytes(&encode(&p)).expect("read");
        let s = p
            .sample
            .iter()
            .position(|s| s.location_id.contains(&id))
            .expect("a sample uses location 0");
        let at = p.sample[s]
            .location_id
            .iter()
            .position(|&l| l == id)
            .expect("loc");
        let stack = &read.samples[s].stack;
        // Locations before `at` each gave one frame (Go's have no inlining).
        let inner = &read.frames[stack[at] as usize];
        let outer_frame = &read.frames[stack[at + 1] as usize];
        let name = |fid: u64| {
            let f = p.function.iter().find(|f| f.id == fid).expect("function");
            p.string_table[f.name as usize].clone()
        };
        assert_eq!((inner.function.clone(), inner.inlined), (name(f), true));
        assert_eq!(
            (outer_frame.function.clone(), outer_frame.inlined),
            (name(outer), false)
        );
    }

    #[test]
    fn bad_indices_are_errors_that_say_which() {
        let mut p = decoded(GO_HEAP);
        p.function[0].name = 57_000;
        let e = Profile::from_bytes(&encode(&p)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "malformed profile: string index 57000 out of range"
        );

        let mut p = decoded(GO_HEAP);
        p.sample[0].location_id[0] = 12_345;
        let e = Profile::from_bytes(&encode(&p)).unwrap_err();
        assert_eq!(e.to_string(), "malformed profile: location 12345 not found");

        let mut p = decoded(GO_HEAP);
        p.location[0].line[0].function_id = 999;
        let e = Profile::from_bytes(&encode(&p)).unwrap_err();
        assert_eq!(e.to_string(), "malformed profile: function 999 not found");

        let mut p = decoded(GO_HEAP);
        p.sample[0].value.pop();
        let e = Profile::from_bytes(&encode(&p)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "malformed profile: sample has 3 values, want 4"
        );

        let mut p = decoded(GO_HEAP);
        p.sample_type[0].r#type = -1;
        let e = Profile::from_bytes(&encode(&p)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "malformed profile: string index -1 out of range"
        );
    }

    #[test]
    fn other_files_are_clear_errors() {
        let msg = |b: &[u8]| Profile::from_bytes(b).unwrap_err().to_string();
        assert_eq!(msg(b""), "empty file");
        assert_eq!(
            msg(b"hello, world\n"),
            "not a pprof profile or Go heap text"
        );
        assert_eq!(msg(&GO_HEAP[..GO_HEAP.len() / 2]), "truncated gzip stream");
        assert_eq!(msg(&gzip(b"")), "empty file");
        assert!(msg(&[0x1f, 0x8b, 0, 0, 0, 0]).contains("gzip"));
    }

    #[test]
    fn gzip_output_is_capped() {
        // 8 MiB of zeros inflate from a few KiB: over a 1 MiB cap, refused;
        // at the cap exactly, read.
        let bomb = gzip(&vec![0u8; 8 << 20]);
        assert!(bomb.len() < 64 << 10);
        let e = gunzip_capped(&bomb, 1 << 20).unwrap_err();
        assert!(matches!(e, ReadError::TooLarge), "{e}");
        assert_eq!(
            gunzip_capped(&bomb, 8 << 20).expect("at the cap").len(),
            8 << 20
        );
        assert_eq!(MAX_DECOMPRESSED, 1 << 30);
    }

    /// Every prefix of a profile (and of its raw proto, and of Go's text)
    /// reads as Ok or Err, never a panic.
    #[test]
    fn truncated_inputs_never_panic() {
        let raw_heap = raw(GO_HEAP);
        for input in [GO_HEAP, GO_ALLOCS, &raw_heap[..], GO_TEXT] {
            let step = (input.len() / 1500).max(1);
            for end in (0..input.len()).step_by(step) {
                let _ = Profile::from_bytes(&input[..end]);
            }
        }
    }

    /// Flipped bytes anywhere (in the gzip stream, the raw proto, the text)
    /// read as Ok or Err, never a panic; a profile read is consistent.
    #[test]
    fn corrupted_inputs_never_panic() {
        let raw_heap = raw(GO_HEAP);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for input in [GO_HEAP, &raw_heap[..], GO_TEXT] {
            for _ in 0..3000 {
                let mut bytes = input.to_vec();
                for _ in 0..1 + rng(&mut seed) % 4 {
                    let at = (rng(&mut seed) % bytes.len() as u64) as usize;
                    bytes[at] ^= 1 << (rng(&mut seed) % 8);
                }
                if let Ok(p) = Profile::from_bytes(&bytes) {
                    for s in &p.samples {
                        assert_eq!(s.values.len(), p.sample_types.len());
                        assert!(s.stack.iter().all(|&f| (f as usize) < p.frames.len()));
                    }
                    let _ = super::super::Top::new(&p, &Default::default());
                }
            }
        }
    }

    #[test]
    fn plumbing_leaf_run_is_dropped_but_never_the_whole_stack() {
        let frame = |name: &str| Frame {
            function: name.to_owned(),
            file: String::new(),
            line: 0,
            inlined: false,
        };
        let mut p = Profile {
            sample_types: vec![ValueType {
                kind: "inuse_space".into(),
                unit: "bytes".into(),
            }],
            frames: vec![
                frame("__rust_alloc"),
                frame("alloc::alloc::realloc"),
                frame("main"),
            ],
            samples: vec![
                Sample {
                    stack: vec![0, 1, 2],
                    values: vec![8],
                    labels: vec![],
                    num_labels: vec![],
                },
                Sample {
                    stack: vec![0, 1],
                    values: vec![8],
                    labels: vec![],
                    num_labels: vec![],
                },
            ],
            ..Profile::default()
        };
        drop_alloc_plumbing(&mut p);
        assert_eq!(p.samples[0].stack, vec![2]);
        assert_eq!(p.samples[1].stack, vec![1]);
        // Read from a file: `<Global as Allocator>::grow` and
        // `alloc::alloc::realloc` go, the `RawVec` growth stays the leaf.
        let text = "heap profile: 1: 8 [1: 8] @ heapprofile\n1: 8 [1: 8] @ 0x11 0x21 0x31\n\
                    #\t0x10\talloc::alloc::realloc\tx.rs:1\n\
                    #\t0x20\t<alloc::alloc::Global as core::alloc::Allocator>::grow\tx.rs:2\n\
                    #\t0x30\talloc::raw_vec::RawVecInner<A>::grow_amortized\tx.rs:3\n";
        let p = Profile::from_bytes(text.as_bytes()).expect("read");
        let leaf = p.samples[0].stack[0] as usize;
        assert_eq!(
            p.frames[leaf].function,
            "alloc::raw_vec::RawVecInner<A>::grow_amortized"
        );
        assert_eq!(p.samples[0].stack.len(), 1);
    }
}
