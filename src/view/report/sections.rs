//! The report's plain sections: the summary, totals by label and by age,
//! the comments, and the formatting they share. Values
//! are formatted as `go tool pprof` formats them ([`units`](super::super::units)).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::super::html::html_escape;
use super::super::units::scaled_label;
use super::super::{Profile, Sample};

/// A value in its own best unit, as pprof prints a lone value (`3MB`,
/// `1.50kB`, `12`).
pub(super) fn fmt_value(v: i64, unit: &str) -> String {
    scaled_label(v, unit, "minimum")
}

/// Period, time, duration, sample count and the total of every sample type.
pub(super) fn summary(h: &mut String, p: &Profile) {
    h.push_str("<dl class=\"summary\">\n");
    if let Some(pt) = &p.period_type {
        let _ = writeln!(
            h,
            "<dt>Period</dt><dd>{} ({}/{})</dd>",
            html_escape(&fmt_value(p.period, &pt.unit)),
            html_escape(&pt.kind),
            html_escape(&pt.unit)
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
        let total = p.samples.iter().fold(0i64, |a, s| {
            a.wrapping_add(s.values.get(i).copied().unwrap_or(0))
        });
        let _ = writeln!(
            h,
            "<dt>{}</dt><dd>{}</dd>",
            html_escape(&t.kind),
            html_escape(&fmt_value(total, &t.unit))
        );
    }
    h.push_str("</dl>\n");
}

/// A table of totals per group, one column per sample type.
fn group_table(h: &mut String, p: &Profile, head: &str, groups: &[(String, Vec<i64>)]) {
    h.push_str("<table class=\"groups\">\n<thead><tr>");
    let _ = write!(h, "<th class=\"fn\">{}</th>", html_escape(head));
    for t in &p.sample_types {
        let _ = write!(h, "<th>{}</th>", html_escape(&t.kind));
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for (name, values) in groups {
        let _ = write!(h, "<tr><td class=\"fn\">{}</td>", html_escape(name));
        for (v, t) in values.iter().zip(&p.sample_types) {
            let _ = write!(h, "<td>{}</td>", html_escape(&fmt_value(*v, &t.unit)));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody>\n</table>\n");
}

fn add(acc: &mut [i64], s: &Sample) {
    for (a, v) in acc.iter_mut().zip(&s.values) {
        *a = a.wrapping_add(*v);
    }
}

/// Totals per string label key and value, sorted by the type the page
/// opens on; nothing when no sample has a label.
pub(super) fn labels(h: &mut String, p: &Profile, sort_by: usize) {
    let keys: BTreeSet<&str> = p
        .samples
        .iter()
        .flat_map(|s| s.labels.iter().map(|(k, _)| k.as_str()))
        .collect();
    if keys.is_empty() {
        return;
    }
    let n = p.sample_types.len();
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
        let _ = writeln!(h, "<h3>{}</h3>", html_escape(key));
        group_table(h, p, key, &groups);
    }
    h.push_str("</section>\n");
}

/// Totals per bucket of the numeric `age` label; nothing without one.
pub(super) fn ages(h: &mut String, p: &Profile) {
    let n = p.sample_types.len();
    let mut buckets: BTreeMap<(i64, &str), Vec<i64>> = BTreeMap::new();
    for s in &p.samples {
        for (k, v, unit) in &s.num_labels {
            if k == "age" {
                let acc = buckets
                    .entry((*v, unit.as_str()))
                    .or_insert_with(|| vec![0; n]);
                add(acc, s);
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

/// The comments, as a list; nothing when there are none.
pub(super) fn comments(h: &mut String, id: &str, title: &str, comments: &[String]) {
    if comments.is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "<section id=\"{id}\">\n<h2>{title}</h2>\n<ul class=\"comments\">"
    );
    for c in comments {
        let _ = writeln!(h, "<li>{}</li>", html_escape(c));
    }
    h.push_str("</ul>\n</section>\n");
}

/// Nanoseconds since the epoch as a UTC date and time.
fn fmt_time(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let (y, m, d) = crate::sys::os::civil_from_days(days);
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

    #[test]
    fn values_ages_and_times_format() {
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
        // Extreme times do not panic.
        let _ = fmt_time(i64::MIN);
        let _ = fmt_time(i64::MAX);
    }
}
