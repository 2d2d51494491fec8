//! `top_sites`: the in-process answer to "what holds my memory?", for
//! users without `go tool pprof` at hand.
//!
//! Records are grouped by their *site*: the innermost frame that is not in
//! the standard library's allocation plumbing (`alloc::`, `core::`,
//! `std::`, `hashbrown::`), so `Vec::push` growth is charged to the caller
//! that pushed. If every frame is plumbing, the innermost one is the site.

use crate::snapshot::{Frame, HeapProfile};
use std::collections::HashMap;
use std::time::Duration;

/// An allocation site with its summed estimates, from
/// [`HeapProfile::top_sites`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    /// The function, e.g. `myapp::index::build`.
    pub function: String,
    /// `file:line` of the allocating call, or `?` without debug info.
    pub location: String,
    /// Estimated bytes live at the snapshot.
    pub inuse_bytes: u64,
    /// Estimated objects live at the snapshot.
    pub inuse_objects: u64,
    /// Estimated bytes allocated since the start.
    pub alloc_bytes: u64,
    /// Estimated objects allocated since the start.
    pub alloc_objects: u64,
    /// How long before the snapshot the site's oldest live sampled object
    /// was allocated; `None` when nothing is live or ages are not known.
    pub oldest_age: Option<Duration>,
}

const PLUMBING: [&str; 4] = ["alloc::", "core::", "std::", "hashbrown::"];

/// Standard-library allocation plumbing: `alloc::raw_vec::finish_grow`,
/// `<alloc::vec::Vec<T> as ...>::push`, `<T as alloc::...>::to_vec`; but not
/// `<myapp::Cache as core::ops::Drop>::drop`, which is the user's.
pub(crate) fn is_plumbing(f: &Frame) -> bool {
    is_plumbing_name(&f.function)
}

/// [`is_plumbing`] by the function's name.
pub(crate) fn is_plumbing_name(name: &str) -> bool {
    let is_std = |path: &str| PLUMBING.iter().any(|p| path.starts_with(p));
    match name.strip_prefix('<') {
        Some(inner) => match inner.split_once(" as ") {
            // `<T as Trait>`: a generic type parameter stands for the trait's code.
            Some((ty, tr)) => is_std(ty) || (!ty.contains("::") && is_std(tr)),
            None => is_std(inner),
        },
        None => is_std(name),
    }
}

impl HeapProfile {
    /// The `n` sites holding the most in-use bytes (then most allocated
    /// bytes), each with its function and `file:line`.
    ///
    /// Symbolizes the stacks; allocations made meanwhile are not sampled.
    ///
    /// ```
    /// for site in memprof::heap_profile().top_sites(5) {
    ///     println!("{:>10} B  {}  ({})", site.inuse_bytes, site.function, site.location);
    /// }
    /// ```
    pub fn top_sites(&self, n: usize) -> Vec<Site> {
        let mut v = self.sites(|_| true);
        v.sort_by(|a, b| {
            (b.inuse_bytes, b.alloc_bytes, &a.function).cmp(&(
                a.inuse_bytes,
                a.alloc_bytes,
                &b.function,
            ))
        });
        v.truncate(n);
        v
    }

    /// The `n` sites whose live objects are oldest: the leak suspects of a
    /// long-running process. Sites with nothing live are left out; the
    /// age is [`Site::oldest_age`].
    ///
    /// ```
    /// for site in memprof::heap_profile().oldest_sites(5) {
    ///     let age = site.oldest_age.unwrap();
    ///     println!("{:>8.1?} {:>10} B  {}", age, site.inuse_bytes, site.function);
    /// }
    /// ```
    pub fn oldest_sites(&self, n: usize) -> Vec<Site> {
        let mut v: Vec<Site> = self
            .sites(|r| r.oldest_age().is_some())
            .into_iter()
            .filter(|s| s.oldest_age.is_some() && s.inuse_objects > 0)
            .collect();
        v.sort_by(|a, b| {
            (b.oldest_age, b.inuse_bytes, &a.function).cmp(&(
                a.oldest_age,
                a.inuse_bytes,
                &b.function,
            ))
        });
        v.truncate(n);
        v
    }

    /// The sites of the records `keep` keeps, unsorted.
    fn sites(&self, keep: impl Fn(&crate::Record) -> bool) -> Vec<Site> {
        crate::sampler::without_sampling(|| {
            let mut sites: HashMap<(String, String), Site> = HashMap::new();
            let kept: Vec<&crate::Record> = self.records().filter(|r| keep(r)).collect();
            let all = crate::snapshot::frames_of_each(kept.iter().map(|r| r.stack()));
            for (r, frames) in kept.into_iter().zip(all) {
                let Some(f) = frames.iter().find(|f| !is_plumbing(f)).or(frames.first()) else {
                    continue;
                };
                let location = match (&f.file, f.line) {
                    (Some(file), Some(line)) => format!("{file}:{line}"),
                    (Some(file), None) => file.clone(),
                    _ => "?".to_string(),
                };
                let s = sites
                    .entry((f.function.clone(), location.clone()))
                    .or_insert(Site {
                        function: f.function.clone(),
                        location,
                        inuse_bytes: 0,
                        inuse_objects: 0,
                        alloc_bytes: 0,
                        alloc_objects: 0,
                        oldest_age: None,
                    });
                s.inuse_bytes += r.inuse_bytes();
                s.inuse_objects += r.inuse_objects();
                s.alloc_bytes += r.alloc_bytes();
                s.alloc_objects += r.alloc_objects();
                s.oldest_age = s.oldest_age.max(r.oldest_age());
            }
            sites.into_values().collect()
        })
    }
}
