//! Reading and showing heap profiles without Go (cargo features `cli` and
//! `http`): the library behind the `memprof` command and `/debug/pprof/ui`.
//!
//! [`Profile`] is a profile read from a file: any pprof profile (ours, Go's,
//! gzip or not) or Go's legacy `debug=1` heap text ([`Profile::read`],
//! [`Profile::from_bytes`]). The other modules turn it into what people
//! read: the `top` table as `go tool pprof -top` prints it ([`Top`]), a
//! diff against a base ([`diff`]), flame graphs (by `inferno`, [`flame_svg`])
//! and the self-contained HTML report ([`report_html`]).
//!
//! Each concept has one implementation, which the command, the report and
//! `/debug/pprof/ui` share: the report's flame graphs are [`flame_svg`]'s
//! and its top tables are [`Top`]'s rows, values and header, so a page
//! shows what `memprof top -n 200` and `go tool pprof -top` print.
//!
//! The `memprof` command (feature `cli`, `src/bin/memprof.rs`):
//!
//! ```text
//! memprof top FILE [--sample-index inuse_space] [-n 20] [--cum]
//! memprof flame FILE [-o out.svg] [--sample-index alloc_space]
//! memprof diff BASE FILE [--flame -o growth.svg]
//! memprof report FILE [-o report.html] [--peak PEAK_FILE] [--title T] [-n 200]
//! ```
//!
//! `report` writes [`report_html`]'s page; for a heap profile `MEMPROFILE`
//! wrote it includes the peak profile written beside it
//! ([`peak_path`](crate::peak_path)).
//!
//! ```
//! # #[cfg(feature = "cli")] {
//! use memprof::view::{report_html, Profile, ReportOptions, Top, TopOptions};
//! let text = b"heap profile: 1: 64 [1: 64] @ heapprofile\n1: 64 [1: 64] @ 0x11\n#\t0x10\tleaf\ta.rs:1\n";
//! let p = Profile::from_bytes(text).unwrap();
//! let top = Top::new(&p, &TopOptions::default()).unwrap();
//! assert_eq!(top.rows[0].name, "leaf");
//! let html = report_html(&p, &ReportOptions { title: "heap".into(), ..Default::default() });
//! assert!(html.contains("<td class=\"fn\">leaf</td>"));
//! # }
//! ```

mod diff;
mod error;
mod flame;
mod html;
mod legacy;
mod profile;
mod read;
mod report;
mod top;
mod units;

pub use diff::{diff, DiffError};
pub use error::{ReadError, MAX_DECOMPRESSED};
pub use flame::{diff_flame_svg, flame_svg, folded, FlameError};
#[cfg(feature = "http")]
pub(crate) use html::html_escape;
pub use profile::{Frame, FrameId, Profile, Sample, ValueType};
pub use report::{report_html, ReportLink, ReportOptions};
pub use top::{Top, TopOptions, TopRow};
