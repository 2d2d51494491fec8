//! Why a profile file could not be read, for every reader (`read.rs` for
//! pprof, `legacy.rs` for Go's heap text).

use std::fmt;

/// The most bytes a gzip stream may inflate to (1 GiB): a guard against
/// gzip bombs. Real heap profiles are a few MiB at most.
pub const MAX_DECOMPRESSED: u64 = 1 << 30;

/// Why a profile could not be read. Its `Display` is one line.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadError {
    /// The file could not be read.
    Io(std::io::Error),
    /// The input is empty.
    Empty,
    /// Neither a pprof profile nor Go heap text.
    NotAProfile,
    /// The gzip stream ends early.
    TruncatedGzip,
    /// The gzip stream is damaged.
    CorruptGzip(String),
    /// The gzip stream inflates past [`MAX_DECOMPRESSED`].
    TooLarge,
    /// A pprof profile that decodes but breaks the format's rules, such as
    /// `string index 57 out of range` or `location 12 not found`.
    Malformed(String),
    /// Go heap text with a bad line (1-based line number).
    Text {
        /// The line the problem is on, counting from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Empty => f.write_str("empty file"),
            ReadError::NotAProfile => f.write_str("not a pprof profile or Go heap text"),
            ReadError::TruncatedGzip => f.write_str("truncated gzip stream"),
            ReadError::CorruptGzip(e) => write!(f, "corrupt gzip stream: {e}"),
            ReadError::TooLarge => write!(
                f,
                "decompressed profile larger than {} MiB",
                MAX_DECOMPRESSED >> 20
            ),
            ReadError::Malformed(e) => write!(f, "malformed profile: {e}"),
            ReadError::Text { line, reason } => write!(f, "line {line}: {reason}"),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Io(e)
    }
}
