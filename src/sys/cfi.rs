//! The unwind rule of one code address, read from the DWARF CFI
//! (`.eh_frame`) of the module that holds it. This is the miss path of the
//! cached unwinder (`sys/dwarf.rs`); it runs once per distinct return
//! address, then the rule lives in the cache.
//!
//! The module is found with `dl_iterate_phdr`, and all reading happens
//! inside its callback: while the callback runs, the loader cannot unmap
//! the module, so `.eh_frame_hdr` and `.eh_frame` stay readable. The FDE is
//! found by binary search in `.eh_frame_hdr`'s table and its CFI program
//! evaluated up to the address by `gimli`, with rule storage on the stack:
//! no allocation, no lock of ours.
//!
//! A rule is a `u32` (see [`Rule`]): on x86-64 almost every frame of
//! compiled code unwinds as "CFA = rsp or rbp + offset, return address at
//! CFA - 8, rbp unchanged or saved at CFA - 8k", which packs into 32 bits.
//! Anything else (a CFA computed by a DWARF expression, as after stack
//! realignment or in a signal frame) is [`Rule::COMPLEX`], and the whole
//! stack goes to libgcc, which evaluates everything.

use gimli::{
    BaseAddresses, CfaRule, EhFrame, EhFrameHdr, NativeEndian, Pointer, Register, RegisterRule,
    UnwindContext, UnwindContextStorage, UnwindSection, UnwindTableRow, X86_64,
};

/// A packed unwind rule: bits 0..3 the kind, bits 3..11 the slot of the
/// saved rbp (0: rbp unchanged; k: saved at CFA - 8k), bits 11..32 the CFA
/// offset. Zero is not a rule (it marks an empty cache slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rule(pub(crate) u32);

pub(crate) const KIND_SP: u32 = 1;
pub(crate) const KIND_BP: u32 = 2;
pub(crate) const KIND_END: u32 = 3;
pub(crate) const KIND_NO_CFI: u32 = 4;
pub(crate) const KIND_COMPLEX: u32 = 5;

const MAX_OFFSET: u64 = (1 << 21) - 1;
const MAX_SLOT: i64 = 255;

impl Rule {
    /// The outermost frame: the return address is undefined (`_start`,
    /// `clone`); the stack is complete.
    pub(crate) const END: Rule = Rule(KIND_END);
    /// No unwind information covers the address (JIT code, a module
    /// without `.eh_frame`): the walk stops there and marks the stack cut.
    pub(crate) const NO_CFI: Rule = Rule(KIND_NO_CFI);
    /// CFI exists but does not fit a packed rule.
    pub(crate) const COMPLEX: Rule = Rule(KIND_COMPLEX);

    fn frame(from_rbp: bool, offset: u64, rbp_slot: u32) -> Rule {
        let kind = if from_rbp { KIND_BP } else { KIND_SP };
        Rule(kind | rbp_slot << 3 | (offset as u32) << 11)
    }

    #[inline(always)]
    pub(crate) fn kind(self) -> u32 {
        self.0 & 7
    }

    /// CFA offset from rsp or rbp.
    #[inline(always)]
    pub(crate) fn offset(self) -> usize {
        (self.0 >> 11) as usize
    }

    /// 0 when rbp is unchanged, else rbp is saved this many bytes below
    /// the CFA (8 × the slot: the slot's bits sit at bit 3, so masking
    /// them gives the bytes in one instruction on the walk's hot loop).
    #[inline(always)]
    pub(crate) fn rbp_save_bytes(self) -> usize {
        (self.0 & 0x7f8) as usize
    }
}

/// gimli's rule storage, in line and small: x86-64 code saves at most
/// the 6 callee-saved registers and the return address, and
/// `DW_CFA_remember_state` nests shallowly. Larger programs are an error,
/// which becomes [`Rule::COMPLEX`]. About 3 KiB of stack.
struct Small;

impl<T: gimli::ReaderOffset> UnwindContextStorage<T> for Small {
    type Rules = [(Register, RegisterRule<T>); 16];
    type Stack = [UnwindTableRow<T, Self>; 4];
}

/// The rule for the code at `pc` (an instruction address: for a return
/// address, pass the address minus one, inside the call instruction).
pub(crate) fn rule_for(pc: usize) -> Rule {
    if !cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        return Rule::COMPLEX;
    }
    let mut search = Search {
        pc,
        rule: Rule::NO_CFI,
    };
    // SAFETY: `found` matches the callback type, and `data` points to
    // `search`, which outlives the call.
    unsafe {
        libc::dl_iterate_phdr(Some(found), (&raw mut search).cast());
    }
    search.rule
}

struct Search {
    pc: usize,
    rule: Rule,
}

