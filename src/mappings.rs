//! The executable mappings of this process, for pprof's `mapping` table:
//! address ranges from `/proc/self/maps`, build IDs from the loaded objects'
//! `NT_GNU_BUILD_ID` notes.
//!
//! Build IDs are read from memory (the notes of each object the dynamic
//! loader reports through `dl_iterate_phdr`), not from the files: that works
//! for deleted binaries and for the vDSO, and costs no file I/O.

use std::ffi::{c_int, c_void};

/// One executable mapping, as pprof wants it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mapping {
    pub(crate) start: u64,
    /// One past the last byte.
    pub(crate) limit: u64,
    pub(crate) offset: u64,
    /// The mapped file, " (deleted)" trimmed; `[vdso]` and the like as is.
    pub(crate) path: String,
    /// Lower-case hex GNU build ID, empty when the object has none.
    pub(crate) build_id: String,
}

/// The executable mappings of this process, the main binary's first, then
/// in address order. Empty if `/proc/self/maps` cannot be read.
pub(crate) fn current() -> Vec<Mapping> {
    let Ok(text) = std::fs::read_to_string("/proc/self/maps") else {
        return Vec::new();
    };
    let mut maps = parse_maps(&text);
    let objects = loaded_objects();
    for m in &mut maps {
        let found = objects.iter().find_map(|o| Some((o, o.segment(m)?)));
        if let Some((o, (start, end))) = found {
            m.build_id.clone_from(&o.build_id);
            narrow(m, start, end);
        }
    }
    // The main program is the first object the loader reports.
    if let Some(main) = objects.first() {
        maps.sort_by_key(|m| !main.contains(m));
    }
    maps
}

/// Parses `/proc/<pid>/maps` text, keeping executable mappings. Anonymous
/// executable memory (inode 0, no name: JIT code, huge-page text remnants)
/// is skipped; named pseudo-files such as `[vdso]` are kept, as Go does.
pub(crate) fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines().filter_map(parse_line).collect()
}

/// `start-limit perms offset dev inode   path`, fields separated by single
/// spaces and the path padded to a column (it may contain spaces itself).
fn parse_line(line: &str) -> Option<Mapping> {
    let mut fields = line.splitn(6, ' ');
    let (start, limit) = fields.next()?.split_once('-')?;
    let perms = fields.next()?;
    let offset = fields.next()?;
    let _dev = fields.next()?;
    let inode = fields.next()?;
    let path = fields.next().unwrap_or("").trim_start();
    if perms.as_bytes().get(2) != Some(&b'x') || (inode == "0" && path.is_empty()) {
        return None;
    }
    Some(Mapping {
        start: u64::from_str_radix(start, 16).ok()?,
        limit: u64::from_str_radix(limit, 16).ok()?,
        offset: u64::from_str_radix(offset, 16).ok()?,
        path: path.strip_suffix(" (deleted)").unwrap_or(path).to_owned(),
        build_id: String::new(),
    })
}

/// The program header type of this target's ELF class.
#[cfg(target_pointer_width = "64")]
type Phdr = libc::Elf64_Phdr;
#[cfg(target_pointer_width = "32")]
type Phdr = libc::Elf32_Phdr;

/// A loaded object: its executable segments and its build ID.
struct Object {
    text: Vec<(u64, u64)>,
    build_id: String,
}

impl Object {
    /// The executable segment that overlaps `m`.
    fn segment(&self, m: &Mapping) -> Option<(u64, u64)> {
        self.text
            .iter()
            .copied()
            .find(|&(s, e)| s < m.limit && m.start < e)
    }

    fn contains(&self, m: &Mapping) -> bool {
        self.segment(m).is_some()
    }
}

/// Narrows `m` from whole pages to the executable segment `[start, end)`
/// it holds, moving the file offset along. Both describe the same bytes,
/// but with the narrowed one `start` is the segment's load address, which
/// some readers assume: Go 1.19's `go tool pprof` takes `start - p_vaddr`
/// as the load bias, which is off by `p_vaddr % page` for binaries whose
/// text segment does not start on a page (lld's default layout).
fn narrow(m: &mut Mapping, start: u64, end: u64) {
    if start > m.start && start < m.limit {
        m.offset += start - m.start;
        m.start = start;
    }
    if end < m.limit && end > m.start {
        m.limit = end;
    }
}

/// Every object the dynamic loader has mapped, the main program first.
fn loaded_objects() -> Vec<Object> {
    let mut out: Vec<Object> = Vec::new();
    let data = (&mut out as *mut Vec<Object>).cast::<c_void>();
    // SAFETY: `collect_object` matches the callback type and only uses
    // `data` as the `&mut Vec<Object>` passed here, which outlives the call;
    // dl_iterate_phdr calls it synchronously, on this thread.
    unsafe { libc::dl_iterate_phdr(Some(collect_object), data) };
    out
}

