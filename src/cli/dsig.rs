//! `truc c14n`, `truc dsig verify|sign`, `truc sign` and `truc verify`.
//!
//! Exit codes of the verifying commands (a contract, relied on by the conformance runner):
//! 0 valid, 1 invalid (or not a signature, or unreadable input), 2 refused by policy or
//! unsupported, 3 key not trusted, 64 usage.
//!
//! `truc dsig verify --repeat N` is a benchmark mode: the file is read and the key options
//! are loaded once, then the whole verification (parse, canonicalization, digests, the
//! signature, and the trust decision the key options ask for, all judged at one `now`) runs
//! N times in the process. The verdict and the exit code are those of a single run, printed
//! once; every run must give the same verdict (else exit 1 with an error). A timing line
//! goes to stderr: `truc: 500 verifications in 0.412 s: 824 µs each (1213/s)`. The process-wide
//! caches the hub also keeps (parsed KeyInfo certificates, checked chain links) are warm
//! after the first run, as in a long-running hub. `--repeat 1` (the default) is the plain
//! command, with no timing line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand, ValueEnum};
use jiff::Timestamp;

use super::cert::TrustArgs;
use super::{CliError, EXIT_FAILURE, EXIT_OK, Outcome};
use crate::clock::{Clock, SystemClock};
use crate::directory::Directory;
use crate::dsig::c14n::{Canonicalizer, Method, NodeSet};
use crate::dsig::{self, Hash, Keys, Policy, PublicKey, SignatureAlg, Signer, Verdict};
use crate::edxml::{self, time::vietnam_time};
use crate::pki::{self, Certificate};
use crate::xml::{Document, Limits};

/// Canonicalization methods on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum MethodArg {
    /// Canonical XML 1.0.
    C14n10,
    /// Canonical XML 1.1.
    C14n11,
    /// Exclusive XML Canonicalization 1.0.
    Exc,
}

impl From<MethodArg> for Method {
    fn from(m: MethodArg) -> Method {
        match m {
            MethodArg::C14n10 => Method::C14n10,
            MethodArg::C14n11 => Method::C14n11,
            MethodArg::Exc => Method::Exclusive,
        }
    }
}

/// `truc c14n`: canonical bytes of a document or of one element by Id.
#[derive(Debug, Args)]
pub struct C14nArgs {
    /// The XML document.
    pub file: PathBuf,
    /// Canonicalization method.
    #[arg(long, value_enum)]
    pub method: MethodArg,
    /// Keep comments.
    #[arg(long)]
    pub with_comments: bool,
    /// Exclusive only: InclusiveNamespaces PrefixList ("#default" for the default namespace).
    #[arg(long, value_name = "PREFIXES")]
    pub prefix_list: Option<String>,
    /// Canonicalize only the element with this Id (Id, ID, id, xml:id or wsu:Id).
    #[arg(long, value_name = "ID")]
    pub subtree: Option<String>,
}

/// `truc dsig ...`
#[derive(Debug, Subcommand)]
pub enum DsigCommand {
    /// Generic XML-Signature core validation of the first ds:Signature in a document.
    Verify(DsigVerifyArgs),
    /// Sign a document with an enveloped signature under its root.
    Sign(DsigSignArgs),
}

/// Where keys come from.
#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub trust: TrustArgs,
    /// Pin the key of this certificate (PEM).
    #[arg(long = "pubkey-cert-pem", value_name = "PEM")]
    pub pubkey_cert_pem: Vec<PathBuf>,
    /// Pin the key of this certificate (DER).
    #[arg(long = "pubkey-cert-der", value_name = "DER")]
    pub pubkey_cert_der: Vec<PathBuf>,
    /// Pin this public key (PEM SubjectPublicKeyInfo).
    #[arg(long = "pubkey-pem", value_name = "PEM")]
    pub pubkey_pem: Vec<PathBuf>,
    /// Use whatever key KeyInfo carries, with no trust decision. For testing only.
    #[arg(long)]
    pub insecure: bool,
}

