//! Algorithms, public keys and the signature primitive, on ring.
//!
//! Every algorithm URI the hub accepts is listed here and nowhere else; everything else is
//! refused as unsupported. SHA-1 (digests, `rsa-sha1`, `sha1WithRSA` certificates) and RSA
//! keys under 2048 bits are *legacy*: usable only when the policy allows it, and reported
//! each time they are used.

use std::fmt;

use num_bigint::BigUint;
use ring::digest;
use ring::signature::{self as sig, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo};

/// A feature accepted only under the legacy policy, recorded whenever it is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Legacy {
    /// A SHA-1 reference digest.
    Sha1Digest,
    /// The `rsa-sha1` signature method.
    RsaSha1,
    /// An RSA key shorter than 2048 bits (signer or certificate issuer).
    ShortRsaKey,
    /// A certificate signed with `sha1WithRSAEncryption`.
    Sha1Certificate,
    /// A certificate signed with `md5WithRSAEncryption` (seen only in old test vectors).
    Md5Certificate,
    /// A `#xpointer(...)` reference URI.
    XpointerUri,
}

impl fmt::Display for Legacy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Legacy::Sha1Digest => "SHA-1 digest",
            Legacy::RsaSha1 => "rsa-sha1 signature",
            Legacy::ShortRsaKey => "RSA key under 2048 bits",
            Legacy::Sha1Certificate => "SHA-1 certificate signature",
            Legacy::Md5Certificate => "MD5 certificate signature",
            Legacy::XpointerUri => "#xpointer reference",
        })
    }
}

/// Hash functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hash {
    /// SHA-1 (legacy).
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

const DIGESTS: [(&str, Hash); 4] = [
    ("http://www.w3.org/2000/09/xmldsig#sha1", Hash::Sha1),
    ("http://www.w3.org/2001/04/xmlenc#sha256", Hash::Sha256),
    (
        "http://www.w3.org/2001/04/xmldsig-more#sha384",
        Hash::Sha384,
    ),
    ("http://www.w3.org/2001/04/xmlenc#sha512", Hash::Sha512),
];

impl Hash {
    /// The DigestMethod a URI names.
    pub fn from_digest_uri(uri: &str) -> Option<Hash> {
        DIGESTS.iter().find(|(u, _)| *u == uri).map(|&(_, h)| h)
    }

    /// The DigestMethod URI.
    pub fn digest_uri(self) -> &'static str {
        DIGESTS
            .iter()
            .find(|(_, h)| *h == self)
            .map_or("", |(u, _)| u)
    }

    /// ring's algorithm.
    pub fn ring(self) -> &'static digest::Algorithm {
        match self {
            Hash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha384 => &digest::SHA384,
            Hash::Sha512 => &digest::SHA512,
        }
    }

    /// DER DigestInfo prefix for PKCS#1 v1.5 (RFC 8017 §9.2 note 1).
    fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            Hash::Sha1 => &[
                0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
                0x14,
            ],
            Hash::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            Hash::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            Hash::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }
}

/// Signature schemes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    /// RSASSA-PKCS1-v1_5.
    Rsa,
    /// ECDSA.
    Ecdsa,
}

/// A signature algorithm: scheme and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct SignatureAlg {
    /// The scheme.
    pub scheme: Scheme,
    /// The hash.
    pub hash: Hash,
}

const SIGNATURES: [(&str, Scheme, Hash); 6] = [
    (
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        Scheme::Rsa,
        Hash::Sha1,
    ),
    (
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        Scheme::Rsa,
        Hash::Sha256,
    ),
    (
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
        Scheme::Rsa,
        Hash::Sha384,
    ),
    (
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
        Scheme::Rsa,
        Hash::Sha512,
    ),
    (
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
        Scheme::Ecdsa,
        Hash::Sha256,
    ),
    (
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
        Scheme::Ecdsa,
        Hash::Sha384,
    ),
];

impl SignatureAlg {
    /// The SignatureMethod a URI names, if supported.
    pub fn from_uri(uri: &str) -> Option<Self> {
        SIGNATURES
            .iter()
            .find(|(u, ..)| *u == uri)
            .map(|&(_, scheme, hash)| SignatureAlg { scheme, hash })
    }

