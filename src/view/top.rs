//! The table `go tool pprof -top` prints, computed as google/pprof computes
//! it (`internal/report`: `newTrimmedGraph`, `TextItems`, `printText`;
//! `internal/graph`: `newGraph`, node orders), at its default granularity
//! (`functions`: frames merge by function name).
//!
//! For one sample type:
//! - `cum` of a function is the sum of the samples whose stack holds it
//!   (once per sample, however often it recurses); `flat` is the sum of the
//!   samples whose leaf frame it is.
//! - `total` is the sum of `|value|` over all samples, or over the base's
//!   samples alone when the profile is a diff (samples labelled
//!   `pprof::base=true`, see [`diff`](super::diff)).
//! - Functions whose `|cum|` is under `node_fraction` (0.5%) of the sum of
//!   all flats are dropped ("Dropped N nodes"); the rest are sorted by
//!   `|flat|` (or `|cum|` with `cum`), then by name, and the first
//!   `node_count` kept (0: all).
//! - Values are printed in the unit pprof picks from the smallest value
//!   shown and the total ([`units`](super::units)).
//! - A function is `(inline)` when every call to it that survives the edge
//!   cut (0.1%) was inlined, `(partial-inline)` when some were.
//!
//! Invariants: never panics, whatever the values (sums wrap as Go's do).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use super::profile::{Profile, ValueType};
use super::units::{percentage, scale, scaled_label};

/// What to show: `go tool pprof -top`'s options.
#[derive(Clone, Debug)]
pub struct TopOptions {
    /// The sample type, by name or index (`-sample_index`); `None` for the
    /// profile's default.
    pub sample_index: Option<String>,
    /// At most this many rows (`-nodecount`); 0 for all.
    pub node_count: usize,
    /// Sort by `cum` instead of `flat` (`-cum`).
    pub cum: bool,
    /// Drop functions whose `|cum|` is under this fraction of the total
    /// (`-nodefraction`, default 0.005).
    pub node_fraction: f64,
    /// Edges under this fraction of the total do not count for the
    /// `(inline)` mark (`-edgefraction`, default 0.001).
    pub edge_fraction: f64,
}

impl Default for TopOptions {
    fn default() -> Self {
        TopOptions {
            sample_index: None,
            node_count: 0,
            cum: false,
            node_fraction: 0.005,
            edge_fraction: 0.001,
        }
    }
}

/// One row of the table: a function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopRow {
    /// The function's name.
    pub name: String,
    /// The value of the samples whose leaf is this function.
    pub flat: i64,
    /// The value of the samples whose stack holds this function.
    pub cum: i64,
    /// `Some("(inline)")` or `Some("(partial-inline)")`, as pprof marks it.
    pub inline: Option<&'static str>,
}

/// The `top` table of a profile for one sample type.
#[derive(Clone, Debug)]
pub struct Top {
    /// The sample type shown.
    pub sample_type: ValueType,
    /// The index of that type in the profile.
    pub sample_index: usize,
    /// The rows, in order.
    pub rows: Vec<TopRow>,
    /// The total percentages are taken of (see the module doc).
    pub total: i64,
    /// The sum of the rows' `flat`.
    pub shown: i64,
    /// How many functions fell under the node fraction.
    pub dropped: usize,
    /// How many functions were left after that (before `node_count`).
    pub kept: usize,
    /// The node fraction used, for the "Dropped" line.
    pub node_fraction: f64,
    /// The unit values are printed in (`kB`, `MB`, `count`, ...).
    pub output_unit: String,
    /// The profile's comments that pprof shows (those not starting with `#`).
    pub comments: Vec<String>,
}

/// A function node while the graph is built.
#[derive(Clone, Copy, Default)]
struct Node {
    flat: i64,
    cum: i64,
}

/// A caller -> callee edge: weight and whether every call was inlined.
struct Edge {
    weight: i64,
    inline: bool,
}

/// The graph pprof builds for a report: nodes by name, edges between them.
struct Graph {
    nodes: Vec<Node>,
    edges: HashMap<(usize, usize), Edge>,
}

/// Builds the graph over `kept` nodes (all when `None`), as pprof's
/// `newGraph`: samples whose leaf-side frames are not kept give no flat.
fn build(
    profile: &Profile,
    index: usize,
    node_of: &[usize],
    count: usize,
    kept: Option<&HashSet<usize>>,
) -> Graph {
    let mut nodes = vec![Node::default(); count];
    let mut edges: HashMap<(usize, usize), Edge> = HashMap::new();
    let mut seen_nodes = HashSet::new();
    let mut seen_edges = HashSet::new();
    for sample in &profile.samples {
        let v = sample.values.get(index).copied().unwrap_or(0);
        if v == 0 {
            continue;
        }
        seen_nodes.clear();
        seen_edges.clear();
        let mut parent: Option<usize> = None;
        let mut residual = false;
        for &fid in sample.stack.iter().rev() {
            let Some(&n) = node_of.get(fid as usize) else {
                continue;
            };
            if kept.is_some_and(|k| !k.contains(&n)) {
                residual = true;
                continue;
            }
            if seen_nodes.insert(n) {
                nodes[n].cum = nodes[n].cum.wrapping_add(v);
            }
            if let Some(p) = parent {
                if p != n && seen_edges.insert((p, n)) {
                    let inlined = profile.frames.get(fid as usize).is_some_and(|f| f.inlined);
                    let e = edges.entry((p, n)).or_insert(Edge {
                        weight: 0,
                        inline: inlined,
                    });
                    e.weight = e.weight.wrapping_add(v);
                    e.inline &= inlined;
                }
            }
            parent = Some(n);
            residual = false;
        }
        if let (Some(p), false) = (parent, residual) {
            nodes[p].flat = nodes[p].flat.wrapping_add(v);
        }
    }
    Graph { nodes, edges }
}

