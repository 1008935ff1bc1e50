//! Revocation: the [`RevocationSource`] trait, and CRLs as one source ([`CrlStore`]).
//!
//! # Design
//! Path validation ([`super::chain`]) asks a [`RevocationSource`] about each certificate
//! below the anchor, given the issuer the path found. The answer is a [`Status`]; what to
//! do with an unavailable answer is the caller's [`super::RevocationPolicy`], not the
//! source's. The trait is the seam for OCSP later: a source that answers from stapled or
//! fetched OCSP responses plugs in beside or instead of CRLs.
//!
//! # CRLs
//! - CRLs (DER or PEM, several per PEM file allowed) come from configured files and
//!   directories. A CRL with a critical extension truc does not process (a delta CRL, an
//!   issuing distribution point, an indirect-CRL entry) is refused when it loads.
//! - A CRL is used for a certificate only if its issuer name is the certificate's issuer
//!   name, its signature verifies with the key of the issuer the path found (so a CRL from a
//!   rogue CA with the same name is never believed), and that issuer's keyUsage, when
//!   present, allows cRLSign. Among usable CRLs the newest (thisUpdate, then CRL number)
//!   wins.
//! - A CRL past its nextUpdate at `now` is stale: [`Status::Unavailable`].
//! - A listed certificate is revoked from the earlier of revocationDate and invalidityDate;
//!   a query at a `now` before that time gets [`Status::Revoked`] with the future time, and
//!   path validation treats it as good at that time (a signature verified "as of" an earlier
//!   moment is judged at that moment).
//!
//! # Reloading
//! [`CrlStore::reload`] re-reads every configured path and swaps the whole set atomically;
//! readers never see a half-loaded state. A file that fails to load keeps its previous CRLs
//! (with the error reported), so a CA publishing a broken file does not silently drop
//! revocations; staleness then guards against keeping them forever. An issuer that had a
//! CRL and no longer has one (its file was deleted) is [`Status::Unavailable`], not
//! [`Status::NotCovered`]. [`CrlStore::watch`] reloads whenever a file's size or
//! modification time changes or a file appears or disappears, checked on an interval.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::cert::{self, Certificate, LinkError, asn1_time, check_signature, strip_zeros};

/// What a revocation source knows about one certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Covered by current revocation data and not listed.
    Good,
    /// Listed as revoked from `at` (which may be after the `now` asked about).
    Revoked {
        /// When the revocation takes effect.
        at: Timestamp,
        /// The CRL reason code, when given.
        reason: Option<String>,
    },
    /// The issuer has revocation data configured but it cannot be used: stale, missing,
    /// or not signed by the issuer.
    Unavailable(String),
    /// The source has nothing about this issuer.
    NotCovered,
}

/// Where revocation status comes from.
pub trait RevocationSource: Send + Sync {
    /// The status of `cert`, issued by `issuer` (whose signature over `cert` path
    /// validation has already checked), at `now`. `allow_legacy` is the legacy policy for
    /// the signatures on the revocation data itself.
    fn status(
        &self,
        cert: &Certificate,
        issuer: &Certificate,
        now: Timestamp,
        allow_legacy: bool,
    ) -> Status;
}

/// A CRL that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CrlError(pub String);

/// One revoked entry.
#[derive(Clone, Debug)]
struct Entry {
    at: Timestamp,
    reason: Option<String>,
}

/// A parsed CRL that owns its bytes.
pub struct Crl {
    /// Issuer distinguished name.
    pub issuer: String,
    issuer_norm: String,
    authority_key_id: Option<Vec<u8>>,
    /// thisUpdate.
    pub this_update: Timestamp,
    /// nextUpdate, when present.
    pub next_update: Option<Timestamp>,
    /// cRLNumber, decimal.
    pub number: Option<String>,
    /// The file it came from.
    pub source: PathBuf,
    revoked: HashMap<Vec<u8>, Entry>,
    der: Vec<u8>,
    tbs: std::ops::Range<usize>,
    signature_oid: String,
    signature: Vec<u8>,
    /// Issuer fingerprints this CRL's signature was checked against, and the outcome.
    checked: Mutex<HashMap<String, Result<(), String>>>,
}

impl fmt::Debug for Crl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Crl")
            .field("issuer", &self.issuer)
            .field("this_update", &self.this_update)
            .field("next_update", &self.next_update)
            .field("number", &self.number)
            .field("source", &self.source)
            .field("revoked", &self.revoked.len())
            .finish()
    }
}

