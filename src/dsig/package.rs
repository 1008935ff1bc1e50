//! The edXML package policy on top of core validation, and [`VerifiedPackage`].
//!
//! A package is accepted on its signature only if: it parses as a package (strict or
//! lenient, as the sender's policy says); it carries exactly one `ds:Signature`, in the
//! XML-Signature namespace, as the last child of `edXMLHeader` (checked by the edXML parser);
//! no other `ds:Signature` exists anywhere in the document; and that signature passes core
//! validation under the strict policy — one Reference covering the whole document with the
//! enveloped transform, no `ds:Object`, no duplicate Ids. Because the Reference covers the
//! whole document minus the Signature, everything [`VerifiedPackage`] exposes is signed.
//!
//! When [`Keys::directory`] is set, the signer must also be allowed to sign for the
//! package's sender (`From/OrganId`); otherwise the verdict is untrusted with the code
//! `signer-not-authorized-for-sender`, however valid the signature and its chain.

use std::fmt;

use jiff::Timestamp;

use super::verify::{Keys, Policy, signatures, verify_signature_with_cert};
use super::{Report, Verdict};
use crate::directory::NotAuthorized;
use crate::edxml::{self, Package, ParsedPackage, Problem, Rejection};

/// A package whose signature verified under the package policy. It can only be built by
/// [`verify_package`].
#[derive(Debug)]
pub struct VerifiedPackage<'a> {
    parsed: ParsedPackage<'a>,
    report: Report,
}

impl<'a> VerifiedPackage<'a> {
    /// The package model (all of it is covered by the signature).
    pub fn package(&self) -> &Package {
        self.parsed.package()
    }

    /// The exact bytes received.
    pub fn bytes(&self) -> &'a [u8] {
        self.parsed.bytes()
    }

    /// How the signature was verified: signer, algorithms, legacy features used.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// Problems tolerated by lenient parsing.
    pub fn warnings(&self) -> &[Problem] {
        self.parsed.warnings()
    }
}

/// Why a package was not accepted on its signature.
#[derive(Debug)]
pub enum PackageError {
    /// Not a valid package.
    Package(Rejection),
    /// No signature at all.
    Unsigned,
    /// The signature is not valid, refused or untrusted.
    Signature(Verdict),
}

impl PackageError {
    /// The `truc verify` exit code: 1 invalid package or signature, 2 refused, 3 untrusted.
    pub fn exit_code(&self) -> u8 {
        match self {
            PackageError::Package(_) | PackageError::Unsigned => 1,
            PackageError::Signature(v) => v.exit_code(),
        }
    }
}

impl fmt::Display for PackageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackageError::Package(r) => write!(f, "invalid package: {r}"),
            PackageError::Unsigned => {
                f.write_str("invalid: no-signature: the package is not signed")
            }
            PackageError::Signature(v) => v.fmt(f),
        }
    }
}

impl std::error::Error for PackageError {}

/// Parses `bytes` as a package under `options` and verifies its signature under the package
/// policy (legacy features only if `allow_legacy`), judging trust at `now`.
pub fn verify_package<'a>(
    bytes: &'a [u8],
    options: &edxml::Options,
    keys: &Keys,
    allow_legacy: bool,
    now: Timestamp,
) -> Result<VerifiedPackage<'a>, PackageError> {
    let parsed = edxml::parse(bytes, options).map_err(PackageError::Package)?;
    verify_parsed(parsed, keys, allow_legacy, now)
}

/// [`verify_package`] for a package already parsed (the hub reads the sender before it
/// judges the signature, and parses once).
pub fn verify_parsed<'a>(
    parsed: ParsedPackage<'a>,
    keys: &Keys,
    allow_legacy: bool,
    now: Timestamp,
) -> Result<VerifiedPackage<'a>, PackageError> {
    let Some(location) = parsed.signature() else {
        return Err(PackageError::Unsigned);
    };
    if !location.in_dsig_namespace {
        return Err(PackageError::Signature(Verdict::refused(
            "signature-shape",
            "the Signature element is not in the XML-Signature namespace",
        )));
    }
    let doc = parsed.document();
    let all = signatures(doc);
    if all.as_slice() != [location.node] {
        return Err(PackageError::Signature(Verdict::refused(
            "multiple-signatures",
            format!(
                "{} ds:Signature elements; a package carries exactly one, at the end of edXMLHeader",
                all.len()
            ),
        )));
    }
    let policy = Policy {
        allow_legacy,
        strict: true,
    };
    let (mut report, signer) = verify_signature_with_cert(doc, location.node, keys, &policy, now)
        .map_err(PackageError::Signature)?;
    if let Some(directory) = &keys.directory {
        let started = crate::clock::monotonic();
        let sender = parsed.package().sender();
        let authorization = directory
            .authorize_signer(sender.as_str(), signer.as_ref())
            .map_err(|e| {
                PackageError::Signature(Verdict::untrusted(NotAuthorized::CODE, e.to_string()))
            })?;
        report.authorization = Some(authorization);
        report.timings.chain += started.elapsed();
    }
    Ok(VerifiedPackage { parsed, report })
}
