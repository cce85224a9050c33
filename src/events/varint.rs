//! Numbers in the store's binary records (`store::event_rows`, `PlannedGraph`): LEB128, small
//! numbers in one byte; a signed difference first folded into an unsigned number (zigzag).

pub fn push_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The number at the start of `body`, which moves past it; `None` when none is there.
pub fn read_varint(body: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for (i, &byte) in body.iter().enumerate().take(10) {
        n |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *body = &body[i + 1..];
            return Some(n);
        }
    }
    None
}

/// `to − from` (wrapping) as a small unsigned number: 0, −1, 1, −2… are 0, 1, 2, 3….
pub fn push_difference(out: &mut Vec<u8>, from: u64, to: u64) {
    let d = to.wrapping_sub(from) as i64;
    push_varint(out, ((d << 1) ^ (d >> 63)) as u64);
}

/// The number `push_difference` wrote after `from`.
pub fn read_difference(body: &mut &[u8], from: u64) -> Option<u64> {
    Some(add_difference(from, read_varint(body)?))
}

/// `from` and the difference `z` as `push_difference` wrote it (read already).
pub fn add_difference(from: u64, z: u64) -> u64 {
    let d = (z >> 1) as i64 ^ -((z & 1) as i64);
    from.wrapping_add(d as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_differences_read_back_as_written() {
        let numbers = [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX - 1, u64::MAX];
        for from in numbers {
            for to in numbers {
                let mut out = Vec::new();
                push_varint(&mut out, to);
                push_difference(&mut out, from, to);
                let mut body = out.as_slice();
                assert_eq!(read_varint(&mut body), Some(to));
                assert_eq!(read_difference(&mut body, from), Some(to), "{from} → {to}");
                assert!(body.is_empty());
            }
        }
        let mut out = Vec::new();
        push_difference(&mut out, 41, 42);
        assert_eq!(out, [2], "a task after the one before is one byte");
        assert_eq!(read_varint(&mut &[0x80u8, 0x80][..]), None);
    }
}
