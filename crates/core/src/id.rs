//! Random identifiers and secrets. All randomness comes from aws-lc-rs'
//! system RNG so the whole project has one crypto library.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn random<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The system RNG failing is unrecoverable: better to stop than to mint
    // guessable identifiers.
    #[allow(clippy::expect_used)]
    aws_lc_rs::rand::fill(&mut buf).expect("system random number generator failed");
    buf
}

/// A random UUID v4 in its hyphenated form, as Keycloak uses for every id.
pub fn uuid() -> String {
    let mut b = random::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    hyphenated(&b)
}

/// A UUID v7 (RFC 9562 §5.7): 48 bits of Unix milliseconds, then 74
/// random bits. For rows written at a high rate (events): ids that grow
/// with time are appended to the unique index instead of landing on a
/// random page of it, which halved the cost of an event insert.
pub fn uuid_v7() -> String {
    let mut b = random::<16>();
    let ms = crate::time::now_millis().max(0) as u64;
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    b[6] = (b[6] & 0x0f) | 0x70;
    b[8] = (b[8] & 0x3f) | 0x80;
    hyphenated(&b)
}

fn hyphenated(b: &[u8; 16]) -> String {
    let mut out = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(HEX[(x >> 4) as usize] as char);
        out.push(HEX[(x & 0xf) as usize] as char);
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A UUID-shaped id derived from `seed` (the first 16 bytes of its
/// SHA-256): for things Keycloak gives a UUID but that Gatehouse does not
/// store until changed (default registration policies, default flows,
/// execution rows), so every node and every call names them alike.
pub fn derived(seed: &str) -> String {
    let d = sha256(seed.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    hyphenated(&b)
}

/// Whether two byte strings are equal, in time that depends on their
/// length only (eight bytes a step, one branch at the end): for comparing
/// a caller's bearer token with one held in memory, where `subtle`'s
/// byte-wise comparison would cost more than the hash it replaces.
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u64;
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in a8.remainder().iter().zip(b8.remainder()) {
        diff |= u64::from(x ^ y);
    }
    for (x, y) in a8.zip(b8) {
        let x = u64::from_le_bytes(x.try_into().unwrap_or_default());
        let y = u64::from_le_bytes(y.try_into().unwrap_or_default());
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// The SHA-256 of `data`, as bytes: cache keys on the request path, where
/// a hex string would be an allocation per request.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Lower-case hex of the SHA-256 of `data`: how API keys are stored and
/// looked up, and how derived cache keys are made.
pub fn sha256_hex(data: &[u8]) -> String {
    let mut out = String::with_capacity(64);
    for b in sha256(data) {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0xf) as usize] as char);
    }
    out
}

/// 256 bits of randomness, base64url: codes, secrets, session handles.
pub fn token() -> String {
    URL_SAFE_NO_PAD.encode(random::<32>())
}

/// Raw random bytes (salts, keys).
pub fn bytes<const N: usize>() -> [u8; N] {
    random::<N>()
}

#[cfg(test)]
mod tests {
    #[test]
    fn same_bytes_sees_every_byte_and_the_length() {
        let a: Vec<u8> = (0..=200u8).collect();
        for len in [0, 1, 7, 8, 9, 63, 64, 65, 201] {
            assert!(super::same_bytes(&a[..len], &a[..len]));
            for i in 0..len {
                let mut b = a[..len].to_vec();
                b[i] ^= 0x80;
                assert!(!super::same_bytes(&a[..len], &b), "len {len}, byte {i}");
            }
        }
        assert!(!super::same_bytes(&a[..8], &a[..9]));
        assert!(!super::same_bytes(b"", b"x"));
    }

    #[test]
    fn sha256_hex_matches_the_known_vector() {
        assert_eq!(
            super::sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn uuid_is_v4_shaped_and_unique() {
        let a = super::uuid();
        let b = super::uuid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn uuid_v7_carries_the_time_and_sorts_by_it() {
        let before = crate::time::now_millis();
        let a = super::uuid_v7();
        let ms = i64::from_str_radix(&a[..13].replace('-', ""), 16).expect("hex");
        assert!(ms >= before && ms <= crate::time::now_millis(), "{a}");
        assert_eq!(&a[14..15], "7");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(super::uuid_v7() > a);
    }
}
