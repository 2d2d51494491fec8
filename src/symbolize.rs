//! Symbolization: return addresses to functions, inlined frames, files and
//! lines, and the rule that hides the profiler's own frames.
//!
//! Runs only when a profile is written (or [`Record::frames`] is called),
//! never while sampling. Everything here allocates freely: the caller runs it
//! under [`guard::without_sampling`](crate::sampler::without_sampling), so those
//! allocations are never sampled and never re-enter the profiler.
//!
//! Names come from the debug info when there is some, else from the symbol
//! table, both read with `addr2line` one module at a time ([`Symbolizer`];
//! the `backtrace` crate for a module whose file cannot be opened). How
//! complete they are depends on the build: full debug info and
//! `debug = "limited"` give full paths (`myapp::cache::load`);
//! `debug = "line-tables-only"` gives DWARF's short names for inlined
//! frames (`load`); no debug info gives symbol-table names and no inlined
//! frames, files or lines. Modules are looked up at each write, so plugins
//! `dlopen`ed later are named too. Nothing is kept between writes
//! (`docs/design.md`, "Symbolization and its memory").
//!
//! [`Record::frames`]: crate::Record::frames

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::collections::HashMap;
use std::ffi::c_void;

use crate::Frame;

/// Set in a `fork` child when another thread of the parent was writing a
/// profile at the fork: the loader walk or the `backtrace` crate's lock
/// may be held for ever and its caches half-written, so this process never
/// symbolizes again.
static DISABLED: AtomicBool = AtomicBool::new(false);

/// Turns symbolization off for good (a `fork` child, see `DISABLED`).
pub(crate) fn disable_after_fork() {
    DISABLED.store(true, Ordering::Relaxed);
}

/// Can this process symbolize? `false` in a child forked while a profile
/// was being written: its profiles carry addresses and mappings, no names
/// (`go tool pprof` can name them from the binaries).
pub(crate) fn enabled() -> bool {
    !DISABLED.load(Ordering::Relaxed)
}

/// Name used for a frame whose function could not be resolved.
pub(crate) const UNKNOWN: &str = "<unknown>";

/// One resolved frame of an address: a function, possibly inlined.
#[derive(Clone, Debug)]
pub(crate) struct Sym {
    /// Demangled, without the hash suffix: `alloc::vec::Vec<T,A>::push`.
    pub(crate) name: String,
    /// As found in the object file (the mangled name when there is one).
    pub(crate) system_name: String,
    pub(crate) file: Option<String>,
    pub(crate) line: Option<u32>,
}

/// One address of a trimmed stack: which return address, and how many of its
/// inlined frames (innermost first) the trimming hid. Two stacks that differ
/// only in hidden frames get equal keys, so encoders can merge them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct LocKey {
    /// The return address as captured (the call instruction is just before).
    pub(crate) ret: usize,
    /// Leading inlined frames of `ret` that belong to the profiler.
    pub(crate) skip: usize,
}

impl LocKey {
    /// The address of the call instruction: what pprof calls the location's
    /// address and what is looked up in the debug info.
    pub(crate) fn pc(self) -> usize {
        self.ret.saturating_sub(1)
    }
}

/// Times a symbolizer opened a module's debug info and symbol table
/// ([`debug_info_loads`]).
static LOADS: AtomicUsize = AtomicUsize::new(0);

/// How many times this process opened a module's debug info to symbolize
/// (each write opens each module it needs once). The unsymbolized writers
/// leave it unchanged; tests check that.
pub(crate) fn debug_info_loads() -> usize {
    LOADS.load(Ordering::Relaxed)
}

/// Set when a symbolizer loaded debug info since the freed memory was last
/// given back to the C heap's owner ([`give_back_memory`]).
static LOADED_SINCE_TRIM: AtomicBool = AtomicBool::new(false);

/// Resolves return addresses, once each. Not thread safe; one per write.
///
/// Addresses are resolved in batches ([`prefetch`](Self::prefetch)), one
/// module (the program, each shared library) at a time, with `addr2line`:
/// see [`resolve_in_module`] for what is read and how little of it stays
/// at once. Nothing is kept between batches but the resolved frames, so a
/// process does not keep the debug info between profiles
/// (`docs/design.md`, "Symbolization and its memory").
pub(crate) struct Symbolizer {
    cache: HashMap<usize, Vec<Sym>>,
    /// For a symbolizer that is off: trimming's symbol-table lookups.
    tables: SymbolTables,
    /// `false`: every address resolves to nothing, nothing is read (the
    /// unsymbolized writers).
    on: bool,
    /// Debug info was read: the C heap is trimmed after the write.
    loaded: bool,
    /// The `backtrace` crate's global caches were filled (a module that
    /// `addr2line` could not open): cleared on drop.
    used_backtrace: bool,
}

impl Default for Symbolizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Symbolizer {
    fn drop(&mut self) {
        if self.used_backtrace {
            backtrace::clear_symbol_cache();
        }
        if self.loaded || self.used_backtrace {
            LOADED_SINCE_TRIM.store(true, Ordering::Relaxed);
        }
    }
}

impl Symbolizer {
    pub(crate) fn new() -> Self {
        Self {
            cache: HashMap::new(),
            tables: SymbolTables::default(),
            on: true,
            loaded: false,
            used_backtrace: false,
        }
    }

    /// A symbolizer that resolves nothing and reads no debug info: stacks
    /// keep every address, named by no one.
    pub(crate) fn off() -> Self {
        let mut s = Self::new();
        s.on = false;
        s
    }

    /// Does this symbolizer resolve addresses (not [`off`](Self::off))?
    pub(crate) fn is_on(&self) -> bool {
        self.on
    }

