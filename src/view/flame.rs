//! Flame graphs of a profile, drawn by `inferno` (an SVG with zoom and
//! search built in).
//!
//! [`folded`] gives the folded stacks inferno reads: one line per distinct
//! stack, root first, frames joined by `;`, then the summed value for one
//! sample type. Frames are function names (inlined calls are frames of
//! their own); a `;` inside a name (Rust's `[T; N]`) becomes `:`, since
//! `;` separates frames, and line breaks become spaces. Stacks whose sum
//! is not positive are left out (a flame graph has no negative widths; a
//! diff is drawn with [`diff_flame_svg`] instead). The colours are
//! inferno's memory palette, the same for a function on every run.

use std::collections::BTreeMap;
use std::fmt;

use super::profile::Profile;

/// Why a flame graph could not be drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlameError(String);

impl fmt::Display for FlameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FlameError {}

/// The folded stacks of `profile` for the sample type at `index`, sorted.
pub fn folded(profile: &Profile, index: usize) -> Vec<String> {
    let mut sums: BTreeMap<String, i64> = BTreeMap::new();
    for s in &profile.samples {
        let v = s.values.get(index).copied().unwrap_or(0);
        if v == 0 || s.stack.is_empty() {
            continue;
        }
        let names: Vec<String> = s
            .stack
            .iter()
            .rev()
            .filter_map(|&f| profile.frames.get(f as usize))
            .map(|f| frame_name(&f.function))
            .collect();
        let e = sums.entry(names.join(";")).or_insert(0);
        *e = e.wrapping_add(v);
    }
    sums.into_iter()
        .filter(|&(_, v)| v > 0)
        .map(|(stack, v)| format!("{stack} {v}"))
        .collect()
}

/// A function name as one folded frame: `;` separates frames and a line
/// ends the stack, so they are replaced; an empty name is `[unknown]`.
fn frame_name(f: &str) -> String {
    if f.is_empty() {
        return "[unknown]".to_owned();
    }
    f.replace(';', ":").replace(['\n', '\r'], " ")
}

/// Inferno's options for a sample type: counts named `bytes` or
/// `objects`.
fn options<'a>(profile: &Profile, index: usize, title: &str) -> inferno::flamegraph::Options<'a> {
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = title.to_owned();
    // Memory colours, stable from one run to the next.
    opts.colors =
        inferno::flamegraph::Palette::Basic(inferno::flamegraph::color::BasicPalette::Mem);
    opts.hash = true;
    opts.deterministic = true;
    opts.count_name = match profile.sample_types.get(index) {
        Some(t) if t.unit == "bytes" => "bytes".to_owned(),
        Some(t) if t.unit == "count" => "objects".to_owned(),
        Some(t) => t.unit.clone(),
        None => "samples".to_owned(),
    };
    opts
}

fn draw(
    mut opts: inferno::flamegraph::Options<'_>,
    lines: &[String],
) -> Result<String, FlameError> {
    if lines.is_empty() {
        return Err(FlameError(
            "no samples with a positive value to draw".to_owned(),
        ));
    }
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), &mut svg)
        .map_err(|e| FlameError(format!("flame graph: {e}")))?;
    String::from_utf8(svg).map_err(|_| FlameError("flame graph is not UTF-8".to_owned()))
}

/// An SVG flame graph of `profile` for the sample type at `index` (see
/// [`Profile::sample_index`]), titled `title`.
///
/// ```
/// use memprof::view::{flame_svg, Profile};
/// let text = b"heap profile: 1: 8 [2: 16] @ heapprofile\n1: 8 [2: 16] @ 0x11\n#\t0x10\tleaf\ta.rs:1\n";
/// let p = Profile::from_bytes(text).unwrap();
/// let svg = flame_svg(&p, 3, "inuse_space").unwrap();
/// assert!(svg.contains("<title>leaf (8 bytes, 100.00%)</title>"));
/// ```
pub fn flame_svg(profile: &Profile, index: usize, title: &str) -> Result<String, FlameError> {
    draw(options(profile, index, title), &folded(profile, index))
}

/// A differential flame graph: the shape of `profile`, each frame
/// coloured by its growth (red) or shrinkage (blue) since `base`
/// (`inferno::differential`, then `inferno::flamegraph`).
pub fn diff_flame_svg(
    base: &Profile,
    profile: &Profile,
    index: usize,
    title: &str,
) -> Result<String, FlameError> {
    let before = folded(base, index).join("\n");
    let after = folded(profile, index).join("\n");
    let mut both = Vec::new();
    inferno::differential::from_readers(
        inferno::differential::Options::default(),
        before.as_bytes(),
        after.as_bytes(),
        &mut both,
    )
    .map_err(|e| FlameError(format!("differential: {e}")))?;
    let both =
        String::from_utf8(both).map_err(|_| FlameError("differential is not UTF-8".to_owned()))?;
    let lines: Vec<String> = both.lines().map(str::to_owned).collect();
    draw(options(profile, index, title), &lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{Frame, Sample};

    #[test]
    fn folded_stacks_are_root_first_and_summed() {
        let frame = |f: &str| Frame {
            function: f.into(),
            file: String::new(),
            line: 0,
            inlined: false,
        };
        let sample = |stack: &[u32], v: i64| Sample {
            stack: stack.to_vec(),
            values: vec![v],
            labels: vec![],
            num_labels: vec![],
        };
        let p = Profile {
            frames: vec![frame("a;b"), frame("<leaf>\n"), frame(""), frame("neg")],
            samples: vec![
                sample(&[1, 0], 2),
                sample(&[1, 0], 1),
                sample(&[2, 0], 5),
                sample(&[3, 0], -4),
                sample(&[], 9),
                sample(&[7, 0], 1),
            ],
            ..Profile::default()
        };
        assert_eq!(folded(&p, 0), ["a:b 1", "a:b;<leaf>  3", "a:b;[unknown] 5"]);
        assert!(folded(&p, 1).is_empty(), "no such sample type");
    }
}
