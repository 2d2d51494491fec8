//! What the fuzz targets run (`fuzz/fuzz_targets/`), here so that the
//! parsers stay private and a stable-toolchain test replays the committed
//! corpus (`fuzz/corpus/`) through the very same checks. Each function
//! panics only when a parser breaks an invariant, never for a bad input.

use super::request::{self, ReadError, MAX_BODY, MAX_REQUEST};
use super::response::{header_safe, html_escape};
use super::url;

/// Parses `data` as the bytes of a request received so far, as the
/// server does, and checks the answer: a whole request has a token method,
/// a printable target and a body within bounds, and bytes after it change
/// nothing; an incomplete one is within the read limit; an error is `400`
/// or `505` with a reason.
pub fn request(data: &[u8]) {
    match request::parse(data) {
        Ok(Some(r)) => {
            assert!(!r.method.is_empty() && r.method.is_ascii());
            assert!(!r.target.is_empty());
            assert!(r.target.bytes().all(|b| (0x21..0x7f).contains(&b)));
            assert!(r.body.len() <= MAX_BODY);
            let mut more = data.to_vec();
            more.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
            assert_eq!(request::parse(&more), Ok(Some(r)));
        }
        Ok(None) => assert!(data.len() <= MAX_REQUEST),
        Err(ReadError::Bad(status, why)) => {
            assert!(status == 400 || status == 505, "{status}");
            assert!(!why.is_empty());
        }
    }
}

/// Splits and decodes `data` as a request target (its first line; the
/// second, if any, is a query key to look up) and checks the results: the
/// decoded path is no longer than the target, the query is the target's
/// tail, and a decoded value is no longer than the query. The target
/// escaped for HTML has no markup characters left, and escaped for a
/// header only printable ASCII.
pub fn url(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (target, key) = text.split_once('\n').unwrap_or((text, "debug"));
    if let Some((path, query)) = url::split(target) {
        assert!(path.len() <= target.len());
        assert!(target.ends_with(query));
        for k in ["debug", "seconds", "reset", key] {
            assert!(url::form_value(query, k).len() <= query.len());
        }
    }
    assert!(url::form_value(target, key).len() <= target.len());
    let html = html_escape(text);
    assert!(!html.contains(['<', '>', '"', '\'']));
    assert!(html.len() >= text.len());
    assert!(header_safe(text).bytes().all(|b| (0x21..0x7f).contains(&b)));
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Runs `check` on every file of `fuzz/corpus/<target>`; the count.
    fn replay(target: &str, check: fn(&[u8])) -> usize {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (the committed corpus)", dir.display()));
        let mut n = 0;
        for e in entries {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let result = std::panic::catch_unwind(|| check(&data));
            assert!(result.is_ok(), "{} fails", path.display());
            n += 1;
        }
        n
    }

    #[test]
    fn the_fuzz_corpus_replays() {
        assert!(replay("http_request", super::request) >= 5);
        assert!(replay("http_url", super::url) >= 3);
    }
}
