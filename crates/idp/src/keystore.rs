//! Keystore files for Keycloak's client keystore downloads
//! (`certificates/{attr}/download`, `generate-and-download`), which Java
//! adapters and `keytool` read. JKS is written as Sun's provider writes
//! it: version 2, a private-key entry protected by the JKS key protector
//! (a SHA-1 keystream under the key password), trusted certificate
//! entries, and the SHA-1 integrity digest keyed with the store password
//! (weak by design: the file is for transport to the client, as in
//! Keycloak). PKCS#12 is written as Java 17 writes it (see [`pkcs12`]).

use aws_lc_rs::digest::{Context, SHA1_FOR_LEGACY_USE_ONLY};

/// One entry of a keystore.
pub enum Entry<'a> {
    /// A private key (PKCS#8 DER) with its certificate chain (DER),
    /// protected by its own password.
    PrivateKey {
        alias: &'a str,
        pkcs8: &'a [u8],
        chain: Vec<&'a [u8]>,
        password: &'a str,
    },
    /// A trusted certificate (DER).
    Certificate { alias: &'a str, der: &'a [u8] },
}

const MAGIC: u32 = 0xFEED_FEED;
const VERSION: u32 = 2;
/// Sun's JKS key protector algorithm, 1.3.6.1.4.1.42.2.17.1.1, as a DER
/// OBJECT IDENTIFIER.
const KEY_PROTECTOR_OID: [u8; 12] = [
    0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x2a, 0x02, 0x11, 0x01, 0x01,
];

/// A password as Java hands it to the keystore: UTF-16 big endian.
fn utf16_be(password: &str) -> Vec<u8> {
    password.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

/// Java's modified UTF-8 (`DataOutput.writeUTF`), with its length.
fn put_utf(out: &mut Vec<u8>, s: &str) {
    let mut b = Vec::with_capacity(s.len());
    for unit in s.encode_utf16() {
        match unit {
            0x0001..=0x007f => b.push(unit as u8),
            0x0000 | 0x0080..=0x07ff => {
                b.push(0xc0 | (unit >> 6) as u8);
                b.push(0x80 | (unit & 0x3f) as u8);
            }
            _ => {
                b.push(0xe0 | (unit >> 12) as u8);
                b.push(0x80 | ((unit >> 6) & 0x3f) as u8);
                b.push(0x80 | (unit & 0x3f) as u8);
            }
        }
    }
    // Aliases are short; writeUTF's limit is 65535 bytes.
    b.truncate(u16::MAX as usize);
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(&b);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

/// A DER tag-length-value.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let len = n.to_be_bytes();
        let skip = len.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (len.len() - skip) as u8);
        out.extend_from_slice(&len[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn sha1(parts: &[&[u8]]) -> [u8; 20] {
    let mut c = Context::new(&SHA1_FOR_LEGACY_USE_ONLY);
    for p in parts {
        c.update(p);
    }
    let mut out = [0u8; 20];
    out.copy_from_slice(c.finish().as_ref());
    out
}

/// Sun's KeyProtector: salt, the key XORed with SHA-1(password || previous
/// digest) blocks, and SHA-1(password || key) to check it on the way back;
/// wrapped as an EncryptedPrivateKeyInfo.
fn protect(pkcs8: &[u8], password: &str) -> Vec<u8> {
    let pw = utf16_be(password);
    let salt: [u8; 20] = gatehouse_core::id::bytes();
    let mut protected = Vec::with_capacity(40 + pkcs8.len());
    protected.extend_from_slice(&salt);
    let mut digest = salt;
    for block in pkcs8.chunks(20) {
        digest = sha1(&[&pw, &digest]);
        protected.extend(block.iter().zip(digest).map(|(k, d)| k ^ d));
    }
    protected.extend_from_slice(&sha1(&[&pw, pkcs8]));
    // AlgorithmIdentifier ::= SEQUENCE { OID, NULL }.
    let mut alg_content = KEY_PROTECTOR_OID.to_vec();
    alg_content.extend_from_slice(&[0x05, 0x00]);
    let mut info = tlv(0x30, &alg_content);
    info.extend(tlv(0x04, &protected));
    tlv(0x30, &info)
}

/// The keystore file for `entries`, sealed with `store_password`;
/// `created_ms` is every entry's creation date.
pub fn jks(entries: &[Entry<'_>], store_password: &str, created_ms: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for e in entries {
        match e {
            Entry::PrivateKey {
                alias,
                pkcs8,
                chain,
                password,
            } => {
                out.extend_from_slice(&1u32.to_be_bytes());
                put_utf(&mut out, &alias.to_lowercase());
                out.extend_from_slice(&created_ms.to_be_bytes());
                put_bytes(&mut out, &protect(pkcs8, password));
                out.extend_from_slice(&(chain.len() as u32).to_be_bytes());
                for cert in chain {
                    put_utf(&mut out, "X.509");
                    put_bytes(&mut out, cert);
                }
            }
            Entry::Certificate { alias, der } => {
                out.extend_from_slice(&2u32.to_be_bytes());
                put_utf(&mut out, &alias.to_lowercase());
                out.extend_from_slice(&created_ms.to_be_bytes());
                put_utf(&mut out, "X.509");
                put_bytes(&mut out, der);
            }
        }
    }
    let digest = sha1(&[&utf16_be(store_password), b"Mighty Aphrodite", &out]);
    out.extend_from_slice(&digest);
    out
}

/// Why a JKS upload was not read.
#[derive(Debug, PartialEq, Eq)]
pub enum JksError {
    /// Not a JKS file (or a truncated one).
    Malformed,
    /// The store password does not match the integrity digest.
    Integrity,
    /// No entry under the alias.
    NoSuchAlias,
    /// The key password does not unlock the key.
    KeyPassword,
}

/// A cursor over a JKS file.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], JksError> {
        if self.0.len() < n {
            return Err(JksError::Malformed);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u16(&mut self) -> Result<usize, JksError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]) as usize)
    }
    fn u32(&mut self) -> Result<usize, JksError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
    fn utf(&mut self) -> Result<String, JksError> {
        let n = self.u16()?;
        // Aliases are ASCII in practice; anything else is read leniently.
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    fn bytes(&mut self) -> Result<&'a [u8], JksError> {
        let n = self.u32()?;
        self.take(n)
    }
}

