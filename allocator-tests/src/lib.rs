//! Shared helpers for the allocator tests.
