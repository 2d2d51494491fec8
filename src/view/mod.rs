//! Reading and showing heap profiles without Go (cargo features `cli` and
//! `http`): the library behind the `memprof` command and `/debug/pprof/ui`.
//!
//! [`Profile`] is a profile read from a file: any pprof profile (ours, Go's,
//! gzip or not) or Go's legacy `debug=1` heap text. The other modules turn
//! it into what people read: the `top` table as `go tool pprof -top` prints
//! it, a diff against a base, flame graphs (by `inferno`) and the
//! self-contained HTML report.

mod profile;
mod report;

pub use profile::{Frame, FrameId, Profile, Sample, ValueType};
pub use report::{report_html, ReportLink, ReportOptions};
