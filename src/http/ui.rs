//! `/debug/pprof/ui`: the HTML report ([`crate::view::report_html`]) of
//! the live process. `?profile=heap|allocs|peak` picks the profile (heap
//! by default, with the peak shown below it); `&seconds=N` makes heap or
//! allocs a delta over the next N seconds, checked and waited for as the
//! `heap` endpoint does.

use std::time::Duration;

use super::url::form_value;
use super::Response;
use crate::view::{self, report_html, ReportLink, ReportOptions};
use crate::HeapProfile;

/// The page. Runs with sampling off (inside the handler's
/// `without_sampling`), like every profile the handler builds.
pub(super) fn page(query: &str, wait: &mut dyn FnMut(Duration) -> bool) -> Response {
    let which = match form_value(query, "profile").as_str() {
        "" | "heap" => "heap",
        "allocs" => "allocs",
        "peak" => "peak",
        _ => return Response::error(400, "unknown profile: want heap, allocs or peak"),
    };
    let seconds = form_value(query, "seconds");
    let (profile, title) = if which == "peak" {
        if !seconds.is_empty() {
            return Response::error(400, "the peak profile takes no \"seconds\" parameter");
        }
        (crate::peak_profile(), "peak".to_owned())
    } else if seconds.is_empty() {
        (crate::heap_profile(), which.to_owned())
    } else {
        match super::handler::delta_profile(&seconds, 0, wait) {
            Ok(p) => (p, format!("{which}, allocated in {seconds} s")),
            Err(r) => return r,
        }
    };
    let main = match to_view(&profile, which == "allocs") {
        Ok(p) => p,
        Err(e) => return Response::error(500, &format!("Could not write profile: {e}")),
    };
    // The heap page shows the peak too; it costs one more snapshot.
    let peak = if which == "heap" && seconds.is_empty() {
        to_view(&crate::peak_profile(), false).ok()
    } else {
        None
    };
    let current = |p: &str, s: &str| p == which && s == seconds;
    let link = |label: &str, p: &str, s: &str| ReportLink {
        label: label.to_owned(),
        href: if s.is_empty() {
            format!("ui?profile={p}")
        } else {
            format!("ui?profile={p}&seconds={s}")
        },
        current: current(p, s),
    };
    let mut links = vec![
        link("heap", "heap", ""),
        link("allocs", "allocs", ""),
        link("peak", "peak", ""),
    ];
    for s in ["10", "30", "60"] {
        links.push(link(&format!("allocs in the next {s} s"), "allocs", s));
    }
    links.push(ReportLink {
        label: "/debug/pprof/".into(),
        href: "./".into(),
        current: false,
    });
    let opts = ReportOptions {
        title: format!("memprof: {title} (pid {})", std::process::id()),
        peak: peak.as_ref(),
        links,
        ..ReportOptions::default()
    };
    let html = report_html(&main, &opts);
    let mut r = Response::ok("text/html; charset=utf-8", None, html.into_bytes());
    r.headers.push(("Cache-Control", "no-store".into()));
    r
}

/// `p` as the report's model: written as the pprof endpoints write it
/// (symbolized, trimmed), then read back by the viewer's reader.
fn to_view(p: &HeapProfile, allocs: bool) -> std::io::Result<view::Profile> {
    let mut gz = Vec::new();
    if allocs {
        p.write_pprof_allocs(&mut gz)?;
    } else {
        p.write_pprof(&mut gz)?;
    }
    view::Profile::from_bytes(&gz).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(q: &str) -> Response {
        crate::sampler::without_sampling(|| page(q, &mut |_| true))
    }

    #[test]
    fn the_page_is_a_report_with_links() {
        let r = get("");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
        let html = String::from_utf8(r.body).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<strong aria-current=\"page\">heap</strong>"));
        assert!(html.contains("<a href=\"ui?profile=allocs&amp;seconds=10\">"));
        for t in [
            "alloc_objects",
            "alloc_space",
            "inuse_objects",
            "inuse_space",
        ] {
            assert!(html.contains(&format!(">{t}</option>")), "{t}");
        }
        // Opens on inuse_space; allocs on alloc_space.
        assert!(html.contains("<option value=\"3\" selected>"));
        assert!(html.contains("id=\"peak\""));
        let html = String::from_utf8(get("profile=allocs").body).unwrap();
        assert!(html.contains("<option value=\"1\" selected>"));
        assert!(!html.contains("id=\"peak\""));
        let html = String::from_utf8(get("profile=peak").body).unwrap();
        assert!(html.contains("<strong aria-current=\"page\">peak</strong>"));
    }

    #[test]
    fn the_index_links_the_page() {
        let r = super::super::handler::route("GET", "/debug/pprof/", &[], &mut |_| true);
        let html = String::from_utf8(r.body).unwrap();
        assert!(html.contains("<a href='ui'>ui</a>"), "{html}");
        let r =
            super::super::handler::route("GET", "/debug/pprof/ui?profile=peak", &[], &mut |_| true);
        assert_eq!(r.status, 200);
        let r = super::super::handler::route("POST", "/debug/pprof/ui", &[], &mut |_| true);
        assert_eq!(r.status, 405);
    }

    #[test]
    fn bad_queries_are_refused() {
        assert_eq!(get("profile=goroutine").status, 400);
        assert_eq!(get("profile=peak&seconds=1").status, 400);
        assert_eq!(get("profile=heap&seconds=0").status, 400);
        assert_eq!(get("seconds=601").status, 400);
        let r = crate::sampler::without_sampling(|| page("seconds=2", &mut |_| false));
        assert_eq!(r.status, 503);
        let r = get("profile=allocs&seconds=1");
        assert_eq!(r.status, 200);
        let html = String::from_utf8(r.body).unwrap();
        assert!(html.contains("allocated in 1 s"));
        assert!(html.contains("<dt>Duration</dt>"));
    }
}
