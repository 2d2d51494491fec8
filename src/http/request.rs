//! Parsing one HTTP/1.x request from the bytes received so far, with
//! limits: the head (request line and headers) must fit [`MAX_HEAD`] bytes
//! (the request line [`MAX_LINE`]); a body (only `POST
//! /debug/pprof/symbol` has one) fits [`MAX_BODY`]. Anything else is an
//! error with the status to answer, never a panic. No I/O: the server's
//! event loop feeds [`parse`] whatever has arrived.

/// Longest request line accepted, in bytes.
pub(crate) const MAX_LINE: usize = 8 * 1024;
/// Longest request head (request line and headers) accepted, in bytes.
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// Longest request body accepted, in bytes.
pub(crate) const MAX_BODY: usize = 64 * 1024;
/// The most bytes a request can need: the server reads no further.
pub(crate) const MAX_REQUEST: usize = MAX_HEAD + MAX_BODY;

/// A request, as far as the handlers need it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) body: Vec<u8>,
}

/// Why a request cannot be served.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// Oversized or malformed: answer this status and reason.
    Bad(u16, &'static str),
}

/// The request at the start of `buf`, the bytes received so far:
/// `Ok(None)` while it is incomplete. Bytes after the request (a
/// pipelined second one) are ignored: the connection closes after one.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<Request>, ReadError> {
    let end = head_end(buf);
    let line = &buf[..end.unwrap_or(buf.len())];
    let line_end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
    if line_end > MAX_LINE {
        return Err(ReadError::Bad(400, "request line too long"));
    }
    let end = match end {
        Some(end) if end <= MAX_HEAD => end,
        None if buf.len() < MAX_HEAD => return Ok(None),
        _ => return Err(ReadError::Bad(400, "request header too large")),
    };
    let head = parse_head(&buf[..end])?;
    if head.chunked {
        return Err(ReadError::Bad(
            400,
            "chunked request bodies are not supported",
        ));
    }
    let len = head.content_length.unwrap_or(0);
    if len > MAX_BODY {
        return Err(ReadError::Bad(400, "request body too large"));
    }
    let Some(body) = buf.get(end..end + len) else {
        return Ok(None);
    };
    Ok(Some(Request {
        method: head.method,
        target: head.target,
        body: body.to_vec(),
    }))
}

/// The index just past the empty line that ends the head (`\r\n\r\n`, or
/// bare `\n\n` as Go also accepts).
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            let line = &buf[line_start..i];
            if (line.is_empty() || line == b"\r") && line_start > 0 {
                return Some(i + 1);
            }
            line_start = i + 1;
        }
    }
    None
}

/// What the head says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) content_length: Option<usize>,
    pub(crate) chunked: bool,
}

/// Parses a request head (through its final empty line).
pub(crate) fn parse_head(head: &[u8]) -> Result<Head, ReadError> {
    const BAD_LINE: ReadError = ReadError::Bad(400, "malformed request line");
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let line = lines.next().ok_or(BAD_LINE)?;
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BAD_LINE);
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(BAD_LINE);
    }
    if target.is_empty() || !target.iter().all(|&b| (0x21..0x7f).contains(&b)) {
        return Err(BAD_LINE);
    }
    match version {
        b"HTTP/1.1" | b"HTTP/1.0" => {}
        [b'H', b'T', b'T', b'P', b'/', a, b'.', b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            return Err(ReadError::Bad(505, "HTTP Version Not Supported"))
        }
        _ => return Err(BAD_LINE),
    }
    let mut h = Head {
        // Checked ASCII above.
        method: String::from_utf8_lossy(method).into_owned(),
        target: String::from_utf8_lossy(target).into_owned(),
        content_length: None,
        chunked: false,
    };
    for line in lines.filter(|l| !l.is_empty()) {
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(ReadError::Bad(400, "obsolete header line folding"));
        }
        let colon = line.iter().position(|&b| b == b':');
        let (name, value) = match colon {
            Some(i) if i > 0 && line[..i].iter().all(|&b| is_tchar(b)) => {
                (&line[..i], line[i + 1..].trim_ascii())
            }
            _ => return Err(ReadError::Bad(400, "malformed header line")),
        };
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(ReadError::Bad(400, "malformed header value"));
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or(ReadError::Bad(400, "bad Content-Length"))?;
            if h.content_length.is_some_and(|m| m != n) {
                return Err(ReadError::Bad(400, "bad Content-Length"));
            }
            h.content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            h.chunked = true;
        }
    }
    Ok(h)
}

