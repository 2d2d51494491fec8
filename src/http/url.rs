//! The parts of a request target the handlers read: the path, percent-
//! decoded, and query values, decoded the way Go's `url.ParseQuery` does
//! (`+` is a space, `%XX` a byte; the first value of a key wins; a pair
//! with a bad escape is skipped).

/// `http://host:port/path?q` -> `/path?q`; other targets as they are.
pub(crate) fn strip_authority(target: &str) -> &str {
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"));
    match rest {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    }
}

/// Splits `target` into its decoded path and its raw query (without `?`).
/// A path with a bad escape (`%4`, `%zz`) or not valid UTF-8 is `None`.
pub(crate) fn split(target: &str) -> Option<(String, &str)> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Some((decode(path, false)?, query))
}

/// The first value of `key` in `query`, decoded; `""` when absent, like Go's
/// `Request.FormValue`.
pub(crate) fn form_value(query: &str, key: &str) -> String {
    for pair in query.split('&') {
        if pair.is_empty() || pair.contains(';') {
            continue; // Go rejects `;` separators and skips the pair.
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match (decode(k, true), decode(v, true)) {
            (Some(k), Some(v)) if k == key => return v,
            _ => {}
        }
    }
    String::new()
}

/// Percent-decodes `s`; in a query (`plus`), `+` is a space.
fn decode(s: &str, plus: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
                continue;
            }
            b'+' if plus => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_decoded_and_split_from_the_query() {
        assert_eq!(
            split("/debug/pprof/heap?debug=1"),
            Some(("/debug/pprof/heap".into(), "debug=1"))
        );
        assert_eq!(
            split("/debug/pprof/%68eap"),
            Some(("/debug/pprof/heap".into(), ""))
        );
        assert_eq!(split("/a+b?x"), Some(("/a+b".into(), "x")));
        assert_eq!(split("/bad%4"), None);
        assert_eq!(split("/bad%zz"), None);
        assert_eq!(split("/bad%ff"), None, "not UTF-8");
    }

    #[test]
    fn form_values_follow_go() {
        let q = "debug=1&seconds=%2B5&gc&x=a+b&debug=2";
        assert_eq!(form_value(q, "debug"), "1", "first value wins");
        assert_eq!(form_value(q, "seconds"), "+5");
        assert_eq!(form_value(q, "gc"), "");
        assert_eq!(form_value(q, "x"), "a b");
        assert_eq!(form_value(q, "missing"), "");
        assert_eq!(form_value("seconds=%zz&seconds=3", "seconds"), "3");
        assert_eq!(form_value("seconds=1;debug=1", "seconds"), "");
        assert_eq!(form_value("", "debug"), "");
    }
}
