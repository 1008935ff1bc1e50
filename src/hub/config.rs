//! The hub's configuration: one TOML file, every field optional with a documented default.
//!
//! Three steps, each its own function:
//! 1. [`Config::load`] (or [`Config::embedded`]): parse, fill in defaults, resolve relative
//!    paths, and check every value that can be checked without reading other files
//!    (timeouts, limits, the retry schedule). No other file is read and no clock is read.
//!    [`Config::read`] is the same without the checks.
//! 2. [`Config::validate`]: read every file the configuration names (TLS certificate and key,
//!    trust anchors, intermediates, CRLs, receipt key and certificate, the agency directory
//!    and the push CAs it names) and report **every** problem, each with its field name;
//!    certificate validity is judged at the injected `now`.
//! 3. [`crate::hub::Hub::open`] loads the same files through the same code and opens the
//!    store.
//!
//! Relative paths are resolved against the directory holding the configuration file (so a
//! file works whatever the current directory is); for [`Config::embedded`], against the
//! current directory, which makes `truc serve` work from a fresh checkout with the test PKI
//! in `certs-test/`. Flags given to `truc serve` (`--data`, `--listen`, ...) override the file.
//!
//! # Format
//! ```toml
//! id = "truc-dev"                    # written into every receipt (Receipt/Hub)
//! name = "truc development hub"
//! listen = "127.0.0.1:8443"          # the agencies' HTTPS API (port 0: any free port)
//! admin_listen = "127.0.0.1:8444"    # the admin API, dashboard and /metrics
//! data = "./truc-data"               # the store lives in <data>/store
//! directory = "certs-test/directory.toml"
//!
//! [admin]
//! token_file = "<data>/admin.token"  # bearer token; generated on first start if absent
//! tls = false                        # serve the admin listener over TLS (tls.cert/key);
//!                                    # required unless admin_listen is a loopback address
//!
//! [tls]
//! cert = "certs-test/hub/tls.pem"    # PEM, server certificate first, then its chain
//! key = "certs-test/hub/tls.key"     # PEM private key (PKCS#8, PKCS#1 or SEC1)
//!
//! [trust]
//! anchors = ["certs-test/root-ca.pem"]            # files or directories
//! intermediates = ["certs-test/intermediate-ca.pem"]
//! crls = ["certs-test/crl/intermediate-ca.crl"]
//! crl_reload_interval = "60s"        # "0s": never reload
//! crl_soft_fail = false
//!
//! [receipts]
//! key = "certs-test/hub/receipt.key"
//! cert = "certs-test/hub/receipt.pem"   # certificate first, then its chain
//!
//! [limits]
//! max_body = 67108864                # bytes
//! header_read_timeout = "30s"
//! body_read_timeout = "120s"
//! idle_timeout = "15s"
//! max_connections = 1024
//! rate_per_second = 100.0            # per agency; 0 disables
//! rate_burst = 200
//! shutdown_grace = "10s"
//!
//! [delivery]
//! push_timeout = "30s"
//! per_endpoint_concurrency = 4
//! retry_base = "30s"
//! retry_cap = "1h"
//! retry_floor = "1s"
//! retry_max_age = "72h"
//! circuit_failures = 5               # failures in a row that open an endpoint's circuit
//! circuit_cool_down = "30s"
//! poll_interval = "250ms"            # idle queues looked at again (new packages wake them)
//! ```
//! Durations are strings in jiff's friendly format (`"500ms"`, `"30s"`, `"1h 30m"`) or ISO
//! 8601 (`"PT30S"`). Unknown keys are errors.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use crate::deliver::retry::{RetryError, RetryPolicy};
use crate::directory::{Delivery, Directory};
use crate::dsig::{SelfCheck, Signer};
use crate::pki::{self, Certificate, CrlStore, RevocationPolicy, TrustStore};