/// `dl_iterate_phdr` callback: returns 1 (stop) at the module holding the
/// address, after setting the rule.
unsafe extern "C" fn found(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: `data` is the `Search` passed by `rule_for`; `info` is valid
    // for this call, as the loader promises.
    let (search, info) = unsafe { (&mut *data.cast::<Search>(), &*info) };
    let Some(phdrs) = program_headers(info) else {
        return 0;
    };
    let bias = info.dlpi_addr as usize;
    let holds_pc = phdrs.iter().any(|p| {
        p.p_type == libc::PT_LOAD
            && p.p_flags & libc::PF_X != 0
            && (bias + p.p_vaddr as usize..bias + (p.p_vaddr + p.p_memsz) as usize)
                .contains(&search.pc)
    });
    if !holds_pc {
        return 0;
    }
    search.rule = module_rule(phdrs, bias, search.pc).unwrap_or(Rule::NO_CFI);
    1
}

fn program_headers(info: &libc::dl_phdr_info) -> Option<&[libc::Elf64_Phdr]> {
    if info.dlpi_phdr.is_null() {
        return None;
    }
    // SAFETY: the loader gives `dlpi_phnum` headers at `dlpi_phdr`, valid
    // while the callback runs.
    Some(unsafe { core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) })
}

/// The readable bytes from `addr` to the end of the loaded segment that
/// holds it, or `None` if no readable segment does.
fn segment_tail(phdrs: &[libc::Elf64_Phdr], bias: usize, addr: usize) -> Option<&'static [u8]> {
    let seg = phdrs.iter().find(|p| {
        p.p_type == libc::PT_LOAD
            && p.p_flags & libc::PF_R != 0
            && (bias + p.p_vaddr as usize..bias + (p.p_vaddr + p.p_filesz) as usize).contains(&addr)
    })?;
    let end = bias + (seg.p_vaddr + seg.p_filesz) as usize;
    // SAFETY: `addr..end` lies in a readable loaded segment of a module
    // that stays mapped while `dl_iterate_phdr` runs our callback; the
    // slice does not escape the callback (the 'static is never relied on).
    Some(unsafe { core::slice::from_raw_parts(addr as *const u8, end - addr) })
}

/// Reads the module's CFI for `pc`. `None` when there is none.
fn module_rule(phdrs: &[libc::Elf64_Phdr], bias: usize, pc: usize) -> Option<Rule> {
    let hdr_phdr = phdrs.iter().find(|p| p.p_type == libc::PT_GNU_EH_FRAME)?;
    let hdr_addr = bias + hdr_phdr.p_vaddr as usize;
    let hdr_bytes = segment_tail(phdrs, bias, hdr_addr)?;
    let bases = BaseAddresses::default().set_eh_frame_hdr(hdr_addr as u64);
    let hdr = EhFrameHdr::new(hdr_bytes, NativeEndian)
        .parse(&bases, 8)
        .ok()?;
    let Pointer::Direct(eh_frame_addr) = hdr.eh_frame_ptr() else {
        return None;
    };
    let eh_frame_bytes = segment_tail(phdrs, bias, eh_frame_addr as usize)?;
    let eh_frame = EhFrame::new(eh_frame_bytes, NativeEndian);
    let bases = bases.set_eh_frame(eh_frame_addr);
    let table = hdr.table()?;
    let fde = match table.fde_for_address(&eh_frame, &bases, pc as u64, EhFrame::cie_from_offset) {
        Ok(fde) => fde,
        Err(gimli::Error::NoUnwindInfoForAddress) => return None,
        Err(_) => return Some(Rule::COMPLEX),
    };
    if fde.cie().is_signal_trampoline() {
        return Some(Rule::COMPLEX);
    }
    let mut ctx = UnwindContext::<usize, Small>::new_in();
    match fde.unwind_info_for_address(&eh_frame, &bases, &mut ctx, pc as u64) {
        Ok(row) => Some(pack(row)),
        Err(_) => Some(Rule::COMPLEX),
    }
}

/// Packs a row of the CFI table, or says it does not fit.
fn pack<S: UnwindContextStorage<usize>>(row: &UnwindTableRow<usize, S>) -> Rule {
    match row.register(X86_64::RA) {
        Some(RegisterRule::Undefined) => return Rule::END,
        Some(RegisterRule::Offset(-8)) => {}
        _ => return Rule::COMPLEX,
    }
    let (from_rbp, offset) = match *row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } if offset >= 0 => {
            if register == X86_64::RSP {
                (false, offset as u64)
            } else if register == X86_64::RBP {
                (true, offset as u64)
            } else {
                return Rule::COMPLEX;
            }
        }
        _ => return Rule::COMPLEX,
    };
    // A CFA off the 8-byte grid never happens at a call on x86-64; ruling
    // it out lets the walk skip the alignment check on rsp-based frames.
    if !(8..=MAX_OFFSET).contains(&offset) || offset % 8 != 0 {
        return Rule::COMPLEX;
    }
    let slot = match row.register(X86_64::RBP) {
        None | Some(RegisterRule::SameValue) | Some(RegisterRule::Undefined) => 0,
        Some(RegisterRule::Offset(o)) if o < 0 && o % 8 == 0 && -o / 8 <= MAX_SLOT => {
            (-o / 8) as u32
        }
        _ => return Rule::COMPLEX,
    };
    Rule::frame(from_rbp, offset, slot)
}
