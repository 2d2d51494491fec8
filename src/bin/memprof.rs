//! `memprof`: read heap profiles without Go (cargo feature `cli`).
//!
//! ```text
//! memprof top FILE [--sample-index inuse_space] [-n 20] [--cum]
//! memprof flame FILE [-o out.svg] [--sample-index alloc_space]
//! memprof diff BASE FILE [--sample-index ...] [-n N] [--cum] [--flame -o out.svg]
//! memprof report FILE [-o report.html] [--peak PEAK_FILE] [--title T] [-n 200]
//! ```
//!
//! FILE is any pprof heap profile (ours, Go's; gzip or not) or Go's
//! legacy `debug=1` heap text. `report` writes the self-contained HTML page
//! `/debug/pprof/ui` serves (flame graphs, top tables, labels, ages, peak);
//! given a heap profile that `MEMPROFILE` wrote, it includes the peak
//! profile written beside it (`heap.peak.pb.gz` for `heap.pb.gz`) unless
//! `--peak` names one, and says so on stderr. Errors are one line on stderr,
//! `memprof: FILE: reason`, with exit code 1 (2 for a usage error); no
//! file makes it panic.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use memprof::view::{
    diff, diff_flame_svg, flame_svg, report_html, Profile, ReportOptions, Top, TopOptions,
};

/// Reads heap profiles (pprof or Go heap text): top tables, flame graphs, diffs, HTML reports.
#[derive(Parser)]
#[command(name = "memprof", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The functions holding the most, as `go tool pprof -top` prints them.
    Top {
        /// The profile.
        file: PathBuf,
        #[command(flatten)]
        table: Table,
    },
    /// A flame graph (SVG, with zoom and search).
    Flame {
        /// The profile.
        file: PathBuf,
        /// Where to write the SVG ("-" or nothing: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// The sample type to draw (default: the profile's, else the last).
        #[arg(long = "sample-index", alias = "sample_index")]
        sample_index: Option<String>,
        /// The graph's title (default: the sample type).
        #[arg(long)]
        title: Option<String>,
    },
    /// What grew from BASE to FILE, as `go tool pprof -top -diff_base=BASE FILE`.
    Diff {
        /// The earlier profile.
        base: PathBuf,
        /// The later profile.
        file: PathBuf,
        #[command(flatten)]
        table: Table,
        /// Draw a differential flame graph instead of the table.
        #[arg(long)]
        flame: bool,
        /// Where to write the SVG with --flame ("-" or nothing: standard output).
        #[arg(short, long, requires = "flame")]
        output: Option<PathBuf>,
    },
    /// One self-contained HTML page: flame graphs, top tables, labels,
    /// ages, the peak and the comments (works offline).
    Report {
        /// The profile.
        file: PathBuf,
        /// Where to write the HTML ("-" or nothing: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// The peak profile to show below it (default: the one MEMPROFILE
        /// wrote beside FILE, if FILE is a memprof heap profile).
        #[arg(long)]
        peak: Option<PathBuf>,
        /// The page's title (default: FILE).
        #[arg(long)]
        title: Option<String>,
        /// Show at most N functions in each top table (0: all).
        #[arg(short = 'n', long = "nodecount", default_value_t = 200)]
        nodecount: usize,
    },
}

/// The options of the table.
#[derive(Args)]
struct Table {
    /// The sample type: inuse_space, inuse_objects, alloc_space,
    /// alloc_objects (default: the profile's, else the last).
    #[arg(long = "sample-index", alias = "sample_index")]
    sample_index: Option<String>,
    /// Show at most N functions (0: all).
    #[arg(short = 'n', long = "nodecount", default_value_t = 0)]
    nodecount: usize,
    /// Sort by cumulative value instead of flat.
    #[arg(long)]
    cum: bool,
}

impl Table {
    fn options(&self) -> TopOptions {
        TopOptions {
            sample_index: self.sample_index.clone(),
            node_count: self.nodecount,
            cum: self.cum,
            ..TopOptions::default()
        }
    }
}

/// An error for the user: the file it is about and why.
struct Failure {
    path: PathBuf,
    reason: String,
}

fn fail(path: &Path, reason: impl ToString) -> Failure {
    Failure {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn read(path: &Path) -> Result<Profile, Failure> {
    Profile::read(path).map_err(|e| fail(path, e))
}

fn write_out(output: Option<&Path>, text: &str) -> Result<(), Failure> {
    match output {
        Some(p) if p != Path::new("-") => std::fs::write(p, text).map_err(|e| fail(p, e)),
        _ => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| fail(Path::new("<stdout>"), e))
        }
    }
}

/// The peak profile MEMPROFILE wrote beside `file`, when `profile` is a
/// memprof heap profile (its first comment names memprof, and it is not
/// itself a peak) and that file exists.
fn sibling_peak(file: &Path, profile: &Profile) -> Option<PathBuf> {
    let ours = profile
        .comments
        .first()
        .is_some_and(|c| c.starts_with("memprof "));
    let is_peak = profile.comments.iter().any(|c| c.starts_with("peak heap:"));
    let peak = memprof::peak_path(file);
    (ours && !is_peak && peak.is_file()).then_some(peak)
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Top { file, table } => {
            let profile = read(&file)?;
            let top = Top::new(&profile, &table.options()).map_err(|e| fail(&file, e))?;
            write_out(None, &top.render())
        }
        Command::Flame {
            file,
            output,
            sample_index,
            title,
        } => {
            let profile = read(&file)?;
            let index = profile
                .sample_index(sample_index.as_deref())
                .map_err(|e| fail(&file, e))?;
            let title = title.unwrap_or_else(|| profile.sample_types[index].kind.clone());
            let svg = flame_svg(&profile, index, &title).map_err(|e| fail(&file, e))?;
            write_out(output.as_deref(), &svg)
        }
        Command::Diff {
            base,
            file,
            table,
            flame,
            output,
        } => {
            let before = read(&base)?;
            let after = read(&file)?;
            let combined = diff(&before, &after).map_err(|e| fail(&file, e))?;
            if flame {
                let index = after
                    .sample_index(table.sample_index.as_deref())
                    .map_err(|e| fail(&file, e))?;
                let title = format!("{} growth", after.sample_types[index].kind);
                let svg =
                    diff_flame_svg(&before, &after, index, &title).map_err(|e| fail(&file, e))?;
                write_out(output.as_deref(), &svg)
            } else {
                let top = Top::new(&combined, &table.options()).map_err(|e| fail(&file, e))?;
                write_out(None, &top.render())
            }
        }
        Command::Report {
            file,
            output,
            peak,
            title,
            nodecount,
        } => {
            let profile = read(&file)?;
            let peak = match peak {
                Some(p) => Some(read(&p)?),
                None => match sibling_peak(&file, &profile) {
                    Some(p) => {
                        let peak = read(&p)?;
                        eprintln!(
                            "memprof: {}: including its peak profile {}",
                            file.display(),
                            p.display()
                        );
                        Some(peak)
                    }
                    None => None,
                },
            };
            let opts = ReportOptions {
                title: title.unwrap_or_else(|| file.display().to_string()),
                peak: peak.as_ref(),
                top_rows: nodecount,
                ..ReportOptions::default()
            };
            write_out(output.as_deref(), &report_html(&profile, &opts))
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("memprof: {}: {}", f.path.display(), f.reason);
            ExitCode::FAILURE
        }
    }
}
