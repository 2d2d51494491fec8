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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use super::Profile;

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
    /// The most functions a top table lists (the totals count them all).
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
/// - the top table by function (flat, flat%, sum%, cum, cum%) for every
///   sample type, following the same selector;
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
    let title = esc(&opts.title);
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
            let _ = writeln!(h, "<option value=\"{i}\"{sel}>{}</option>", esc(&t.kind));
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

    labels(&mut h, profile);
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
    p.default_sample_type
        .filter(|&i| i < p.sample_types.len())
        .unwrap_or(p.sample_types.len().saturating_sub(1))
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
                esc(&l.label)
            );
        } else {
            let _ = write!(h, "<a href=\"{}\">{}</a> ", esc(&l.href), esc(&l.label));
        }
    }
    h.push_str("</nav>\n");
}

/// Period, time, duration and the total of every sample type.
fn summary(h: &mut String, p: &Profile) {
    h.push_str("<dl class=\"summary\">\n");
    if let Some(pt) = &p.period_type {
        let _ = writeln!(
            h,
            "<dt>Period</dt><dd>{} ({}/{})</dd>",
            esc(&fmt_value(p.period, &pt.unit)),
            esc(&pt.kind),
            esc(&pt.unit)
        );
    }
    if p.time_nanos > 0 {
        let _ = writeln!(h, "<dt>Time</dt><dd>{}</dd>", fmt_time(p.time_nanos));
    }
    if p.duration_nanos > 0 {
        let _ = writeln!(
            h,
            "<dt>Duration</dt><dd>{:.2} s</dd>",
            p.duration_nanos as f64 / 1e9
        );
    }
    let _ = writeln!(h, "<dt>Samples</dt><dd>{}</dd>", p.samples.len());
    for (i, t) in p.sample_types.iter().enumerate() {
        let total: i64 = p.samples.iter().map(|s| value(s, i)).sum();
        let _ = writeln!(
            h,
            "<dt>{}</dt><dd>{}</dd>",
            esc(&t.kind),
            esc(&fmt_value(total, &t.unit))
        );
    }
    h.push_str("</dl>\n");
}

fn value(s: &super::Sample, i: usize) -> i64 {
    s.values.get(i).copied().unwrap_or(0)
}

/// One flame graph in a frame of its own (see the module docs for why).
fn flame(h: &mut String, p: &Profile, i: usize, id: &str, shown: bool, class: &str) {
    let t = &p.sample_types[i];
    let kind = esc(&t.kind);
    let hidden = if shown { "" } else { " off" };
    let lines = folded(p, i);
    let svg = if lines.is_empty() {
        Err("no samples".to_owned())
    } else {
        flame_svg(&lines, &t.kind, &t.unit).map_err(|e| e.to_string())
    };
    match svg {
        Ok(svg) => {
            // `srcdoc` is parsed as HTML: inline SVG with CDATA scripts
            // works there. `history.replaceState` is disabled: inferno
            // keeps its zoom and search in the URL, which an about:srcdoc
            // document may not rewrite (it throws).
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
                esc(&doc)
            );
        }
        Err(e) => {
            let _ = writeln!(
                h,
                "<p class=\"flame empty{hidden}{class}\" id=\"{id}\" data-type=\"{i}\" \
                 data-kind=\"{kind}\">No flame graph of {kind}: {}.</p>",
                esc(&e)
            );
        }
    }
}

/// Folded stacks (`root;...;leaf value`, one line per distinct stack) of
/// sample type `i`, positive values only.
// Private until the viewer's `flame` module lands; then shared.
fn folded(p: &Profile, i: usize) -> Vec<String> {
    let names: Vec<String> = p.frames.iter().map(|f| folded_name(&f.function)).collect();
    let mut stacks: HashMap<String, i64> = HashMap::new();
    for s in &p.samples {
        let v = value(s, i);
        if v <= 0 {
            continue;
        }
        let mut key = String::new();
        for (n, &id) in s.stack.iter().rev().enumerate() {
            if n > 0 {
                key.push(';');
            }
            key.push_str(names.get(id as usize).map_or("[unknown]", |s| s.as_str()));
        }
        if key.is_empty() {
            key.push_str("[no stack]");
        }
        *stacks.entry(key).or_insert(0) += v;
    }
    let mut lines: Vec<String> = stacks
        .into_iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    lines.sort();
    lines
}