    /// The SignatureMethod URI.
    pub fn uri(self) -> &'static str {
        SIGNATURES
            .iter()
            .find(|(_, s, h)| *s == self.scheme && *h == self.hash)
            .map_or("", |(u, ..)| u)
    }

    /// The signature algorithm of an X.509 certificate or CRL (by OID), if supported.
    pub fn from_x509_oid(oid: &str) -> Option<Self> {
        let (scheme, hash) = match oid {
            "1.2.840.113549.1.1.5" => (Scheme::Rsa, Hash::Sha1),
            "1.2.840.113549.1.1.11" => (Scheme::Rsa, Hash::Sha256),
            "1.2.840.113549.1.1.12" => (Scheme::Rsa, Hash::Sha384),
            "1.2.840.113549.1.1.13" => (Scheme::Rsa, Hash::Sha512),
            "1.2.840.10045.4.3.2" => (Scheme::Ecdsa, Hash::Sha256),
            "1.2.840.10045.4.3.3" => (Scheme::Ecdsa, Hash::Sha384),
            _ => return None,
        };
        Some(SignatureAlg { scheme, hash })
    }
}

impl fmt::Display for SignatureAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self.scheme {
            Scheme::Rsa => "rsa",
            Scheme::Ecdsa => "ecdsa",
        };
        let h = match self.hash {
            Hash::Sha1 => "sha1",
            Hash::Sha256 => "sha256",
            Hash::Sha384 => "sha384",
            Hash::Sha512 => "sha512",
        };
        write!(f, "{s}-{h}")
    }
}

/// Elliptic curves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Curve {
    /// NIST P-256 (prime256v1).
    P256,
    /// NIST P-384 (secp384r1).
    P384,
}

impl Curve {
    /// The curve an OID names, if supported.
    pub fn from_oid(oid: &str) -> Option<Curve> {
        match oid {
            "1.2.840.10045.3.1.7" => Some(Curve::P256),
            "1.3.132.0.34" => Some(Curve::P384),
            _ => None,
        }
    }

    fn scalar_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }
}

/// A public key the hub can verify with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// RSA: big-endian modulus (no leading zeros) and exponent.
    Rsa {
        /// Modulus.
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
    },
    /// EC: curve and uncompressed point.
    Ec {
        /// The curve.
        curve: Curve,
        /// `04 || X || Y`.
        point: Vec<u8>,
    },
}

/// Why a key cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not a key we can read.
    #[error("malformed key: {0}")]
    Malformed(String),
    /// A key type, curve or size outside what the hub supports.
    #[error("unsupported key: {0}")]
    Unsupported(String),
}

fn strip_zeros(b: &[u8]) -> Vec<u8> {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b[first..].to_vec()
}

impl PublicKey {
    /// An RSA key from its modulus and exponent (big-endian, leading zeros allowed).
    pub fn rsa(n: &[u8], e: &[u8]) -> Result<Self, KeyError> {
        let (n, e) = (strip_zeros(n), strip_zeros(e));
        if n.is_empty() || e.is_empty() {
            return Err(KeyError::Malformed("empty RSA modulus or exponent".into()));
        }
        Ok(PublicKey::Rsa { n, e })
    }

    /// An EC key from a curve OID and an encoded point.
    pub fn ec(curve_oid: &str, point: &[u8]) -> Result<Self, KeyError> {
        let curve = Curve::from_oid(curve_oid)
            .ok_or_else(|| KeyError::Unsupported(format!("elliptic curve {curve_oid}")))?;
        if point.len() != 1 + 2 * curve.scalar_len() || point[0] != 4 {
            return Err(KeyError::Malformed(
                "EC public key is not an uncompressed point on its curve".into(),
            ));
        }
        Ok(PublicKey::Ec {
            curve,
            point: point.to_vec(),
        })
    }