/// CRL extensions understood; a critical one outside this list refuses the CRL.
const CRL_UNDERSTOOD: &[&str] = &["2.5.29.35", "2.5.29.20", "2.5.29.18"];
/// CRL entry extensions understood (reasonCode, invalidityDate).
const ENTRY_UNDERSTOOD: &[&str] = &["2.5.29.21", "2.5.29.24"];

impl Crl {
    /// Parses one DER CRL read from `source`.
    pub fn from_der(der: Vec<u8>, source: &Path) -> Result<Self, CrlError> {
        let (rest, crl) = CertificateRevocationList::from_der(&der)
            .map_err(|e| CrlError(format!("not an X.509 CRL: {e}")))?;
        if !rest.is_empty() {
            return Err(CrlError("trailing bytes after the CRL".into()));
        }
        let time = |t| asn1_time(t).map_err(|e| CrlError(e.0));
        let tbs_list = &crl.tbs_cert_list;
        let mut authority_key_id = None;
        for ext in tbs_list.extensions() {
            let oid = ext.oid.to_id_string();
            if ext.critical && !CRL_UNDERSTOOD.contains(&oid.as_str()) {
                return Err(CrlError(format!(
                    "critical CRL extension {oid} is not supported (delta or partitioned CRL)"
                )));
            }
            if let x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(aki) =
                ext.parsed_extension()
            {
                authority_key_id = aki.key_identifier.as_ref().map(|k| k.0.to_vec());
            }
        }
        let mut revoked = HashMap::new();
        for r in crl.iter_revoked_certificates() {
            for ext in r.extensions() {
                let oid = ext.oid.to_id_string();
                if ext.critical && !ENTRY_UNDERSTOOD.contains(&oid.as_str()) {
                    return Err(CrlError(format!(
                        "critical CRL entry extension {oid} is not supported (indirect CRL)"
                    )));
                }
            }
            let reason = r.reason_code().map(|(_, code)| code);
            if reason.is_some_and(|c| c.0 == 8) {
                continue; // removeFromCRL: only meaningful in delta CRLs
            }
            let mut at = time(r.revocation_date)?;
            if let Some((_, invalid)) = r.invalidity_date() {
                at = at.min(time(invalid)?);
            }
            revoked.insert(
                strip_zeros(r.raw_serial()).to_vec(),
                Entry {
                    at,
                    reason: reason.map(|c| lower_first(&c.to_string())),
                },
            );
        }
        let tbs_raw = tbs_list.as_ref();
        let tbs_start = tbs_raw.as_ptr() as usize - der.as_ptr() as usize;
        let out = Crl {
            issuer: crl.issuer().to_string(),
            issuer_norm: cert::normalized_name(crl.issuer()),
            authority_key_id,
            this_update: time(crl.last_update())?,
            next_update: crl.next_update().map(time).transpose()?,
            number: crl.crl_number().map(|n| n.to_string()),
            source: source.to_owned(),
            revoked,
            tbs: tbs_start..tbs_start + tbs_raw.len(),
            signature_oid: crl.signature_algorithm.algorithm.to_id_string(),
            signature: crl.signature_value.data.to_vec(),
            checked: Mutex::default(),
            der: Vec::new(),
        };
        Ok(Crl { der, ..out })
    }

    /// Every CRL in a file (PEM with one or more `X509 CRL` blocks, or DER).
    pub fn load(path: &Path) -> Result<Vec<Self>, CrlError> {
        let bytes = std::fs::read(path)
            .map_err(|e| CrlError(format!("cannot read {}: {e}", path.display())))?;
        let in_file = |e: CrlError| CrlError(format!("{}: {e}", path.display()));
        if !cert::is_pem(&bytes) {
            return Ok(vec![Self::from_der(bytes, path).map_err(in_file)?]);
        }
        let mut out = Vec::new();
        for block in Pem::iter_from_buffer(&bytes) {
            let block = block.map_err(|e| in_file(CrlError(format!("bad PEM: {e}"))))?;
            if block.label == "X509 CRL" {
                out.push(Self::from_der(block.contents, path).map_err(in_file)?);
            }
        }
        if out.is_empty() {
            return Err(in_file(CrlError("no X509 CRL block in PEM input".into())));
        }
        Ok(out)
    }

    /// How many certificates it lists.
    pub fn len(&self) -> usize {
        self.revoked.len()
    }

