//! Consistent Overhead Byte Stuffing: removes every zero byte from a packet at a cost of
//! one byte per 254, so `0x00` can delimit frames.

/// Encodes `input` into `out` (without the delimiter) and returns the encoded length.
/// `out` must hold `input.len() + input.len() / 254 + 1` bytes.
pub(crate) fn encode(input: &[u8], out: &mut [u8]) -> usize {
    let mut code_at = 0;
    let mut write = 1;
    let mut code: u8 = 1;
    for &byte in input {
        if byte == 0 {
            out[code_at] = code;
            code_at = write;
            write += 1;
            code = 1;
            continue;
        }
        out[write] = byte;
        write += 1;
        code += 1;
        if code == 0xFF {
            out[code_at] = code;
            code_at = write;
            write += 1;
            code = 1;
        }
    }
    out[code_at] = code;
    write
}

/// Decodes one COBS frame (delimiter already stripped) into `out`.
/// Returns `None` when the frame is not valid COBS or does not fit.
pub(crate) fn decode(input: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut read = 0;
    let mut write = 0;
    while read < input.len() {
        let code = input[read] as usize;
        if code == 0 || read + code > input.len() {
            return None;
        }
        read += 1;
        for _ in 1..code {
            *out.get_mut(write)? = input[read];
            write += 1;
            read += 1;
        }
        if code != 0xFF && read < input.len() {
            *out.get_mut(write)? = 0;
            write += 1;
        }
    }
    Some(write)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(input: &[u8]) {
        let mut encoded = [0u8; 600];
        let n = encode(input, &mut encoded);
        assert!(!encoded[..n].contains(&0));
        let mut decoded = [0u8; 600];
        let m = decode(&encoded[..n], &mut decoded).expect("valid COBS");
        assert_eq!(&decoded[..m], input);
    }

    #[test]
    fn round_trips_edge_cases() {
        round_trip(&[]);
        round_trip(&[0]);
        round_trip(&[0, 0]);
        round_trip(&[1, 0, 2, 0]);
        round_trip(&[0x11; 253]);
        round_trip(&[0x11; 254]);
        round_trip(&[0x11; 255]);
        let mut mixed = [0u8; 520];
        for (i, b) in mixed.iter_mut().enumerate() {
            *b = (i % 7) as u8;
        }
        round_trip(&mixed);
    }

    #[test]
    fn rejects_a_code_that_points_past_the_end() {
        let mut out = [0u8; 16];
        assert_eq!(decode(&[5, 1, 2], &mut out), None);
        assert_eq!(decode(&[0, 1], &mut out), None);
    }
}