    /// A key from a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let (rest, spki) = SubjectPublicKeyInfo::from_der(der)
            .map_err(|e| KeyError::Malformed(format!("SubjectPublicKeyInfo: {e}")))?;
        if !rest.is_empty() {
            return Err(KeyError::Malformed(
                "trailing bytes after SubjectPublicKeyInfo".into(),
            ));
        }
        Self::from_spki(&spki)
    }

    /// A key from a parsed SubjectPublicKeyInfo.
    pub fn from_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<Self, KeyError> {
        use x509_parser::public_key::PublicKey as P;
        let alg = spki.algorithm.algorithm.to_id_string();
        match spki.parsed() {
            Ok(P::RSA(k)) if alg == "1.2.840.113549.1.1.1" => Self::rsa(k.modulus, k.exponent),
            Ok(P::EC(point)) => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string())
                    .ok_or_else(|| KeyError::Malformed("EC key without a named curve".into()))?;
                Self::ec(&curve, point.data())
            }
            Ok(_) => Err(KeyError::Unsupported(format!("key algorithm {alg}"))),
            Err(e) => Err(KeyError::Malformed(format!("public key: {e}"))),
        }
    }

    /// RSA modulus size in bits (0 for EC keys).
    pub fn rsa_bits(&self) -> usize {
        match self {
            PublicKey::Rsa { n, .. } => {
                n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize)
            }
            PublicKey::Ec { .. } => 0,
        }
    }

    /// "RSA-2048", "EC-P256".
    pub fn describe(&self) -> String {
        match self {
            PublicKey::Rsa { .. } => format!("RSA-{}", self.rsa_bits()),
            PublicKey::Ec { curve, .. } => match curve {
                Curve::P256 => "EC-P256".into(),
                Curve::P384 => "EC-P384".into(),
            },
        }
    }

    fn scheme(&self) -> Scheme {
        match self {
            PublicKey::Rsa { .. } => Scheme::Rsa,
            PublicKey::Ec { .. } => Scheme::Ecdsa,
        }
    }

    /// Checks the key against policy: RSA 2048..=8192 bits (1024 and up under the legacy
    /// policy), EC on P-256 or P-384 (enforced at construction). Returns the legacy feature
    /// used, if any.
    pub fn check_policy(&self, allow_legacy: bool) -> Result<Option<Legacy>, PolicyError> {
        let bits = self.rsa_bits();
        match self {
            PublicKey::Ec { .. } => Ok(None),
            PublicKey::Rsa { .. } if bits > 8192 => Err(PolicyError::Refused(format!(
                "RSA key of {bits} bits is larger than 8192"
            ))),
            PublicKey::Rsa { .. } if bits >= 2048 => Ok(None),
            PublicKey::Rsa { .. } if bits >= 1024 && allow_legacy => Ok(Some(Legacy::ShortRsaKey)),
            PublicKey::Rsa { .. } if bits >= 1024 => Err(PolicyError::Refused(format!(
                "RSA key of {bits} bits is shorter than 2048 (legacy policy not enabled)"
            ))),
            PublicKey::Rsa { .. } => Err(PolicyError::Refused(format!(
                "RSA key of {bits} bits is too short"
            ))),
        }
    }
}

/// How an ECDSA signature is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EcdsaEncoding {
    /// `r || s`, fixed width (XML-Signature).
    Raw,
    /// DER `SEQUENCE { r, s }` (X.509).
    Der,
}

/// A refusal (outside policy) or a failure (the signature does not verify).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Outside policy or scope.
    #[error("{0}")]
    Refused(String),
    /// Does not verify.
    #[error("{0}")]
    Invalid(String),
}