/// `dl_iterate_phdr` callback: records the object described by `info`.
///
/// # Safety
/// `info` must point to a valid `dl_phdr_info` whose program headers
/// describe memory mapped in this process, and `data` must be a valid
/// `*mut Vec<Object>`: what `dl_iterate_phdr` guarantees for the call made
/// in [`loaded_objects`].
// `u64::from` widens the 32-bit ELF fields; on 64-bit targets it is a no-op.
#[allow(clippy::useless_conversion)]
unsafe extern "C" fn collect_object(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut c_void,
) -> c_int {
    // SAFETY: see the function's contract; the loader keeps the object
    // and its program headers alive for the duration of the callback.
    let (info, out) = unsafe { (&*info, &mut *data.cast::<Vec<Object>>()) };
    let phdrs: &[Phdr] = if info.dlpi_phdr.is_null() {
        &[]
    } else {
        // SAFETY: dlpi_phdr points to dlpi_phnum program headers.
        unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) }
    };
    let base = u64::from(info.dlpi_addr);
    let mut obj = Object {
        text: Vec::new(),
        build_id: String::new(),
    };
    for ph in phdrs {
        let start = base.wrapping_add(u64::from(ph.p_vaddr));
        if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_X != 0 {
            obj.text
                .push((start, start.wrapping_add(u64::from(ph.p_memsz))));
        } else if ph.p_type == libc::PT_NOTE && obj.build_id.is_empty() {
            // SAFETY: a PT_NOTE segment lies inside a loaded, readable PT_LOAD
            // segment of this object, `p_filesz` bytes long at its load address.
            let notes =
                unsafe { std::slice::from_raw_parts(start as *const u8, ph.p_filesz as usize) };
            obj.build_id = gnu_build_id(notes, u64::from(ph.p_align)).unwrap_or_default();
        }
    }
    out.push(obj);
    0
}

/// Finds the `NT_GNU_BUILD_ID` note in an ELF note segment and returns its
/// descriptor as lower-case hex. Each note is `namesz, descsz, type` (u32,
/// native endian), then the name and the descriptor, each padded to the
/// segment's alignment (4, or 8 for some segments).
fn gnu_build_id(mut notes: &[u8], align: u64) -> Option<String> {
    const NT_GNU_BUILD_ID: u32 = 3;
    let align = if align == 8 { 8 } else { 4 };
    let pad = |n: usize| n.div_ceil(align) * align;
    let word = |b: &[u8], i: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(b.get(i..i + 4)?.try_into().ok()?))
    };
    while notes.len() >= 12 {
        let namesz = word(notes, 0)? as usize;
        let descsz = word(notes, 4)? as usize;
        let kind = word(notes, 8)?;
        let desc_at = 12 + pad(namesz);
        let name = notes.get(12..12 + namesz)?;
        let desc = notes.get(desc_at..desc_at + descsz)?;
        if kind == NT_GNU_BUILD_ID && name == b"GNU\0" {
            return Some(desc.iter().map(|b| format!("{b:02x}")).collect());
        }
        notes = notes.get(desc_at + pad(descsz)..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_executable_file_mappings_only() {
        let text = "\
55d0c7a00000-55d0c7a5e000 r--p 00000000 fd:01 1234                       /usr/bin/prog
55d0c7a5e000-55d0c7b00000 r-xp 0005e000 fd:01 1234                       /usr/bin/prog (deleted)
7f0000000000-7f0000001000 rwxp 00000000 00:00 0 
7f0000100000-7f0000200000 r-xp 00010000 fd:01 99                         /lib/with space.so
7ffd1c5fe000-7ffd1c600000 r-xp 00000000 00:00 0                          [vdso]
";
        let maps = parse_maps(text);
        let paths: Vec<&str> = maps.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(paths, ["/usr/bin/prog", "/lib/with space.so", "[vdso]"]);
        assert_eq!(
            (maps[0].start, maps[0].limit, maps[0].offset),
            (0x55d0c7a5e000, 0x55d0c7b00000, 0x5e000)
        );
    }

    #[test]
    fn reads_note_with_padding() {
        // A foreign note first (name "ab", padded to 4), then the build ID.
        let mut notes = Vec::new();
        for (name, desc, kind) in [
            (&b"ab\0"[..], &[1u8, 2][..], 1u32),
            (b"GNU\0", &[0xde, 0xad, 0xbe], 3),
        ] {
            notes.extend((name.len() as u32).to_ne_bytes());
            notes.extend((desc.len() as u32).to_ne_bytes());
            notes.extend(kind.to_ne_bytes());
            notes.extend(name);
            notes.resize(notes.len().div_ceil(4) * 4, 0);
            notes.extend(desc);
            notes.resize(notes.len().div_ceil(4) * 4, 0);
        }
        assert_eq!(gnu_build_id(&notes, 4).as_deref(), Some("deadbe"));
        assert_eq!(gnu_build_id(&notes[..20], 4), None);
    }

    #[test]
    fn narrowing_keeps_start_and_offset_in_step() {
        let mut m = Mapping {
            start: 0x5000,
            limit: 0x9000,
            offset: 0x1000,
            path: String::new(),
            build_id: String::new(),
        };
        narrow(&mut m, 0x5bc0, 0x8a90);
        assert_eq!((m.start, m.limit, m.offset), (0x5bc0, 0x8a90, 0x1bc0));
        // A segment that covers the whole mapping changes nothing.
        narrow(&mut m, 0x5000, 0x9000);
        assert_eq!((m.start, m.limit, m.offset), (0x5bc0, 0x8a90, 0x1bc0));
    }

    #[test]
    fn own_mapping_comes_first_with_the_build_id_readelf_reports() {
        let maps = current();
        let exe = std::env::current_exe().unwrap();
        let here = own_mapping_comes_first_with_the_build_id_readelf_reports as *const () as u64;
        let m = maps
            .iter()
            .find(|m| m.start <= here && here < m.limit)
            .expect("no mapping holds this test's code");
        assert_eq!(m, &maps[0], "the main binary must come first");
        assert_eq!(std::path::Path::new(&m.path), exe.as_path());
        let out = std::process::Command::new("readelf")
            .arg("-n")
            .arg(&exe)
            .output()
            .expect("readelf (binutils) is needed for this test");
        let text = String::from_utf8_lossy(&out.stdout);
        let want = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Build ID: "))
            .expect("the test binary has no build ID note");
        assert_eq!(m.build_id, want.trim());
        assert!(maps
            .iter()
            .any(|m| m.path.contains("libc") && !m.build_id.is_empty()));
    }
}