/// The whole configuration. Every field has a default ([`Config::embedded`]).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The hub's identifier, written into every receipt it signs (`Receipt/Hub`), so keep it
    /// stable. Default `"truc-dev"`.
    pub id: String,
    /// A human name for logs and the start-up banner. Default `"truc development hub"`.
    pub name: String,
    /// Where the agencies' HTTPS API listens. Default `127.0.0.1:8443`; port 0 picks a free
    /// port (the bound address is logged and written to `truc serve --ready-file`).
    pub listen: SocketAddr,
    /// Where the admin API, the dashboard and `/metrics` listen. Default `127.0.0.1:8444`:
    /// loopback only, plain HTTP, unless `[admin] tls` is set.
    pub admin_listen: SocketAddr,
    /// The admin listener's token and transport.
    pub admin: AdminConfig,
    /// The data directory; the store lives in `<data>/store`. Default `./truc-data`.
    pub data: PathBuf,
    /// The agency directory (TOML, see [`crate::directory`]). Default
    /// `certs-test/directory.toml`.
    pub directory: PathBuf,
    /// The hub's TLS server certificate and key.
    pub tls: TlsConfig,
    /// Trust anchors, intermediates and CRLs for signers, TLS clients and push endpoints.
    pub trust: TrustConfig,
    /// The key and certificate the hub signs receipts with.
    pub receipts: ReceiptConfig,
    /// Limits that protect the hub from large, slow and too many requests.
    pub limits: LimitsConfig,
    /// Push delivery: timeouts, concurrency and the retry schedule.
    pub delivery: DeliveryConfig,
    /// The VNPT VXP front door ([`crate::vxp`]).
    pub vxp: VxpConfig,
}

/// `[vxp]`: the XroadVnpt API for agency systems on VNPT's VXP SDK.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VxpConfig {
    /// Path prefix of the VXP routes on the HTTPS listener. Default `/vxp` (the SDK's
    /// endpoint is then `https://host:8443/vxp`).
    pub prefix: String,
    /// Also serve the VXP routes (and only them) over plain HTTP here, for closed networks.
    /// Default: none.
    pub http_listen: Option<SocketAddr>,
    /// The agency systems allowed in, by `systemid`.
    #[serde(rename = "system")]
    pub systems: Vec<VxpSystemConfig>,
}

impl Default for VxpConfig {
    fn default() -> Self {
        VxpConfig {
            prefix: "/vxp".into(),
            http_listen: None,
            systems: Vec::new(),
        }
    }
}

/// `[[vxp.system]]`: one connecting system.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VxpSystemConfig {
    /// Its `systemid`.
    pub id: String,
    /// File holding its shared secret (first line, as is: it is not base64-decoded).
    pub secret_file: PathBuf,
    /// The agency codes it sends and receives for (each must be in the directory).
    pub agencies: Vec<String>,
    /// Whether its packages must be signed (field packages often are not). Default true.
    #[serde(default = "yes")]
    pub signature_required: bool,
    /// Lenient parsing of its packages (the field's common deviations). Default false.
    #[serde(default)]
    pub lenient: bool,
    /// Whether registerAgency / deleteAgency are accepted from it (they are recorded in the
    /// audit log for an operator; the directory file stays the source of truth). Default
    /// false: refused.
    #[serde(default)]
    pub manage_agencies: bool,
}

fn yes() -> bool {
    true
}

/// `[admin]`: who may use the admin listener, and over what.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// File holding the bearer token (its first line). Default `<data>/admin.token`, created
    /// with a random token (mode 0600) on first start when it does not exist.
    pub token_file: Option<PathBuf>,
    /// Serve the admin listener over TLS with the hub's `[tls]` certificate. Needed for any
    /// address that is not loopback. Default false.
    pub tls: bool,
}

impl Config {
    /// Where the admin token is read from (or generated into).
    pub fn admin_token_file(&self) -> PathBuf {
        self.admin
            .token_file
            .clone()
            .unwrap_or_else(|| self.data.join("admin.token"))
    }
}

