//! Internet checksums (RFC 1071) and the completion of partial checksums.
//!
//! A guest or container with TX checksum offload hands the host CHECKSUM_PARTIAL packets: the
//! TCP/UDP checksum field holds only the folded pseudo-header sum, and the NIC is expected to
//! finish the job. Through AF_XDP the switch sees those bytes with no metadata. We recognise them
//! by that signature (field == pseudo-header sum) and complete them. For a packet whose valid
//! checksum happens to equal its pseudo-header sum, completing yields the same value again
//! (the sum over the segment with that field is exactly what a valid checksum encodes), so the
//! test can never corrupt a correct packet.

/// One's-complement sum of `data` added to `acc` (not folded).
#[inline]
pub fn sum(mut acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        // add the four 16-bit words of w without overflowing: split in halves
        acc += (w >> 32) + (w & 0xffff_ffff);
    }
    let rest = chunks.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        acc += u16::from_be_bytes([rest[i], rest[i + 1]]) as u64;
        i += 2;
    }
    if i < rest.len() {
        acc += (rest[i] as u64) << 8;
    }
    acc
}

/// Folds a wide sum into 16 bits (not complemented).
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum of `data`: complemented fold.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(0, data))
}

/// Pseudo-header sum for IPv4 (not folded).
#[inline]
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], proto: u8, l4_len: u16) -> u64 {
    sum(0, &src) + sum(0, &dst) + proto as u64 + l4_len as u64
}

/// Pseudo-header sum for IPv6 (not folded).
#[inline]
pub fn pseudo_v6(src: &[u8; 16], dst: &[u8; 16], next: u8, l4_len: u32) -> u64 {
    sum(0, src) + sum(0, dst) + next as u64 + (l4_len >> 16) as u64 + (l4_len & 0xffff) as u64
}

/// Whether the checksum field `field` is exactly the folded pseudo-header sum `pseudo` (either
/// one's-complement representation of it), i.e. a partial checksum left for the NIC.
#[inline]
pub fn is_partial(field: u16, pseudo: u64) -> bool {
    let p = fold(pseudo);
    field == p || (p == 0xffff && field == 0) || (p == 0 && field == 0xffff)
}

/// Completes a partial checksum: `l4` is the whole TCP/UDP segment with the pseudo-header sum in
/// its checksum field at `csum_off`. Writes the final checksum. UDP's "no checksum" 0 becomes
/// 0xffff as RFC 768 requires.
pub fn complete(l4: &mut [u8], csum_off: usize, udp: bool) {
    let mut c = !fold(sum(0, l4));
    if udp && c == 0 {
        c = 0xffff;
    }
    l4[csum_off..csum_off + 2].copy_from_slice(&c.to_be_bytes());
}

/// Incrementally updates checksum `c` for a 16-bit word changing from `old` to `new`
/// (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')).
#[inline]
pub fn update16(c: u16, old: u16, new: u16) -> u16 {
    !fold(!c as u64 + !old as u64 + new as u64)
}

/// Incrementally updates checksum `c` for a run of bytes changing from `old` to `new` (equal
/// lengths, even offset in the checksummed data).
pub fn update_bytes(c: u16, old: &[u8], new: &[u8]) -> u16 {
    let mut acc = !c as u64;
    let mut i = 0;
    while i + 1 < old.len() {
        acc += !u16::from_be_bytes([old[i], old[i + 1]]) as u64;
        acc += u16::from_be_bytes([new[i], new[i + 1]]) as u64;
        i += 2;
    }
    if i < old.len() {
        acc += !u16::from_be_bytes([old[i], 0]) as u64;
        acc += u16::from_be_bytes([new[i], 0]) as u64;
    }
    !fold(acc)
}