    /// Whether it lists no certificate.
    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty()
    }

    /// Whether `issuer` could have issued this CRL (name, and key identifier when both
    /// carry one).
    fn names(&self, issuer: &Certificate) -> bool {
        self.issuer_norm == issuer.subject_norm
            && match (&self.authority_key_id, &issuer.subject_key_id) {
                (Some(a), Some(s)) => a == s,
                _ => true,
            }
    }

    /// Checks the CRL's signature with `issuer`'s key (cached per issuer).
    fn signed_by(&self, issuer: &Certificate, allow_legacy: bool) -> Result<(), String> {
        if issuer.key_usage.is_some_and(|ku| !ku.crl_sign()) {
            return Err(format!("issuer {issuer} lacks keyUsage cRLSign"));
        }
        if let Some(r) = self
            .checked
            .lock()
            .ok()
            .and_then(|m| m.get(&issuer.fingerprint).cloned())
        {
            return r;
        }
        let r = match check_signature(
            &self.signature_oid,
            &self.der[self.tbs.clone()],
            &self.signature,
            issuer,
            allow_legacy,
        ) {
            Ok(_) => Ok(()),
            // Not cached: the answer depends on the policy.
            Err(LinkError::Algorithm(a)) => return Err(a),
            Err(LinkError::Signature) => Err(format!(
                "its signature does not verify with the key of {issuer}"
            )),
        };
        if let Ok(mut m) = self.checked.lock() {
            m.insert(issuer.fingerprint.clone(), r.clone());
        }
        r
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}

/// A loaded set of CRLs: what [`CrlStore`] swaps on reload.
#[derive(Debug, Default)]
pub struct CrlSet {
    crls: Vec<Arc<Crl>>,
    /// Issuer names that have had a CRL since the store opened.
    known_issuers: BTreeSet<String>,
}

impl CrlSet {
    /// A set of these CRLs.
    pub fn new(crls: Vec<Crl>) -> Self {
        let crls: Vec<Arc<Crl>> = crls.into_iter().map(Arc::new).collect();
        let known_issuers = crls.iter().map(|c| c.issuer_norm.clone()).collect();
        CrlSet {
            crls,
            known_issuers,
        }
    }

    /// The CRLs.
    pub fn crls(&self) -> impl Iterator<Item = &Crl> {
        self.crls.iter().map(|c| c.as_ref())
    }
}

impl RevocationSource for CrlSet {
    fn status(
        &self,
        cert: &Certificate,
        issuer: &Certificate,
        now: Timestamp,
        allow_legacy: bool,
    ) -> Status {
        let mut candidates: Vec<&Crl> = self
            .crls
            .iter()
            .map(|c| c.as_ref())
            .filter(|c| c.names(issuer))
            .collect();
        if candidates.is_empty() {
            return if self.known_issuers.contains(&issuer.subject_norm) {
                Status::Unavailable(format!(
                    "the CRL of {:?} is missing (it was loaded earlier and is no longer)",
                    issuer.subject
                ))
            } else {
                Status::NotCovered
            };
        }
        candidates
            .sort_by(|a, b| (b.this_update, crl_number(b)).cmp(&(a.this_update, crl_number(a))));
        let mut why = Vec::new();
        let Some(crl) = candidates.into_iter().find(|c| {
            c.signed_by(issuer, allow_legacy)
                .map_err(|e| why.push(format!("{}: {e}", c.source.display())))
                .is_ok()
        }) else {
            return Status::Unavailable(format!(
                "no CRL of {:?} can be used: {}",
                issuer.subject,
                why.join("; ")
            ));
        };
        if let Some(next) = crl.next_update.filter(|n| *n < now) {
            return Status::Unavailable(format!(
                "the CRL of {:?} is stale: nextUpdate {next} is before now ({now}); \
                 thisUpdate {}, from {}",
                issuer.subject,
                crl.this_update,
                crl.source.display()
            ));
        }
        match crl.revoked.get(&cert.serial_raw) {
            Some(e) => Status::Revoked {
                at: e.at,
                reason: e.reason.clone(),
            },
            None => Status::Good,
        }
    }
}

fn crl_number(c: &Crl) -> (usize, &str) {
    let n = c.number.as_deref().unwrap_or("");
    (n.len(), n)
}

/// What a reload did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// CRLs now loaded.
    pub loaded: usize,
    /// Files that failed to load (their previous CRLs, if any, are kept).
    pub errors: Vec<String>,
}

/// A snapshot of the configured files: path, size, modification time.
type Snapshot = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// CRLs from configured files and directories, reloadable while readers use them.
pub struct CrlStore {
    paths: Vec<PathBuf>,
    set: RwLock<Arc<CrlSet>>,
    snapshot: Mutex<Snapshot>,
}