/// `[tls]`: the hub's TLS server identity.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file: the server certificate, then the chain to send. Default
    /// `certs-test/hub/tls.pem`.
    pub cert: PathBuf,
    /// PEM file: its private key (PKCS#8, PKCS#1 or SEC1). Default `certs-test/hub/tls.key`.
    pub key: PathBuf,
}

/// `[trust]`: what the hub trusts.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustConfig {
    /// Trust anchors (PEM or DER files, or directories of them). At least one. Default
    /// `["certs-test/root-ca.pem"]`.
    pub anchors: Vec<PathBuf>,
    /// Intermediate CA certificates usable to complete paths. Default
    /// `["certs-test/intermediate-ca.pem"]`.
    pub intermediates: Vec<PathBuf>,
    /// CRLs (DER or PEM files, or directories). An issuer with a CRL must have a current,
    /// valid one. Default `["certs-test/crl/intermediate-ca.crl"]`.
    pub crls: Vec<PathBuf>,
    /// How often the CRL files are checked for changes and reloaded (also on SIGHUP);
    /// `"0s"` never. Default `"60s"`.
    #[serde(with = "duration")]
    pub crl_reload_interval: Duration,
    /// Accept a path whose issuer's CRL is stale or unusable, with a warning, instead of
    /// refusing it. Default `false`.
    pub crl_soft_fail: bool,
}

/// `[receipts]`: the receipt-signing identity.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiptConfig {
    /// PEM private key (RSA or ECDSA P-256). Default `certs-test/hub/receipt.key`.
    pub key: PathBuf,
    /// PEM: the signing certificate, then its chain (put into each receipt's X509Data).
    /// Default `certs-test/hub/receipt.pem`.
    pub cert: PathBuf,
}

/// `[limits]`: what a client may cost the hub.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request body, in bytes: a larger `Content-Length` is refused before the body
    /// is read, and a body that grows past it while being read is cut off
    /// (`413 payload-too-large`); nothing larger is ever buffered. Default 64 MiB.
    pub max_body: u64,
    /// The request head (request line and headers) must be complete within this time of the
    /// connection becoming ready for a request: accepted, or its previous response sent
    /// (hyper's `header_read_timeout`; the connection is closed). It also bounds the TLS
    /// handshake. Default `"30s"`.
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    /// The whole body must arrive within this time of the request head
    /// (`408 request-timeout`, then the connection is closed). Default `"120s"`: a 64 MiB
    /// body needs at least ~0.56 MB/s.
    #[serde(with = "duration")]
    pub body_read_timeout: Duration,
    /// A connection with no request in progress on which nothing is received or sent for
    /// this long is closed. Because the header read timeout also runs while a connection
    /// waits for its next request, an idle keep-alive connection lasts at most the shorter
    /// of the two. Default `"15s"`.
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// Most connections served at once. When all are taken the hub stops accepting: further
    /// connections wait in the kernel's listen backlog until one closes (they are not
    /// refused). Default 1024.
    pub max_connections: usize,
    /// Requests per second each authenticated agency may make (token bucket); `0` disables
    /// the limit. Excess requests get `429 rate-limited` with `Retry-After`. Default 100.
    pub rate_per_second: f64,
    /// How many requests an agency may make at once after a quiet spell (the bucket size).
    /// Default 200.
    pub rate_burst: u32,
    /// On SIGTERM or SIGINT, how long in-flight requests may take to finish before their
    /// connections are dropped. Default `"10s"`.
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
}

