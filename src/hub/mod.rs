//! The hub: the agencies' HTTPS API in front of the store.
//!
//! # Architecture
//! ```text
//!  TCP accept (≤ max_connections) ─► TLS (rustls, 1.2/1.3, optional client certificate
//!  │                                 checked for tls-client by the trust store)
//!  ▼
//!  server.rs   hyper http/1.1 keep-alive; per request: request id + tracing span,
//!  │           auth.rs (client certificate or bearer token → agency, else 401),
//!  │           limit.rs (per-agency token bucket, else 429), body read under the size limit
//!  │           (413) and the body timeout (408)
//!  ▼ spawn_blocking
//!  api.rs      route → handler, synchronous, on the Hub (store, directory, trust, signer)
//!  ▼
//!  problem.rs  every refusal as application/problem+json with a stable code
//! ```
//! `config.rs` reads the TOML configuration and every file it names; [`Hub::open`] turns it
//! into the running state. `truc serve` ([`crate::cli::serve`]) owns the tokio runtime and
//! the signals, and closes the store once the server has drained.
//!
//! # Invariants
//! - Nothing a client sends can panic the hub: headers, bodies, certificates and tokens are
//!   parsed into checked values or refused with a problem; a panic in a handler would be a
//!   bug and still becomes a `500 internal` for that request only.
//! - Authentication happens before the body is read, and the body is never buffered past
//!   `limits.max_body`: an anonymous or over-limit client cannot make the hub hold 64 MiB.
//! - The API handlers run on blocking threads (the store's `accept` waits on fdatasync), never
//!   on the async workers, so a slow disk does not stall TLS or other connections.
//! - Time: the wall clock is read through [`crate::clock::Clock`] ([`Hub::clock`]) once per
//!   request and passed down as `now`; timeouts and rate-limit buckets use tokio's monotonic
//!   clock.
//! - Shutdown (SIGTERM, SIGINT): accepting stops, idle connections close, in-flight requests
//!   finish within `limits.shutdown_grace`, then [`server::Server::run`] returns and the
//!   caller closes the store ([`Hub::close`]).
//!
//! # Non-guarantees
//! HTTP/2 is not offered (ALPN `http/1.1` only). The admin listener (`admin_listen`) is
//! [`crate::admin`]. Limits are per process: several hubs behind one address do not share rate
//! limits.

pub mod api;
pub mod auth;
pub mod config;
pub mod inbox;
pub mod limit;
pub mod problem;
pub mod receipts;
pub mod server;
pub mod submit;

use std::sync::{Arc, RwLock};

use jiff::Timestamp;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use config::{Config, ConfigError, ConfigProblem};
pub use problem::{Code, Problem, ProblemItem};

use std::path::PathBuf;

use crate::clock::{Clock, SystemClock};
use crate::deliver::push::{self, Endpoint};
use crate::directory::Delivery;
use crate::directory::{Directory, DirectoryError};
use crate::dsig::Signer;
use crate::pki::crl::{ReloadReport, WatchHandle};
use crate::pki::{CrlStore, TrustStore};
use crate::store::{Store, StoreError};

/// Why the hub cannot start.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The configuration or a file it names is unusable (every problem listed).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store cannot be opened.
    #[error("store {path}: {source}")]
    Store {
        /// `<data>/store`.
        path: String,
        /// Why.
        source: StoreError,
    },
}

/// The trust store in use, replaced whole by a reload while readers keep the one they took.
#[derive(Debug, Default)]
pub struct TrustCell(RwLock<Arc<TrustStore>>);

impl TrustCell {
    /// A cell holding `trust`.
    pub fn new(trust: TrustStore) -> Self {
        TrustCell(RwLock::new(Arc::new(trust)))
    }

