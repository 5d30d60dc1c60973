//! Fuzz target: the echo server's `upper` transform. ASCII `a`–`z` become `A`–`Z`, every other byte
//! is unchanged and the length is kept, whatever the bytes (binary-safe), and applying it chunk by
//! chunk, as the server does to each read, gives the same bytes as applying it once.
//! `Mode::Echo` must leave every byte as it was.

#![no_main]

use iomux::echo::Mode;
use libfuzzer_sys::fuzz_target;

/// The transform under test, as the server applies it to each read.
fn upper(bytes: &mut [u8]) {
    Mode::Upper.apply(bytes);
}

fuzz_target!(|data: &[u8]| {
    // The first byte, when there is one, chooses the chunk size of the streaming comparison.
    let (chunk, input) = match data.split_first() {
        Some((&first, rest)) => (usize::from(first).max(1), rest),
        None => (1, data),
    };
    let mut whole = input.to_vec();
    upper(&mut whole);
    assert_eq!(whole.len(), input.len(), "the length is kept");
    for (&before, &after) in input.iter().zip(&whole) {
        let expected = if before.is_ascii_lowercase() {
            before - (b'a' - b'A')
        } else {
            before
        };
        assert_eq!(after, expected, "byte {before:#04x} became {after:#04x}");
    }
    let mut chunked = input.to_vec();
    for piece in chunked.chunks_mut(chunk) {
        upper(piece);
    }
    assert_eq!(chunked, whole, "chunk by chunk equals all at once");
    let mut echoed = input.to_vec();
    Mode::Echo.apply(&mut echoed);
    assert_eq!(echoed, input, "echo changes nothing");
});