/// `[delivery]`: push delivery to agencies' endpoints.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Longest one push attempt may take (connect, TLS, request, response); a timeout is
    /// retried. Default `"30s"`.
    #[serde(with = "duration")]
    pub push_timeout: Duration,
    /// Most attempts in flight to one endpoint at once, so a slow endpoint cannot take every
    /// worker. Default 4.
    pub per_endpoint_concurrency: usize,
    /// Retry schedule ([`RetryPolicy::new`]): the first retry comes within this time,
    /// doubling per attempt. Default `"30s"`.
    #[serde(with = "duration")]
    pub retry_base: Duration,
    /// Longest wait between two attempts. Default `"1h"`.
    #[serde(with = "duration")]
    pub retry_cap: Duration,
    /// Shortest wait between two attempts. Default `"1s"`.
    #[serde(with = "duration")]
    pub retry_floor: Duration,
    /// A delivery still failing this long after it was queued is given up (dead; the sender
    /// gets a failure receipt). Default `"72h"`.
    #[serde(with = "duration")]
    pub retry_max_age: Duration,
    /// Failures in a row (unreachable, 5xx, timeouts) after which an endpoint's circuit
    /// opens: nothing is attempted until the cool-down ends, then one probe. Default 5.
    pub circuit_failures: u32,
    /// How long an open circuit waits before probing. Default `"30s"`.
    #[serde(with = "duration")]
    pub circuit_cool_down: Duration,
    /// How often a push worker with nothing to do looks at its queue again, for retries
    /// that came due and expired leases. A new package for the endpoint, an operator's
    /// resume and an operator's retry or requeue wake it at once. Default `"250ms"`.
    #[serde(with = "duration")]
    pub poll_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            id: "truc-dev".into(),
            name: "truc development hub".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8444)),
            admin: AdminConfig::default(),
            data: PathBuf::from("truc-data"),
            directory: PathBuf::from("certs-test/directory.toml"),
            tls: TlsConfig::default(),
            trust: TrustConfig::default(),
            receipts: ReceiptConfig::default(),
            limits: LimitsConfig::default(),
            delivery: DeliveryConfig::default(),
            vxp: VxpConfig::default(),
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: PathBuf::from("certs-test/hub/tls.pem"),
            key: PathBuf::from("certs-test/hub/tls.key"),
        }
    }
}

impl Default for TrustConfig {
    fn default() -> Self {
        TrustConfig {
            anchors: vec![PathBuf::from("certs-test/root-ca.pem")],
            intermediates: vec![PathBuf::from("certs-test/intermediate-ca.pem")],
            crls: vec![PathBuf::from("certs-test/crl/intermediate-ca.crl")],
            crl_reload_interval: Duration::from_secs(60),
            crl_soft_fail: false,
        }
    }
}

impl Default for ReceiptConfig {
    fn default() -> Self {
        ReceiptConfig {
            key: PathBuf::from("certs-test/hub/receipt.key"),
            cert: PathBuf::from("certs-test/hub/receipt.pem"),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body: 64 << 20,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(15),
            max_connections: 1024,
            rate_per_second: 100.0,
            rate_burst: 200,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            push_timeout: Duration::from_secs(30),
            per_endpoint_concurrency: 4,
            retry_base: Duration::from_secs(30),
            retry_cap: Duration::from_secs(3600),
            retry_floor: Duration::from_secs(1),
            retry_max_age: Duration::from_secs(72 * 3600),
            circuit_failures: 5,
            circuit_cool_down: Duration::from_secs(30),
            poll_interval: Duration::from_millis(250),
        }
    }
}

impl DeliveryConfig {
    /// The retry schedule these settings describe.
    pub fn retry_policy(&self) -> Result<RetryPolicy, RetryError> {
        RetryPolicy::new(
            self.retry_base,
            self.retry_cap,
            self.retry_floor,
            self.retry_max_age,
        )
    }
}

/// One thing wrong with a configuration: which field, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The field, as written in the file (`tls.cert`, `limits.max_body`); empty when the
    /// file as a whole is at fault (unreadable, not TOML).
    pub field: String,
    /// What is wrong, with the value or file involved.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// A configuration that cannot be used: every problem found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, when the configuration came from one.
    pub file: Option<PathBuf>,
    /// Every problem, in field order.
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(p) => write!(f, "configuration {}: ", p.display())?,
            None => f.write_str("configuration: ")?,
        }
        let list: Vec<String> = self.problems.iter().map(ToString::to_string).collect();
        f.write_str(&list.join("; "))
    }
}

impl std::error::Error for ConfigError {}

