//! A classic BPF (cBPF) filter: the program format of `pcap_compile`,
//! checked once, then run over each frame a capture is offered.
//!
//! A program comes from a person through the ctl socket, so it is hostile
//! input: [`Program::new`] accepts at most [`MAX_INSNS`] instructions,
//! every one a known opcode, every jump forward and inside the program,
//! every scratch-memory index inside the 16 words, no constant division by
//! zero or shift of 32 or more, and a return as the last instruction (so
//! execution can neither loop nor fall off the end). The checked program
//! is kept as decoded operations with absolute jump targets, and
//! [`Program::run`] never panics: a load outside the frame, a division by
//! a zero `X` or an index overflow ends the run with 0 (the frame does not
//! match), as the kernel's and libpcap's interpreters do.
//!
//! It owns the instruction set's semantics only. It may not decide who
//! compiles programs (libpcap, on the `lingerd ctl` side) nor what a match
//! does (a copy, the tap's business). No extensions (the kernel's negative
//! "ancillary" offsets): such a load is outside any frame and so does not
//! match.

/// The most instructions a program may have (the kernel's `BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;
/// Scratch memory words (`BPF_MEMWORDS`).
pub const MEM_WORDS: usize = 16;

/// One instruction as `struct bpf_insn` holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    /// Opcode: class, size or operation, mode or source.
    pub code: u16,
    /// Jump offset if true (conditional jumps).
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// The constant operand.
    pub k: u32,
}

/// Why a program was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgramError {
    /// No instruction at all.
    Empty,
    /// More than [`MAX_INSNS`] instructions.
    TooLong(usize),
    /// Instruction `at` has an opcode this interpreter does not know.
    UnknownOpcode {
        /// Its index.
        at: usize,
        /// Its opcode.
        code: u16,
    },
    /// Instruction `at` jumps outside the program.
    JumpOutOfRange {
        /// Its index.
        at: usize,
    },
    /// Instruction `at` names a scratch word beyond [`MEM_WORDS`].
    MemoryOutOfRange {
        /// Its index.
        at: usize,
    },
    /// Instruction `at` divides by the constant 0, or shifts by 32 or more.
    BadConstant {
        /// Its index.
        at: usize,
    },
    /// The last instruction is not a return.
    NoReturnAtEnd,
}

impl std::fmt::Display for ProgramError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProgramError::Empty => write!(f, "the filter program is empty"),
            ProgramError::TooLong(n) => write!(
                f,
                "the filter program has {n} instructions, more than {MAX_INSNS}"
            ),
            ProgramError::UnknownOpcode { at, code } => {
                write!(f, "instruction {at}: unknown opcode {code:#06x}")
            }
            ProgramError::JumpOutOfRange { at } => {
                write!(f, "instruction {at}: jump outside the program")
            }
            ProgramError::MemoryOutOfRange { at } => write!(
                f,
                "instruction {at}: scratch memory index beyond {MEM_WORDS}"
            ),
            ProgramError::BadConstant { at } => write!(
                f,
                "instruction {at}: division by zero or shift by 32 or more"
            ),
            ProgramError::NoReturnAtEnd => {
                write!(f, "the filter program does not end with a return")
            }
        }
    }
}

impl std::error::Error for ProgramError {}

/// A load's width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Size {
    Word,
    Half,
    Byte,
}

/// An ALU operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Alu {
    Add,
    Sub,
    Mul,
    Div,
    Or,
    And,
    Lsh,
    Rsh,
    Mod,
    Xor,
}

/// A conditional jump's test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cond {
    Eq,
    Gt,
    Ge,
    Set,
}

/// The second operand of an ALU operation or a jump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Src {
    K(u32),
    X,
}

/// One checked instruction; jump targets are absolute indexes, all
/// forward and inside the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    LdImm(u32),
    LdAbs(Size, u32),
    LdInd(Size, u32),
    LdMem(usize),
    LdLen,
    LdxImm(u32),
    LdxMem(usize),
    LdxLen,
    LdxMsh(u32),
    St(usize),
    Stx(usize),
    Alu(Alu, Src),
    Neg,
    Ja(usize),
    Jmp {
        cond: Cond,
        src: Src,
        yes: usize,
        no: usize,
    },
    RetK(u32),
    RetA,
    RetX,
    Tax,
    Txa,
}

