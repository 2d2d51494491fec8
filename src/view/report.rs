//! The self-contained HTML report: flame graphs, top tables, labels, ages,
//! the peak and the profile's comments, in one file that works offline.
//!
//! Flame graphs are `inferno`'s SVGs, each in an `<iframe srcdoc>`: the
//! SVG's own script (click to zoom, search, details on hover) assumes it
//! is alone in its document (`getElementsByTagName("svg")[0]`, global
//! functions and element ids), so several cannot share the page inline.
//! A `srcdoc` frame is same-origin with the page, which lets the page's
//! search box and "reset zoom" button call into the SVG's script.
//!
//! Everything taken from the profile (function and file names, labels,
//! comments) is HTML-escaped; the SVGs escape their own text, and are
//! escaped once more as `srcdoc` attribute values.

mod sections;

use std::fmt::Write as _;

use super::html::html_escape;
use super::units::percentage;
use super::{flame_svg, Profile, Top, TopOptions};
use sections::{ages, comments, labels, summary};

const CSS: &str = include_str!("report.css");
const JS: &str = include_str!("report.js");

/// What [`report_html`] puts around the profile.
#[derive(Clone, Debug)]
pub struct ReportOptions<'a> {
    /// The page's title (and heading), e.g. the file name.
    pub title: String,
    /// The peak profile (memprof's `peak_profile`), shown in a section of
    /// its own when given.
    pub peak: Option<&'a Profile>,
    /// The most functions a top table lists, as `memprof top -n` (and
    /// `go tool pprof -top -nodecount`) cut it; 0 for all. The tables
    /// also drop what pprof drops by default (functions under 0.5% of
    /// the total), and say so in their caption.
    pub top_rows: usize,
    /// Links shown above the report, e.g. the other profiles of a live
    /// process (`/debug/pprof/ui` uses them); none for a file.
    pub links: Vec<ReportLink>,
}

impl Default for ReportOptions<'_> {
    fn default() -> Self {
        ReportOptions {
            title: "memprof report".into(),
            peak: None,
            top_rows: 200,
            links: Vec::new(),
        }
    }
}

/// A link in the report's navigation bar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportLink {
    /// The text shown.
    pub label: String,
    /// The target (a URL, absolute or relative to the page).
    pub href: String,
    /// Whether this link is the page shown (drawn as selected, not a link).
    pub current: bool,
}

/// Renders `profile` as one self-contained HTML page (no external URLs):
///
/// - a flame graph per sample type (inferno's SVG: click a frame to zoom,
///   search by name), with a selector for the sample type;
/// - the top table by function for every sample type, following the same
///   selector: [`Top`]'s rows, values and header, i.e. what `memprof top
///   -n` and `go tool pprof -top` print;
/// - totals per string label key and value, when samples carry labels;
/// - totals per age bucket, when samples carry the numeric `age` label;
/// - the peak profile, when [`ReportOptions::peak`] is given;
/// - the profile's comments (rate, unwinder, dropped samples, ...).
///
/// The page opens on the profile's default sample type (the last one if
/// it names none, as `go tool pprof` does).
///
/// ```
/// use memprof::view::{report_html, Frame, Profile, ReportOptions, Sample, ValueType};
/// let vt = |k: &str, u: &str| ValueType { kind: k.into(), unit: u.into() };
/// let profile = Profile {
///     sample_types: vec![vt("inuse_objects", "count"), vt("inuse_space", "bytes")],
///     frames: vec![Frame { function: "main".into(), file: "main.rs".into(), line: 3, inlined: false }],
///     samples: vec![Sample {
///         stack: vec![0],
///         values: vec![1, 4096],
///         labels: vec![],
///         num_labels: vec![],
///     }],
///     ..Profile::default()
/// };
/// let html = report_html(&profile, &ReportOptions::default());
/// assert!(html.starts_with("<!DOCTYPE html>"));
/// assert!(html.contains("main"));
/// ```
pub fn report_html(profile: &Profile, opts: &ReportOptions<'_>) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let title = html_escape(&opts.title);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<link rel=\"icon\" href=\"data:,\">\n<style>\n{CSS}</style>\n</head>\n<body>\n<header>\n<h1>{title}</h1>\n"
    );
    nav(&mut h, &opts.links);
    summary(&mut h, profile);
    h.push_str("</header>\n");

    let types = &profile.sample_types;
    let initial = initial_type(profile);
    if types.is_empty() {
        h.push_str("<p class=\"empty\">This profile has no sample types.</p>\n");
    } else {
        // The selector, the search box and the flame graphs.
        h.push_str(
            "<section id=\"flame\">\n<h2>Flame graph</h2>\n<div class=\"controls\">\n\
             <label>Sample type <select id=\"type\">\n",
        );
        for (i, t) in types.iter().enumerate() {
            let sel = if i == initial { " selected" } else { "" };
            let _ = writeln!(
                h,
                "<option value=\"{i}\"{sel}>{}</option>",
                html_escape(&t.kind)
            );
        }
        h.push_str(
            "</select></label>\n<input id=\"search\" type=\"search\" placeholder=\"Search functions\" \
             aria-label=\"Search functions\" autocomplete=\"off\">\n\
             <button id=\"unzoom\" type=\"button\">Reset zoom</button>\n\
             <span id=\"matched\"></span>\n</div>\n<div class=\"flames\">\n",
        );
        for i in 0..types.len() {
            flame(&mut h, profile, i, &format!("flame-{i}"), i == initial, "");
        }
        h.push_str("</div>\n</section>\n");

        h.push_str("<section id=\"top\">\n<h2>Top functions</h2>\n");
        for i in 0..types.len() {
            top_table(
                &mut h,
                profile,
                i,
                opts.top_rows,
                &format!("top-{i}"),
                i == initial,
            );
        }
        h.push_str("</section>\n");
    }

    labels(&mut h, profile, initial);
    ages(&mut h, profile);
    if let Some(peak) = opts.peak {
        peak_section(&mut h, peak, opts.top_rows);
    }
    comments(&mut h, "comments", "Comments", &profile.comments);
    let _ = write!(h, "<script>\n{JS}</script>\n</body>\n</html>\n");
    h
}