/// A DER element's header: (header length, content length).
fn der_header(b: &[u8]) -> Result<(usize, usize), JksError> {
    match b.get(1) {
        Some(n) if *n < 0x80 => Ok((2, *n as usize)),
        Some(n) => {
            let k = (n & 0x7f) as usize;
            let len = b
                .get(2..2 + k)
                .ok_or(JksError::Malformed)?
                .iter()
                .fold(0usize, |a, x| a.saturating_mul(256) | *x as usize);
            Ok((2 + k, len))
        }
        None => Err(JksError::Malformed),
    }
}

/// Reverses [`protect`]: the PKCS#8 key, if `password` unlocks it.
fn unprotect(info: &[u8], password: &str) -> Result<Vec<u8>, JksError> {
    // SEQUENCE { SEQUENCE { OID, NULL }, OCTET STRING protected }.
    let (h, _) = der_header(info)?;
    let alg = info.get(h..).ok_or(JksError::Malformed)?;
    if alg.get(2..14) != Some(&KEY_PROTECTOR_OID[..]) {
        return Err(JksError::Malformed);
    }
    let (ah, alen) = der_header(alg)?;
    let octets = alg.get(ah + alen..).ok_or(JksError::Malformed)?;
    let (oh, olen) = der_header(octets)?;
    let protected = octets.get(oh..oh + olen).ok_or(JksError::Malformed)?;
    if protected.len() < 40 {
        return Err(JksError::Malformed);
    }
    let (salt, rest) = protected.split_at(20);
    let (enc, check) = rest.split_at(rest.len() - 20);
    let pw = utf16_be(password);
    let mut digest: [u8; 20] = salt.try_into().map_err(|_| JksError::Malformed)?;
    let mut plain = Vec::with_capacity(enc.len());
    for block in enc.chunks(20) {
        digest = sha1(&[&pw, &digest]);
        plain.extend(block.iter().zip(digest).map(|(k, d)| k ^ d));
    }
    if sha1(&[&pw, &plain]) != check {
        return Err(JksError::KeyPassword);
    }
    Ok(plain)
}

