//! memprof: Go-style sampled heap profiles for Rust (crate docs: see README for now).
#![deny(missing_docs)]

mod encode;
mod guard;
mod mappings;
mod snapshot;
mod symbolize;

pub use snapshot::{Frame, HeapProfile, Record, Totals};