/// The type the page opens on: the profile's default, else the last.
fn initial_type(p: &Profile) -> usize {
    p.sample_index(None).unwrap_or(0)
}

fn nav(h: &mut String, links: &[ReportLink]) {
    if links.is_empty() {
        return;
    }
    h.push_str("<nav>");
    for l in links {
        if l.current {
            let _ = write!(
                h,
                "<strong aria-current=\"page\">{}</strong> ",
                html_escape(&l.label)
            );
        } else {
            let _ = write!(
                h,
                "<a href=\"{}\">{}</a> ",
                html_escape(&l.href),
                html_escape(&l.label)
            );
        }
    }
    h.push_str("</nav>\n");
}

/// One flame graph ([`flame_svg`]) in a frame of its own (see the module
/// docs for why), or a line saying why there is none.
fn flame(h: &mut String, p: &Profile, i: usize, id: &str, shown: bool, class: &str) {
    let kind = html_escape(&p.sample_types[i].kind);
    let hidden = if shown { "" } else { " off" };
    match flame_svg(p, i, &p.sample_types[i].kind) {
        Ok(svg) => {
            // `srcdoc` is parsed as HTML: inline SVG with CDATA scripts
            // works there. The SVG takes the frame's width. inferno keeps
            // its zoom and search in the URL with `history.replaceState`,
            // which an about:srcdoc document may not call (it throws):
            // it does nothing here.
            let start = svg.find("<svg").unwrap_or(0);
            let doc = format!(
                "<!DOCTYPE html><meta charset=\"utf-8\"><style>html,body{{margin:0}}svg{{display:block;width:100%}}</style>\
                 <script>history.replaceState=function(){{}};</script>{}",
                &svg[start..]
            );
            let _ = writeln!(
                h,
                "<iframe class=\"flame{hidden}{class}\" id=\"{id}\" data-type=\"{i}\" \
                 data-kind=\"{kind}\" title=\"Flame graph of {kind}\" srcdoc=\"{}\"></iframe>",
                html_escape(&doc)
            );
        }
        Err(e) => {
            let _ = writeln!(
                h,
                "<p class=\"flame empty{hidden}{class}\" id=\"{id}\" data-type=\"{i}\" \
                 data-kind=\"{kind}\">No flame graph of {kind}: {}.</p>",
                html_escape(&e.to_string())
            );
        }
    }
}