/// Reads the entry `alias` (case-insensitive, as JKS stores aliases) of
/// a JKS file: its private key (PKCS#8, unlocked with `key_password`) when
/// it is a key entry, and its (first) certificate.
#[allow(clippy::type_complexity)]
pub fn read_jks(
    file: &[u8],
    store_password: &str,
    alias: &str,
    key_password: &str,
) -> Result<(Option<Vec<u8>>, Option<Vec<u8>>), JksError> {
    if file.len() < 32 || file[..4] != MAGIC.to_be_bytes() {
        return Err(JksError::Malformed);
    }
    let (body, digest) = file.split_at(file.len() - 20);
    if sha1(&[&utf16_be(store_password), b"Mighty Aphrodite", body]) != digest {
        return Err(JksError::Integrity);
    }
    let mut r = Reader(&body[4..]);
    let version = r.u32()?;
    if version != 1 && version != 2 {
        return Err(JksError::Malformed);
    }
    let wanted = alias.to_lowercase();
    for _ in 0..r.u32()? {
        let tag = r.u32()?;
        let name = r.utf()?;
        r.take(8)?;
        let cert = |r: &mut Reader<'_>| -> Result<Vec<u8>, JksError> {
            if version == 2 {
                r.utf()?;
            }
            Ok(r.bytes()?.to_vec())
        };
        match tag {
            1 => {
                let protected = r.bytes()?;
                let mut chain = Vec::new();
                for _ in 0..r.u32()? {
                    chain.push(cert(&mut r)?);
                }
                if name == wanted {
                    let key = unprotect(protected, key_password)?;
                    return Ok((Some(key), chain.into_iter().next()));
                }
            }
            2 => {
                let c = cert(&mut r)?;
                if name == wanted {
                    return Ok((None, Some(c)));
                }
            }
            _ => return Err(JksError::Malformed),
        }
    }
    Err(JksError::NoSuchAlias)
}

/// A DER OBJECT IDENTIFIER.
fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut push = |mut v: u64| {
        let mut tmp = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            tmp.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        tmp.reverse();
        body.extend(tmp);
    };
    push(arcs[0] * 40 + arcs[1]);
    for a in &arcs[2..] {
        push(*a);
    }
    tlv(0x06, &body)
}

/// A DER INTEGER (non-negative).
fn int(v: u32) -> Vec<u8> {
    let b = v.to_be_bytes();
    let skip = b.iter().take_while(|x| **x == 0).count().min(3);
    let mut body = b[skip..].to_vec();
    if body[0] & 0x80 != 0 {
        body.insert(0, 0);
    }
    tlv(0x02, &body)
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn set(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x31, &parts.concat())
}

/// `[0] EXPLICIT`.
fn explicit0(inner: &[u8]) -> Vec<u8> {
    tlv(0xa0, inner)
}

const PKCS12_ITERATIONS: u32 = 10_000;

/// PKCS#7 `data` content holding `content`.
fn data_content(content: &[u8]) -> Vec<u8> {
    seq(&[
        &oid(&[1, 2, 840, 113549, 1, 7, 1]),
        &explicit0(&tlv(0x04, content)),
    ])
}

/// A bag attribute: OID and one value.
fn attribute(arcs: &[u64], value: &[u8]) -> Vec<u8> {
    seq(&[&oid(arcs), &set(&[value])])
}

/// `friendlyName` as a BMPString.
fn friendly_name(alias: &str) -> Vec<u8> {
    attribute(&[1, 2, 840, 113549, 1, 9, 20], &tlv(0x1e, &utf16_be(alias)))
}

fn local_key_id(id: &[u8]) -> Vec<u8> {
    attribute(&[1, 2, 840, 113549, 1, 9, 21], &tlv(0x04, id))
}

