//! Reading and showing heap profiles without Go (cargo features `cli` and
//! `http`): the library behind the `memprof` command and `/debug/pprof/ui`.
//!
//! [`Profile`] is a profile read from a file: any pprof profile (ours, Go's,
//! gzip or not) or Go's legacy `debug=1` heap text ([`Profile::read`],
//! [`Profile::from_bytes`]). The other modules turn it into what people
//! read: the `top` table as `go tool pprof -top` prints it ([`Top`]), a
//! diff against a base ([`diff`]), flame graphs (by `inferno`, [`flame_svg`])
//! and the self-contained HTML report.

mod diff;
mod flame;
mod legacy;
mod profile;
mod read;
mod report;
mod top;
mod units;

pub use diff::{diff, DiffError};
pub use flame::{diff_flame_svg, flame_svg, folded, FlameError};
pub use profile::{Frame, FrameId, Profile, Sample, ValueType};
pub use read::{ReadError, MAX_DECOMPRESSED};
pub use report::{report_html, ReportLink, ReportOptions};
pub use top::{Top, TopOptions, TopRow};
