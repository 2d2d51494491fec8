//! HTML escaping: the one implementation the report page and the HTTP
//! endpoints (the redirect body) share.

/// `s` made safe to echo into HTML text or a quoted attribute, as Go's
/// `html.EscapeString`: `&`, `<`, `>`, `"` and `'` become entities.
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::html_escape;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            html_escape("<script>alert('x')</script>&\"é"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&#34;é"
        );
    }
}