fn cert_bag(der: &[u8], attrs: &[u8]) -> Vec<u8> {
    let cert = seq(&[
        &oid(&[1, 2, 840, 113549, 1, 9, 22, 1]),
        &explicit0(&tlv(0x04, der)),
    ]);
    seq(&[
        &oid(&[1, 2, 840, 113549, 1, 12, 10, 1, 3]),
        &explicit0(&cert),
        &tlv(0x31, attrs),
    ])
}

/// The key as an EncryptedPrivateKeyInfo under PBES2 (PBKDF2 with
/// HMAC-SHA256, AES-256-CBC), as Java 17's PKCS12 keystores protect keys.
fn shrouded(pkcs8: &[u8], password: &str) -> Option<Vec<u8>> {
    use aws_lc_rs::cipher::{AES_256, PaddedBlockEncryptingKey, UnboundCipherKey};
    let salt: [u8; 16] = gatehouse_core::id::bytes();
    let mut key = [0u8; 32];
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(PKCS12_ITERATIONS)?,
        &salt,
        password.as_bytes(),
        &mut key,
    );
    let cipher =
        PaddedBlockEncryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_256, &key).ok()?).ok()?;
    let mut data = pkcs8.to_vec();
    let ctx = cipher.encrypt(&mut data).ok()?;
    let iv: &[u8] = (&ctx).try_into().ok()?;
    let kdf = seq(&[
        &oid(&[1, 2, 840, 113549, 1, 5, 12]),
        &seq(&[
            &tlv(0x04, &salt),
            &int(PKCS12_ITERATIONS),
            &int(32),
            &seq(&[&oid(&[1, 2, 840, 113549, 2, 9]), &[0x05, 0x00]]),
        ]),
    ]);
    let enc = seq(&[&oid(&[2, 16, 840, 1, 101, 3, 4, 1, 42]), &tlv(0x04, iv)]);
    let alg = seq(&[&oid(&[1, 2, 840, 113549, 1, 5, 13]), &seq(&[&kdf, &enc])]);
    Some(seq(&[&alg, &tlv(0x04, &data)]))
}

/// RFC 7292 appendix B.2: the MAC key from the password (BMPString with
/// its terminating zero), SHA-256 (u = 32, v = 64).
fn pkcs12_mac_key(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    use aws_lc_rs::digest::{SHA256, digest};
    const V: usize = 64;
    let mut pw = utf16_be(password);
    pw.extend_from_slice(&[0, 0]);
    let fill = |src: &[u8]| -> Vec<u8> {
        if src.is_empty() {
            return Vec::new();
        }
        let len = V * src.len().div_ceil(V);
        src.iter().copied().cycle().take(len).collect()
    };
    // Diversifier 3: MAC key material.
    let mut input = vec![3u8; V];
    input.extend(fill(salt));
    input.extend(fill(&pw));
    let mut a = digest(&SHA256, &input).as_ref().to_vec();
    for _ in 1..iterations {
        a = digest(&SHA256, &a).as_ref().to_vec();
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&a[..32]);
    out
}