/// pprof's `computeTotal`: the sum of `|value|`, of the base's samples
/// alone in a diff.
pub(crate) fn total(profile: &Profile, index: usize) -> i64 {
    let (mut all, mut base) = (0i64, 0i64);
    for s in &profile.samples {
        let v = s.values.get(index).copied().unwrap_or(0).wrapping_abs();
        all = all.wrapping_add(v);
        if s.labels
            .iter()
            .any(|(k, v)| k == "pprof::base" && v == "true")
        {
            base = base.wrapping_add(v);
        }
    }
    if base > 0 {
        base
    } else {
        all
    }
}

impl Top {
    /// Computes the table.
    ///
    /// ```
    /// # #[cfg(feature = "cli")] {
    /// use memprof::view::{Profile, Top, TopOptions};
    /// let text = "heap profile: 2: 96 [2: 96] @ heapprofile\n\
    ///             1: 64 [1: 64] @ 0x11 0x21\n#\t0x10\tleaf\ta.rs:1\n#\t0x20\tmain\ta.rs:9\n\
    ///             1: 32 [1: 32] @ 0x21\n";
    /// let p = Profile::from_bytes(text.as_bytes()).unwrap();
    /// let top = Top::new(&p, &TopOptions::default()).unwrap();
    /// assert_eq!((top.rows[0].name.as_str(), top.rows[0].flat), ("leaf", 64));
    /// assert_eq!((top.rows[1].name.as_str(), top.rows[1].cum), ("main", 96));
    /// # }
    /// ```
    pub fn new(profile: &Profile, options: &TopOptions) -> Result<Top, String> {
        let index = profile.sample_index(options.sample_index.as_deref())?;
        let sample_type = profile.sample_types[index].clone();

        // Nodes: one per distinct function name.
        let mut names: Vec<&str> = Vec::new();
        let mut by_name: HashMap<&str, usize> = HashMap::new();
        let node_of: Vec<usize> = profile
            .frames
            .iter()
            .map(|f| {
                *by_name.entry(f.function.as_str()).or_insert_with(|| {
                    names.push(f.function.as_str());
                    names.len() - 1
                })
            })
            .collect();

        let full = build(profile, index, &node_of, names.len(), None);
        let live = |g: &Graph| -> Vec<usize> {
            (0..names.len())
                .filter(|&n| g.nodes[n].flat != 0 || g.nodes[n].cum != 0)
                .collect()
        };
        let all = live(&full);
        let flat_sum = all
            .iter()
            .fold(0i64, |s, &n| s.wrapping_add(full.nodes[n].flat));
        let node_cutoff = ((flat_sum as f64 * options.node_fraction) as i64).wrapping_abs();
        let edge_cutoff = ((flat_sum as f64 * options.edge_fraction) as i64).wrapping_abs();
        let mut kept: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&n| node_cutoff <= 0 || full.nodes[n].cum.wrapping_abs() >= node_cutoff)
            .collect();
        let dropped = all.len() - kept.len();
        let kept_count = kept.len();
        let order = |g: &Graph, v: &mut Vec<usize>| {
            v.sort_by(|&a, &b| {
                let (na, nb) = (g.nodes[a], g.nodes[b]);
                let (ka, kb) = if options.cum {
                    (na.cum.wrapping_abs(), nb.cum.wrapping_abs())
                } else {
                    (na.flat.wrapping_abs(), nb.flat.wrapping_abs())
                };
                let (sa, sb) = if options.cum {
                    (na.flat.wrapping_abs(), nb.flat.wrapping_abs())
                } else {
                    (na.cum.wrapping_abs(), nb.cum.wrapping_abs())
                };
                kb.cmp(&ka)
                    .then_with(|| names[a].cmp(names[b]))
                    .then_with(|| sb.cmp(&sa))
            })
        };
        order(&full, &mut kept);
        let cut_by_count = options.node_count > 0 && kept.len() > options.node_count;
        if cut_by_count {
            kept.truncate(options.node_count);
        }
        let set: HashSet<usize> = kept.iter().copied().collect();
        // pprof rebuilds the graph over the kept nodes only when some were
        // cut; otherwise it keeps the first one, whose edges still include
        // those from functions that summed to zero (which count for the
        // `(inline)` mark).
        let g = if (node_cutoff > 0 && dropped > 0) || cut_by_count {
            build(profile, index, &node_of, names.len(), Some(&set))
        } else {
            full
        };
        let mut shown_nodes: Vec<usize> =
            live(&g).into_iter().filter(|n| set.contains(n)).collect();
        order(&g, &mut shown_nodes);