/// A checked cBPF program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    ops: Vec<Op>,
}

// Opcode fields (`<linux/filter.h>`, `<pcap/bpf.h>`).
const CLASS: u16 = 0x07;
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const STX: u16 = 0x03;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;

impl Program {
    /// Checks `insns` (see the module documentation) and keeps them
    /// decoded.
    pub fn new(insns: &[Insn]) -> Result<Program, ProgramError> {
        if insns.is_empty() {
            return Err(ProgramError::Empty);
        }
        if insns.len() > MAX_INSNS {
            return Err(ProgramError::TooLong(insns.len()));
        }
        let ops = insns
            .iter()
            .enumerate()
            .map(|(at, insn)| decode(at, insn, insns.len()))
            .collect::<Result<Vec<Op>, ProgramError>>()?;
        if !matches!(ops.last(), Some(Op::RetK(_) | Op::RetA | Op::RetX)) {
            return Err(ProgramError::NoReturnAtEnd);
        }
        Ok(Program { ops })
    }

    /// Instructions in the program.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether it has none (never, for a checked program).
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Runs the program over `frame`: how many of its bytes to keep, 0 for
    /// no match. `LD LEN` sees `frame.len()`.
    pub fn run(&self, frame: &[u8]) -> u32 {
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let (mut a, mut x) = (0u32, 0u32);
        let mut mem = [0u32; MEM_WORDS];
        let mut pc = 0usize;
        // Every jump goes forward, so this ends within `ops.len()` steps.
        loop {
            let Some(&op) = self.ops.get(pc) else {
                return 0;
            };
            pc += 1;
            match op {
                Op::LdImm(k) => a = k,
                Op::LdAbs(size, k) => match load(frame, size, Some(k)) {
                    Some(v) => a = v,
                    None => return 0,
                },
                Op::LdInd(size, k) => match load(frame, size, x.checked_add(k)) {
                    Some(v) => a = v,
                    None => return 0,
                },
                Op::LdMem(i) => a = mem.get(i).copied().unwrap_or(0),
                Op::LdLen => a = len,
                Op::LdxImm(k) => x = k,
                Op::LdxMem(i) => x = mem.get(i).copied().unwrap_or(0),
                Op::LdxLen => x = len,
                Op::LdxMsh(k) => match load(frame, Size::Byte, Some(k)) {
                    Some(v) => x = (v & 0x0f) << 2,
                    None => return 0,
                },
                Op::St(i) => {
                    if let Some(m) = mem.get_mut(i) {
                        *m = a;
                    }
                }
                Op::Stx(i) => {
                    if let Some(m) = mem.get_mut(i) {
                        *m = x;
                    }
                }
                Op::Alu(alu, src) => {
                    let b = match src {
                        Src::K(k) => k,
                        Src::X => x,
                    };
                    match alu_op(alu, a, b) {
                        Some(v) => a = v,
                        None => return 0,
                    }
                }
                Op::Neg => a = a.wrapping_neg(),
                Op::Ja(to) => pc = to,
                Op::Jmp { cond, src, yes, no } => {
                    let b = match src {
                        Src::K(k) => k,
                        Src::X => x,
                    };
                    let taken = match cond {
                        Cond::Eq => a == b,
                        Cond::Gt => a > b,
                        Cond::Ge => a >= b,
                        Cond::Set => a & b != 0,
                    };
                    pc = if taken { yes } else { no };
                }
                Op::RetK(k) => return k,
                Op::RetA => return a,
                Op::RetX => return x,
                Op::Tax => x = a,
                Op::Txa => a = x,
            }
        }
    }
}

/// `a OP b`; `None` for a division or remainder by zero (no match).
fn alu_op(alu: Alu, a: u32, b: u32) -> Option<u32> {
    Some(match alu {
        Alu::Add => a.wrapping_add(b),
        Alu::Sub => a.wrapping_sub(b),
        Alu::Mul => a.wrapping_mul(b),
        Alu::Div => a.checked_div(b)?,
        Alu::Mod => a.checked_rem(b)?,
        Alu::Or => a | b,
        Alu::And => a & b,
        Alu::Xor => a ^ b,
        // A shift by 32 or more (only possible with X) leaves nothing.
        Alu::Lsh => a.checked_shl(b).unwrap_or(0),
        Alu::Rsh => a.checked_shr(b).unwrap_or(0),
    })
}

