//! X.509 trust decisions: certificates, path validation to configured anchors, revocation.
//!
//! # Architecture
//! ```text
//! cert    Certificate: parsed once (x509-parser) into owned values; never judges
//! chain   TrustStore::validate: path building and every per-link check (RFC 5280 §6
//!         subset), for a Purpose, at an injected `now` → ValidPath | Untrusted
//! crl     RevocationSource (the seam for OCSP), CRLs, CrlStore (reload on change)
//! ```
//! The agency binding (who may sign for, or authenticate as, which agency) lives in
//! [`crate::directory`] and runs after a path is validated.
//!
//! # Invariants
//! - Nothing here reads the clock: every decision takes `now`, so a signature can be judged
//!   "as of" a past moment (`--at`), including revocation.
//! - Fail closed: an unknown critical extension, an unsupported algorithm, an issuer that is
//!   not a CA, a keyUsage or extendedKeyUsage that does not allow the use, or (by default)
//!   an unusable CRL for an issuer that has one, refuses the path.
//! - Legacy algorithms (sha1WithRSA, md5WithRSA, RSA under 2048 bits) pass only under the
//!   legacy policy, and every use is reported in [`ValidPath::legacy`].
//! - Every refusal names the certificate (subject, serial, SHA-256 fingerprint), what
//!   failed and the times involved ([`Untrusted`]).
//!
//! # Non-guarantees
//! No OCSP, no fetching of intermediates or CRLs over the network, no name or policy
//! constraint processing (critical ones are refused). See [`chain`] for the exact list.

pub mod cert;
pub mod chain;
pub mod crl;

use std::path::{Path, PathBuf};

pub use cert::{CertError, CertId, Certificate};
pub use chain::{Problem, Purpose, RevocationPolicy, TrustStore, Untrusted, ValidPath};
pub use crl::{Crl, CrlError, CrlSet, CrlStore, RevocationSource, Status};

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// SHA-256 of `data`, lower-case hex (certificate fingerprints, token hashes).
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&sha256(data))
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, data).as_ref());
    out
}

/// Reads every certificate in the given files; a directory contributes each of its
/// `.pem`, `.crt`, `.cer` and `.der` files (sorted by name).
pub fn load_all<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<Certificate>, CertError> {
    let mut out = Vec::new();
    for p in paths {
        for file in expand(p.as_ref())? {
            out.extend(Certificate::load(&file)?);
        }
    }
    Ok(out)
}

fn expand(path: &Path) -> Result<Vec<PathBuf>, CertError> {
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let entries = std::fs::read_dir(path)
        .map_err(|e| CertError(format!("cannot list {}: {e}", path.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| ["pem", "crt", "cer", "der"].contains(&e))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(CertError(format!(
            "{}: no .pem, .crt, .cer or .der file",
            path.display()
        )));
    }
    Ok(files)
}

#[cfg(test)]
mod tests;