    /// Resolves every return address of `rets` not resolved yet, each
    /// module's together: its debug info is read once for the batch. Call
    /// it with all the addresses of a write before [`trim`](Self::trim)
    /// or [`resolve`](Self::resolve), which otherwise read a module per
    /// stack or per address.
    pub(crate) fn prefetch(&mut self, rets: impl IntoIterator<Item = usize>) {
        if !self.on || !enabled() {
            return;
        }
        // By module path and load bias: (return address, probe).
        let mut by_module: HashMap<(String, usize), Vec<(usize, u64)>> = HashMap::new();
        for ret in rets {
            if ret == 0 || self.cache.contains_key(&ret) {
                continue;
            }
            let pc = ret.saturating_sub(1);
            match module_of(pc) {
                Some((path, bias)) => {
                    self.cache.insert(ret, Vec::new());
                    by_module
                        .entry((path, bias))
                        .or_default()
                        .push((ret, (pc - bias) as u64));
                }
                None => {
                    // No loaded module holds it (the vDSO): `backtrace`
                    // reads it from memory or its own paths.
                    self.used_backtrace = true;
                    self.cache.insert(ret, resolve_with_backtrace(ret));
                }
            }
        }
        let mut modules: Vec<_> = by_module.into_iter().collect();
        modules.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for ((path, _), rets) in modules {
            let probes: Vec<u64> = rets.iter().map(|&(_, p)| p).collect();
            self.loaded = true;
            match resolve_in_module(&path, &probes) {
                Some(syms) => {
                    for (&(ret, _), s) in rets.iter().zip(syms) {
                        self.cache.insert(ret, s);
                    }
                }
                None => {
                    // A module `addr2line` cannot open (a file deleted or
                    // replaced since it was loaded): `backtrace` reads it
                    // from its own paths.
                    self.used_backtrace = true;
                    for &(ret, _) in &rets {
                        self.cache.insert(ret, resolve_with_backtrace(ret));
                    }
                }
            }
        }
    }

    /// The frames at return address `ret`, innermost (inlined) first; empty
    /// when nothing is known about the address.
    #[cfg(feature = "http")]
    pub(crate) fn resolve(&mut self, ret: usize) -> &[Sym] {
        self.prefetch([ret]);
        self.cache.get(&ret).map_or(&[][..], |f| &f[..])
    }

    /// The frames `key` stands for: those of `key.ret` minus the hidden ones.
    /// `key` must come from [`trim`](Self::trim) on this symbolizer.
    pub(crate) fn frames(&self, key: LocKey) -> &[Sym] {
        self.cache
            .get(&key.ret)
            .map_or(&[][..], |f| &f[key.skip.min(f.len())..])
    }

    /// Resolves `stack` (leaf first) and drops the profiler's frames from
    /// its leaf end (see [`profiler_frames`]). Returns one key per address
    /// that still shows at least one frame, leaf first. Zero addresses (an
    /// unwinder's end-of-stack mark) are left out.
    pub(crate) fn trim(&mut self, stack: &[usize]) -> Vec<LocKey> {
        let stack: Vec<usize> = stack.iter().copied().filter(|&a| a != 0).collect();
        let stack = &stack[..];
        if !self.on {
            return self.trim_by_symbol_table(stack);
        }
        self.prefetch(stack.iter().copied());
        // An unresolved address counts as one frame with an empty name:
        // neither profiler nor shim, so it stops the trimming.
        let mut names: Vec<&str> = Vec::new();
        let mut widths = Vec::with_capacity(stack.len());
        for &ret in stack {
            let syms = self.cache.get(&ret).map_or(&[][..], |f| &f[..]);
            widths.push(syms.len().max(1));
            if syms.is_empty() {
                names.push("");
            }
            names.extend(frame_names(syms));
        }
        let mut cut = profiler_frames(&names);
        let mut keys = Vec::with_capacity(stack.len());
        for (&ret, width) in stack.iter().zip(widths) {
            if cut < width {
                keys.push(LocKey { ret, skip: cut });
            }
            cut = cut.saturating_sub(width);
        }
        keys
    }
}

impl Symbolizer {
    /// [`trim`](Self::trim) for a symbolizer that is off: the profiler's
    /// frames are found by the symbol-table names of the stack's leaf-end
    /// addresses ([`SymbolTables`]), no debug info read; each address is one
    /// frame (no inlining known).
    fn trim_by_symbol_table(&mut self, stack: &[usize]) -> Vec<LocKey> {
        // The profiler's own frames are the first dozen or so.
        const LEAF: usize = 32;
        let leaf = &stack[..stack.len().min(LEAF)];
        let mut names: Vec<&str> = leaf.iter().map(|&ret| self.tables.role(ret)).collect();
        if stack.len() > leaf.len() {
            names.push(""); // not the profiler's: never hide a whole stack
        }
        let cut = profiler_frames(&names).min(leaf.len());
        stack[cut..]
            .iter()
            .map(|&ret| LocKey { ret, skip: 0 })
            .collect()
    }
}

/// The functions of the loaded modules' symbol tables (not their debug
/// info) that trimming cares about: the allocator shims, the standard
/// library's allocation plumbing and the profiler's own, by address range.
/// Read once per module and unsymbolized write, only for the leaf ends of
/// stacks; a module's other functions are not kept.
#[derive(Default)]
struct SymbolTables {
    modules: HashMap<String, Option<Roles>>,
    /// [`role`](Self::role) by return address.
    roles: HashMap<usize, &'static str>,
}

