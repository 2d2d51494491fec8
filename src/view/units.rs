//! Numbers as `go tool pprof` prints them (google/pprof
//! `internal/measurement`): values scaled to a unit (`B`, `kB`, `MB`, ...
//! in steps of 1024) with `%.2f` and a trailing `.00` trimmed, and
//! percentages with `%5.2f%%` (or `%5.2g%%` under 1%).
//!
//! Only the memory units are known; any other unit (`count`, ...) is
//! printed as a plain number, as pprof does.

/// pprof's memory units: name and factor in bytes.
const MEMORY: [(&str, f64); 6] = [
    ("B", 1.0),
    ("kB", 1024.0),
    ("MB", 1048576.0),
    ("GB", 1073741824.0),
    ("TB", 1099511627776.0),
    ("PB", 1125899906842624.0),
];

/// The factor of a memory unit given by any of pprof's aliases
/// (`bytes`, `kilobyte`, `MB`, ...), or `None` for other units.
fn memory_factor(unit: &str) -> Option<f64> {
    let mut u = unit.to_ascii_lowercase();
    if u.len() > 2 && u.ends_with('s') {
        u.pop();
    }
    let i = match u.as_str() {
        "b" | "byte" => 0,
        "kb" | "kbyte" | "kilobyte" => 1,
        "mb" | "mbyte" | "megabyte" => 2,
        "gb" | "gbyte" | "gigabyte" => 3,
        "tb" | "tbyte" | "terabyte" => 4,
        "pb" | "pbyte" | "petabyte" => 5,
        _ => return None,
    };
    Some(MEMORY[i].1)
}

/// pprof's `measurement.Scale`: `value` (in `from`) expressed in `to`,
/// where `to` may be `minimum`/`auto` (the largest unit the value is at
/// least 1 of). Returns the number and the unit name ("" for none).
pub(crate) fn scale(value: i64, from: &str, to: &str) -> (f64, String) {
    if value < 0 && value != i64::MIN {
        let (v, u) = scale(-value, from, to);
        return (-v, u);
    }
    if let Some(f) = memory_factor(from) {
        let v = value as f64 * f;
        if to == "minimum" || to == "auto" {
            let mut best: Option<(f64, &str)> = None;
            for (name, factor) in MEMORY {
                if best.is_none_or(|(b, _)| factor >= b) && v / factor >= 1.0 {
                    best = Some((factor, name));
                }
            }
            return match best {
                Some((factor, name)) => (v / factor, name.to_owned()),
                None => (v, "B".to_owned()),
            };
        }
        let (name, factor) = match memory_factor(to) {
            Some(t) => (
                MEMORY.iter().find(|(_, f)| *f == t).map_or("B", |(n, _)| n),
                t,
            ),
            None => ("B", 1.0),
        };
        return (v / factor, name.to_owned());
    }
    match to {
        "count" | "sample" | "unit" | "minimum" | "auto" => (value as f64, String::new()),
        _ => (value as f64, to.to_owned()),
    }
}

/// pprof's `measurement.ScaledLabel`: `"1.50MB"`, `"12kB"`, `"0"`.
pub(crate) fn scaled_label(value: i64, from: &str, to: &str) -> String {
    let (v, u) = scale(value, from, to);
    let s = format!("{v:.2}");
    let s = s.strip_suffix(".00").unwrap_or(&s);
    if s == "0" || s == "-0" {
        return "0".to_owned();
    }
    format!("{s}{u}")
}

/// pprof's `measurement.Percentage`: `|value/total|` in percent, 6 wide:
/// `"  100%"`, `"12.34%"`, `" 0.12%"`, `"1.2e-05%"`.
pub(crate) fn percentage(value: i64, total: i64) -> String {
    let ratio = if total != 0 {
        (value as f64 / total as f64).abs() * 100.0
    } else {
        0.0
    };
    if (99.95..=100.05).contains(&ratio) {
        "  100%".to_owned()
    } else if ratio >= 1.0 {
        format!("{ratio:5.2}%")
    } else {
        format!("{:>5}%", go_g2(ratio))
    }
}

/// Go's `%.2g` of a non-negative number: two significant digits, trailing
/// zeros removed, exponent form below 1e-4 (`1.2e-05`).
fn go_g2(x: f64) -> String {
    if x == 0.0 {
        return "0".to_owned();
    }
    let e = format!("{x:.1e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..2).contains(&exp) {
        let mant = mant.trim_end_matches('0').trim_end_matches('.');
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    let decimals = (1 - exp).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_scale_like_pprof() {
        assert_eq!(scaled_label(0, "bytes", "minimum"), "0");
        assert_eq!(scaled_label(1536, "bytes", "kB"), "1.50kB");
        assert_eq!(scaled_label(2048, "bytes", "kB"), "2kB");
        assert_eq!(scaled_label(-2048, "bytes", "auto"), "-2kB");
        assert_eq!(scaled_label(12, "count", "count"), "12");
        assert_eq!(scale(3 << 20, "bytes", "minimum").1, "MB");
    }

    #[test]
    fn percentages_format_like_go() {
        assert_eq!(percentage(1, 1), "  100%");
        assert_eq!(percentage(1, 3), "33.33%");
        assert_eq!(percentage(5, 1000), "  0.5%");
        assert_eq!(percentage(12345, 100_000_000), "0.012%");
        assert_eq!(percentage(1234, 10_000_000_000), "1.2e-05%");
        assert_eq!(percentage(1234, 1_000_000_000), "0.00012%");
        assert_eq!(percentage(0, 10), "    0%");
        assert_eq!(percentage(-1, 4), "25.00%");
    }
}