    /// The current trust store (a snapshot).
    pub fn get(&self) -> Arc<TrustStore> {
        match self.0.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces it.
    pub fn set(&self, trust: TrustStore) {
        let trust = Arc::new(trust);
        match self.0.write() {
            Ok(mut t) => *t = trust,
            Err(poisoned) => *poisoned.into_inner() = trust,
        }
    }
}

/// The running hub's state, shared by every request (behind an `Arc`).
pub struct Hub {
    /// The configuration it was opened with (paths absolute).
    pub config: Config,
    /// The agency directory; replaced whole by [`Hub::reload_directory`].
    directory: RwLock<Arc<Directory>>,
    /// Anchors, intermediates and the CRLs (`trust.crls`), for signers, TLS clients and push
    /// endpoints; swapped whole by [`Hub::reload_trust`].
    pub trust: Arc<TrustCell>,
    /// The CRLs behind [`Hub::trust`], reloaded on an interval and on SIGHUP.
    pub crls: Option<Arc<CrlStore>>,
    /// Signs receipts (`receipts.key` with the `receipts.cert` chain).
    pub receipt_signer: Arc<Signer>,
    /// The store-and-forward engine, in `<data>/store`.
    pub store: Store,
    /// Where `now` comes from for each request.
    pub clock: Arc<dyn Clock>,
    /// The push workers' circuits, for the ops console.
    pub push_live: Arc<push::Live>,
    /// The systems of the VXP front door, with their secrets.
    pub vxp: Vec<crate::vxp::System>,
    /// What the hub counts and times ([`crate::metrics`]).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The TLS server certificate chain and key, for [`server::Server::bind`].
    pub(crate) tls_chain: Vec<CertificateDer<'static>>,
    pub(crate) tls_key: PrivateKeyDer<'static>,
    /// Stops the CRL watcher thread when the hub is dropped.
    _crl_watch: Option<WatchHandle>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("id", &self.config.id)
            .field("listen", &self.config.listen)
            .field("data", &self.config.data)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// Loads every file of `config` (certificates judged at `now`; every problem reported),
    /// opens the store in `<data>/store` and starts the CRL watcher.
    pub fn open(config: Config, now: Timestamp) -> Result<Hub, HubError> {
        let loaded = config.load_files(now)?;
        let store_dir = config.data.join("store");
        let store =
            Store::open(&store_dir, &Default::default()).map_err(|source| HubError::Store {
                path: store_dir.display().to_string(),
                source,
            })?;
        // Every delivery that finishes gets its signed receipt in the same store batch.
        let receipt_signer = Arc::new(loaded.receipt_signer);
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let (hub_id, signer, counted) =
            (config.id.clone(), receipt_signer.clone(), metrics.clone());
        store
            .set_receipts(Box::new(move |m, d, kind| {
                let Some(r) = receipts::for_delivery(&hub_id, m, d, kind) else {
                    return Vec::new();
                };
                match crate::receipt::sign(&r, &signer) {
                    Ok(signed) => {
                        counted.receipt_issued(r.kind);
                        signed
                    }
                    Err(e) => {
                        tracing::error!(message = %m.id, delivery = %d.id, error = %e, "cannot sign a receipt");
                        Vec::new()
                    }
                }
            }))
            .map_err(|source| HubError::Store {
                path: store_dir.display().to_string(),
                source,
            })?;
        let observer = metrics.clone();
        store.observe_commits(Box::new(move |t: crate::store::CommitTiming| {
            observer.commit(t)
        }));
        let every = config.trust.crl_reload_interval;
        let crl_watch = match &loaded.crls {
            Some(crls) if !every.is_zero() => Some(crls.watch(every)),
            _ => None,
        };
        tracing::info!(
            hub = %config.id,
            agencies = loaded.directory.agencies().count(),
            store = %store_dir.display(),
            "hub opened"
        );
        Ok(Hub {
            config,
            directory: RwLock::new(Arc::new(loaded.directory)),
            trust: Arc::new(TrustCell::new(loaded.trust)),
            crls: loaded.crls,
            receipt_signer,
            store,
            clock: Arc::new(SystemClock),
            push_live: Arc::default(),
            vxp: loaded
                .vxp
                .iter()
                .map(|(c, secret)| crate::vxp::System::new(c, secret.clone()))
                .collect(),
            metrics,
            tls_chain: loaded.tls_chain,
            tls_key: loaded.tls_key,
            _crl_watch: crl_watch,
        })
    }

