//! The `truc` command line: argument definitions and dispatch.
//!
//! Command and flag names are a contract (documentation and checks rely on them). Exit codes:
//! 0 success, 1 failure (an invalid package, an I/O error), 64 usage error (bad arguments).

pub mod admin;
pub mod agency;
pub mod bench;
pub mod cert;
pub mod client;
pub mod dsig;
pub mod package;
pub mod receipt;
pub mod serve;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code for a failure: invalid input, I/O error.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for a usage error (sysexits EX_USAGE).
pub const EXIT_USAGE: u8 = 64;

/// truc: the inter-agency document exchange hub (edXML, QCVN 102:2016).
#[derive(Debug, Parser)]
#[command(name = "truc", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Log lines on stderr: text, or one JSON object per line (filtered by TRUC_LOG).
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "FORMAT",
        default_value_t
    )]
    pub log_format: crate::telemetry::LogFormat,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate, inspect and create edXML packages.
    #[command(subcommand)]
    Package(package::PackageCommand),
    /// Canonicalize a document (C14N 1.0, 1.1, Exclusive) to stdout.
    C14n(dsig::C14nArgs),
    /// Generic XML-Signature: verify (exit 0 valid, 1 invalid, 2 refused, 3 untrusted) and sign.
    #[command(subcommand)]
    Dsig(dsig::DsigCommand),
    /// Sign an edXML package (enveloped signature at the end of edXMLHeader) to stdout.
    Sign(dsig::SignArgs),
    /// Verify an edXML package's signature under the package policy.
    Verify(dsig::VerifyArgs),
    /// Certificates: path validation, key usage and revocation (exit 0 trusted, 3 untrusted).
    #[command(subcommand)]
    Cert(cert::CertCommand),
    /// Run the hub: the agencies' HTTPS API (exit 0 after SIGTERM/SIGINT, 64 bad config).
    Serve(serve::ServeArgs),
    /// Receipts: verify one offline (exit 0 valid, non-zero with the reason).
    #[command(subcommand)]
    Receipt(receipt::ReceiptCommand),
    /// Operators: queues, messages, retry / cancel / requeue, pause / resume, reload, audit
    /// (over the admin API; exit 0 done, 1 refused or audit chain broken, 2 unreachable).
    Admin(admin::AdminArgs),
    /// Submit a package to the hub (exit 0 accepted or duplicate, 1 refused, 2 unreachable).
    Send(agency::SendArgs),
    /// The agency's inbox on the hub: list, fetch, acknowledge.
    #[command(subcommand)]
    Inbox(agency::InboxCommand),
    /// Receipts the hub issued for the agency's packages: list, fetch.
    #[command(subcommand)]
    Receipts(agency::ReceiptsCommand),
    /// Status packages: build, sign and submit one answering a received package.
    #[command(subcommand)]
    Status(agency::StatusCommand),
    /// Load-test a hub: signed packages over keep-alive TLS, throughput, latency percentiles
    /// and the hub's stage breakdown (exit 0 done, 1 nothing accepted, 2 unreachable).
    Bench(Box<bench::BenchArgs>),
}

/// What a command produced: an exit code, with output already written.
pub type Outcome = Result<u8, CliError>;

/// A failure that ends a command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments (exit 64).
    #[error("{0}")]
    Usage(String),
    /// Anything else (exit 1).
    #[error(transparent)]
    Runtime(#[from] anyhow::Error),
}

/// Parses `args` and runs the command, writing to `out` and `err`. Returns the exit code.
/// Installs no log subscriber ([`main`] does).
pub fn run(
    args: impl IntoIterator<Item = OsString>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    run_with(args, out, err, |_| {})
}

/// [`run`], calling `logs` with the chosen `--log-format` once the arguments are parsed.
fn run_with(
    args: impl IntoIterator<Item = OsString>,
    out: &mut dyn Write,
    err: &mut dyn Write,
    logs: impl FnOnce(crate::telemetry::LogFormat),
) -> u8 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    EXIT_OK
                }
                _ => EXIT_USAGE,
            };
            let rendered = e.render().to_string();
            let target: &mut dyn Write = if code == EXIT_OK { out } else { err };
            let _ = write!(target, "{rendered}");
            return code;
        }
    };
    logs(cli.log_format);
    let result = match cli.command {
        Command::Package(cmd) => package::run(cmd, out, err),
        Command::C14n(a) => dsig::c14n(&a, out),
        Command::Dsig(dsig::DsigCommand::Verify(a)) => dsig::dsig_verify(&a, out),
        Command::Dsig(dsig::DsigCommand::Sign(a)) => dsig::dsig_sign(&a, out),
        Command::Sign(a) => dsig::sign(&a, out),
        Command::Verify(a) => dsig::verify(&a, out),
        Command::Cert(cmd) => cert::run(cmd, out),
        Command::Serve(a) => serve::run(&a, out, err),
        Command::Receipt(cmd) => receipt::run(cmd, out),
        Command::Admin(a) => admin::run(&a, out, err),
        Command::Send(a) => agency::send(&a, out, err),
        Command::Inbox(cmd) => agency::inbox(cmd, out, err),
        Command::Receipts(cmd) => agency::receipts(cmd, out, err),
        Command::Status(cmd) => agency::status(cmd, out, err),
        Command::Bench(a) => bench::run(&a, out, err),
    };
    match result {
        Ok(code) => code,
        Err(CliError::Usage(msg)) => {
            let _ = writeln!(err, "error: {msg}");
            EXIT_USAGE
        }
        Err(CliError::Runtime(e)) => {
            let _ = writeln!(err, "error: {e:#}");
            EXIT_FAILURE
        }
    }
}

/// Runs with the process's arguments and standard streams.
///
/// The streams are not locked for the whole command: `truc serve` logs from other threads to
/// stderr while it runs, and a lock held by the main thread would block them.
pub fn main() -> ExitCode {
    let code = run_with(
        std::env::args_os(),
        &mut std::io::stdout(),
        &mut std::io::stderr(),
        crate::telemetry::init,
    );
    ExitCode::from(code)
}