/// The top table of sample type `i`: [`Top`] with pprof's default node
/// cut and at most `max` rows, its header lines (what was dropped) as the
/// caption.
fn top_table(h: &mut String, p: &Profile, i: usize, max: usize, id: &str, shown: bool) {
    let kind = html_escape(&p.sample_types[i].kind);
    let hidden = if shown { "" } else { " off" };
    let _ = writeln!(
        h,
        "<div class=\"top{hidden}\" id=\"{id}\" data-type=\"{i}\" data-kind=\"{kind}\">"
    );
    let options = TopOptions {
        sample_index: Some(i.to_string()),
        node_count: max,
        ..TopOptions::default()
    };
    let top = match Top::new(p, &options) {
        Ok(top) => top,
        Err(e) => {
            let _ = writeln!(h, "<p>No table of {kind}: {}.</p>\n</div>", html_escape(&e));
            return;
        }
    };
    // The header less the comments, which have a section of their own.
    let caption: Vec<String> = top.header()[top.comments.len()..]
        .iter()
        .map(|l| html_escape(l))
        .collect();
    let _ = writeln!(
        h,
        "<table class=\"top\">\n<caption>{}</caption>\n<thead><tr><th>flat</th><th>flat%</th>\
         <th>sum%</th><th>cum</th><th>cum%</th><th class=\"fn\">function</th></tr></thead>\n<tbody>",
        caption.join("<br>")
    );
    let pct = |v: i64| percentage(v, top.total).trim_start().to_owned();
    let mut sum = 0i64;
    for r in &top.rows {
        sum = sum.wrapping_add(r.flat);
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"fn\">{}{}</td></tr>",
            html_escape(&top.format_value(r.flat)),
            pct(r.flat),
            pct(sum),
            html_escape(&top.format_value(r.cum)),
            pct(r.cum),
            html_escape(&r.name),
            r.inline
                .map(|m| format!(" <span class=\"inline\">{m}</span>"))
                .unwrap_or_default()
        );
    }
    h.push_str("</tbody>\n</table>\n</div>\n");
}