/// Verifies `signature` over `message` with `key` and `alg`. The caller has already checked
/// the key and algorithm against policy.
pub fn verify(
    key: &PublicKey,
    alg: SignatureAlg,
    encoding: EcdsaEncoding,
    message: &[u8],
    signature: &[u8],
) -> Result<(), PolicyError> {
    if key.scheme() != alg.scheme {
        return Err(PolicyError::Invalid(format!(
            "{} key cannot verify a {alg} signature",
            key.describe()
        )));
    }
    let bad = || PolicyError::Invalid(format!("{alg} signature does not verify"));
    match key {
        PublicKey::Rsa { n, e } => {
            let bits = key.rsa_bits();
            let params: Option<&'static sig::RsaParameters> = match (alg.hash, bits >= 2048) {
                (Hash::Sha1, true) => Some(&sig::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY),
                (Hash::Sha256, true) => Some(&sig::RSA_PKCS1_2048_8192_SHA256),
                (Hash::Sha384, true) => Some(&sig::RSA_PKCS1_2048_8192_SHA384),
                (Hash::Sha512, true) => Some(&sig::RSA_PKCS1_2048_8192_SHA512),
                (Hash::Sha1, false) => Some(&sig::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY),
                (Hash::Sha256, false) => Some(&sig::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY),
                (Hash::Sha512, false) => Some(&sig::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY),
                // ring has no SHA-384 variant for short keys.
                (Hash::Sha384, false) => None,
            };
            match params {
                Some(p) => sig::RsaPublicKeyComponents { n, e }
                    .verify(p, message, signature)
                    .map_err(|_| bad()),
                None if pkcs1v15_verify(
                    n,
                    e,
                    alg.hash.digest_info_prefix(),
                    digest::digest(alg.hash.ring(), message).as_ref(),
                    signature,
                ) =>
                {
                    Ok(())
                }
                None => Err(bad()),
            }
        }
        PublicKey::Ec { curve, point } => {
            // ring offers every curve/hash pair in the DER form only, so raw r||s is
            // re-encoded as DER.
            let ring_alg: &'static dyn VerificationAlgorithm = match (curve, alg.hash) {
                (Curve::P256, Hash::Sha256) => &sig::ECDSA_P256_SHA256_ASN1,
                (Curve::P256, Hash::Sha384) => &sig::ECDSA_P256_SHA384_ASN1,
                (Curve::P384, Hash::Sha256) => &sig::ECDSA_P384_SHA256_ASN1,
                (Curve::P384, Hash::Sha384) => &sig::ECDSA_P384_SHA384_ASN1,
                _ => {
                    return Err(PolicyError::Refused(format!(
                        "{alg} is not supported on {}",
                        key.describe()
                    )));
                }
            };
            let der;
            let signature = match encoding {
                EcdsaEncoding::Raw => {
                    let fixed = raw_ecdsa(signature, curve.scalar_len()).ok_or_else(|| {
                        PolicyError::Invalid(format!(
                            "ECDSA SignatureValue of {} bytes is not r||s for {}",
                            signature.len(),
                            key.describe()
                        ))
                    })?;
                    let (r, s) = fixed.split_at(curve.scalar_len());
                    der = der_signature(r, s);
                    &der[..]
                }
                EcdsaEncoding::Der => signature,
            };
            UnparsedPublicKey::new(ring_alg, point)
                .verify(message, signature)
                .map_err(|_| bad())
        }
    }
}