/// A function name as one folded-stack frame: `;` separates frames and a
/// line ends the stack, so they are replaced.
fn folded_name(f: &str) -> String {
    if f.is_empty() {
        return "[unknown]".into();
    }
    f.replace(';', ",").replace(['\n', '\r'], " ")
}

fn flame_svg(lines: &[String], kind: &str, unit: &str) -> std::io::Result<String> {
    use inferno::flamegraph::{color::BasicPalette, from_lines, Options, Palette};
    let mut o = Options::default();
    o.title = kind.to_owned();
    o.count_name = match unit {
        "count" => "objects".to_owned(),
        "" => "samples".to_owned(),
        u => u.to_owned(),
    };
    o.name_type = "Function:".to_owned();
    o.colors = Palette::Basic(BasicPalette::Mem);
    o.hash = true;
    o.deterministic = true;
    let mut out = Vec::new();
    from_lines(&mut o, lines.iter().map(|s| s.as_str()), &mut out)?;
    String::from_utf8(out).map_err(std::io::Error::other)
}

/// One row of a top table.
struct TopRow<'a> {
    name: &'a str,
    flat: i64,
    cum: i64,
}

/// The top table of sample type `i` by function, sorted as
/// `go tool pprof -top` sorts it (flat, then cum, descending, then name),
/// and the total.
fn top_rows(p: &Profile, i: usize) -> (Vec<TopRow<'_>>, i64) {
    let mut by_fn: HashMap<&str, (i64, i64)> = HashMap::new();
    let mut total = 0;
    let mut seen: Vec<&str> = Vec::new();
    for s in &p.samples {
        let v = value(s, i);
        if v == 0 {
            continue;
        }
        total += v;
        seen.clear();
        for (n, &id) in s.stack.iter().enumerate() {
            let name = p
                .frames
                .get(id as usize)
                .map_or("[unknown]", |f| &f.function);
            let e = by_fn.entry(name).or_insert((0, 0));
            if n == 0 {
                e.0 += v;
            }
            if !seen.contains(&name) {
                seen.push(name);
                e.1 += v;
            }
        }
    }
    let mut rows: Vec<TopRow> = by_fn
        .into_iter()
        .map(|(name, (flat, cum))| TopRow { name, flat, cum })
        .collect();
    rows.sort_by(|a, b| {
        b.flat
            .abs()
            .cmp(&a.flat.abs())
            .then(b.cum.abs().cmp(&a.cum.abs()))
            .then(a.name.cmp(b.name))
    });
    (rows, total)
}

fn pct(v: i64, total: i64) -> String {
    if total == 0 {
        "0%".into()
    } else {
        format!("{:.2}%", 100.0 * v as f64 / total as f64)
    }
}

fn top_table(h: &mut String, p: &Profile, i: usize, max: usize, id: &str, shown: bool) {
    let t = &p.sample_types[i];
    let (rows, total) = top_rows(p, i);
    let hidden = if shown { "" } else { " off" };
    let kind = esc(&t.kind);
    let _ = writeln!(
        h,
        "<div class=\"top{hidden}\" id=\"{id}\" data-type=\"{i}\" data-kind=\"{kind}\">\n\
         <p>{kind}: {} in total, {} functions{}.</p>\n\
         <table class=\"top\">\n<thead><tr><th>flat</th><th>flat%</th><th>sum%</th>\
         <th>cum</th><th>cum%</th><th class=\"fn\">function</th></tr></thead>\n<tbody>",
        esc(&fmt_value(total, &t.unit)),
        rows.len(),
        if rows.len() > max {
            format!(", the first {max} shown")
        } else {
            String::new()
        }
    );
    let mut sum = 0;
    for r in rows.iter().take(max) {
        sum += r.flat;
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"fn\">{}</td></tr>",
            esc(&fmt_value(r.flat, &t.unit)),
            pct(r.flat, total),
            pct(sum, total),
            esc(&fmt_value(r.cum, &t.unit)),
            pct(r.cum, total),
            esc(r.name)
        );
    }
    h.push_str("</tbody>\n</table>\n</div>\n");
}