impl SymbolTables {
    /// A name that stands for the role of the function holding the call
    /// before `ret` in [`profiler_frames`]: a shim, plumbing, the
    /// profiler's, or `""` (anything else, or unknown).
    fn role(&mut self, ret: usize) -> &'static str {
        if let Some(&r) = self.roles.get(&ret) {
            return r;
        }
        let r = self.role_uncached(ret);
        self.roles.insert(ret, r);
        r
    }

    fn role_uncached(&mut self, ret: usize) -> &'static str {
        let pc = ret.saturating_sub(1);
        let Some((path, bias)) = module_of(pc) else {
            return "";
        };
        let Some(table) = self
            .modules
            .entry(path)
            .or_insert_with_key(|p| read_roles(p))
        else {
            return "";
        };
        let probe = (pc - bias) as u64;
        let i = table.partition_point(|e| e.0 <= probe);
        match i.checked_sub(1).map(|i| table[i]) {
            Some((_, end, role)) if probe < end => role,
            _ => "",
        }
    }
}

/// Functions as `(start, end, role)`, sorted; see [`SymbolTables::role`].
type Roles = Vec<(u64, u64, &'static str)>;

/// The role-carrying functions of the symbol table of the module at `path`
/// (`""`: the main program), sorted by start address.
fn read_roles(path: &str) -> Option<Roles> {
    let file = if path.is_empty() {
        std::env::current_exe()
            .and_then(std::fs::File::open)
            .or_else(|_| std::fs::File::open("/proc/self/exe"))
    } else {
        std::fs::File::open(path)
    }
    .ok()?;
    // A binary rewritten in place while we read it could give wrong names
    // (as for any reader), not unsafety: our own text is mapped apart.
    // SAFETY: the file is mapped read-only and only read while the map lives.
    let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    use object::{Object, ObjectSymbol, SymbolKind};
    let obj = object::File::parse(&*map).ok()?;
    let interesting = |raw: &[u8]| {
        [&b"memprof"[..], b"backtrace", b"__r", b"alloc", b"_Unwind_"]
            .iter()
            .any(|w| raw.windows(w.len()).any(|x| x == *w))
    };
    let mut out: Roles = obj
        .symbols()
        .chain(obj.dynamic_symbols())
        .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0)
        .filter_map(|s| {
            let raw = s.name_bytes().ok()?;
            if !interesting(raw) {
                return None;
            }
            let name = format!("{:#}", backtrace::SymbolName::new(raw));
            let role = if is_alloc_shim(&name) {
                "__rust_alloc"
            } else if is_alloc_plumbing(&name) {
                "alloc::alloc::alloc"
            } else if is_profiler_fn(&name) {
                PROFILER_FRAME
            } else {
                return None;
            };
            Some((s.address(), s.address() + s.size(), role))
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    Some(out)
}

/// Looks up the call instruction before return address `ret` with the
/// `backtrace` crate, so the call's line is reported rather than the line
/// after it. (`backtrace::resolve` itself subtracts 1 from the address it
/// is given, as for an IP.)
fn resolve_with_backtrace(ret: usize) -> Vec<Sym> {
    let mut out = Vec::new();
    backtrace::resolve(ret as *mut c_void, |s| {
        let (name, system_name) = match s.name() {
            Some(n) => (
                format!("{n:#}"),
                String::from_utf8_lossy(n.as_bytes()).into_owned(),
            ),
            None => (UNKNOWN.to_owned(), String::new()),
        };
        out.push(Sym {
            name,
            system_name,
            file: s.filename().map(|p| p.display().to_string()),
            line: s.lineno(),
        });
    });
    out
}

/// The sections `addr2line` reads, as gimli reads them.
type Reader<'a> = gimli::EndianSlice<'a, gimli::RunTimeEndian>;

/// Opens the file of the module at `path` (`""`: the main program, by its
/// path, else through `/proc/self/exe`, which works for a deleted binary
/// too).
fn open_file(path: &str) -> Option<std::fs::File> {
    if !path.is_empty() {
        return std::fs::File::open(path).ok();
    }
    std::env::current_exe()
        .and_then(std::fs::File::open)
        .or_else(|_| std::fs::File::open("/proc/self/exe"))
        .ok()
}

/// Resolves `probes` (addresses relative to the module's load bias, of the
/// call instructions) in the module at `path`: one list of frames per
/// probe, innermost first. `None` when the file cannot be read.
///
/// The file is mapped and its compilation units are read a few at a time
/// ([`UnitIndex`]): `addr2line` is given a copy of `.debug_info` that holds
/// only the units the probes fall in (found through `.debug_aranges`) and
/// those they refer to, its context is dropped when they are resolved, and
/// the pages of the file that were read leave the RSS
/// (`MADV_DONTNEED`). A module whose units cannot be split this way (no
/// `.debug_aranges`, code outside them, split DWARF) is read whole by
/// `addr2line`'s own loader, as before.
fn resolve_in_module(path: &str, probes: &[u64]) -> Option<Vec<Vec<Sym>>> {
    LOADS.fetch_add(1, Ordering::Relaxed);
    let file = open_file(path)?;
    // A binary rewritten in place while we read it could give wrong names
    // (as for any reader), not unsafety: our own text is mapped apart.
    // SAFETY: the file is mapped read-only and only read while the map lives.
    let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    // No readahead: a write reads a few scattered parts of the file.
    let _ = map.advise(memmap2::Advice::Random);
    let release = || {
        // SAFETY: a read-only shared mapping of a file: dropping its pages
        // only makes the next read fault them in again from the file; no
        // contents are lost, and every slice into the map stays valid.
        let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
    };
    let out = (|| {
        let obj = object::File::parse(&*map).ok()?;
        let endian = if object::Object::is_little_endian(&obj) {
            gimli::RunTimeEndian::Little
        } else {
            gimli::RunTimeEndian::Big
        };
        // Decompressed copies of compressed sections live here.
        let mut data: Vec<(gimli::SectionId, std::borrow::Cow<'_, [u8]>)> = Vec::new();
        use gimli::SectionId as S;
        for id in [
            S::DebugAbbrev,
            S::DebugAddr,
            S::DebugAranges,
            S::DebugInfo,
            S::DebugLine,
            S::DebugLineStr,
            S::DebugLoc,
            S::DebugLocLists,
            S::DebugRanges,
            S::DebugRngLists,
            S::DebugStr,
            S::DebugStrOffsets,
            S::DebugTypes,
        ] {
            use object::{Object, ObjectSection};
            if let Some(d) = obj
                .section_by_name(id.name())
                .and_then(|s| s.uncompressed_data().ok())
            {
                data.push((id, d));
            }
        }
        let section = |id: gimli::SectionId| -> Reader<'_> {
            let d = data
                .iter()
                .find(|s| s.0 == id)
                .map_or(&[][..], |s| &s.1[..]);
            gimli::EndianSlice::new(d, endian)
        };
        let symbols = object::Object::symbol_map(&obj);
        let symbol = |probe: u64| symbols.containing(probe).map(|s| s.name());
        let dwarf = gimli::Dwarf::load(|id| Ok::<_, ()>(section(id))).ok()?;
        let index = UnitIndex::new(&dwarf, &release);
        release();
        let Some(index) = index else {
            return resolve_whole(path, probes);
        };
        let mut out = vec![Vec::new(); probes.len()];
        // Probes by the units that may hold them, in the order of the units.
        let mut groups: HashMap<Vec<usize>, Vec<usize>> = HashMap::new();
        for (i, &probe) in probes.iter().enumerate() {
            let units = index.units_at(probe);
            if units.is_empty() {
                // Outside every unit: the symbol table names it.
                out[i] = syms_at(None::<addr2line::FrameIter<'_, Reader<'_>>>, || {
                    symbol(probe)
                });
            } else {
                groups.entry(units).or_default().push(i);
            }
        }
        let mut groups: Vec<_> = groups.into_iter().collect();
        groups.sort_unstable();
        for (units, members) in groups {
            let resolved = (|| {
                let info = index.extract(&dwarf, &units);
                // The units were copied: their pages in the file can go.
                release();
                let info = info?;
                let mut part = gimli::Dwarf::load(|id| Ok::<_, ()>(section(id))).ok()?;
                part.debug_info = gimli::DebugInfo::new(&info, endian);
                let ctx = addr2line::Context::from_dwarf(part).ok()?;
                let mut syms = Vec::with_capacity(members.len());
                for &i in &members {
                    let frames = match ctx.find_frames(probes[i]) {
                        addr2line::LookupResult::Output(r) => r.ok(),
                        // Split DWARF: `addr2line`'s loader finds the
                        // other files.
                        addr2line::LookupResult::Load { .. } => return None,
                    };
                    syms.push(syms_at(frames, || symbol(probes[i])));
                }
                Some(syms)
            })();
            release();
            let Some(syms) = resolved else {
                return resolve_whole(path, probes);
            };
            for (i, s) in members.into_iter().zip(syms) {
                out[i] = s;
            }
        }
        Some(out)
    })();
    drop(map);
    out
}

/// [`resolve_in_module`] with `addr2line`'s loader, which reads every
/// compilation unit of the module up front (and split DWARF).
fn resolve_whole(path: &str, probes: &[u64]) -> Option<Vec<Vec<Sym>>> {
    let loader = if path.is_empty() {
        std::env::current_exe()
            .ok()
            .and_then(|exe| addr2line::Loader::new(exe).ok())
            .or_else(|| addr2line::Loader::new("/proc/self/exe").ok())
    } else {
        addr2line::Loader::new(path).ok()
    }?;
    Some(
        probes
            .iter()
            .map(|&probe| syms_at(loader.find_frames(probe).ok(), || loader.find_symbol(probe)))
            .collect(),
    )
}

/// The frames `addr2line` found at one address, innermost first, named
/// from the symbol table (`symbol`) where the debug info has no name for
/// the outermost one or knows nothing of the address.
fn syms_at<'a, R: gimli::Reader>(
    frames: Option<addr2line::FrameIter<'_, R>>,
    symbol: impl Fn() -> Option<&'a str>,
) -> Vec<Sym> {
    let mut out = Vec::new();
    if let Some(mut frames) = frames {
        let mut found = Vec::new();
        while let Ok(Some(f)) = frames.next() {
            let loc = f.location.as_ref();
            let raw = f.function.as_ref().and_then(|n| n.raw_name().ok());
            found.push((
                raw.map(|r| r.into_owned()),
                loc.and_then(|l| l.file),
                loc.and_then(|l| l.line),
            ));
        }
        let last = found.len().saturating_sub(1);
        for (i, (raw, file, line)) in found.into_iter().enumerate() {
            // A frame without a name in the debug info: the symbol table
            // names the outermost one.
            let raw = raw.or_else(|| (i == last).then(&symbol)?.map(str::to_owned));
            if let Some(raw) = raw {
                out.push(sym(&raw, file, line));
            }
        }
    }
    if out.is_empty() {
        if let Some(name) = symbol() {
            out.push(sym(name, None, None));
        }
    }
    // A shared library without debug info or `.symtab` (Debian's libc)
    // names its functions only in `.dynsym`, which `addr2line` does not
    // read: its frames stay unnamed (`[libc.so.6]` in `go tool pprof`).
    // Handing them to `backtrace` instead made every write load libc's
    // separate debug info whole (libc6-dbg), seconds per write.
    out
}

/// Where a module's compilation units are in `.debug_info`, and which
/// addresses each holds (`.debug_aranges`): what lets [`resolve_in_module`]
/// give `addr2line` a few units at a time.
struct UnitIndex {
    /// `(start, end, unit)`: address ranges sorted by start.
    ranges: Vec<(u64, u64, usize)>,
    /// Each unit's span of `.debug_info`, in order.
    units: Vec<(usize, usize)>,
}

impl UnitIndex {
    /// `None` when the units cannot be taken apart: no `.debug_aranges`,
    /// or a unit with code that `.debug_aranges` leaves out. Calls
    /// `release` now and then, to drop the file's pages read so far.
    fn new(dwarf: &gimli::Dwarf<Reader<'_>>, release: &dyn Fn()) -> Option<Self> {
        let mut units = Vec::new();
        let mut headers = dwarf.units();
        while let Ok(Some(h)) = headers.next() {
            if units.len() % 64 == 63 {
                release();
            }
            let start = h.offset().0;
            units.push((start, start + h.length_including_self(), h));
        }
        let spans: Vec<(usize, usize)> = units.iter().map(|u| (u.0, u.1)).collect();
        let unit_of = |off: usize| {
            let i = spans.partition_point(|s| s.0 <= off).checked_sub(1)?;
            (off < spans[i].1).then_some(i)
        };
        let mut ranges = Vec::new();
        let mut in_aranges = vec![false; units.len()];
        let mut sets = dwarf.debug_aranges.headers();
        while let Ok(Some(set)) = sets.next() {
            let u = unit_of(set.debug_info_offset().0)?;
            in_aranges[u] = true;
            let mut entries = set.entries();
            while let Some(e) = entries.next().transpose() {
                // Bad entries are skipped, as `addr2line` does.
                let Ok(e) = e else { continue };
                if e.length() != 0 {
                    ranges.push((e.range().begin, e.range().end, u));
                }
            }
        }
        if ranges.is_empty() {
            return None;
        }
        // A unit left out of `.debug_aranges` must have no code: its root
        // has no address attribute (what `addr2line` would look at).
        let mut tables: HashMap<usize, gimli::Abbreviations> = HashMap::new();
        for (n, (_, _, h)) in units.iter().enumerate() {
            if in_aranges[n] || matches!(h.type_(), gimli::UnitType::Type { .. }) {
                continue;
            }
            if n % 64 == 0 {
                release();
            }
            let abbrevs = match tables.entry(h.debug_abbrev_offset().0) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(h.abbreviations(&dwarf.debug_abbrev).ok()?)
                }
            };
            let mut entries = h.entries_raw(abbrevs, None).ok()?;
            let Some(root) = entries.read_abbreviation().ok()? else {
                continue;
            };
            let has_code = root.attributes().iter().any(|a| {
                matches!(
                    a.name(),
                    gimli::DW_AT_low_pc | gimli::DW_AT_high_pc | gimli::DW_AT_ranges
                )
            });
            if has_code {
                return None;
            }
        }
        ranges.sort_unstable();
        Some(UnitIndex {
            ranges,
            units: spans,
        })
    }

    /// The units whose ranges hold `probe`, in order.
    fn units_at(&self, probe: u64) -> Vec<usize> {
        let end = self.ranges.partition_point(|r| r.0 <= probe);
        let mut out: Vec<usize> = self.ranges[..end]
            .iter()
            .filter(|r| probe < r.1)
            .map(|r| r.2)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// A copy of `.debug_info` that holds `units` and every unit they refer
    /// to (`DW_FORM_ref_addr`, as an inlined function's origin in another
    /// unit after LTO), each at its own offset, and in between one unit
    /// header per gap, which `addr2line` skips (its abbreviations cannot be
    /// read). The copy is an anonymous mapping: untouched, the gaps cost no
    /// memory.
    fn extract(&self, dwarf: &gimli::Dwarf<Reader<'_>>, units: &[usize]) -> Option<memmap2::Mmap> {
        use gimli::{Reader as _, Section};
        let mut keep: Vec<usize> = units.to_vec();
        let mut todo = keep.clone();
        while let Some(u) = todo.pop() {
            let (start, end) = self.units[u];
            let h = dwarf
                .debug_info
                .header_from_offset(gimli::DebugInfoOffset(start))
                .ok()?;
            let abbrevs = dwarf.abbreviations(&h).ok()?;
            let mut entries = h.entries_raw(&abbrevs, None).ok()?;
            while !entries.is_empty() {
                let Some(abbrev) = entries.read_abbreviation().ok()? else {
                    continue;
                };
                for spec in abbrev.attributes() {
                    let attr = entries.read_attribute(*spec).ok()?;
                    if let gimli::AttributeValue::DebugInfoRef(r) = attr.value() {
                        if (start..end).contains(&r.0) {
                            continue;
                        }
                        let i = self.units.partition_point(|s| s.0 <= r.0).checked_sub(1)?;
                        if !keep.contains(&i) {
                            keep.push(i);
                            todo.push(i);
                        }
                    }
                }
            }
        }
        keep.sort_unstable();
        let first = *keep.first()?;
        let len = self.units[*keep.last()?].1;
        let info = dwarf.debug_info.reader().slice();
        let address_size = dwarf
            .debug_info
            .header_from_offset(gimli::DebugInfoOffset(self.units[first].0))
            .ok()?
            .address_size();
        let big = matches!(
            dwarf.debug_info.reader().endian(),
            gimli::RunTimeEndian::Big
        );
        let mut copy = memmap2::MmapMut::map_anon(len).ok()?;
        let mut at = 0;
        for &u in &keep {
            let (start, end) = self.units[u];
            if start > at {
                // A DWARF 4 unit header over the gap, whose abbreviations
                // are past the end of `.debug_abbrev`: `addr2line` fails to
                // read it and skips it, without reading the gap.
                let gap = start - at;
                if gap < 12 {
                    return None;
                }
                let abbrev_offset = u32::MAX;
                let length = u32::try_from(gap - 4).ok()?;
                let mut header = Vec::with_capacity(11);
                let (l, v, a) = if big {
                    (
                        length.to_be_bytes(),
                        4u16.to_be_bytes(),
                        abbrev_offset.to_be_bytes(),
                    )
                } else {
                    (
                        length.to_le_bytes(),
                        4u16.to_le_bytes(),
                        abbrev_offset.to_le_bytes(),
                    )
                };
                header.extend_from_slice(&l);
                header.extend_from_slice(&v);
                header.extend_from_slice(&a);
                header.push(address_size);
                copy[at..at + header.len()].copy_from_slice(&header);
            }
            copy[start..end].copy_from_slice(info.get(start..end)?);
            at = end;
        }
        copy.make_read_only().ok()
    }
}

