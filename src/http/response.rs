//! [`Response`], what [`handle`](super::handle) returns, and its HTTP/1.1
//! wire form for the built-in server.

use std::time::{SystemTime, UNIX_EPOCH};

/// An HTTP response from [`handle`](super::handle): a status code, headers
/// in the order to send them, and the body. The server sending it adds the
/// framing headers (`Content-Length`, `Date`, `Connection`).
///
/// Every response has `X-Content-Type-Options: nosniff` and a
/// `Content-Type`, as Go's `net/http/pprof` sends them:
///
/// | response | `Content-Type` | other headers |
/// |---|---|---|
/// | profile (proto) | `application/octet-stream` | `Content-Disposition: attachment; filename="heap"` (`allocs`, `heap-delta`, `allocs-delta`) |
/// | profile (`debug=1`), symbol | `text/plain; charset=utf-8` | |
/// | index page | `text/html; charset=utf-8` | |
/// | error | `text/plain; charset=utf-8` | `X-Go-Pprof: 1` (`go tool pprof` then prints the body); `Allow` on 405 |
///
/// ```
/// let r = memprof::http::handle("GET", "/debug/pprof/");
/// assert_eq!(r.status, 200);
/// assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
/// for (name, value) in &r.headers {
///     println!("{name}: {value}");
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Response {
    /// The status code: 200, or an error (400, 404, 405, 500, 503, ...).
    pub status: u16,
    /// Header names and values, in order.
    pub headers: Vec<(&'static str, String)>,
    /// The body: a gzip profile, text, HTML, or the error's reason.
    pub body: Vec<u8>,
}

impl Response {
    /// The value of header `name` (compared without regard to case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A 200 response.
    pub(crate) fn ok(content_type: &str, disposition: Option<String>, body: Vec<u8>) -> Self {
        let mut headers = vec![
            ("X-Content-Type-Options", "nosniff".to_owned()),
            ("Content-Type", content_type.to_owned()),
        ];
        if let Some(d) = disposition {
            headers.push(("Content-Disposition", d));
        }
        Response {
            status: 200,
            headers,
            body,
        }
    }

    /// An error the way Go's `net/http/pprof` `serveError` writes it: plain
    /// text, `X-Go-Pprof: 1`, the reason and a newline.
    pub(crate) fn error(status: u16, reason: &str) -> Self {
        Response {
            status,
            headers: vec![
                ("X-Content-Type-Options", "nosniff".to_owned()),
                ("Content-Type", "text/plain; charset=utf-8".to_owned()),
                ("X-Go-Pprof", "1".to_owned()),
            ],
            body: format!("{reason}\n").into_bytes(),
        }
    }

    /// The status line and headers, framing included, ready to send; the
    /// connection is closed after the body.
    pub(crate) fn head(&self, now: SystemTime) -> String {
        let mut h = format!(
            "HTTP/1.1 {} {}\r\nDate: {}\r\n",
            self.status,
            reason(self.status),
            http_date(now)
        );
        for (name, value) in &self.headers {
            h.push_str(&format!("{name}: {value}\r\n"));
        }
        h.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.body.len()
        ));
        h
    }
}

pub(crate) use crate::view::html_escape;

/// `s` made safe as a header value: bytes outside printable ASCII (CR,
/// LF, controls, space, non-ASCII) are percent-encoded, so a value taken
/// from a request cannot split or end the header.
pub(crate) fn header_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x21..0x7f).contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// RFC 9110 IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, s) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = crate::sys::os::civil_from_days(days as i64);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[month as usize - 1],
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_are_imf_fixdate() {
        let at = |s| http_date(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(at(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(at(1_767_225_599), "Wed, 31 Dec 2025 23:59:59 GMT");
    }

    #[test]
    fn echoed_strings_are_escaped() {
        assert_eq!(
            html_escape("<script>alert('x')</script>&\"é"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&#34;é"
        );
        assert_eq!(
            header_safe("/a?b=<c>\r\nX: y é"),
            "/a?b=<c>%0D%0AX:%20y%20%C3%A9"
        );
    }

    #[test]
    fn head_frames_the_body() {
        let r = Response::error(404, "Unknown profile");
        let h = r.head(UNIX_EPOCH);
        assert_eq!(
            h,
            "HTTP/1.1 404 Not Found\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\
             X-Content-Type-Options: nosniff\r\nContent-Type: text/plain; charset=utf-8\r\n\
             X-Go-Pprof: 1\r\nContent-Length: 16\r\nConnection: close\r\n\r\n"
        );
    }
}
