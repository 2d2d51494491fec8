pub(crate) mod pprof;
pub(crate) mod text;