    /// The current agency directory (a snapshot: a reload does not change it).
    pub fn directory(&self) -> Arc<Directory> {
        match self.directory.read() {
            Ok(d) => d.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads the directory file and swaps it in whole; on error the current one stays.
    pub fn reload_directory(&self) -> Result<(), DirectoryError> {
        let dir = Arc::new(Directory::load(&self.config.directory)?);
        let count = dir.agencies().count();
        match self.directory.write() {
            Ok(mut d) => *d = dir,
            Err(poisoned) => *poisoned.into_inner() = dir,
        }
        tracing::info!(agencies = count, "agency directory reloaded");
        Ok(())
    }

    /// The push endpoints of the directory, each with the roots its TLS certificate must
    /// chain to (its `push_ca`, or the hub's anchors).
    pub fn push_endpoints(&self) -> Result<Vec<Endpoint>, String> {
        let dir = self.directory();
        let mut out = Vec::new();
        for a in dir.agencies() {
            let Delivery::Push { url, ca } = &a.delivery else {
                continue;
            };
            let files: Vec<PathBuf> = match ca {
                Some(ca) => vec![ca.clone()],
                None => self.config.trust.anchors.clone(),
            };
            let mut roots = rustls::RootCertStore::empty();
            for cert in crate::pki::load_all(&files).map_err(|e| e.to_string())? {
                roots
                    .add(CertificateDer::from(cert.der().to_vec()))
                    .map_err(|e| format!("{}: {e}", cert.subject))?;
            }
            let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
            out.push(Endpoint {
                agency: a.id.as_str().to_owned(),
                url: url.clone(),
                tls: Arc::new(tls),
            });
        }
        Ok(out)
    }

    /// The push workers' settings, from `[delivery]`.
    pub fn push_settings(&self) -> Result<push::Settings, String> {
        let d = &self.config.delivery;
        Ok(push::Settings {
            timeout: d.push_timeout,
            concurrency: d.per_endpoint_concurrency.max(1),
            retry: d.retry_policy().map_err(|e| e.to_string())?,
            poll: d.poll_interval,
            circuit_threshold: d.circuit_failures,
            circuit_cool_down: d.circuit_cool_down,
        })
    }

    /// Re-reads the trust anchors and intermediates and swaps them in whole (new TLS
    /// handshakes and signature checks use them); on error the current ones stay. Returns
    /// how many anchors and intermediates are loaded.
    pub fn reload_trust(&self, _now: Timestamp) -> Result<(usize, usize), String> {
        let trust = self.config.reload_trust(self.crls.as_ref())?;
        let counts = (trust.anchors().len(), trust.intermediates().len());
        self.trust.set(trust);
        tracing::info!(
            anchors = counts.0,
            intermediates = counts.1,
            "trust anchors reloaded"
        );
        Ok(counts)
    }

    /// Re-reads the CRL files now, if any are configured.
    pub fn reload_crls(&self) -> Option<ReloadReport> {
        self.crls.as_ref().map(|c| c.reload())
    }

    /// Stops the store (waiting acceptances are committed) and syncs it.
    pub fn close(self) -> Result<(), StoreError> {
        self.store.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hub_opens_on_the_embedded_defaults_reloads_and_closes() {
        let tmp = tempfile::tempdir().unwrap();
        let mut config = Config::embedded();
        config.data = tmp.path().join("data");
        config.directory = tmp.path().join("directory.toml");
        let demo = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("certs-test/directory.toml"),
        )
        .unwrap();
        std::fs::write(&config.directory, &demo).unwrap();
        let now = "2026-11-23T00:00:00Z".parse().unwrap();
        let hub = Hub::open(config, now).unwrap();
        assert!(tmp.path().join("data/store").is_dir());
        let before = hub.directory();
        assert_eq!(before.agencies().count(), 4);
        // A broken file keeps the current directory; a good one replaces it whole.
        std::fs::write(&hub.config.directory, "[[agency]]\nid = 1\n").unwrap();
        assert!(hub.reload_directory().is_err());
        assert_eq!(hub.directory().agencies().count(), 4);
        let one = demo
            .split("\n[[agency]]")
            .take(2)
            .collect::<Vec<_>>()
            .join("\n[[agency]]");
        std::fs::write(&hub.config.directory, one).unwrap();
        hub.reload_directory().unwrap();
        assert_eq!(hub.directory().agencies().count(), 1);
        assert_eq!(before.agencies().count(), 4, "a snapshot does not change");
        assert_eq!(hub.reload_crls().map(|r| r.loaded), Some(1));
        hub.close().unwrap();
    }

    #[test]
    fn a_hub_that_cannot_open_says_why() {
        let mut config = Config::embedded();
        config.tls.cert = "/nonexistent/tls.pem".into();
        let now = "2026-11-23T00:00:00Z".parse().unwrap();
        match Hub::open(config, now) {
            Err(HubError::Config(e)) => {
                assert_eq!(e.problems[0].field, "tls.cert");
            }
            other => panic!("{other:?}"),
        }
    }
}