/// `truc dsig verify`.
#[derive(Debug, Args)]
pub struct DsigVerifyArgs {
    /// The signed XML document.
    pub file: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keys: KeyArgs,
    /// Judge certificate validity at this time (RFC 3339) instead of now.
    #[arg(long, value_name = "RFC3339", value_parser = parse_at)]
    pub at: Option<Timestamp>,
    /// Accept legacy algorithms and key sizes (SHA-1, RSA-1024, #xpointer), reported.
    #[arg(long)]
    pub allow_legacy: bool,
    /// Add the document-level package policy: one Signature, one Reference over the whole
    /// document with the enveloped transform, no DOCTYPE, no duplicate Ids.
    #[arg(long)]
    pub strict: bool,
    /// Print the verdict as JSON.
    #[arg(long)]
    pub json: bool,
    /// Benchmark: run the whole verification N times on the file read once (keys loaded
    /// once, one `now`), print the verdict once and a timing line on stderr. All runs must
    /// agree. At least 1.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub repeat: u64,
}

/// Signing key and algorithm choices.
#[derive(Debug, Args)]
pub struct SignerArgs {
    /// Private key (PEM: PKCS#8, or PKCS#1 for RSA).
    #[arg(long, value_name = "PEM")]
    pub key: PathBuf,
    /// The signer's certificate (PEM).
    #[arg(long, value_name = "PEM")]
    pub cert: PathBuf,
    /// Chain certificates to include in KeyInfo (PEM), signer's issuer first.
    #[arg(long, value_name = "PEM")]
    pub chain: Vec<PathBuf>,
}

/// Signature methods on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum AlgArg {
    /// RSA PKCS#1 v1.5 with SHA-256.
    RsaSha256,
    /// RSA PKCS#1 v1.5 with SHA-384.
    RsaSha384,
    /// RSA PKCS#1 v1.5 with SHA-512.
    RsaSha512,
    /// ECDSA P-256 with SHA-256.
    EcdsaSha256,
    /// ECDSA P-384 with SHA-384.
    EcdsaSha384,
}

/// Digest methods on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DigestArg {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

/// `truc dsig sign`.
#[derive(Debug, Args)]
pub struct DsigSignArgs {
    /// The XML document to sign.
    pub file: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub signer: SignerArgs,
    /// Signature method (default: from the key, rsa-sha256 or ecdsa-sha256/384).
    #[arg(long, value_enum)]
    pub alg: Option<AlgArg>,
    /// Reference digest.
    #[arg(long, value_enum, default_value = "sha256")]
    pub digest: DigestArg,
    /// Canonicalization of SignedInfo and of the reference.
    #[arg(long, value_enum, default_value = "exc")]
    pub c14n: MethodArg,
}

/// `truc sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The edXML package to sign.
    pub package: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub signer: SignerArgs,
    /// Accept a package that only passes lenient validation.
    #[arg(long)]
    pub lenient: bool,
}

/// `truc verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The signed edXML package.
    pub package: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub trust: TrustArgs,
    /// The agency directory (TOML): the signer must be allowed to sign for the package's
    /// sender (`From/OrganId`).
    #[arg(long, value_name = "FILE")]
    pub directory: Option<PathBuf>,
    /// Accept legacy algorithms and key sizes (SHA-1, RSA-1024), reported.
    #[arg(long)]
    pub allow_legacy: bool,
    /// Judge certificate validity at this time (RFC 3339) instead of now.
    #[arg(long, value_name = "RFC3339", value_parser = parse_at)]
    pub at: Option<Timestamp>,
    /// Parse the package leniently (as for agencies with the lenient policy).
    #[arg(long)]
    pub lenient: bool,
    /// Print the verdict as JSON.
    #[arg(long)]
    pub json: bool,
}

/// An RFC 3339 timestamp, or a date (`2009-01-01`, optionally with `Z`) meaning its first
/// second in UTC.
pub(crate) fn parse_at(s: &str) -> Result<Timestamp, String> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    let date = s.strip_suffix('Z').unwrap_or(s);
    date.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| format!("{s:?} is not an RFC 3339 timestamp or a date"))
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Runs `truc c14n`.
pub fn c14n(a: &C14nArgs, out: &mut dyn Write) -> Outcome {
    let bytes = read(&a.file)?;
    let doc = Document::parse(&bytes, &Limits::default())
        .map_err(|e| anyhow!("{}:{}", a.file.display(), e.located(&bytes)))?;
    let method = Method::from(a.method);
    let mut c = Canonicalizer::new(method);
    c.comments = a.with_comments;
    if let Some(list) = &a.prefix_list {
        if method != Method::Exclusive {
            return Err(CliError::Usage(
                "--prefix-list applies to --method exc only".into(),
            ));
        }
        c = c.with_prefix_list(list);
    }
    let set = match &a.subtree {
        None => NodeSet::document(),
        Some(id) => NodeSet::subtree(
            dsig::verify::element_by_id(&doc, id)
                .map_err(|e| anyhow!("{}: {e}", a.file.display()))?,
        ),
    };
    let bytes = c.to_vec(&doc, &set);
    out.write_all(&bytes).context("cannot write output")?;
    Ok(EXIT_OK)
}

