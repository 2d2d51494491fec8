//! The request-target decoder: the path split from the query and
//! percent-decoded, query values decoded as Go's `url.ParseQuery` does.
//! Never a panic, whatever the target (the checks:
//! `memprof::http::__fuzz::url`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| memprof::http::__fuzz::url(data));