/// The keystore as a PKCS#12 file (`format: PKCS12`), as Java 17 writes
/// one: the key shrouded under the key password, certificates in the
/// clear (trusted ones marked for Java), and an HMAC-SHA256 integrity
/// check under the store password. Java reads a key whose password
/// differs from the store's only through its own API, not keytool.
pub fn pkcs12(entries: &[Entry<'_>], store_password: &str) -> Option<Vec<u8>> {
    let mut key_bags = Vec::new();
    let mut cert_bags = Vec::new();
    for (n, e) in entries.iter().enumerate() {
        match e {
            Entry::PrivateKey {
                alias,
                pkcs8,
                chain,
                password,
            } => {
                let id = format!("Time {n}");
                let attrs = [friendly_name(alias), local_key_id(id.as_bytes())].concat();
                key_bags.extend(seq(&[
                    &oid(&[1, 2, 840, 113549, 1, 12, 10, 1, 2]),
                    &explicit0(&shrouded(pkcs8, password)?),
                    &tlv(0x31, &attrs),
                ]));
                for (i, cert) in chain.iter().enumerate() {
                    let attrs = if i == 0 { attrs.clone() } else { Vec::new() };
                    cert_bags.extend(cert_bag(cert, &attrs));
                }
            }
            Entry::Certificate { alias, der } => {
                // Oracle's trustedKeyUsage (any usage): without it Java
                // skips a certificate that has no key.
                let trusted = attribute(
                    &[2, 16, 840, 1, 113894, 746875, 1, 1],
                    &oid(&[2, 5, 29, 37, 0]),
                );
                let attrs = [friendly_name(alias), trusted].concat();
                cert_bags.extend(cert_bag(der, &attrs));
            }
        }
    }
    let mut safes = Vec::new();
    if !key_bags.is_empty() {
        safes.extend(data_content(&tlv(0x30, &key_bags)));
    }
    safes.extend(data_content(&tlv(0x30, &cert_bags)));
    let auth_safe = tlv(0x30, &safes);
    let salt: [u8; 20] = gatehouse_core::id::bytes();
    let key = pkcs12_mac_key(store_password, &salt, PKCS12_ITERATIONS);
    let mac = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key),
        &auth_safe,
    );
    let mac_data = seq(&[
        &seq(&[
            &seq(&[&oid(&[2, 16, 840, 1, 101, 3, 4, 2, 1]), &[0x05, 0x00]]),
            &tlv(0x04, mac.as_ref()),
        ]),
        &tlv(0x04, &salt),
        &int(PKCS12_ITERATIONS),
    ]);
    Some(seq(&[&int(3), &data_content(&auth_safe), &mac_data]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_keystore_reads_back_under_its_passwords() {
        let pkcs8: Vec<u8> = (0..300u16).map(|i| (i % 251) as u8).collect();
        let cert = [0x30u8, 0x03, 0x02, 0x01, 0x01];
        let file = jks(
            &[
                Entry::PrivateKey {
                    alias: "Client",
                    pkcs8: &pkcs8,
                    chain: vec![&cert],
                    password: "key-pw",
                },
                Entry::Certificate {
                    alias: "realm",
                    der: &cert,
                },
            ],
            "store-pw",
            1,
        );
        assert_eq!(&file[..8], &[0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2]);
        let read = |store: &str, alias: &str, key: &str| read_jks(&file, store, alias, key);
        assert_eq!(
            read("store-pw", "client", "key-pw"),
            Ok((Some(pkcs8.clone()), Some(cert.to_vec())))
        );
        assert_eq!(
            read("store-pw", "CLIENT", "wrong"),
            Err(JksError::KeyPassword)
        );
        assert_eq!(read("wrong", "client", "key-pw"), Err(JksError::Integrity));
        assert_eq!(
            read("store-pw", "realm", ""),
            Ok((None, Some(cert.to_vec())))
        );
        assert_eq!(read("store-pw", "nope", ""), Err(JksError::NoSuchAlias));
        // Truncated, the digest no longer matches; not JKS at all, refused
        // before it is read.
        assert_eq!(
            read_jks(&file[..40], "store-pw", "client", "key-pw"),
            Err(JksError::Integrity)
        );
        assert_eq!(
            read_jks(&[0x30; 64], "store-pw", "client", "key-pw"),
            Err(JksError::Malformed)
        );
    }

    proptest::proptest! {
        /// Any body behind a valid header and digest (so the reader goes
        /// past the integrity check): an answer, never a panic.
        #[test]
        fn any_jks_body_is_read_or_refused(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let mut file = MAGIC.to_be_bytes().to_vec();
            file.extend_from_slice(&2u32.to_be_bytes());
            file.extend_from_slice(&body);
            let digest = sha1(&[&utf16_be("pw"), b"Mighty Aphrodite", &file]);
            file.extend_from_slice(&digest);
            let _ = read_jks(&file, "pw", "a", "pw");
        }
    }

    #[test]
    fn java_strings_and_der_lengths() {
        let mut out = Vec::new();
        put_utf(&mut out, "a\u{0}é€");
        assert_eq!(out, [0, 8, b'a', 0xc0, 0x80, 0xc3, 0xa9, 0xe2, 0x82, 0xac]);
        assert_eq!(tlv(0x04, &[7; 3]), [0x04, 3, 7, 7, 7]);
        let long = tlv(0x04, &[0; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }
}