/// Collects problems with their field names.
#[derive(Default)]
struct Problems(Vec<ConfigProblem>);

impl Problems {
    fn add(&mut self, field: &str, message: impl fmt::Display) {
        self.0.push(ConfigProblem {
            field: field.to_owned(),
            message: message.to_string(),
        });
    }

    /// The value, or `None` with the error recorded under `field`.
    fn take<T, E: fmt::Display>(&mut self, field: &str, r: Result<T, E>) -> Option<T> {
        r.map_err(|e| self.add(field, e)).ok()
    }

    fn finish(self, file: Option<&Path>) -> Result<(), ConfigError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                file: file.map(Path::to_owned),
                problems: self.0,
            })
        }
    }
}

/// Everything the files of a configuration hold, loaded and checked.
pub(crate) struct Loaded {
    pub(crate) tls_chain: Vec<CertificateDer<'static>>,
    pub(crate) tls_key: PrivateKeyDer<'static>,
    pub(crate) trust: TrustStore,
    pub(crate) crls: Option<Arc<CrlStore>>,
    pub(crate) receipt_signer: Signer,
    pub(crate) directory: Directory,
    /// Each VXP system with its secret.
    pub(crate) vxp: Vec<(VxpSystemConfig, Vec<u8>)>,
}

impl Config {
    /// The embedded defaults, with relative paths resolved against the current directory:
    /// from the root of a checkout they name the test PKI in `certs-test/`.
    pub fn embedded() -> Self {
        let mut config = Config::default();
        // Two demo VXP systems, so the SDK works against a fresh checkout.
        for (id, agency) in [
            ("vxp.demo.g12", "000.00.00.G12"),
            ("vxp.demo.h29", "000.00.00.H29"),
        ] {
            config.vxp.systems.push(VxpSystemConfig {
                id: id.into(),
                secret_file: PathBuf::from(format!("certs-test/vxp/{id}.secret")),
                agencies: vec![agency.into()],
                signature_required: false,
                lenient: true,
                manage_agencies: false,
            });
        }
        if let Ok(cwd) = std::env::current_dir() {
            config.resolve(&cwd);
        }
        config
    }

