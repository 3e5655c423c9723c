//! A tiny eBPF assembler and the handful of XDP programs the project needs. Each program is a few
//! instructions; writing them here avoids clang, ELF parsing and libbpf.

use crate::sys::{XDP_DROP, XDP_PASS};

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R6: u8 = 6;
const R10: u8 = 10;

// helper function ids (include/uapi/linux/bpf.h, __BPF_FUNC_MAPPER order)
const FN_MAP_LOOKUP_ELEM: i32 = 1;
const FN_REDIRECT: i32 = 23;
const FN_REDIRECT_MAP: i32 = 51;

/// Encodes one instruction: opcode, dst/src registers, 16-bit offset, 32-bit immediate.
pub fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    (code as u64)
        | ((((dst & 0xf) | ((src & 0xf) << 4)) as u64) << 8)
        | (((off as u16) as u64) << 16)
        | (((imm as u32) as u64) << 32)
}

fn mov_imm(dst: u8, imm: i32) -> u64 {
    insn(0xb7, dst, 0, 0, imm)
}
fn mov_reg(dst: u8, src: u8) -> u64 {
    insn(0xbf, dst, src, 0, 0)
}
fn add_imm(dst: u8, imm: i32) -> u64 {
    insn(0x07, dst, 0, 0, imm)
}
fn ldx_w(dst: u8, src: u8, off: i16) -> u64 {
    insn(0x61, dst, src, off, 0)
}
fn ldx_dw(dst: u8, src: u8, off: i16) -> u64 {
    insn(0x79, dst, src, off, 0)
}
fn stx_dw(dst: u8, src: u8, off: i16) -> u64 {
    insn(0x7b, dst, src, off, 0)
}
fn st_w(dst: u8, off: i16, imm: i32) -> u64 {
    insn(0x62, dst, 0, off, imm)
}
fn jeq_imm(dst: u8, imm: i32, off: i16) -> u64 {
    insn(0x15, dst, 0, off, imm)
}
fn call(f: i32) -> u64 {
    insn(0x85, 0, 0, 0, f)
}
fn exit() -> u64 {
    insn(0x95, 0, 0, 0, 0)
}
/// `lddw dst, map_fd` with BPF_PSEUDO_MAP_FD: the verifier replaces the fd by the map pointer.
fn ld_map_fd(dst: u8, fd: i32) -> [u64; 2] {
    [insn(0x18, dst, 1, 0, fd), insn(0, 0, 0, 0, 0)]
}

/// r6 = ctx; (*percpu_array[slot])++; r1 = ctx. Clobbers r0-r5.
fn count_prefix(v: &mut Vec<u64>, cnt_fd: i32, slot: i32) {
    v.push(mov_reg(R6, R1));
    v.push(st_w(R10, -4, slot));
    v.push(mov_reg(R2, R10));
    v.push(add_imm(R2, -4));
    v.extend(ld_map_fd(R1, cnt_fd));
    v.push(call(FN_MAP_LOOKUP_ELEM));
    v.push(jeq_imm(R0, 0, 3));
    v.push(ldx_dw(R1, R0, 0));
    v.push(add_imm(R1, 1));
    v.push(stx_dw(R0, R1, 0));
    v.push(mov_reg(R1, R6));
}

/// The switch's port program: `return bpf_redirect_map(&xskmap, ctx->rx_queue_index, XDP_PASS)`.
/// Frames of a queue with no socket in the map go to the kernel stack.
pub fn xsk_redirect(xskmap_fd: i32) -> Vec<u64> {
    let mut v = vec![ldx_w(R2, R1, 16)]; // xdp_md.rx_queue_index
    v.extend(ld_map_fd(R1, xskmap_fd));
    v.push(mov_imm(R3, XDP_PASS));
    v.push(call(FN_REDIRECT_MAP));
    v.push(exit());
    v
}

/// Kernel-only forwarder (the perf ceiling): `return bpf_redirect_map(&devmap, 0, 0)`, with an
/// optional per-CPU counter in slot 0.
pub fn devmap_redirect(devmap_fd: i32, cnt_fd: Option<i32>) -> Vec<u64> {
    let mut v = Vec::new();
    if let Some(c) = cnt_fd {
        count_prefix(&mut v, c, 0);
    }
    v.extend(ld_map_fd(R1, devmap_fd));
    v.push(mov_imm(R2, 0));
    v.push(mov_imm(R3, 0));
    v.push(call(FN_REDIRECT_MAP));
    v.push(exit());
    v
}

/// Traffic generator program for BPF_PROG_RUN live frames: `return bpf_redirect(ifindex, 0)`.
pub fn ifindex_redirect(ifindex: u32) -> Vec<u64> {
    vec![
        mov_imm(R1, ifindex as i32),
        mov_imm(R2, 0),
        call(FN_REDIRECT),
        exit(),
    ]
}

/// Sink: count in slot 0 and drop.
pub fn count_drop(cnt_fd: i32) -> Vec<u64> {
    let mut v = Vec::new();
    count_prefix(&mut v, cnt_fd, 0);
    v.push(mov_imm(R0, XDP_DROP));
    v.push(exit());
    v
}

/// Pass everything to the stack (used by tests to leave a "foreign" program on an interface).
pub fn pass() -> Vec<u64> {
    vec![mov_imm(R0, XDP_PASS), exit()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_known_instructions() {
        // `r0 = 2; exit` as clang emits it
        assert_eq!(pass(), vec![0x0000_0002_0000_00b7, 0x0000_0000_0000_0095]);
        // r2 = *(u32 *)(r1 + 16)
        assert_eq!(ldx_w(R2, R1, 16), 0x0000_0000_0010_1261);
        // lddw r1, map fd 7 (src = BPF_PSEUDO_MAP_FD)
        assert_eq!(ld_map_fd(R1, 7), [0x0000_0007_0000_1118, 0]);
        // negative offsets are two's complement in the 16-bit field
        assert_eq!(st_w(R10, -4, 0) >> 16 & 0xffff, 0xfffc);
    }

    #[test]
    fn programs_end_with_exit() {
        for p in [
            xsk_redirect(3),
            devmap_redirect(3, Some(4)),
            ifindex_redirect(1),
            count_drop(3),
        ] {
            assert_eq!(*p.last().unwrap(), exit());
        }
    }
}