fn keys(k: &KeyArgs) -> anyhow::Result<Keys> {
    let mut keys = Keys {
        trust: k.trust.store()?,
        insecure: k.insecure,
        ..Keys::default()
    };
    keys.pinned_certs = pki::load_all(&k.pubkey_cert_pem)?;
    for p in &k.pubkey_cert_der {
        keys.pinned_certs
            .push(Certificate::from_der(read(p)?).with_context(|| format!("{}", p.display()))?);
    }
    for p in &k.pubkey_pem {
        let bytes = read(p)?;
        let mut found = false;
        for block in x509_parser::pem::Pem::iter_from_buffer(&bytes) {
            let block = block.map_err(|e| anyhow!("{}: bad PEM: {e}", p.display()))?;
            if block.label == "PUBLIC KEY" {
                keys.pinned_keys.push(
                    PublicKey::from_spki_der(&block.contents)
                        .with_context(|| format!("{}", p.display()))?,
                );
                found = true;
            }
        }
        if !found {
            return Err(anyhow!("{}: no PUBLIC KEY block", p.display()));
        }
    }
    Ok(keys)
}

fn print_verdict(
    file: &Path,
    verdict: &Verdict,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if json {
        let mut v = serde_json::to_value(verdict)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("file".into(), file.display().to_string().into());
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        writeln!(out, "{}: {verdict}", file.display())?;
    }
    Ok(())
}

/// Runs `truc dsig verify`. With `--repeat N` (N > 1) the timing line goes to the process's
/// stderr.
pub fn dsig_verify(a: &DsigVerifyArgs, out: &mut dyn Write) -> Outcome {
    if a.repeat == 0 {
        return Err(CliError::Usage("--repeat must be at least 1".into()));
    }
    let keys = keys(&a.keys)?;
    let bytes = read(&a.file)?;
    let now = a.at.unwrap_or_else(|| SystemClock.now());
    let policy = Policy {
        allow_legacy: a.allow_legacy,
        strict: a.strict,
    };
    if a.repeat == 1 {
        let verdict = dsig::verify(&bytes, &keys, &policy, now);
        print_verdict(&a.file, &verdict, a.json, out)?;
        return Ok(verdict.exit_code());
    }
    let (verdict, elapsed) = verify_repeatedly(&bytes, &keys, &policy, now, a.repeat)?;
    print_verdict(&a.file, &verdict, a.json, out)?;
    let mut err = std::io::stderr();
    writeln!(err, "{}", timing_line(a.repeat, elapsed)).context("cannot write to stderr")?;
    Ok(verdict.exit_code())
}

/// Runs [`dsig::verify`] `n` times (n ≥ 1); returns the first verdict and the time spent
/// inside the verifications only. A run whose verdict differs from the first one's (as
/// serialized: kind, code, reason, report) is an error.
fn verify_repeatedly(
    bytes: &[u8],
    keys: &Keys,
    policy: &Policy,
    now: Timestamp,
    n: u64,
) -> anyhow::Result<(Verdict, std::time::Duration)> {
    let started = crate::clock::monotonic();
    let first = dsig::verify(bytes, keys, policy, now);
    let mut elapsed = started.elapsed();
    let expected = serde_json::to_value(&first)?;
    for run in 2..=n {
        let started = crate::clock::monotonic();
        let verdict = dsig::verify(bytes, keys, policy, now);
        elapsed += started.elapsed();
        // Cheap check first; the full comparison is outside the timed part.
        if verdict.exit_code() != first.exit_code() || serde_json::to_value(&verdict)? != expected {
            return Err(anyhow!(
                "verification {run} of {n} disagrees with the first: \"{verdict}\" after \"{first}\""
            ));
        }
    }
    Ok((first, elapsed))
}

