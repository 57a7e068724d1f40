//! The little DER (ITU-T X.690 §10) the client key needs: reading the outer structures of
//! PKCS#8, PKCS#1 and SEC1 keys, and writing them. Definite lengths only, as DER requires.
//! What it writes may be private key material: every buffer it makes on the way is zeroized.

use zeroize::Zeroizing;

/// ASN.1 universal tags (X.690 §8), and the context tags of SEC1's `ECPrivateKey`.
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const NULL: u8 = 0x05;
pub(crate) const OID: u8 = 0x06;
pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const CONTEXT_0: u8 = 0xa0;

/// `rsaEncryption`, 1.2.840.113549.1.1.1 (RFC 8017 Appendix C).
pub(crate) const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// `id-ecPublicKey`, 1.2.840.10045.2.1 (RFC 5480 §2.1.1).
pub(crate) const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// `secp256r1` (P-256), 1.2.840.10045.3.1.7 (RFC 5480 §2.1.1.1).
pub(crate) const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// A cursor over DER-encoded elements.
pub(crate) struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn new(der: &'a [u8]) -> Self {
        Self(der)
    }

    /// The next element's tag, without consuming it.
    pub(crate) fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// The contents of the next element, which must have `tag`.
    pub(crate) fn read(&mut self, tag: u8) -> Option<&'a [u8]> {
        let (&found, rest) = self.0.split_first()?;
        if found != tag {
            return None;
        }
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            // Long form: 1–4 length octets (no key here comes near 4 GiB), minimal as DER
            // requires (X.690 §10.1): no leading zero octet, and only for lengths of 128 and up.
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return None;
            }
            let (octets, after) = rest.split_at(count);
            rest = after;
            let len = octets.iter().fold(0usize, |len, b| (len << 8) | usize::from(*b));
            if octets.first() == Some(&0) || len < 0x80 {
                return None;
            }
            len
        };
        if rest.len() < len {
            return None;
        }
        let (contents, after) = rest.split_at(len);
        self.0 = after;
        Some(contents)
    }

    /// Whether every element was read.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One element: `tag`, the length, `contents`.
pub(crate) fn write(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(contents.len() + 6);
    out.push(tag);
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let octets: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | octets.len() as u8);
        out.extend(octets);
    }
    out.extend_from_slice(contents);
    out
}

/// An unsigned big-endian integer as a DER INTEGER: minimal, with a zero octet where the top
/// bit is set (X.690 §8.3).
pub(crate) fn unsigned(bytes: &[u8]) -> Vec<u8> {
    let trimmed = crate::keys::trim_zeros(bytes);
    let mut value = Zeroizing::new(Vec::with_capacity(trimmed.len() + 1));
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        value.push(0);
    }
    value.extend_from_slice(trimmed);
    write(INTEGER, &value)
}

/// A SEQUENCE of already encoded elements.
pub(crate) fn sequence(elements: &[&[u8]]) -> Vec<u8> {
    write(SEQUENCE, &Zeroizing::new(elements.concat()))
}