    /// Reads a configuration file, fills in defaults, resolves relative paths against the
    /// file's directory and checks the values ([`Config::check`]). Reads no other file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let config = Self::read(path)?;
        config.check().map_err(|mut e| {
            e.file = Some(path.to_owned());
            e
        })?;
        Ok(config)
    }

    /// [`Config::load`] without the checks: for callers that apply overrides first, or that
    /// want the value problems reported together with the file problems
    /// ([`Config::validate`] checks too).
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let whole = |message: String| ConfigError {
            file: Some(path.to_owned()),
            problems: vec![ConfigProblem {
                field: String::new(),
                message,
            }],
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| whole(format!("cannot read {}: {e}", path.display())))?;
        let mut config = Self::from_toml(&text).map_err(|e| whole(e.to_string()))?;
        let base = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(dir) => std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned()),
            None => std::env::current_dir().unwrap_or_default(),
        };
        config.resolve(&base);
        Ok(config)
    }

    /// Parses a configuration's text: defaults filled in, paths as written, nothing checked.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Makes every relative path absolute under `base`.
    pub fn resolve(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.data);
        fix(&mut self.directory);
        fix(&mut self.tls.cert);
        fix(&mut self.tls.key);
        self.trust.anchors.iter_mut().for_each(fix);
        self.trust.intermediates.iter_mut().for_each(fix);
        self.trust.crls.iter_mut().for_each(fix);
        fix(&mut self.receipts.key);
        fix(&mut self.receipts.cert);
        if let Some(t) = &mut self.admin.token_file {
            fix(t);
        }
        for system in &mut self.vxp.systems {
            fix(&mut system.secret_file);
        }
    }

    /// Checks every value that needs no file: identifiers, addresses, limits, timeouts and
    /// the retry schedule. Reports every problem.
    pub fn check(&self) -> Result<(), ConfigError> {
        let mut p = Problems::default();
        if self.id.trim().is_empty() {
            p.add("id", "must not be empty (it is written into every receipt)");
        } else if self.id.chars().any(char::is_control) {
            p.add("id", "must not contain control characters");
        }
        if self.listen == self.admin_listen && self.listen.port() != 0 {
            p.add(
                "admin_listen",
                format!("is the same address as listen ({})", self.listen),
            );
        }
        if !self.admin_listen.ip().is_loopback() && !self.admin.tls {
            p.add(
                "admin_listen",
                format!(
                    "{} is not a loopback address: the admin API carries a bearer token and \
                     operator actions, so set [admin] tls = true to serve it over TLS",
                    self.admin_listen
                ),
            );
        }
        let v = &self.vxp;
        if !v.prefix.starts_with('/')
            || v.prefix.len() < 2
            || v.prefix.ends_with('/')
            || v.prefix.starts_with("/api/")
            || v.prefix == "/api"
        {
            p.add(
                "vxp.prefix",
                format!(
                    "{:?}: must be a path such as \"/vxp\" (a leading /, no trailing /, not \
                     under /api)",
                    v.prefix
                ),
            );
        }
        if v.http_listen
            .is_some_and(|a| a == self.listen || a == self.admin_listen)
            && v.http_listen.is_some_and(|a| a.port() != 0)
        {
            p.add("vxp.http_listen", "is the address of another listener");
        }
        let mut ids = std::collections::BTreeSet::new();
        let mut served = std::collections::BTreeMap::new();
        for s in &v.systems {
            if s.id.trim().is_empty() || s.id.chars().any(|c| c.is_control() || c == '"') {
                p.add(
                    "vxp.system.id",
                    format!("{:?} is not a usable systemid", s.id),
                );
            } else if !ids.insert(s.id.as_str()) {
                p.add("vxp.system.id", format!("{} is configured twice", s.id));
            }
            if s.agencies.is_empty() {
                p.add(
                    "vxp.system.agencies",
                    format!("system {}: serves no agency", s.id),
                );
            }
            for a in &s.agencies {
                if let Some(other) = served.insert(a.as_str(), s.id.as_str()) {
                    p.add(
                        "vxp.system.agencies",
                        format!("{a} is served by both {other} and {}", s.id),
                    );
                }
            }
        }
        if self.trust.anchors.is_empty() {
            p.add(
                "trust.anchors",
                "at least one trust anchor is needed: nothing is trusted otherwise",
            );
        }
        let l = &self.limits;
        if l.max_body == 0 {
            p.add("limits.max_body", "must be at least 1 byte");
        }
        for (field, d) in [
            ("limits.header_read_timeout", l.header_read_timeout),
            ("limits.body_read_timeout", l.body_read_timeout),
            ("limits.idle_timeout", l.idle_timeout),
            ("delivery.push_timeout", self.delivery.push_timeout),
            ("delivery.poll_interval", self.delivery.poll_interval),
        ] {
            if d.is_zero() {
                p.add(field, "must be longer than 0 s");
            }
        }
        if l.max_connections == 0 {
            p.add("limits.max_connections", "must be at least 1");
        }
        if !l.rate_per_second.is_finite() || l.rate_per_second < 0.0 {
            p.add(
                "limits.rate_per_second",
                format!(
                    "must be a number of requests per second, 0 or more (0 disables), not {}",
                    l.rate_per_second
                ),
            );
        }
        if l.rate_burst == 0 && l.rate_per_second > 0.0 {
            p.add("limits.rate_burst", "must be at least 1");
        }
        if self.delivery.per_endpoint_concurrency == 0 {
            p.add("delivery.per_endpoint_concurrency", "must be at least 1");
        }
        if let Err(e) = self.delivery.retry_policy() {
            let field = match e {
                RetryError::ZeroBase => "delivery.retry_base",
                RetryError::CapBelowBase { .. } => "delivery.retry_cap",
                RetryError::FloorAboveBase { .. } => "delivery.retry_floor",
                RetryError::AgeBelowBase { .. } => "delivery.retry_max_age",
            };
            p.add(field, e);
        }
        p.finish(None)
    }

    /// [`Config::check`], then reads and checks every file the configuration names, judging
    /// certificate validity at `now`; reports every problem with its field. Creates nothing.
    pub fn validate(&self, now: Timestamp) -> Result<(), ConfigError> {
        self.load_files(now).map(drop)
    }

    /// [`Config::check`], then every file loaded: what the hub runs on.
    pub(crate) fn load_files(&self, now: Timestamp) -> Result<Loaded, ConfigError> {
        let mut p = Problems(self.check().err().map(|e| e.problems).unwrap_or_default());
        if self.data.exists() && !self.data.is_dir() {
            p.add(
                "data",
                format!("{} exists and is not a directory", self.data.display()),
            );
        }

        // [tls]
        let tls_chain = p.take("tls.cert", pem_certificates(&self.tls.cert));
        let tls_key = p.take(
            "tls.key",
            PrivateKeyDer::from_pem_file(&self.tls.key)
                .map_err(|e| format!("{}: no usable private key: {e}", self.tls.key.display())),
        );
        if let Some(chain) = &tls_chain {
            if let Some(leaf) = p.take("tls.cert", Certificate::from_der(chain[0].to_vec())) {
                if !leaf.valid_at(now) {
                    p.add(
                        "tls.cert",
                        format!(
                            "{}: the certificate is not valid at {now} (valid {} to {})",
                            self.tls.cert.display(),
                            leaf.not_before,
                            leaf.not_after
                        ),
                    );
                }
            }
        }
        if let (Some(chain), Some(key)) = (&tls_chain, &tls_key) {
            let built =
                crate::hub::server::tls_config(chain.clone(), key.clone_key(), Arc::default());
            if let Err(e) = built {
                p.add("tls.key", format!("{}: {e}", self.tls.key.display()));
            }
        }

        // [trust]
        let anchors = p.take("trust.anchors", pki::load_all(&self.trust.anchors));
        let intermediates = p.take(
            "trust.intermediates",
            pki::load_all(&self.trust.intermediates),
        );
        let crls = if self.trust.crls.is_empty() {
            Some(None)
        } else {
            p.take("trust.crls", CrlStore::open(self.trust.crls.clone()))
                .map(|c| Some(Arc::new(c)))
        };

        // [receipts]
        let receipt_signer = p
            .take("receipts.cert", pki_chain(&self.receipts.cert))
            .and_then(|chain| {
                let leaf = &chain[0];
                if !leaf.valid_at(now) {
                    p.add(
                        "receipts.cert",
                        format!(
                            "{}: the certificate is not valid at {now} (valid {} to {})",
                            self.receipts.cert.display(),
                            leaf.not_before,
                            leaf.not_after
                        ),
                    );
                }
                let key = p.take(
                    "receipts.key",
                    std::fs::read(&self.receipts.key)
                        .map_err(|e| format!("cannot read {}: {e}", self.receipts.key.display())),
                )?;
                p.take(
                    "receipts.key",
                    Signer::from_pem(&key, chain)
                        // One receipt per package: the canonical self-check, without a
                        // second public-key operation (see `SelfCheck::Canonical`).
                        .map(|s| s.with_self_check(SelfCheck::Canonical))
                        .map_err(|e| format!("{}: {e}", self.receipts.key.display()))
                        .and_then(|s| {
                            crate::receipt::check_signer(&s).map(|()| s).map_err(|e| {
                                format!(
                                    "{}: this key cannot sign receipts: {e}",
                                    self.receipts.key.display()
                                )
                            })
                        }),
                )
            });

        // directory (and the push CAs it names)
        let directory = p.take("directory", Directory::load(&self.directory));
        if let Some(dir) = &directory {
            for agency in dir.agencies() {
                if let Delivery::Push { ca: Some(ca), .. } = &agency.delivery {
                    if let Err(e) = pki::load_all(std::slice::from_ref(ca)) {
                        p.add("directory", format!("agency {} push_ca: {e}", agency.id));
                    }
                }
            }
        }

        // [vxp]: the secrets, and agencies that exist.
        let mut vxp = Vec::new();
        for system in &self.vxp.systems {
            let secret = std::fs::read_to_string(&system.secret_file)
                .map_err(|e| format!("cannot read {}: {e}", system.secret_file.display()))
                .and_then(|t| {
                    let line = t.lines().next().unwrap_or("").trim_end_matches('\r');
                    if line.is_empty() {
                        Err(format!("{}: empty", system.secret_file.display()))
                    } else {
                        Ok(line.as_bytes().to_vec())
                    }
                });
            if let Some(secret) = p.take("vxp.system.secret_file", secret) {
                vxp.push((system.clone(), secret));
            }
            if let Some(dir) = &directory {
                for a in &system.agencies {
                    if dir.agency(a).is_none() {
                        p.add(
                            "vxp.system.agencies",
                            format!("system {}: {a} is not in the directory", system.id),
                        );
                    }
                }
            }
        }

        p.finish(None)?;
        let (
            Some(tls_chain),
            Some(tls_key),
            Some(anchors),
            Some(intermediates),
            Some(crls),
            Some(receipt_signer),
            Some(directory),
        ) = (
            tls_chain,
            tls_key,
            anchors,
            intermediates,
            crls,
            receipt_signer,
            directory,
        )
        else {
            // Every `None` above recorded a problem, so `finish` returned early.
            return Err(ConfigError {
                file: None,
                problems: vec![ConfigProblem {
                    field: String::new(),
                    message: "incomplete configuration".into(),
                }],
            });
        };
        let mut trust = TrustStore::new(anchors, intermediates);
        if let Some(crls) = &crls {
            let policy = RevocationPolicy {
                hard_fail: !self.trust.crl_soft_fail,
                ..RevocationPolicy::default()
            };
            trust = trust.with_revocation(crls.clone(), policy);
        }
        Ok(Loaded {
            tls_chain,
            tls_key,
            trust,
            crls,
            receipt_signer,
            directory,
            vxp,
        })
    }
}