/// Whether the checksum of segment `l4` with pseudo-header sum `pseudo` verifies.
pub fn verify(l4: &[u8], pseudo: u64) -> bool {
    fold(sum(pseudo, l4)) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(0, &d)), 0xddf2);
        assert_eq!(checksum(&d), !0xddf2);
        // odd length pads with a zero byte
        assert_eq!(fold(sum(0, &[0x12])), 0x1200);
    }

    #[test]
    fn wide_and_narrow_sums_agree() {
        let data: Vec<u8> = (0..1500u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut narrow = 0u64;
        for c in data.chunks(2) {
            narrow += if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]]) as u64
            } else {
                (c[0] as u64) << 8
            };
        }
        for len in [0, 1, 7, 8, 9, 63, 64, 1499, 1500] {
            let mut n2 = 0u64;
            for c in data[..len].chunks(2) {
                n2 += if c.len() == 2 {
                    u16::from_be_bytes([c[0], c[1]]) as u64
                } else {
                    (c[0] as u64) << 8
                };
            }
            assert_eq!(fold(sum(0, &data[..len])), fold(n2), "len {len}");
        }
        assert_eq!(fold(sum(0, &data)), fold(narrow));
    }

    #[test]
    fn incremental_updates_match_recomputation() {
        let mut hdr: Vec<u8> = vec![
            0x45, 0, 0, 0x54, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let c = checksum(&hdr);
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
        // change TTL (a 16-bit word with the protocol) and the source address
        let old_w = u16::from_be_bytes([hdr[8], hdr[9]]);
        hdr[8] = 63;
        let new_w = u16::from_be_bytes([hdr[8], hdr[9]]);
        let c1 = update16(c, old_w, new_w);
        let old_src = hdr[12..16].to_vec();
        hdr[12..16].copy_from_slice(&[192, 168, 1, 77]);
        let c2 = update_bytes(c1, &old_src, &hdr[12..16]);
        hdr[10..12].copy_from_slice(&0u16.to_be_bytes());
        assert_eq!(c2, checksum(&hdr));
    }

    #[test]
    fn completing_a_partial_udp_checksum_makes_it_verify() {
        let src = [10, 0, 0, 1];
        let dst = [10, 0, 0, 2];
        let mut udp = vec![
            0x30, 0x39, 0x00, 0x35, 0x00, 0x0c, 0, 0, b'a', b'b', b'c', b'd',
        ];
        let pseudo = pseudo_v4(src, dst, 17, udp.len() as u16);
        // what the kernel leaves for the NIC: the folded pseudo sum, not complemented
        udp[6..8].copy_from_slice(&fold(pseudo).to_be_bytes());
        assert!(is_partial(u16::from_be_bytes([udp[6], udp[7]]), pseudo));
        assert!(!verify(&udp, pseudo));
        complete(&mut udp, 6, true);
        assert!(verify(&udp, pseudo));
        // a valid checksum is not mistaken for a partial one (unless equal, see module doc)
        let c = u16::from_be_bytes([udp[6], udp[7]]);
        assert_eq!(is_partial(c, pseudo), c == fold(pseudo));
    }

    #[test]
    fn completing_a_valid_checksum_equal_to_the_pseudo_sum_is_idempotent() {
        // search a payload whose valid checksum equals its pseudo-header sum
        let src = [192, 0, 2, 1];
        let dst = [192, 0, 2, 2];
        for x in 0..=u16::MAX {
            let mut udp = vec![0x12, 0x34, 0x56, 0x78, 0x00, 0x0a, 0, 0, 0, 0];
            udp[8..10].copy_from_slice(&x.to_be_bytes());
            let pseudo = pseudo_v4(src, dst, 17, 10);
            udp[6..8].copy_from_slice(&fold(pseudo).to_be_bytes());
            complete(&mut udp, 6, true);
            assert!(verify(&udp, pseudo));
            let c = u16::from_be_bytes([udp[6], udp[7]]);
            if is_partial(c, pseudo) {
                let before = udp.clone();
                complete(&mut udp, 6, true);
                assert_eq!(udp, before);
                assert!(verify(&udp, pseudo));
                return;
            }
        }
        panic!("no colliding payload found");
    }
}