/// Brings a raw `r || s` signature to exactly twice the scalar length: halves longer than
/// the scalar must be zero-padded on the left, shorter ones are padded. DER is not raw.
fn raw_ecdsa(sig: &[u8], len: usize) -> Option<Vec<u8>> {
    if sig.is_empty() || sig.len() % 2 != 0 {
        return None;
    }
    let half = sig.len() / 2;
    let mut out = Vec::with_capacity(2 * len);
    for part in [&sig[..half], &sig[half..]] {
        if part.len() > len {
            let (pad, value) = part.split_at(part.len() - len);
            if pad.iter().any(|&b| b != 0) {
                return None;
            }
            out.extend_from_slice(value);
        } else {
            out.resize(out.len() + len - part.len(), 0);
            out.extend_from_slice(part);
        }
    }
    Some(out)
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }` from big-endian unsigned r and s (each at most
/// 48 bytes, so every length fits in one byte).
fn der_signature(r: &[u8], s: &[u8]) -> Vec<u8> {
    fn integer(out: &mut Vec<u8>, v: &[u8]) {
        let v = &v[v
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(v.len().saturating_sub(1))..];
        let pad = v.first().is_none_or(|&b| b & 0x80 != 0);
        out.push(0x02);
        out.push((v.len() + usize::from(pad)) as u8);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
    }
    let mut body = Vec::with_capacity(2 * r.len() + 8);
    integer(&mut body, r);
    integer(&mut body, s);
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

/// RSASSA-PKCS1-v1_5 verification (RFC 8017 §8.2.2) for the combinations ring does not
/// offer (SHA-384 with keys under 2048 bits, legacy only). Public data, no secrets: a plain
/// comparison is fine.
fn pkcs1v15_verify(n: &[u8], e: &[u8], prefix: &[u8], h: &[u8], signature: &[u8]) -> bool {
    let k = n.len();
    if signature.len() != k {
        return false;
    }
    let modulus = BigUint::from_bytes_be(n);
    let s = BigUint::from_bytes_be(signature);
    if s >= modulus {
        return false;
    }
    let m = s.modpow(&BigUint::from_bytes_be(e), &modulus).to_bytes_be();
    let mut em = vec![0u8; k.saturating_sub(m.len())];
    em.extend_from_slice(&m);
    let t_len = prefix.len() + h.len();
    if k < t_len + 11 {
        return false;
    }
    let mut expected = vec![0x00, 0x01];
    expected.resize(k - t_len - 1, 0xff);
    expected.push(0x00);
    expected.extend_from_slice(prefix);
    expected.extend_from_slice(h);
    em == expected
}

/// Verifies an `md5WithRSAEncryption` certificate signature (legacy policy only; the
/// caller decides). MD5 is computed by the `md-5` crate, ring has none.
pub fn verify_rsa_md5(key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
    use md5::Digest;
    const MD5_PREFIX: [u8; 18] = [
        0x30, 0x20, 0x30, 0x0c, 0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05, 0x05,
        0x00, 0x04, 0x10,
    ];
    match key {
        PublicKey::Rsa { n, e } => {
            pkcs1v15_verify(n, e, &MD5_PREFIX, &md5::Md5::digest(message), signature)
        }
        PublicKey::Ec { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_ecdsa_pads_and_strips_only_zeros() {
        let mut sig = vec![0u8; 33];
        sig[32] = 7;
        let mut s2 = vec![0u8; 33];
        s2[1] = 9;
        sig.extend(&s2);
        let fixed = raw_ecdsa(&sig, 32).unwrap();
        assert_eq!(fixed.len(), 64);
        assert_eq!(fixed[31], 7);
        assert_eq!(fixed[32], 9);
        let mut nonzero = vec![1u8; 66];
        nonzero[0] = 1;
        assert_eq!(raw_ecdsa(&nonzero, 32), None);
        assert_eq!(raw_ecdsa(&[1, 2], 32).map(|v| v.len()), Some(64));
        assert_eq!(raw_ecdsa(&[1, 2, 3], 32), None);
    }

    #[test]
    fn uris_round_trip() {
        for (uri, ..) in SIGNATURES {
            assert_eq!(SignatureAlg::from_uri(uri).unwrap().uri(), uri);
        }
        for (uri, h) in DIGESTS {
            assert_eq!(Hash::from_digest_uri(uri), Some(h));
            assert_eq!(h.digest_uri(), uri);
        }
        assert_eq!(
            SignatureAlg::from_uri("http://www.w3.org/2000/09/xmldsig#dsa-sha1"),
            None
        );
    }

    #[test]
    fn key_policy() {
        let k1024 = PublicKey::rsa(&[0xff; 128], &[1, 0, 1]).unwrap();
        assert_eq!(k1024.rsa_bits(), 1024);
        assert!(k1024.check_policy(false).is_err());
        assert_eq!(k1024.check_policy(true), Ok(Some(Legacy::ShortRsaKey)));
        let k512 = PublicKey::rsa(&[0xff; 64], &[3]).unwrap();
        assert!(k512.check_policy(true).is_err());
        let k2048 = PublicKey::rsa(&[0, 0xff, 1], &[3]).unwrap();
        assert_eq!(k2048.rsa_bits(), 16);
        assert!(PublicKey::ec("1.3.132.0.35", &[4; 133]).is_err());
    }
}
