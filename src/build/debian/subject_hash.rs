//! OpenSSL's subject-name hash of a PEM certificate, the `HASH.N` name under which `openssl rehash` (run by `update-ca-certificates`) links each certificate in `/etc/ssl/certs`, so that programs looking certificates up by directory (`CApath`) find them.
//!
//! As OpenSSL computes it (`crypto/x509/x_name.c`, `x509_name_canon` and
//! `asn1_string_canon`; `X509_NAME_hash_ex` in `x509_cmp.c`): the subject
//! name's canonical encoding is each relative distinguished name, in
//! order, DER-encoded as a `SET` of `SEQUENCE { OID, value }` without the
//! name's outer `SEQUENCE`, where a value of a string type (UTF8, BMP,
//! Universal, Printable, T61, IA5, Visible) is converted to UTF-8, stripped
//! of leading and trailing white space, its inner white space runs made one
//! space and its ASCII letters lowercased, and encoded as a `UTF8String`;
//! other values are kept as they are. The hash is the first four bytes of
//! the SHA-1 of that encoding, read little-endian, printed as 8 hex digits.

use anyhow::{Context, Result, bail};
use sha1::{Digest, Sha1};

/// The subject hash of the first certificate of a PEM file.
pub fn of_pem(pem: &[u8]) -> Result<u32> {
    let der = pem_body(pem)?;
    let canonical = canonical_subject(&der)?;
    let digest = Sha1::digest(&canonical);
    Ok(u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]))
}

/// The DER bytes of the first `CERTIFICATE` block.
fn pem_body(pem: &[u8]) -> Result<Vec<u8>> {
    let text = String::from_utf8_lossy(pem);
    let begin = "-----BEGIN CERTIFICATE-----";
    let start = text.find(begin).context("no `BEGIN CERTIFICATE` line")? + begin.len();
    let end =
        text[start..].find("-----END CERTIFICATE-----").context("no `END CERTIFICATE` line")?;
    base64(&text[start..start + end])
}

/// Standard base64 (RFC 4648), white space ignored.
fn base64(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => bail!("`{}` is not base64", c as char),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

/// One DER element: its tag, its content, and the bytes after it.
fn element(der: &[u8]) -> Result<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first().context("a truncated certificate")?;
    let (&first, rest) = rest.split_first().context("a truncated certificate")?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        anyhow::ensure!(n <= 4 && rest.len() >= n, "a bad length in the certificate");
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    anyhow::ensure!(rest.len() >= len, "a truncated certificate");
    Ok((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const UTF8_STRING: u8 = 0x0c;

/// The canonical encoding of the certificate's subject name.
fn canonical_subject(der: &[u8]) -> Result<Vec<u8>> {
    let (_, certificate, _) = element(der)?;
    let (_, tbs, _) = element(certificate)?;
    let mut rest = tbs;
    // version [0] EXPLICIT, when present
    if rest.first() == Some(&0xa0) {
        rest = element(rest)?.2;
    }
    // serialNumber, signature, issuer, validity, then subject
    for _ in 0..4 {
        rest = element(rest)?.2;
    }
    let (tag, mut name, _) = element(rest)?;
    anyhow::ensure!(tag == SEQUENCE, "the subject is not a name");
    let mut out = Vec::new();
    while !name.is_empty() {
        let (tag, mut rdn, next) = element(name)?;
        anyhow::ensure!(tag == SET, "a name part that is not a set");
        let mut entries = Vec::new();
        while !rdn.is_empty() {
            let (_, attribute, after) = element(rdn)?;
            let (oid_tag, oid, value_der) = element(attribute)?;
            let (value_tag, value, _) = element(value_der)?;
            let mut entry = der_encode(oid_tag, oid);
            entry.extend(match canonical_string(value_tag, value) {
                Some(text) => der_encode(UTF8_STRING, text.as_bytes()),
                None => der_encode(value_tag, value),
            });
            entries.push(der_encode(SEQUENCE, &entry));
            rdn = after;
        }
        // DER orders the members of a SET OF by their encodings.
        entries.sort();
        out.extend(der_encode(SET, &entries.concat()));
        name = next;
    }
    Ok(out)
}

fn der_encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A string value in canonical form (`asn1_string_canon`), or `None` for a
/// type that is kept as it is.
fn canonical_string(tag: u8, value: &[u8]) -> Option<String> {
    let utf8: String = match tag {
        // UTF8String
        0x0c => String::from_utf8_lossy(value).into_owned(),
        // PrintableString, T61String, IA5String, VisibleString: one byte a
        // character, read as Latin-1 by ASN1_STRING_to_UTF8.
        0x13 | 0x14 | 0x16 | 0x1a => value.iter().map(|b| char::from(*b)).collect(),
        // BMPString: UTF-16BE.
        0x1e => {
            let units: Vec<u16> =
                value.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            String::from_utf16_lossy(&units)
        }
        // UniversalString: UCS-4BE.
        0x1c => value
            .chunks(4)
            .filter_map(|c| char::from_u32(u32::from_be_bytes(c.try_into().ok()?)))
            .collect(),
        _ => return None,
    };
    // `ossl_isspace`: space, \t, \n, \v, \f, \r.
    let space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r');
    let mut out = String::with_capacity(utf8.len());
    let mut in_space = false;
    for c in utf8.trim_matches(space).chars() {
        if space(c) {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c.to_ascii_lowercase());
            in_space = false;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_canonical_as_openssl_makes_them() {
        assert_eq!(canonical_string(0x13, b"  Foo   Bar CA ").as_deref(), Some("foo bar ca"));
        assert_eq!(canonical_string(0x0c, "Été\tX".as_bytes()).as_deref(), Some("Été x"));
        assert_eq!(canonical_string(0x1e, &[0, b'A', 0, b' ', 0, b'b']).as_deref(), Some("a b"));
        assert_eq!(canonical_string(0x04, b"raw"), None);
    }

    #[test]
    fn base64_decodes_with_padding_and_line_breaks() {
        assert_eq!(base64("aGVs\nbG8=").unwrap(), b"hello");
    }
}