        let total = total(profile, index);
        // Per callee: (some call inlined, some call not), over the edges
        // that survive the cut.
        let mut calls: HashMap<usize, (bool, bool)> = HashMap::new();
        for (&(_, callee), e) in &g.edges {
            if e.weight.wrapping_abs() >= edge_cutoff {
                let c = calls.entry(callee).or_default();
                if e.inline {
                    c.0 = true;
                } else {
                    c.1 = true;
                }
            }
        }
        let rows: Vec<TopRow> = shown_nodes
            .iter()
            .map(|&n| {
                let (inline, noinline) = calls.get(&n).copied().unwrap_or_default();
                TopRow {
                    name: names[n].to_owned(),
                    flat: g.nodes[n].flat,
                    cum: g.nodes[n].cum,
                    inline: match (inline, noinline) {
                        (true, true) => Some("(partial-inline)"),
                        (true, false) => Some("(inline)"),
                        _ => None,
                    },
                }
            })
            .collect();
        let shown = rows.iter().fold(0i64, |s, r| s.wrapping_add(r.flat));
        let output_unit = output_unit(&rows, total, &sample_type.unit);
        Ok(Top {
            sample_type,
            sample_index: index,
            rows,
            total,
            shown,
            dropped,
            kept: kept_count,
            node_fraction: options.node_fraction,
            output_unit,
            comments: profile
                .comments
                .iter()
                .filter(|c| !c.starts_with('#'))
                .cloned()
                .collect(),
        })
    }

    /// A value as pprof prints it in this table (`12.50MB`, `3`).
    pub fn format_value(&self, value: i64) -> String {
        scaled_label(value, &self.sample_type.unit, &self.output_unit)
    }

    /// The header lines pprof prints above the table (comments, `Type:`,
    /// "Showing nodes accounting for ...", "Dropped N nodes ...", "Showing
    /// top N nodes out of M").
    pub fn header(&self) -> Vec<String> {
        let mut lines = self.comments.clone();
        lines.push(format!("Type: {}", self.sample_type.kind));
        lines.push(format!(
            "Showing nodes accounting for {}, {} of {} total",
            self.format_value(self.shown),
            percentage(self.shown, self.total).trim(),
            self.format_value(self.total)
        ));
        if self.total != 0 {
            if self.dropped > 0 {
                let cut = ((self.total as f64 * self.node_fraction) as i64).wrapping_abs();
                let s = if self.dropped > 1 { "s" } else { "" };
                lines.push(format!(
                    "Dropped {} node{s} (cum <= {})",
                    self.dropped,
                    self.format_value(cut)
                ));
            }
            if !self.rows.is_empty() && self.rows.len() < self.kept {
                lines.push(format!(
                    "Showing top {} nodes out of {}",
                    self.rows.len(),
                    self.kept
                ));
            }
        }
        lines
    }

    /// The whole table as `go tool pprof -top` prints it.
    pub fn render(&self) -> String {
        let mut out = self.header().join("\n");
        out.push('\n');
        let _ = writeln!(
            out,
            "{:>10} {:>5}% {:>5}% {:>10} {:>5}%",
            "flat", "flat", "sum", "cum", "cum"
        );
        let mut sum = 0i64;
        for row in &self.rows {
            sum = sum.wrapping_add(row.flat);
            let _ = writeln!(
                out,
                "{:>10} {} {} {:>10} {}  {}{}",
                self.format_value(row.flat),
                percentage(row.flat, self.total),
                percentage(sum, self.total),
                self.format_value(row.cum),
                percentage(row.cum, self.total),
                row.name,
                row.inline.map(|l| format!(" {l}")).unwrap_or_default()
            );
        }
        out
    }
}

/// pprof's `selectOutputUnit`: the unit of the smallest nonzero value shown
/// (or of 100 times it, when that is under 1% of the total and the total
/// takes a larger unit).
fn output_unit(rows: &[TopRow], total: i64, unit: &str) -> String {
    let mut min = 0i64;
    for r in rows {
        let mut v = r.flat.wrapping_abs();
        if v == 0 {
            v = r.cum.wrapping_abs();
        }
        if v > 0 && (min == 0 || v < min) {
            min = v;
        }
    }
    if rows.is_empty() {
        // pprof keeps "minimum": each value picks its own unit.
        return "minimum".to_owned();
    }
    if min == 0 {
        min = total;
    }
    let (_, min_unit) = scale(min, unit, "minimum");
    let (_, max_unit) = scale(total, unit, "minimum");
    let mut chosen = min_unit.clone();
    if min_unit != max_unit && min.wrapping_mul(100) < total {
        chosen = scale(min.wrapping_mul(100), unit, "minimum").1;
    }
    if chosen.is_empty() {
        unit.to_owned()
    } else {
        chosen
    }
}
