//! The request parser of the built-in `/debug/pprof` server, fed the bytes
//! received so far: never a panic, and a whole request is well-formed
//! (the checks: `memprof::http::__fuzz::request`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| memprof::http::__fuzz::request(data));