/// The peak profile: its summary, the flame graph and top table of its
/// in-use bytes, its comments.
fn peak_section(h: &mut String, peak: &Profile, max: usize) {
    h.push_str(
        "<section id=\"peak\">\n<h2>Peak</h2>\n<p>The sampled live set when the heap's \
         in-use was at its highest.</p>\n",
    );
    summary(h, peak);
    let space = peak
        .sample_types
        .iter()
        .position(|t| t.kind == "inuse_space")
        .or(peak.sample_types.len().checked_sub(1));
    if let Some(i) = space {
        h.push_str("<div class=\"flames\">\n");
        flame(h, peak, i, "peak-flame", true, " peak");
        h.push_str("</div>\n");
        top_table(h, peak, i, max, "peak-top", true);
    }
    comments(h, "peak-comments", "Peak profile comments", &peak.comments);
    h.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{Frame, Sample, ValueType};

    fn vt(k: &str, u: &str) -> ValueType {
        ValueType {
            kind: k.into(),
            unit: u.into(),
        }
    }

    fn frame(f: &str) -> Frame {
        Frame {
            function: f.into(),
            file: "src/x.rs".into(),
            line: 1,
            inlined: false,
        }
    }

    fn sample(stack: &[u32], values: [i64; 4]) -> Sample {
        Sample {
            stack: stack.to_vec(),
            values: values.to_vec(),
            labels: vec![],
            num_labels: vec![],
        }
    }

    /// A heap profile: main -> <script>alert(1)</script> (leaf) and
    /// main -> Vec clone (leaf).
    fn profile() -> Profile {
        Profile {
            sample_types: vec![
                vt("alloc_objects", "count"),
                vt("alloc_space", "bytes"),
                vt("inuse_objects", "count"),
                vt("inuse_space", "bytes"),
            ],
            period_type: Some(vt("space", "bytes")),
            period: 524288,
            time_nanos: 1_700_000_000_000_000_000,
            comments: vec!["rate <b>524288</b>".into(), "dropped samples: 0".into()],
            frames: vec![
                frame("main"),
                frame("<script>alert(1)</script>"),
                frame("<alloc::vec::Vec<T> as Clone>::clone"),
            ],
            samples: vec![
                sample(&[1, 0], [2, 2048, 1, 1024]),
                sample(&[2, 0], [6, 6 << 20, 3, 3 << 20]),
            ],
            ..Profile::default()
        }
    }

    #[test]
    fn function_names_are_escaped() {
        let html = report_html(&profile(), &ReportOptions::default());
        assert!(!html.contains("<script>alert(1)"), "raw script tag echoed");
        assert!(!html.contains("Vec<T>"), "raw generic echoed");
        assert!(!html.contains("<b>524288"), "comment not escaped");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&lt;alloc::vec::Vec&lt;T&gt; as Clone&gt;::clone"));
        assert!(html.contains("rate &lt;b&gt;524288&lt;/b&gt;"));
        // Only the page's own script and the srcdoc's (escaped) scripts.
        assert_eq!(html.matches("<script>").count(), 1);
        assert_eq!(html.matches("</script>").count(), 1);
        // The SVG inside srcdoc: escaped by inferno, then as an attribute.
        assert!(html.contains("&amp;lt;script&amp;gt;alert(1)"));
    }

    #[test]
    fn all_four_top_tables_and_flames() {
        let html = report_html(&profile(), &ReportOptions::default());
        for i in 0..4 {
            assert!(html.contains(&format!("id=\"top-{i}\"")), "top-{i}");
            let flame = format!(
                "<iframe class=\"flame{}\" id=\"flame-{i}\"",
                if i == 3 { "" } else { " off" }
            );
            assert!(html.contains(&flame), "flame-{i}");
        }
        // Opens on the last type (inuse_space), the others hidden.
        assert!(html.contains("<option value=\"3\" selected>inuse_space</option>"));
        assert!(html.contains("<div class=\"top\" id=\"top-3\""));
        assert!(html.contains("<div class=\"top off\" id=\"top-0\""));
        // inuse_space: 3 MiB + 1 KiB, as `memprof top` (and `go tool pprof
        // -top`) show it: the 1 KiB leaf is under pprof's node fraction
        // (0.5%), dropped and said so in the caption; 99.97% prints 100%.
        let top3 = &html[html.find("id=\"top-3\"").unwrap()..];
        assert!(top3.contains(
            "<caption>Type: inuse_space<br>Showing nodes accounting for 3MB, 100% of 3MB total\
             <br>Dropped 1 node (cum &lt;= 0.02MB)</caption>"
        ));
        let rows = &top3[top3.find("<tbody>").unwrap()..top3.find("</tbody>").unwrap()];
        assert_eq!(
            rows,
            "<tbody>\n<tr><td>3MB</td><td>100%</td><td>100%</td><td>3MB</td><td>100%</td>\
             <td class=\"fn\">&lt;alloc::vec::Vec&lt;T&gt; as Clone&gt;::clone</td></tr>\n\
             <tr><td>0</td><td>0%</td><td>100%</td><td>3MB</td><td>100%</td><td class=\"fn\">main</td></tr>\n"
        );
        // The same rows as the viewer's table.
        let top = Top::new(&profile(), &TopOptions::default()).unwrap();
        assert_eq!(top.rows.len(), 2);
        assert!(top
            .render()
            .contains("         0     0%   100%        3MB   100%  main"));
        // alloc_objects: nothing dropped, every function listed.
        let top0 = &html[html.find("id=\"top-0\"").unwrap()..];
        assert!(top0.contains("<caption>Type: alloc_objects<br>Showing nodes accounting for 8, 100% of 8 total</caption>"));
        assert!(
            top0.contains("<tr><td>2</td><td>25.00%</td><td>100%</td><td>2</td><td>25.00%</td>")
        );
        // No external resources.
        assert!(!html.contains(" src=\"") && !html.contains("url(http"));
        assert!(!html.contains("href=\"http") && !html.contains("href=\"//"));
        assert_eq!(html.matches("<link").count(), 1, "the empty icon only");
        // Comments shown, no labels, ages or peak.
        assert!(html.contains("id=\"comments\""));
        assert!(!html.contains("id=\"labels\""));
        assert!(!html.contains("id=\"ages\""));
        assert!(!html.contains("id=\"peak\""));
    }

    #[test]
    fn labels_ages_and_peak_when_present() {
        let mut p = profile();
        p.samples[0].labels = vec![("tenant".into(), "<acme>".into())];
        p.samples[0].num_labels = vec![("age".into(), 60, "seconds".into())];
        p.samples[1].num_labels = vec![("age".into(), 0, "seconds".into())];
        let peak = profile();
        let opts = ReportOptions {
            title: "t <1>".into(),
            peak: Some(&peak),
            links: vec![ReportLink {
                label: "heap".into(),
                href: "ui?profile=heap&seconds=1".into(),
                current: false,
            }],
            ..ReportOptions::default()
        };
        let html = report_html(&p, &opts);
        assert!(html.contains("<title>t &lt;1&gt;</title>"));
        assert!(html.contains("href=\"ui?profile=heap&amp;seconds=1\""));
        let labels = &html[html.find("id=\"labels\"").unwrap()..];
        assert!(labels.contains("<h3>tenant</h3>"));
        assert!(labels.contains(
            "<td class=\"fn\">&lt;acme&gt;</td><td>2</td><td>2kB</td><td>1</td><td>1kB</td>"
        ));
        assert!(labels.contains("<td class=\"fn\">(no tenant label)</td><td>6</td><td>6MB</td>"));
        let ages = &html[html.find("id=\"ages\"").unwrap()..];
        assert!(ages.contains("<td class=\"fn\">≥ 0s</td><td>6</td>"));
        assert!(ages.contains("<td class=\"fn\">≥ 1m</td><td>2</td>"));
        assert!(html.contains("id=\"peak\""));
        assert!(html.contains("id=\"peak-flame\""));
        assert!(html.contains("id=\"peak-top\""));
    }

    #[test]
    fn empty_profiles_render() {
        let html = report_html(&Profile::default(), &ReportOptions::default());
        assert!(html.contains("no sample types"));
        let mut p = profile();
        p.samples.clear();
        let html = report_html(&p, &ReportOptions::default());
        assert!(html
            .contains("No flame graph of inuse_space: no samples with a positive value to draw."));
        assert!(html.contains("Showing nodes accounting for 0, 0% of 0 total"));
    }
}
