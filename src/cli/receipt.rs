//! `truc receipt verify`: offline proof of what a receipt says, for whoever holds one.
//!
//! ```text
//! truc receipt verify RECEIPT --trusted-pem HUB_CA [--untrusted-pem PEM]... [--crl FILE]...
//!                     [--package FILE] [--at RFC3339] [--json]
//! ```
//! Checks the receipt's XML signature and the hub certificate's path to the given anchors
//! (as `truc dsig verify --strict` does), reads the receipt, and with `--package` checks that
//! the receipt's `PackageSha256` is the SHA-256 of that file, byte for byte. Exit 0 when all
//! holds; otherwise the exit code of the signature verdict (1 invalid, 2 refused, 3 not
//! trusted), or 1 when the document is not a receipt or the package is not the one it names;
//! 64 for a usage error. Reads no clock but to judge certificates now (`--at` to choose).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use jiff::Timestamp;

use super::cert::TrustArgs;
use super::dsig::parse_at;
use super::{CliError, EXIT_FAILURE, EXIT_OK, Outcome};
use crate::clock::{Clock, SystemClock};
use crate::dsig::{Keys, Verdict};
use crate::edxml::model::Sha256;

/// `truc receipt ...`.
#[derive(Debug, Subcommand)]
pub enum ReceiptCommand {
    /// Verify a receipt offline: its signature, the hub's certificate path and, with
    /// --package, that it is about that package (exit 0 valid, non-zero with the reason).
    Verify(VerifyArgs),
}

/// `truc receipt verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The receipt (XML).
    pub receipt: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub trust: TrustArgs,
    /// The package the receipt should be about: its SHA-256 must be the receipt's.
    #[arg(long, value_name = "FILE")]
    pub package: Option<PathBuf>,
    /// Judge certificate validity at this time (RFC 3339) instead of now.
    #[arg(long, value_name = "RFC3339", value_parser = parse_at)]
    pub at: Option<Timestamp>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `truc receipt ...`.
pub fn run(cmd: ReceiptCommand, out: &mut dyn Write) -> Outcome {
    match cmd {
        ReceiptCommand::Verify(a) => verify(&a, out),
    }
}

fn verify(a: &VerifyArgs, out: &mut dyn Write) -> Outcome {
    if a.trust.trusted_pem.is_empty() {
        return Err(CliError::Usage(
            "--trusted-pem is required: a receipt proves something only relative to the \
             hub's trust anchor"
                .into(),
        ));
    }
    let bytes = std::fs::read(&a.receipt)
        .with_context(|| format!("cannot read {}", a.receipt.display()))?;
    let keys = Keys {
        trust: a.trust.store()?,
        ..Keys::default()
    };
    let now = a.at.unwrap_or_else(|| SystemClock.now());
    let (verdict, receipt) = crate::receipt::verify(&bytes, &keys, now);
    let file = a.receipt.display().to_string();
    let (code, reason, exit) = match (&verdict, &receipt) {
        (Verdict::Valid(_), Some(r)) => match &a.package {
            None => (None, None, EXIT_OK),
            Some(p) => {
                let package =
                    std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
                let digest = Sha256::of(&package);
                if digest == r.package_sha256 {
                    (None, None, EXIT_OK)
                } else {
                    (
                        Some("package-mismatch"),
                        Some(format!(
                            "{} has SHA-256 {}, the receipt is about {}",
                            p.display(),
                            digest.hex(),
                            r.package_sha256.hex()
                        )),
                        EXIT_FAILURE,
                    )
                }
            }
        },
        (v, _) => {
            let f = v.failure();
            (
                Some(f.map_or("not-a-receipt", |f| f.code)),
                Some(f.map_or_else(|| v.to_string(), |f| f.reason.clone())),
                v.exit_code().max(EXIT_FAILURE),
            )
        }
    };
    if a.json {
        let v = serde_json::json!({
            "file": file,
            "result": if exit == EXIT_OK { "valid" } else { "invalid" },
            "verdict": verdict,
            "code": code,
            "reason": reason,
            "receipt": receipt,
            "package": a.package.as_ref().map(|p| p.display().to_string()),
        });
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&v).context("cannot print")?
        )
        .context("cannot write")?;
    } else if let (EXIT_OK, Some(r)) = (exit, &receipt) {
        let signer = verdict
            .report()
            .and_then(|rep| rep.signer.as_ref())
            .map_or_else(String::new, |c| format!("; signed by {}", c.subject));
        writeln!(
            out,
            "{file}: valid {} receipt {} from hub {}, issued {}: message {} from {} to {}, package \
             SHA-256 {}{}{signer}",
            r.kind,
            r.id,
            r.hub,
            r.issued_at,
            r.message_id,
            r.sender,
            r.recipients.join(", "),
            r.package_sha256.hex(),
            if a.package.is_some() {
                " (matches the package)"
            } else {
                ""
            },
        )
        .context("cannot write")?;
    } else {
        writeln!(
            out,
            "{file}: invalid: {}: {}",
            code.unwrap_or("invalid"),
            reason.unwrap_or_default()
        )
        .context("cannot write")?;
    }
    Ok(exit)
}