/// A table of totals per group, one column per sample type.
fn group_table(h: &mut String, p: &Profile, head: &str, groups: &[(String, Vec<i64>)]) {
    h.push_str("<table class=\"groups\">\n<thead><tr>");
    let _ = write!(h, "<th class=\"fn\">{}</th>", esc(head));
    for t in &p.sample_types {
        let _ = write!(h, "<th>{}</th>", esc(&t.kind));
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for (name, values) in groups {
        let _ = write!(h, "<tr><td class=\"fn\">{}</td>", esc(name));
        for (v, t) in values.iter().zip(&p.sample_types) {
            let _ = write!(h, "<td>{}</td>", esc(&fmt_value(*v, &t.unit)));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody>\n</table>\n");
}

fn add(acc: &mut [i64], s: &super::Sample) {
    for (a, v) in acc.iter_mut().zip(&s.values) {
        *a += v;
    }
}

/// Totals per string label key and value; nothing when no sample has one.
fn labels(h: &mut String, p: &Profile) {
    let keys: BTreeSet<&str> = p
        .samples
        .iter()
        .flat_map(|s| s.labels.iter().map(|(k, _)| k.as_str()))
        .collect();
    if keys.is_empty() {
        return;
    }
    let n = p.sample_types.len();
    let sort_by = initial_type(p);
    h.push_str("<section id=\"labels\">\n<h2>Labels</h2>\n");
    for key in keys {
        let mut groups: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        let mut none = vec![0; n];
        let mut any_none = false;
        for s in &p.samples {
            let mut found = false;
            for (k, v) in &s.labels {
                if k == key {
                    found = true;
                    add(groups.entry(v.clone()).or_insert_with(|| vec![0; n]), s);
                }
            }
            if !found {
                any_none = true;
                add(&mut none, s);
            }
        }
        let mut groups: Vec<(String, Vec<i64>)> = groups.into_iter().collect();
        groups.sort_by(|a, b| {
            let (x, y) = (a.1.get(sort_by), b.1.get(sort_by));
            y.cmp(&x).then(a.0.cmp(&b.0))
        });
        if any_none {
            groups.push((format!("(no {key} label)"), none));
        }
        let _ = writeln!(h, "<h3>{}</h3>", esc(key));
        group_table(h, p, key, &groups);
    }
    h.push_str("</section>\n");
}

/// Totals per bucket of the numeric `age` label; nothing without one.
fn ages(h: &mut String, p: &Profile) {
    let n = p.sample_types.len();
    let mut buckets: BTreeMap<(i64, &str), Vec<i64>> = BTreeMap::new();
    for s in &p.samples {
        for (k, v, unit) in &s.num_labels {
            if k == "age" {
                add(
                    buckets
                        .entry((*v, unit.as_str()))
                        .or_insert_with(|| vec![0; n]),
                    s,
                );
            }
        }
    }
    if buckets.is_empty() {
        return;
    }
    let groups: Vec<(String, Vec<i64>)> = buckets
        .into_iter()
        .map(|((v, unit), values)| (format!("≥ {}", fmt_age(v, unit)), values))
        .collect();
    h.push_str(
        "<section id=\"ages\">\n<h2>Ages</h2>\n<p>How long the sampled blocks have been \
         alive, by bucket (the label <code>age</code>).</p>\n",
    );
    group_table(h, p, "age", &groups);
    h.push_str("</section>\n");
}

/// `age` label values: seconds (memprof writes bucket lower bounds).
fn fmt_age(v: i64, unit: &str) -> String {
    if !(unit.is_empty() || unit == "seconds" || unit == "s") {
        return format!("{v} {unit}");
    }
    const UNITS: [(i64, &str); 5] = [
        (7 * 86400, "w"),
        (86400, "d"),
        (3600, "h"),
        (60, "m"),
        (1, "s"),
    ];
    for (secs, u) in UNITS {
        if v != 0 && v % secs == 0 {
            return format!("{}{u}", v / secs);
        }
    }
    format!("{v}s")
}

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

fn comments(h: &mut String, id: &str, title: &str, comments: &[String]) {
    if comments.is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "<section id=\"{id}\">\n<h2>{title}</h2>\n<ul class=\"comments\">"
    );
    for c in comments {
        let _ = writeln!(h, "<li>{}</li>", esc(c));
    }
    h.push_str("</ul>\n</section>\n");
}

/// Escapes text for HTML element content and quoted attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A value as `go tool pprof` prints it: bytes scaled by 1024 (`kB`,
/// `MB`, ... with at most two decimals), other units as integers.
fn fmt_value(v: i64, unit: &str) -> String {
    if unit != "bytes" || v == 0 {
        return v.to_string();
    }
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut x = v as f64;
    let mut u = 0;
    while x.abs() >= 1024.0 && u + 1 < UNITS.len() {
        x /= 1024.0;
        u += 1;
    }
    let s = format!("{x:.2}");
    let s = s.strip_suffix(".00").unwrap_or(&s);
    format!("{s}{}", UNITS[u])
}

/// Nanoseconds since the epoch as a UTC date and time.
fn fmt_time(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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
        // inuse_space: 3 MiB + 1 KiB; the clone is 3 MB flat, main 0 flat.
        assert!(html.contains("inuse_space: 3MB in total"), "{html}");
        let top3 = &html[html.find("id=\"top-3\"").unwrap()..];
        let first_row = &top3[top3.find("<tbody>").unwrap()..];
        assert!(first_row.starts_with(
            "<tbody>\n<tr><td>3MB</td><td>99.97%</td><td>99.97%</td><td>3MB</td><td>99.97%</td>"
        ));
        assert!(html.contains("<td>0</td><td>0.00%</td><td>100.00%</td><td>3MB</td><td>100.00%</td><td class=\"fn\">main</td>"));
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
        assert!(html.contains("No flame graph of inuse_space: no samples."));
    }

    #[test]
    fn folded_stacks_are_root_first() {
        let mut p = profile();
        p.frames[0].function = "a;b".into();
        p.samples.push(sample(&[1, 0], [1, 1, 1, 1]));
        assert_eq!(
            folded(&p, 0),
            [
                "a,b;<alloc::vec::Vec<T> as Clone>::clone 6",
                "a,b;<script>alert(1)</script> 3"
            ]
        );
    }

    #[test]
    fn values_and_times_format() {
        assert_eq!(fmt_value(1024, "bytes"), "1kB");
        assert_eq!(fmt_value(1536, "bytes"), "1.50kB");
        assert_eq!(fmt_value(8 << 20, "bytes"), "8MB");
        assert_eq!(fmt_value(-512, "bytes"), "-512B");
        assert_eq!(fmt_value(12, "count"), "12");
        assert_eq!(fmt_value(0, "bytes"), "0");
        assert_eq!(fmt_age(21600, "seconds"), "6h");
        assert_eq!(fmt_age(604800, "seconds"), "1w");
        assert_eq!(fmt_age(10, ""), "10s");
        assert_eq!(fmt_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            fmt_time(1_700_000_000_000_000_000),
            "2023-11-14 22:13:20 UTC"
        );
    }
}
