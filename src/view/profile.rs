//! The profile model the viewer works on, whatever file it came from.
//!
//! Invariants: every sample has `sample_types.len()` values; every
//! `FrameId` in a sample's stack indexes `frames`; stacks are leaf first,
//! with inlined calls expanded into frames of their own (innermost first),
//! as `go tool pprof` shows them.

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
    /// The function's (demangled) name, or the address in hex when the
    /// profile left it unnamed.
    pub function: String,
    /// The source file, or "" when unknown.
    pub file: String,
    /// The line, or 0 when unknown.
    pub line: i64,
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