/// A big-endian load of `size` at `at`; `None` when any byte of it lies
/// outside the frame (or `at` overflowed).
fn load(frame: &[u8], size: Size, at: Option<u32>) -> Option<u32> {
    let at = usize::try_from(at?).ok()?;
    let width = match size {
        Size::Word => 4,
        Size::Half => 2,
        Size::Byte => 1,
    };
    let bytes = frame.get(at..at.checked_add(width)?)?;
    Some(bytes.iter().fold(0u32, |v, &b| (v << 8) | u32::from(b)))
}

/// The target of a jump `offset` instructions past the one after `at`, if
/// it is inside a program of `len` instructions.
fn target(at: usize, offset: u32, len: usize) -> Result<usize, ProgramError> {
    usize::try_from(offset)
        .ok()
        .and_then(|o| at.checked_add(1)?.checked_add(o))
        .filter(|&t| t < len)
        .ok_or(ProgramError::JumpOutOfRange { at })
}

fn decode(at: usize, insn: &Insn, len: usize) -> Result<Op, ProgramError> {
    let unknown = ProgramError::UnknownOpcode {
        at,
        code: insn.code,
    };
    let code = insn.code;
    if code > 0xff {
        return Err(unknown);
    }
    let k = insn.k;
    let mem = || {
        usize::try_from(k)
            .ok()
            .filter(|&i| i < MEM_WORDS)
            .ok_or(ProgramError::MemoryOutOfRange { at })
    };
    let size = match code & 0x18 {
        0x00 => Some(Size::Word),
        0x08 => Some(Size::Half),
        0x10 => Some(Size::Byte),
        _ => None,
    };
    let src = if code & 0x08 == 0 { Src::K(k) } else { Src::X };
    Ok(match code & CLASS {
        LD => match (code & 0xe0, size) {
            (0x00, Some(Size::Word)) => Op::LdImm(k),
            (0x20, Some(s)) => Op::LdAbs(s, k),
            (0x40, Some(s)) => Op::LdInd(s, k),
            (0x60, Some(Size::Word)) => Op::LdMem(mem()?),
            (0x80, Some(Size::Word)) => Op::LdLen,
            _ => return Err(unknown),
        },
        LDX => match (code & 0xe0, size) {
            (0x00, Some(Size::Word)) => Op::LdxImm(k),
            (0x60, Some(Size::Word)) => Op::LdxMem(mem()?),
            (0x80, Some(Size::Word)) => Op::LdxLen,
            (0xa0, Some(Size::Byte)) => Op::LdxMsh(k),
            _ => return Err(unknown),
        },
        ST if code == ST => Op::St(mem()?),
        STX if code == STX => Op::Stx(mem()?),
        ALU => {
            let alu = match code & 0xf0 {
                0x00 => Alu::Add,
                0x10 => Alu::Sub,
                0x20 => Alu::Mul,
                0x30 => Alu::Div,
                0x40 => Alu::Or,
                0x50 => Alu::And,
                0x60 => Alu::Lsh,
                0x70 => Alu::Rsh,
                0x80 if code == ALU | 0x80 => return Ok(Op::Neg),
                0x90 => Alu::Mod,
                0xa0 => Alu::Xor,
                _ => return Err(unknown),
            };
            let bad = match (alu, src) {
                (Alu::Div | Alu::Mod, Src::K(0)) => true,
                (Alu::Lsh | Alu::Rsh, Src::K(s)) => s >= 32,
                _ => false,
            };
            if bad {
                return Err(ProgramError::BadConstant { at });
            }
            Op::Alu(alu, src)
        }
        JMP => {
            let cond = match code & 0xf0 {
                0x00 if code == JMP => return Ok(Op::Ja(target(at, k, len)?)),
                0x10 => Cond::Eq,
                0x20 => Cond::Gt,
                0x30 => Cond::Ge,
                0x40 => Cond::Set,
                _ => return Err(unknown),
            };
            Op::Jmp {
                cond,
                src,
                yes: target(at, u32::from(insn.jt), len)?,
                no: target(at, u32::from(insn.jf), len)?,
            }
        }
        RET => match code {
            0x06 => Op::RetK(k),
            0x0e => Op::RetX,
            0x16 => Op::RetA,
            _ => return Err(unknown),
        },
        MISC => match code {
            0x07 => Op::Tax,
            0x87 => Op::Txa,
            _ => return Err(unknown),
        },
        _ => return Err(unknown),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn i(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
        Insn { code, jt, jf, k }
    }

    /// `tcp[tcpflags] & tcp-rst != 0` on Ethernet, as libpcap 1.10
    /// compiles it (`tcpdump -d`), written out by hand.
    const RST_ONLY: [Insn; 10] = [
        i(0x28, 0, 0, 12),      // 0: ldh [12]
        i(0x15, 0, 8, 0x0800),  // 1: jeq #0x800, else 10
        i(0x30, 0, 0, 23),      // 2: ldb [23]
        i(0x15, 0, 6, 6),       // 3: jeq #6 (tcp), else 10
        i(0x28, 0, 0, 20),      // 4: ldh [20]
        i(0x45, 4, 0, 0x1fff),  // 5: jset #0x1fff (a fragment): 10
        i(0xb1, 0, 0, 14),      // 6: ldxb 4*([14]&0xf)
        i(0x50, 0, 0, 27),      // 7: ldb [x + 27]
        i(0x45, 0, 1, 0x04),    // 8: jset #0x4 (RST), else 10
        i(0x06, 0, 0, 262_144), // 9: ret #262144
    ];

    fn frame(flags: u8) -> Vec<u8> {
        let mut f = vec![0u8; 54];
        f[12] = 0x08; // IPv4
        f[14] = 0x45;
        f[23] = 6; // TCP
        f[14 + 20 + 13] = flags;
        f
    }

    #[test]
    fn libpcaps_rst_filter_matches_rsts_only() {
        // The program has no final `ret #0`: its jumps past the end are
        // refused, as they must be.
        assert_eq!(
            Program::new(&RST_ONLY),
            Err(ProgramError::JumpOutOfRange { at: 1 })
        );
        let mut insns = RST_ONLY.to_vec();
        insns.push(i(0x06, 0, 0, 0));
        let p = Program::new(&insns).unwrap();
        assert_eq!(p.len(), 11);
        assert_eq!(p.run(&frame(0x04)), 262_144);
        assert_eq!(p.run(&frame(0x14)), 262_144);
        assert_eq!(p.run(&frame(0x10)), 0, "an ACK");
        let mut udp = frame(0x04);
        udp[23] = 17;
        assert_eq!(p.run(&udp), 0);
        // Truncated before the flags: the load fails, no match, no panic.
        assert_eq!(p.run(&frame(0x04)[..40]), 0);
        assert_eq!(p.run(&[]), 0);
    }

    #[test]
    fn arithmetic_memory_and_returns() {
        let p = Program::new(&[
            i(0x00, 0, 0, 7), // ld #7
            i(0x02, 0, 0, 3), // st M[3]
            i(0x01, 0, 0, 5), // ldx #5
            i(0x2c, 0, 0, 0), // mul x
            i(0x14, 0, 0, 1), // sub #1
            i(0x94, 0, 0, 5), // mod #5   (34 % 5 = 4)
            i(0x61, 0, 0, 3), // ldx M[3]
            i(0x0c, 0, 0, 0), // add x    (11)
            i(0x84, 0, 0, 0), // neg
            i(0x84, 0, 0, 0), // neg
            i(0x64, 0, 0, 2), // lsh #2   (44)
            i(0x07, 0, 0, 0), // tax
            i(0x80, 0, 0, 0), // ld len
            i(0x2d, 0, 1, 0), // jgt x
            i(0x16, 0, 0, 0), // ret a
            i(0x0e, 0, 0, 0), // ret x
        ])
        .unwrap();
        assert_eq!(p.run(&[0; 10]), 44, "len 10 is not above 44: ret x");
        assert_eq!(p.run(&[0; 60]), 60, "ret a (the length)");
    }

    #[test]
    fn runtime_faults_end_in_no_match() {
        // Division by X = 0.
        let p = Program::new(&[i(0x00, 0, 0, 1), i(0x3c, 0, 0, 0), i(0x06, 0, 0, 9)]).unwrap();
        assert_eq!(p.run(&[1, 2, 3]), 0);
        // X + k overflows.
        let p =
            Program::new(&[i(0x01, 0, 0, u32::MAX), i(0x50, 0, 0, 1), i(0x06, 0, 0, 9)]).unwrap();
        assert_eq!(p.run(&[1, 2, 3]), 0);
        // A shift by X = 40 leaves 0, no panic.
        let p = Program::new(&[
            i(0x00, 0, 0, 1),
            i(0x01, 0, 0, 40),
            i(0x6c, 0, 0, 0),
            i(0x16, 0, 0, 0),
        ])
        .unwrap();
        assert_eq!(p.run(&[]), 0);
        // An absolute load far outside any frame (an "ancillary" offset).
        let p = Program::new(&[i(0x20, 0, 0, 0xffff_f000), i(0x06, 0, 0, 9)]).unwrap();
        assert_eq!(p.run(&[0; 64]), 0);
    }

    #[test]
    fn hostile_programs_are_refused() {
        let ret = i(0x06, 0, 0, 1);
        assert_eq!(Program::new(&[]), Err(ProgramError::Empty));
        assert_eq!(
            Program::new(&vec![ret; MAX_INSNS + 1]),
            Err(ProgramError::TooLong(MAX_INSNS + 1))
        );
        assert!(Program::new(&vec![ret; MAX_INSNS]).is_ok());
        assert_eq!(
            Program::new(&[i(0x00, 0, 0, 1)]),
            Err(ProgramError::NoReturnAtEnd)
        );
        // A backward (or self) jump cannot be expressed; past the end is refused.
        assert_eq!(
            Program::new(&[i(0x05, 0, 0, 0), ret]).map(|p| p.run(&[])),
            Ok(1),
            "ja +0 goes to the next instruction"
        );
        assert_eq!(
            Program::new(&[i(0x05, 0, 0, 1), ret]),
            Err(ProgramError::JumpOutOfRange { at: 0 })
        );
        assert_eq!(
            Program::new(&[i(0x05, 0, 0, u32::MAX), ret]),
            Err(ProgramError::JumpOutOfRange { at: 0 })
        );
        assert_eq!(
            Program::new(&[i(0x15, 0, 1, 0), ret]),
            Err(ProgramError::JumpOutOfRange { at: 0 })
        );
        assert_eq!(
            Program::new(&[i(0x02, 0, 0, 16), ret]),
            Err(ProgramError::MemoryOutOfRange { at: 0 })
        );
        assert_eq!(
            Program::new(&[i(0x60, 0, 0, u32::MAX), ret]),
            Err(ProgramError::MemoryOutOfRange { at: 0 })
        );
        for bad in [0x34u16, 0x94] {
            assert_eq!(
                Program::new(&[i(bad, 0, 0, 0), ret]),
                Err(ProgramError::BadConstant { at: 0 })
            );
        }
        assert_eq!(
            Program::new(&[i(0x64, 0, 0, 32), ret]),
            Err(ProgramError::BadConstant { at: 0 })
        );
        // Unknown opcodes: every value outside the instruction set.
        let known = |code: u16| Program::new(&[i(code, 0, 0, 1), ret]).is_ok();
        for code in [
            0x18u16, 0x38, 0x68, 0xa1, 0xb0, 0x0a, 0x1e, 0x47, 0xb4, 0x55, 0x8c, 0x100, 0xffff,
        ] {
            assert!(!known(code), "{code:#x}");
        }
        for code in [
            0x00u16, 0x20, 0x28, 0x30, 0x40, 0x48, 0x61, 0x81, 0xb1, 0x07, 0x87,
        ] {
            assert!(known(code), "{code:#x}");
        }
    }

    #[test]
    fn every_16_bit_opcode_decodes_or_is_refused_and_none_panics_when_run() {
        let frame = frame(0x04);
        for code in 0..=u16::MAX {
            for k in [0u32, 1, 13, 31, 32, u32::MAX] {
                let insns = [i(code, 0, 0, k), i(0x16, 0, 0, 0)];
                if let Ok(p) = Program::new(&insns) {
                    let _ = p.run(&frame);
                    let _ = p.run(&[]);
                }
            }
        }
    }
}