/// Gives the memory a symbolizer freed back to the system, if one loaded
/// debug info since the last call: glibc keeps freed heap pages mapped
/// (only the top of the heap is trimmed by itself), so the tens of MiB a
/// cold symbolization allocated would stay in the RSS. Other allocators
/// give freed pages back by their own rules (jemalloc after its decay
/// time). Called at the end of a write, outside any memprof lock.
pub(crate) fn give_back_memory() {
    if LOADED_SINCE_TRIM.swap(false, Ordering::Relaxed) {
        trim_c_heap();
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_c_heap() {
    // SAFETY: `malloc_trim` takes glibc's arena locks itself and only
    // returns free pages to the kernel; it touches no memory in use.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_c_heap() {}

fn sym(raw: &str, file: Option<&str>, line: Option<u32>) -> Sym {
    Sym {
        name: format!("{:#}", backtrace::SymbolName::new(raw.as_bytes())),
        system_name: raw.to_owned(),
        file: file.map(str::to_owned),
        line,
    }
}

/// The path (`""` for the main program) and load bias of the loaded module
/// whose segments hold `pc`.
fn module_of(pc: usize) -> Option<(String, usize)> {
    struct Search {
        pc: usize,
        found: Option<(String, usize)>,
    }
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the `Search` below and `info` is valid for
        // this call, with `dlpi_phnum` headers at `dlpi_phdr`.
        let (search, info) = unsafe { (&mut *data.cast::<Search>(), &*info) };
        if info.dlpi_phdr.is_null() {
            return 0;
        }
        // SAFETY: as above.
        let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        let bias = info.dlpi_addr as usize;
        let holds = phdrs.iter().any(|p| {
            p.p_type == libc::PT_LOAD
                && (bias + p.p_vaddr as usize..bias + (p.p_vaddr + p.p_memsz) as usize)
                    .contains(&search.pc)
        });
        if !holds {
            return 0;
        }
        let name = if info.dlpi_name.is_null() {
            String::new()
        } else {
            // SAFETY: a non-null `dlpi_name` is a NUL-terminated string.
            let name = unsafe { std::ffi::CStr::from_ptr(info.dlpi_name) };
            name.to_string_lossy().into_owned()
        };
        search.found = Some((name, bias));
        1
    }
    let mut search = Search { pc, found: None };
    // SAFETY: `visit` matches the callback type and only touches `search`.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&raw mut search).cast()) };
    search.found
}

/// How many leading (leaf-side) frames of `names` belong to the profiler and
/// are hidden. `names` are the demangled names of a stack, leaf first, with
/// inlined frames expanded. The rule:
///
/// 1. If the stack goes through the global allocator's entry points (the
///    compiler's shims `__rust_alloc`, `__rust_alloc_zeroed`,
///    `__rust_realloc`, `__rust_dealloc`, also as `__rustc::__rust_*`, and
///    the older `__rg_*` / `__rdl_*`), everything up to and including the
///    leaf-most run of shim frames is hidden: that is `Sampled`, the
///    sampler, the unwinder and whatever sat between them. The caller's
///    side stays, so `alloc::alloc::alloc`, `alloc::raw_vec::finish_grow`
///    and `Vec::push` still say which container grew.
/// 2. Otherwise (a stack captured without the shims, as in this crate's unit
///    tests), the leading frames of memprof itself (outside its `tests`
///    modules), of the `backtrace` crate and of the libgcc unwinder
///    (`_Unwind_*`) are hidden.
/// 3. Then the standard library's allocation plumbing right above that
///    ([`is_alloc_plumbing`]: `alloc::alloc::realloc`,
///    `Global::grow_impl`, ...) is hidden too, as Go hides
///    `runtime.mallocgc`, so a profile's flat sites are `RawVec` growth,
///    `Box::new`, `String::push_str` and the caller's own functions.
/// 4. If that would hide every frame, nothing is hidden.
///
/// Rule 1 matches on exact names, so it also works with the short names of
/// `debug = "line-tables-only"` builds, where rule 2's paths are missing.
pub(crate) fn profiler_frames(names: &[&str]) -> usize {
    let cut = match names.iter().position(|n| is_alloc_shim(n)) {
        Some(first) => {
            first
                + names[first..]
                    .iter()
                    .take_while(|n| is_alloc_shim(n))
                    .count()
        }
        None => names.iter().take_while(|n| is_profiler_fn(n)).count(),
    };
    let cut = cut
        + names[cut..]
            .iter()
            .take_while(|n| is_alloc_plumbing(n))
            .count();
    if cut == names.len() {
        0
    } else {
        cut
    }
}

/// The global allocator's entry points, as the compiler names them.
fn is_alloc_shim(name: &str) -> bool {
    let name = name.strip_prefix("__rustc::").unwrap_or(name);
    matches!(
        name,
        "__rust_alloc" | "__rust_alloc_zeroed" | "__rust_realloc" | "__rust_dealloc"
    ) || name.starts_with("__rg_")
        || name.starts_with("__rdl_")
}

/// The standard library's allocation plumbing between a container and the
/// global allocator: the free functions of `alloc::alloc` (`alloc`,
/// `alloc_zeroed`, `realloc`, `dealloc`, `exchange_malloc`) and the
/// methods of `alloc::alloc::Global` (`alloc_impl`, `grow_impl`,
/// `<Global as Allocator>::grow`, ...), and the allocator shims. Hidden at
/// the leaf end of every stack we write, and by the viewer when it reads a
/// profile that still has them. `alloc::raw_vec`, `Box::new` and the other
/// containers stay: they say what grew.
pub(crate) fn is_alloc_plumbing(name: &str) -> bool {
    name.starts_with("alloc::alloc::")
        || name.starts_with("<alloc::alloc::Global>::")
        || name.starts_with("<alloc::alloc::Global as ")
        || is_alloc_shim(name)
}

/// Stands for a frame recognised by its source file (below), for rule 2.
const PROFILER_FRAME: &str = "memprof::<frame>";

/// The names rule 2 sees for the frames of one address, innermost first.
/// Code inlined into `Sampled`'s own methods (an `Option::map` in
/// `realloc_move`, say) is the profiler's too, whatever its source file:
/// without this, a `realloc` whose shim was a tail call kept
/// `realloc_move` on top of its stack.
fn frame_names(syms: &[Sym]) -> impl Iterator<Item = &str> {
    let in_sampled = syms
        .last()
        .is_some_and(|s| s.name.contains("memprof::alloc::Sampled"));
    syms.iter().map(move |s| {
        if in_sampled || is_profiler_file(s) {
            PROFILER_FRAME
        } else {
            s.name.as_str()
        }
    })
}

/// A frame whose source file is memprof's own `src/` or the `backtrace`
/// crate's. Builds with `debug = "line-tables-only"` give inlined frames
/// short names (`alloc_slow`, `trace`) that rule 2 cannot place, and the
/// shim of rule 1 can be gone from the stack when `__rust_alloc` tail-calls
/// the slow path; the file still tells.
fn is_profiler_file(s: &Sym) -> bool {
    let Some(file) = s.file.as_deref() else {
        return false;
    };
    let ours = file.starts_with(concat!(env!("CARGO_MANIFEST_DIR"), "/src/"))
        && !s.name.contains("::tests::");
    ours || (file.contains("/backtrace-") && file.contains("/src/backtrace/"))
}

/// A function of the profiler itself, of `backtrace`, or of the unwinder.
fn is_profiler_fn(name: &str) -> bool {
    // `krate::f`, `<krate::T as Trait>::f` or `<T as krate::Trait>::f`.
    let in_crate = |path: &str, as_trait: &str| {
        name.strip_prefix('<').unwrap_or(name).starts_with(path) || name.contains(as_trait)
    };
    (in_crate("memprof::", " as memprof::") && !name.contains("::tests::"))
        || in_crate("backtrace::", " as backtrace::")
        || name.starts_with("_Unwind_")
}

/// Symbolizes one stack for [`Record::frames`](crate::Record::frames):
/// trimmed, inlined frames expanded, innermost first.
pub(crate) fn frames_of(stack: &[usize]) -> Vec<Frame> {
    frames_with(&mut Symbolizer::new(), stack)
}

/// [`frames_of`] with a symbolizer shared by many stacks (its cache of
/// resolved addresses serves them all).
pub(crate) fn frames_with(sym: &mut Symbolizer, stack: &[usize]) -> Vec<Frame> {
    let keys = sym.trim(stack);
    let mut out = Vec::new();
    for key in keys {
        let syms = sym.frames(key);
        if syms.is_empty() {
            out.push(Frame {
                function: UNKNOWN.to_owned(),
                file: None,
                line: None,
                address: key.pc(),
                inlined: false,
            });
        }
        for (i, s) in syms.iter().enumerate() {
            out.push(Frame {
                function: s.name.clone(),
                file: s.file.clone(),
                line: s.line,
                address: key.pc(),
                inlined: i + 1 < syms.len(),
            });
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn code_inlined_into_sampled_is_the_profilers_but_not_into_the_api() {
        let at = |inner: &str, file: &str, outer: &str| {
            vec![
                sym(inner, Some(file), Some(1)),
                sym(outer, Some("/elsewhere/x.rs"), Some(2)),
            ]
        };
        let realloc = at(
            "core::option::Option<T>::map",
            "/rustc/x/library/core/src/option.rs",
            "memprof::alloc::Sampled<A>::realloc_move",
        );
        assert!(frame_names(&realloc).all(|n| n == PROFILER_FRAME));
        // A user's closure inlined into `measure` stays the user's.
        let scope = at(
            "myapp::work::{{closure}}",
            "/app/src/work.rs",
            "memprof::testing::measure",
        );
        assert_eq!(
            frame_names(&scope).collect::<Vec<_>>(),
            ["myapp::work::{{closure}}", "memprof::testing::measure"]
        );
    }

    /// Return addresses of the current stack, leaf first, as the sampler
    /// would capture them (the `backtrace` frames included).
    #[inline(never)]
    pub(crate) fn capture() -> Vec<usize> {
        let mut stack = Vec::new();
        backtrace::trace(|f| {
            stack.push(f.ip() as usize);
            true
        });
        stack
    }

    /// A known site: `outer_site` with `inlined_site` inlined into it.
    /// Returns the stack and the lines of the two calls.
    #[inline(never)]
    pub(crate) fn outer_site() -> (Vec<usize>, u32, u32) {
        let ((stack, inner), outer) = (std::hint::black_box(inlined_site()), line!());
        (stack, outer, inner)
    }

    #[inline(always)]
    fn inlined_site() -> (Vec<usize>, u32) {
        (capture(), line!())
    }

    /// A second known site, distinct from `outer_site`.
    #[inline(never)]
    pub(crate) fn other_site() -> Vec<usize> {
        std::hint::black_box(capture())
    }

    #[test]
    fn trimming_hides_everything_up_to_the_allocator_shim() {
        let names = [
            "backtrace::backtrace::trace",
            "memprof::stack::capture",
            "std::thread::local::LocalKey<T>::try_with",
            "<memprof::Sampled<A> as core::alloc::global::GlobalAlloc>::alloc",
            "__rustc::__rust_alloc",
            "alloc::alloc::alloc",
            "alloc::raw_vec::finish_grow",
            "myapp::load",
        ];
        // ... and `alloc::alloc::alloc` above the shim: plumbing.
        assert_eq!(profiler_frames(&names), 6);
    }

    #[test]
    fn trimming_hides_the_allocation_plumbing_above_the_shim() {
        let names = [
            "memprof::stack::capture",
            "__rustc::__rust_realloc",
            "alloc::alloc::realloc",
            "<alloc::alloc::Global>::grow_impl_runtime",
            "<alloc::alloc::Global>::grow_impl",
            "<alloc::alloc::Global as core::alloc::Allocator>::grow",
            "alloc::raw_vec::RawVecInner<A>::finish_grow",
            "<alloc::string::String>::push_str",
            "myapp::load",
        ];
        assert_eq!(
            names[profiler_frames(&names)],
            "alloc::raw_vec::RawVecInner<A>::finish_grow"
        );
        let boxed = [
            "__rust_alloc",
            "alloc::alloc::alloc",
            "<alloc::alloc::Global>::alloc_impl",
            "alloc::alloc::exchange_malloc",
            "<alloc::boxed::Box<T>>::new",
            "myapp::load",
        ];
        assert_eq!(
            boxed[profiler_frames(&boxed)],
            "<alloc::boxed::Box<T>>::new"
        );
        // A stack of nothing but plumbing keeps everything (rule 4).
        assert_eq!(profiler_frames(&["__rust_alloc", "alloc::alloc::alloc"]), 0);
        // A user's own `alloc` module is not the standard library's.
        assert!(!is_alloc_plumbing("myapp::alloc::alloc"));
    }

    #[test]
    fn trimming_works_with_short_line_tables_only_names() {
        let names = [
            "trace",
            "capture",
            "alloc<std::alloc::System>",
            "__rust_alloc",
            "alloc",
            "user",
        ];
        assert_eq!(profiler_frames(&names), 4);
        let old = ["capture", "__rg_alloc", "__rust_alloc", "user"];
        assert_eq!(profiler_frames(&old), 3);
    }

    #[test]
    fn trimming_without_shim_hides_leading_profiler_frames_only() {
        let names = [
            "_Unwind_Backtrace",
            "backtrace::backtrace::libunwind::trace",
            "<memprof::Sampled<A> as core::alloc::global::GlobalAlloc>::alloc",
            "memprof::symbolize::tests::capture",
            "memprof::encode::write",
        ];
        assert_eq!(profiler_frames(&names), 3);
        // Not a prefix match on the crate name, and root-side frames stay.
        let names = ["memprofiler::x", "memprof::a"];
        assert_eq!(profiler_frames(&names), 0);
        let names = [
            "<alloc::vec::Vec<u8> as memprof::Foo>::f",
            "user",
            "memprof::b",
        ];
        assert_eq!(profiler_frames(&names), 1);
    }

    #[test]
    fn trimming_keeps_everything_rather_than_nothing() {
        assert_eq!(profiler_frames(&["memprof::a", "backtrace::b"]), 0);
        assert_eq!(profiler_frames(&["memprof::a", "__rust_alloc"]), 0);
        assert_eq!(profiler_frames(&[]), 0);
    }

    #[test]
    fn symbolizes_known_function_with_file_line_and_inlined_frame() {
        let (stack, outer_line, inner_line) = outer_site();
        let mut sym = Symbolizer::new();
        let keys = sym.trim(&stack);
        // The leaf after trimming is `capture` itself: the backtrace frames
        // are gone.
        let leaf = sym.frames(keys[0]);
        assert!(
            leaf[0].name.ends_with("symbolize::tests::capture"),
            "leaf frame: {leaf:?}"
        );
        let site = keys
            .iter()
            .map(|&k| sym.frames(k))
            .find(|f| f.iter().any(|s| s.name.ends_with("tests::outer_site")))
            .expect("outer_site not found in the stack");
        let names: Vec<&str> = site.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            site.len(),
            2,
            "expected inlined_site inlined into outer_site: {names:?}"
        );
        assert!(names[0].ends_with("tests::inlined_site"), "{names:?}");
        assert!(names[1].ends_with("tests::outer_site"), "{names:?}");
        assert_eq!(site[0].line, Some(inner_line));
        assert_eq!(site[1].line, Some(outer_line));
        for s in site {
            assert!(
                s.file.as_deref().unwrap().ends_with("src/symbolize.rs"),
                "{s:?}"
            );
            assert!(
                s.system_name.starts_with("_ZN") || s.system_name.starts_with("_R"),
                "{s:?}"
            );
            assert!(!s.name.contains("17h"), "hash suffix left in {}", s.name);
        }
    }

    #[test]
    fn frames_of_matches_trimmed_view() {
        let stack = other_site();
        let frames = frames_of(&stack);
        assert!(frames[0].function.ends_with("symbolize::tests::capture"));
        assert!(stack.contains(&(frames[0].address + 1)));
        let site = frames
            .iter()
            .find(|f| f.function.ends_with("tests::other_site"))
            .unwrap();
        assert!(!site.inlined);
        assert!(frames
            .iter()
            .all(|f| !f.function.starts_with("backtrace::")));
    }
}