/// RFC 9110 `tchar`: the characters of a method or header name.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(head: &str) -> u16 {
        match parse_head(head.as_bytes()) {
            Err(ReadError::Bad(status, _)) => status,
            other => panic!("{head:?} parsed: {other:?}"),
        }
    }

    #[test]
    fn parses_a_request_head() {
        let h = parse_head(b"GET /debug/pprof/heap?debug=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n").unwrap();
        assert_eq!(h.method, "GET");
        assert_eq!(h.target, "/debug/pprof/heap?debug=1");
        assert_eq!(h.content_length, Some(3));
        assert!(!h.chunked);
        let h = parse_head(b"POST /x HTTP/1.0\nTransfer-Encoding: chunked\n\n").unwrap();
        assert!(h.chunked);
    }

    #[test]
    fn rejects_malformed_heads() {
        for head in [
            "GET /x\r\n\r\n",
            "GET  /x HTTP/1.1\r\n\r\n",
            "GET /x HTTP/1.1 extra\r\n\r\n",
            "G(T /x HTTP/1.1\r\n\r\n",
            "GET /a\x01b HTTP/1.1\r\n\r\n",
            "GET /x FTP/1.1\r\n\r\n",
            "\r\n\r\n",
            "GET /x HTTP/1.1\r\n folded\r\n\r\n",
            "GET /x HTTP/1.1\r\nno colon\r\n\r\n",
            "GET /x HTTP/1.1\r\n: empty name\r\n\r\n",
            "GET /x HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "GET /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "GET /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "GET /x HTTP/1.1\r\nX: a\x00b\r\n\r\n",
        ] {
            assert_eq!(bad(head), 400, "{head:?}");
        }
        assert_eq!(bad("PRI * HTTP/2.0\r\n\r\n"), 505);
    }

    #[test]
    fn parses_as_bytes_arrive() {
        let raw = b"POST /debug/pprof/symbol HTTP/1.1\r\nContent-Length: 4\r\n\r\n0x10extra";
        let whole = raw.len() - "extra".len();
        for n in 0..whole {
            assert_eq!(parse(&raw[..n]), Ok(None), "{n} bytes");
        }
        let r = parse(&raw[..whole]).unwrap().unwrap();
        assert_eq!(
            (r.method.as_str(), r.body.as_slice()),
            ("POST", &b"0x10"[..])
        );
        assert_eq!(parse(raw).unwrap().unwrap(), r, "pipelined bytes ignored");
        let long_line = format!("GET /{} HTTP/1.1", "a".repeat(MAX_LINE));
        assert_eq!(
            parse(long_line.as_bytes()),
            Err(ReadError::Bad(400, "request line too long"))
        );
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "z".repeat(MAX_HEAD));
        let too_large = Err(ReadError::Bad(400, "request header too large"));
        assert_eq!(parse(big.as_bytes()), too_large);
        assert_eq!(parse(&big.as_bytes()[..MAX_HEAD]), too_large);
        assert_eq!(parse(&big.as_bytes()[..MAX_HEAD - 1]), Ok(None));
        let body = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert_eq!(
            parse(body.as_bytes()),
            Err(ReadError::Bad(400, "request body too large"))
        );
    }

    #[test]
    fn finds_the_end_of_the_head() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody"), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\nbody"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
        assert_eq!(head_end(b"\r\n"), None);
    }
}
