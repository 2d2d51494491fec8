//! memprof: Go-style sampled heap profiles for Rust (crate docs: see README for now).
#![deny(missing_docs)]

mod guard;
mod snapshot;

pub use snapshot::{Frame, HeapProfile, Record, Totals};
