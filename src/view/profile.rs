//! The profile model the viewer works on, whatever file it came from.
//!
//! Invariants: every sample has `sample_types.len()` values; every
//! `FrameId` in a sample's stack indexes `frames`; stacks are leaf first,
//! with inlined calls expanded into frames of their own (innermost first),
//! as `go tool pprof` shows them.

use std::collections::HashMap;

use super::error::ReadError;

/// One sample type: `(type, unit)`, such as `("inuse_space", "bytes")`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueType {
    /// What is counted: `alloc_objects`, `inuse_space`, ...
    pub kind: String,
    /// Its unit: `count`, `bytes`, ...
    pub unit: String,
}

/// An index into [`Profile::frames`].
pub type FrameId = u32;

/// One frame of a stack: a function at a source line.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Frame {
    /// The function's (demangled) name, or the address (16 hex digits,
    /// as `go tool pprof -addresses` shows it) when the
    /// profile left it unnamed.
    pub function: String,
    /// The source file, or "" when unknown.
    pub file: String,
    /// The line, or 0 when unknown.
    pub line: i64,
    /// Whether this call was inlined into the frame after it in the stack
    /// (its caller): true for all but the last line of a pprof location.
    /// `go tool pprof -top` marks a function `(inline)` when every call to
    /// it was inlined.
    pub inlined: bool,
}

/// One sample: a stack and one value per sample type, with its labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Leaf first.
    pub stack: Vec<FrameId>,
    /// One per [`Profile::sample_types`].
    pub values: Vec<i64>,
    /// String labels, `(key, value)`.
    pub labels: Vec<(String, String)>,
    /// Numeric labels, `(key, value, unit)`; the unit is "" when unset.
    pub num_labels: Vec<(String, i64, String)>,
}

/// A heap profile read from a file or taken from the live process.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    /// The sample types, in the file's order.
    pub sample_types: Vec<ValueType>,
    /// The index of the type a reader opens on (`default_sample_type`),
    /// if the file names one.
    pub default_sample_type: Option<usize>,
    /// The sampling period's type, such as `("space", "bytes")`.
    pub period_type: Option<ValueType>,
    /// The sampling period (the rate, for heap profiles).
    pub period: i64,
    /// When the profile was taken, in nanoseconds since the epoch (0 if unset).
    pub time_nanos: i64,
    /// The window of a delta profile, in nanoseconds (0 if unset).
    pub duration_nanos: i64,
    /// The profile's comments, in order.
    pub comments: Vec<String>,
    /// The distinct frames the stacks refer to.
    pub frames: Vec<Frame>,
    /// The samples.
    pub samples: Vec<Sample>,
}

impl Profile {
    /// The index of a sample type by name, as `go tool pprof
    /// -sample_index` takes it: `None` means the file's default sample
    /// type, else the last type; a name (`inuse_space`, or `space` for
    /// `inuse_space` in profiles with `space`) or a number picks one.
    ///
    /// ```
    /// # #[cfg(feature = "cli")] {
    /// let p = memprof::view::Profile::from_bytes(b"heap profile: 1: 8 [2: 16] @ heapprofile\n").unwrap();
    /// assert_eq!(p.sample_index(None), Ok(3));
    /// assert_eq!(p.sample_index(Some("alloc_space")), Ok(1));
    /// assert!(p.sample_index(Some("cpu")).is_err());
    /// # }
    /// ```
    pub fn sample_index(&self, name: Option<&str>) -> Result<usize, String> {
        let kinds = || {
            self.sample_types
                .iter()
                .map(|t| t.kind.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        };
        if self.sample_types.is_empty() {
            return Err("profile has no samples".to_owned());
        }
        let Some(name) = name else {
            return Ok(self
                .default_sample_type
                .filter(|&i| i < self.sample_types.len())
                .unwrap_or(self.sample_types.len() - 1));
        };
        if let Ok(i) = name.parse::<i64>() {
            return usize::try_from(i)
                .ok()
                .filter(|&i| i < self.sample_types.len())
                .ok_or_else(|| {
                    format!(
                        "sample_index {name} is outside the range [0..{}]",
                        self.sample_types.len() - 1
                    )
                });
        }
        let no_inuse = name.strip_prefix("inuse_").unwrap_or(name);
        self.sample_types
            .iter()
            .position(|t| t.kind == name || t.kind == no_inuse)
            .ok_or_else(|| format!("sample_index {name:?} must be one of: {}", kinds()))
    }
}

/// Interns frames so that equal frames share one [`FrameId`].
#[derive(Default)]
pub(crate) struct Frames {
    pub(crate) frames: Vec<Frame>,
    ids: HashMap<Frame, FrameId>,
}

impl Frames {
    pub(crate) fn id(&mut self, frame: Frame) -> Result<FrameId, ReadError> {
        if let Some(&id) = self.ids.get(&frame) {
            return Ok(id);
        }
        let id = FrameId::try_from(self.frames.len())
            .map_err(|_| ReadError::Malformed("too many frames".into()))?;
        self.frames.push(frame.clone());
        self.ids.insert(frame, id);
        Ok(id)
    }
}

/// The name a frame gets when the profile gives no function: its address,
/// 16 hex digits, as `go tool pprof -addresses` names it.
pub(crate) fn address_name(address: u64) -> String {
    format!("{address:016x}")
}
