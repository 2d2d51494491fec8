//! `go tool pprof -diff_base=BASE FILE`: one profile holding FILE's samples
//! and BASE's samples with their values negated and the label
//! `pprof::base=true` (google/pprof `internal/driver/fetch.go`). Summed,
//! every function shows its growth from BASE to FILE; percentages are of
//! the base's total (see [`top`](super::top)).
//!
//! Invariants: both profiles must have the same sample types (kinds equal
//! up to a trailing `s`, as pprof allows); the result satisfies
//! [`Profile`]'s invariants (the base's frames are re-interned).

use std::collections::HashMap;
use std::fmt;

use super::profile::{Frame, FrameId, Profile, Sample};

/// Why two profiles cannot be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffError(String);

impl fmt::Display for DiffError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DiffError {}

/// The label pprof puts on the base's samples.
pub(crate) const BASE_LABEL: (&str, &str) = ("pprof::base", "true");

fn kinds(p: &Profile) -> String {
    p.sample_types
        .iter()
        .map(|t| t.kind.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `profile` minus `base`, as `-diff_base` builds it.
///
/// ```
/// # #[cfg(feature = "cli")] {
/// use memprof::view::{diff, Profile, Top, TopOptions};
/// let base = Profile::from_bytes(b"heap profile: 1: 8 [1: 8] @ heapprofile\n1: 8 [1: 8] @ 0x11\n").unwrap();
/// let now = Profile::from_bytes(b"heap profile: 3: 24 [3: 24] @ heapprofile\n3: 24 [3: 24] @ 0x11\n").unwrap();
/// let d = diff(&base, &now).unwrap();
/// let top = Top::new(&d, &TopOptions::default()).unwrap();
/// assert_eq!((top.rows[0].flat, top.total), (16, 8));
/// # }
/// ```
pub fn diff(base: &Profile, profile: &Profile) -> Result<Profile, DiffError> {
    let same = base.sample_types.len() == profile.sample_types.len()
        && base
            .sample_types
            .iter()
            .zip(&profile.sample_types)
            .all(|(a, b)| a.kind.trim_end_matches('s') == b.kind.trim_end_matches('s'));
    if !same {
        return Err(DiffError(format!(
            "sample types differ: base has {}, profile has {}",
            kinds(base),
            kinds(profile)
        )));
    }
    let mut out = profile.clone();
    // pprof's merge keeps each distinct comment once, the profile's first.
    for c in &base.comments {
        if !out.comments.contains(c) {
            out.comments.push(c.clone());
        }
    }
    let mut ids: HashMap<Frame, FrameId> = out
        .frames
        .iter()
        .enumerate()
        .map(|(i, f)| (f.clone(), i as FrameId))
        .collect();
    let mut remap = Vec::with_capacity(base.frames.len());
    for f in &base.frames {
        let id = match ids.get(f) {
            Some(&id) => id,
            None => {
                let id = FrameId::try_from(out.frames.len())
                    .map_err(|_| DiffError("too many frames".to_owned()))?;
                out.frames.push(f.clone());
                ids.insert(f.clone(), id);
                id
            }
        };
        remap.push(id);
    }
    for s in &base.samples {
        let mut labels = s.labels.clone();
        labels.push((BASE_LABEL.0.to_owned(), BASE_LABEL.1.to_owned()));
        out.samples.push(Sample {
            stack: s
                .stack
                .iter()
                .filter_map(|&f| remap.get(f as usize).copied())
                .collect(),
            values: s.values.iter().map(|v| v.wrapping_neg()).collect(),
            labels,
            num_labels: s.num_labels.clone(),
        });
    }
    Ok(out)
}