impl fmt::Debug for CrlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrlStore")
            .field("paths", &self.paths)
            .finish()
    }
}

impl CrlStore {
    /// Loads every CRL in `paths` (files, or directories whose regular files are all CRLs).
    /// At start any file that fails is an error: a configured CRL that cannot be read is a
    /// configuration mistake.
    pub fn open(paths: Vec<PathBuf>) -> Result<Self, CrlError> {
        let store = CrlStore {
            paths,
            set: RwLock::default(),
            snapshot: Mutex::default(),
        };
        let report = store.reload();
        if let Some(e) = report.errors.first() {
            return Err(CrlError(e.clone()));
        }
        Ok(store)
    }

    /// The current set.
    pub fn current(&self) -> Arc<CrlSet> {
        match self.set.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads every configured path and swaps the set.
    pub fn reload(&self) -> ReloadReport {
        let (files, mut errors) = list_files(&self.paths);
        let previous = self.current();
        let mut crls: Vec<Arc<Crl>> = Vec::new();
        for file in &files {
            match Crl::load(file) {
                Ok(loaded) => crls.extend(loaded.into_iter().map(Arc::new)),
                Err(e) => {
                    crls.extend(previous.crls.iter().filter(|c| &c.source == file).cloned());
                    errors.push(e.0);
                }
            }
        }
        let mut known_issuers = previous.known_issuers.clone();
        known_issuers.extend(crls.iter().map(|c| c.issuer_norm.clone()));
        let report = ReloadReport {
            loaded: crls.len(),
            errors,
        };
        let set = Arc::new(CrlSet {
            crls,
            known_issuers,
        });
        match self.set.write() {
            Ok(mut s) => *s = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
        if let Ok(mut s) = self.snapshot.lock() {
            *s = snapshot(&files);
        }
        for e in &report.errors {
            tracing::warn!(error = %e, "CRL not loaded; previous CRLs from that file kept");
        }
        tracing::info!(crls = report.loaded, "CRLs loaded");
        report
    }

    /// Reloads if any configured file changed (size, modification time, appeared or
    /// disappeared) since the last load.
    pub fn reload_if_changed(&self) -> Option<ReloadReport> {
        let (files, _) = list_files(&self.paths);
        let now = snapshot(&files);
        let changed = self.snapshot.lock().map(|s| *s != now).unwrap_or(true);
        changed.then(|| self.reload())
    }

    /// Checks for changes every `every` on a background thread until the returned handle
    /// is dropped.
    pub fn watch(self: &Arc<Self>, every: Duration) -> WatchHandle {
        let (stop, stopped) = mpsc::channel::<()>();
        let store = Arc::downgrade(self);
        let thread = thread::Builder::new()
            .name("crl-watch".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    let Some(store) = store.upgrade() else { break };
                    store.reload_if_changed();
                }
            })
            .ok();
        WatchHandle {
            stop: Some(stop),
            thread,
        }
    }
}

impl RevocationSource for CrlStore {
    fn status(
        &self,
        cert: &Certificate,
        issuer: &Certificate,
        now: Timestamp,
        allow_legacy: bool,
    ) -> Status {
        self.current().status(cert, issuer, now, allow_legacy)
    }
}

/// Stops [`CrlStore::watch`] when dropped.
#[derive(Debug)]
pub struct WatchHandle {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The regular files of `paths` (directories listed one level deep, sorted), and errors
/// for paths that cannot be read.
fn list_files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<String>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        if p.is_dir() {
            match std::fs::read_dir(p) {
                Ok(entries) => {
                    let mut found: Vec<PathBuf> = entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.is_file())
                        .filter(|p| {
                            !p.file_name()
                                .and_then(|n| n.to_str())
                                .is_some_and(|n| n.starts_with('.'))
                        })
                        .collect();
                    found.sort();
                    files.extend(found);
                }
                Err(e) => errors.push(format!("cannot list {}: {e}", p.display())),
            }
        } else {
            files.push(p.clone());
        }
    }
    (files, errors)
}

fn snapshot(files: &[PathBuf]) -> Snapshot {
    files
        .iter()
        .map(|f| {
            let meta = std::fs::metadata(f).ok();
            (
                f.clone(),
                meta.as_ref().map_or(0, |m| m.len()),
                meta.and_then(|m| m.modified().ok()),
            )
        })
        .collect()
}
