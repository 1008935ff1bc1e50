//! `truc cert verify`: the trust decision on one certificate, as the hub makes it.
//!
//! Exit codes (a contract): 0 trusted, 3 untrusted (with the reason), 1 unreadable input,
//! 64 usage.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use jiff::Timestamp;
use serde_json::json;

use super::dsig::parse_at;
use super::{EXIT_OK, Outcome};
use crate::clock::{Clock, SystemClock};
use crate::dsig::CertInfo;
use crate::pki::{self, Certificate, CrlStore, Purpose, RevocationPolicy, TrustStore};

/// Exit code for an untrusted certificate (as `truc dsig verify` uses for untrusted keys).
pub const EXIT_UNTRUSTED: u8 = 3;

/// `truc cert ...`
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Validate a certificate's path to the trust anchors, its use and its revocation status
    /// (exit 0 trusted, 3 untrusted).
    Verify(CertVerifyArgs),
}

/// `--purpose` values.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PurposeArg {
    /// Document signing (keyUsage digitalSignature or nonRepudiation).
    Signer,
    /// TLS client authentication (mTLS).
    TlsClient,
    /// TLS server authentication.
    TlsServer,
}

impl From<PurposeArg> for Purpose {
    fn from(p: PurposeArg) -> Purpose {
        match p {
            PurposeArg::Signer => Purpose::Signer,
            PurposeArg::TlsClient => Purpose::TlsClient,
            PurposeArg::TlsServer => Purpose::TlsServer,
        }
    }
}

/// Trust anchors, intermediates and CRLs: the options every verifying command shares.
#[derive(Debug, Args)]
pub struct TrustArgs {
    /// Trust anchor certificates (PEM or DER files, or directories of them).
    #[arg(long = "trusted-pem", value_name = "PEM")]
    pub trusted_pem: Vec<PathBuf>,
    /// Intermediate certificates usable to complete a path (files or directories).
    #[arg(long = "untrusted-pem", value_name = "PEM")]
    pub untrusted_pem: Vec<PathBuf>,
    /// CRLs (DER or PEM files, or directories of them). An issuer with a CRL must have a
    /// current, valid one.
    #[arg(long, value_name = "FILE")]
    pub crl: Vec<PathBuf>,
    /// Accept a path when an issuer's CRL is stale or unusable (reported as a warning)
    /// instead of refusing it.
    #[arg(long)]
    pub crl_soft_fail: bool,
}

impl TrustArgs {
    /// The trust store these options describe.
    pub fn store(&self) -> anyhow::Result<TrustStore> {
        let store = TrustStore::new(
            pki::load_all(&self.trusted_pem)?,
            pki::load_all(&self.untrusted_pem)?,
        );
        if self.crl.is_empty() {
            return Ok(store);
        }
        let crls = CrlStore::open(self.crl.clone())?;
        let policy = RevocationPolicy {
            hard_fail: !self.crl_soft_fail,
            ..RevocationPolicy::default()
        };
        Ok(store.with_revocation(Arc::new(crls), policy))
    }
}

/// `truc cert verify`.
#[derive(Debug, Args)]
pub struct CertVerifyArgs {
    /// The certificate (PEM or DER); further certificates in the file are used as chain.
    pub cert: PathBuf,
    /// Chain certificates (PEM) to help build the path.
    #[arg(long, value_name = "PEM")]
    pub chain: Vec<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub trust: TrustArgs,
    /// Judge validity and revocation at this time (RFC 3339) instead of now.
    #[arg(long, value_name = "RFC3339", value_parser = parse_at)]
    pub at: Option<Timestamp>,
    /// What the certificate must be good for.
    #[arg(long, value_enum, default_value = "signer")]
    pub purpose: PurposeArg,
    /// Accept sha1WithRSA, md5WithRSA and RSA keys under 2048 bits on the path (reported).
    #[arg(long)]
    pub allow_legacy: bool,
    /// Print the decision as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `truc cert ...`.
pub fn run(cmd: CertCommand, out: &mut dyn Write) -> Outcome {
    match cmd {
        CertCommand::Verify(a) => verify(&a, out),
    }
}

fn verify(a: &CertVerifyArgs, out: &mut dyn Write) -> Outcome {
    if a.trust.trusted_pem.is_empty() {
        return Err(super::CliError::Usage(
            "--trusted-pem is required: a certificate is trusted only relative to anchors".into(),
        ));
    }
    let mut certs = Certificate::load(&a.cert).map_err(anyhow::Error::from)?;
    let leaf = certs.remove(0);
    certs.extend(pki::load_all(&a.chain).map_err(anyhow::Error::from)?);
    let store = a.trust.store()?;
    let now = a.at.unwrap_or_else(|| SystemClock.now());
    let purpose = Purpose::from(a.purpose);
    let file = a.cert.display().to_string();
    let result = store.validate(&leaf, &certs, purpose, a.allow_legacy, now);
    let (doc, text, code) = match &result {
        Ok(path) => {
            let chain: Vec<CertInfo> = path.chain.iter().map(CertInfo::from).collect();
            let names: Vec<String> = path
                .chain
                .iter()
                .map(|c| format!("{:?}", c.subject))
                .collect();
            let mut text = format!("{file}: trusted for {purpose}: {}", names.join(" <- "));
            if !path.legacy.is_empty() {
                let l: Vec<String> = path.legacy.iter().map(|l| l.to_string()).collect();
                text.push_str(&format!("; LEGACY: {}", l.join(", ")));
            }
            for w in &path.warnings {
                text.push_str(&format!("; WARNING: {w}"));
            }
            let doc = json!({
                "file": file,
                "verdict": "trusted",
                "purpose": purpose,
                "at": now,
                "chain": chain,
                "legacy": path.legacy,
                "warnings": path.warnings,
            });
            (doc, text, EXIT_OK)
        }
        Err(u) => {
            let doc = json!({
                "file": file,
                "verdict": "untrusted",
                "purpose": purpose,
                "at": now,
                "code": u.code(),
                "reason": u.to_string(),
                "certificate": u.cert,
                "problem": u.problem,
            });
            (
                doc,
                format!("{file}: untrusted: {}: {u}", u.code()),
                EXIT_UNTRUSTED,
            )
        }
    };
    if a.json {
        let doc = serde_json::to_string_pretty(&doc).map_err(anyhow::Error::from)?;
        writeln!(out, "{doc}").context("cannot write")?;
    } else {
        writeln!(out, "{text}").context("cannot write")?;
    }
    Ok(code)
}
