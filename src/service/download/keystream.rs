//! The bytes of a download: a pure function of the seed and the offset,
//! the same in every process and every build.
//!
//! # Version 1
//!
//! Byte `i` of the body with seed `S` is byte `i % 8` of the word
//!
//! ```text
//! word(S, k) = mix(S + (k + 1) · 0x9E37_79B9_7F4A_7C15)    with k = i / 8
//! ```
//!
//! taken little-endian, where the arithmetic wraps at 2^64 and `mix` is the
//! finaliser of splitmix64 (Steele, Lea and Flood, "Fast splittable
//! pseudorandom number generators", 2014; the constants are Vigna's
//! reference `splitmix64.c`):
//!
//! ```text
//! z = (z ^ (z >> 30)) · 0xBF58_476D_1CE4_E5B9
//! z = (z ^ (z >> 27)) · 0x94D0_49BB_1331_11EB
//! z =  z ^ (z >> 31)
//! ```
//!
//! `word(S, k)` is the `k`-th output of a splitmix64 generator seeded with
//! `S`, so the body is splitmix64's stream, eight bytes per output. That
//! choice buys three things:
//!
//! * **Byte `i` depends only on `(S, i)`.** A resume from offset `K`
//!   computes the bytes from `K` on, with no state carried over and no
//!   work for the bytes before it: a `Range` costs what its bytes cost.
//! * **The length does not enter.** The body of `N` bytes is the first `N`
//!   bytes of every longer body with the same seed. (The `ETag` still
//!   names `N`: a body of another length is another representation.)
//! * **Anyone can check it.** A few lines in any language reproduce a
//!   body, and the first outputs for seed 0 are the published ones
//!   (`the_words_are_splitmix64s_outputs`). These, in Python, printed the
//!   digest the tests pin for 1 MiB with seed 42:
//!
//! ```python
//! import hashlib, struct
//! M = (1 << 64) - 1
//! def word(s, k):
//!     z = (s + (k + 1) * 0x9E3779B97F4A7C15) & M
//!     z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
//!     z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
//!     return z ^ (z >> 31)
//! body = b"".join(struct.pack("<Q", word(42, k)) for k in range((1 << 20) // 8))
//! print(hashlib.sha256(body).hexdigest())
//! ```
//!
//! It is not a cryptographic generator: a body says nothing secret, it
//! only has to be the same everywhere and look like data to a compressor.
//!
//! # Changing it
//!
//! Any change to the function changes every body, so it gets a new
//! [`VERSION`], which is part of the `ETag`: a client holding half of a
//! version-1 body that resumes on a server of version 2 sends the old
//! `ETag` in `If-Range`, it does not match, and it gets the whole new body
//! (200) instead of a 206 that splices two different bodies. The digest
//! pinned in `tests/downloads_resume_across_a_shutdown.rs` fails on an
//! accidental change.

/// The version of the function above; part of every download's `ETag`.
pub const VERSION: u32 = 1;

/// The splitmix64 increment: 2^64 divided by the golden ratio, made odd.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The `k`-th word of the body with `seed` (see the module docs).
pub fn word(seed: u64, k: u64) -> u64 {
    let mut z = seed.wrapping_add(k.wrapping_add(1).wrapping_mul(GAMMA));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `out` with the bytes of the body with `seed` that start at
/// `offset`: `out[j]` is byte `offset + j`. One word per eight bytes; an
/// offset or an end inside a word takes part of it.
pub fn fill(seed: u64, offset: u64, out: &mut [u8]) {
    let mut k = offset / 8;
    let mut skip = (offset % 8) as usize;
    let mut pos = 0;
    while pos < out.len() {
        let bytes = word(seed, k).to_le_bytes();
        let take = (8 - skip).min(out.len() - pos);
        out[pos..pos + take].copy_from_slice(&bytes[skip..skip + take]);
        pos += take;
        skip = 0;
        k += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words are splitmix64's: the first outputs for seed 0 are those
    /// of the reference implementation, so the body can be reproduced
    /// from the published algorithm alone.
    #[test]
    fn the_words_are_splitmix64s_outputs() {
        assert_eq!(word(0, 0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(word(0, 1), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(word(0, 2), 0x06C4_5D18_8009_454F);
    }

    /// Bytes filled from any offset, of any length, are the same bytes as
    /// that slice of a fill from the start: a resume is exact.
    #[test]
    fn a_fill_from_any_offset_is_the_slice_of_a_fill_from_the_start() {
        let mut whole = vec![0u8; 300];
        fill(42, 0, &mut whole);
        for offset in 0..40 {
            for len in [0, 1, 3, 7, 8, 9, 17, 64] {
                let mut part = vec![0u8; len];
                fill(42, offset as u64, &mut part);
                assert_eq!(part, whole[offset..offset + len], "{offset}+{len}");
            }
        }
    }

    /// Different seeds give different bodies, and a body is not a short
    /// cycle of one word.
    #[test]
    fn different_seeds_give_different_bytes() {
        let (mut a, mut b) = (vec![0u8; 64], vec![0u8; 64]);
        fill(1, 0, &mut a);
        fill(2, 0, &mut b);
        assert_ne!(a, b);
        assert_ne!(a[..8], a[8..16]);
    }
}