impl Config {
    /// The trust anchors and intermediates read again from their files, with revocation
    /// from `crls` (the running CRL store): what a reload swaps in. The first file that
    /// fails is the error.
    pub fn reload_trust(&self, crls: Option<&Arc<CrlStore>>) -> Result<TrustStore, String> {
        let anchors =
            pki::load_all(&self.trust.anchors).map_err(|e| format!("trust.anchors: {e}"))?;
        if anchors.is_empty() {
            return Err("trust.anchors: no certificate found".into());
        }
        let intermediates = pki::load_all(&self.trust.intermediates)
            .map_err(|e| format!("trust.intermediates: {e}"))?;
        let trust = TrustStore::new(anchors, intermediates);
        Ok(match crls {
            Some(crls) => trust.with_revocation(
                crls.clone(),
                RevocationPolicy {
                    hard_fail: !self.trust.crl_soft_fail,
                    ..RevocationPolicy::default()
                },
            ),
            None => trust,
        })
    }
}

/// Every certificate in a PEM file, at least one.
fn pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no CERTIFICATE in the file", path.display()));
    }
    Ok(certs)
}

/// Every certificate in a file, parsed, at least one.
fn pki_chain(path: &Path) -> Result<Vec<Certificate>, String> {
    let certs = Certificate::load(path).map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", path.display()));
    }
    Ok(certs)
}

/// Durations as jiff friendly (`"30s"`) or ISO 8601 (`"PT30S"`) strings, never negative.
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let signed = jiff::SignedDuration::deserialize(d)?;
        Duration::try_from(signed)
            .map_err(|_| serde::de::Error::custom(format!("duration {signed:#} is negative")))
    }
}

#[cfg(test)]
mod tests;