/// `truc: 500 verifications in 0.412 s: 824 µs each (1213/s)`.
fn timing_line(n: u64, elapsed: std::time::Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let each_us = secs * 1e6 / n as f64;
    let each = if each_us < 10.0 {
        format!("{each_us:.2}")
    } else if each_us < 1000.0 {
        format!("{each_us:.1}")
    } else {
        format!("{each_us:.0}")
    };
    let rate = if secs > 0.0 {
        n as f64 / secs
    } else {
        f64::INFINITY
    };
    format!("truc: {n} verifications in {secs:.3} s: {each} µs each ({rate:.0}/s)")
}

pub(crate) fn signer(a: &SignerArgs) -> anyhow::Result<Signer> {
    // The file may carry the chain after the signer's certificate.
    let mut chain = Certificate::load(&a.cert)?;
    for c in pki::load_all(&a.chain)? {
        if !chain.iter().any(|have| have.der() == c.der()) {
            chain.push(c);
        }
    }
    Ok(Signer::from_pem(&read(&a.key)?, chain)?)
}

/// Runs `truc dsig sign`.
pub fn dsig_sign(a: &DsigSignArgs, out: &mut dyn Write) -> Outcome {
    let mut s = signer(&a.signer)?.with_c14n(a.c14n.into());
    s = s
        .with_digest(match a.digest {
            DigestArg::Sha256 => Hash::Sha256,
            DigestArg::Sha384 => Hash::Sha384,
            DigestArg::Sha512 => Hash::Sha512,
        })
        .map_err(anyhow::Error::from)?;
    if let Some(alg) = a.alg {
        let uri = match alg {
            AlgArg::RsaSha256 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            AlgArg::RsaSha384 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
            AlgArg::RsaSha512 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
            AlgArg::EcdsaSha256 => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
            AlgArg::EcdsaSha384 => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
        };
        let alg = SignatureAlg::from_uri(uri).ok_or_else(|| anyhow!("unknown algorithm"))?;
        s = s.with_algorithm(alg).map_err(anyhow::Error::from)?;
    }
    let signed = s
        .sign_document(&read(&a.file)?)
        .map_err(anyhow::Error::from)?;
    out.write_all(&signed).context("cannot write output")?;
    Ok(EXIT_OK)
}

/// Runs `truc sign`.
pub fn sign(a: &SignArgs, out: &mut dyn Write) -> Outcome {
    let today = vietnam_time(SystemClock.now()).date();
    let options = if a.lenient {
        edxml::Options::lenient(today)
    } else {
        edxml::Options::strict(today)
    };
    let signed = signer(&a.signer)?
        .sign_package(&read(&a.package)?, &options)
        .map_err(anyhow::Error::from)?;
    out.write_all(&signed).context("cannot write output")?;
    Ok(EXIT_OK)
}

/// Runs `truc verify`.
pub fn verify(a: &VerifyArgs, out: &mut dyn Write) -> Outcome {
    if a.trust.trusted_pem.is_empty() {
        return Err(CliError::Usage(
            "--trusted-pem is required: a package is trusted only relative to anchors".into(),
        ));
    }
    let directory = match &a.directory {
        Some(p) => Some(Arc::new(Directory::load(p).map_err(anyhow::Error::from)?)),
        None => None,
    };
    let keys = Keys {
        trust: a.trust.store()?,
        directory,
        ..Keys::default()
    };
    let bytes = read(&a.package)?;
    let now = a.at.unwrap_or_else(|| SystemClock.now());
    let today = vietnam_time(now).date();
    let options = if a.lenient {
        edxml::Options::lenient(today)
    } else {
        edxml::Options::strict(today)
    };
    match dsig::verify_package(&bytes, &options, &keys, a.allow_legacy, now) {
        Ok(v) => {
            let verdict = Verdict::Valid(Box::new(v.report().clone()));
            print_verdict(&a.package, &verdict, a.json, out)?;
            Ok(EXIT_OK)
        }
        Err(dsig::PackageError::Signature(verdict)) => {
            print_verdict(&a.package, &verdict, a.json, out)?;
            Ok(verdict.exit_code())
        }
        Err(e) => {
            if a.json {
                let v = serde_json::json!({
                    "file": a.package.display().to_string(),
                    "verdict": "invalid",
                    "code": if matches!(e, dsig::PackageError::Unsigned) { "no-signature" } else { "invalid-package" },
                    "reason": e.to_string(),
                });
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&v).map_err(anyhow::Error::from)?
                )
                .map_err(anyhow::Error::from)?;
            } else {
                writeln!(out, "{}: {e}", a.package.display()).map_err(anyhow::Error::from)?;
            }
            Ok(EXIT_FAILURE)
        }
    }
}
