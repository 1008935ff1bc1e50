//! truc: a hub for the official documents Vietnamese government agencies send each other.
//!
//! Agencies exchange edXML packages (QCVN 102:2016): official letters, decisions and status
//! reports. The hub checks each package, stores it durably, routes it to every recipient and
//! gives the sender signed receipts. This crate is the library behind the `truc` binary.
//!
//! # Architecture
//! ```text
//! xml      one strict parser and tree for everything that reads XML (spans into the bytes)
//! edxml    the package model: parse + validate (strict | lenient), build, attachments
//! dsig     XML canonicalization and XML-Signature: verify (Verdict, VerifiedPackage), sign
//! pki      X.509 certificates, path validation to configured anchors, revocation (CRLs)
//! directory  the agency directory: who may sign for and authenticate as each agency
//! receipt  signed receipts (acceptance, delivery, failure, cancellation): build/sign/parse/verify
//! store    store-and-forward: segment log (fdatasync before acknowledging) + sled, deliveries
//! deliver  the retry policy and the push workers (HTTPS POST to push-mode agencies)
//! hub      the HTTPS API (hyper + rustls): config, TLS and auth, limits, problems, API v1
//! vxp      the VNPT VXP SDK's XroadVnpt API over the same core (sendEdoc, getEdoc, ...)
//! admin    the ops listener: admin API, dashboard, /metrics, /healthz, /readyz; audited actions
//! clock    the only place that reads the time; everything else takes `now` as an argument
//! telemetry  tracing subscriber (stderr, `TRUC_LOG` filter)
//! cli      the subcommands of the `truc` binary (I/O at the edge: files, stdout)
//! ```
//!
//! # Guarantees
//! - Received packages are never re-serialized: the original bytes are kept and forwarded.
//! - No input makes the library panic; bad input gets an error naming where and what.
//! - No DTDs, entities or external resources are ever processed.
//!
//! Specifications followed: XML 1.0 (5th ed.), Namespaces in XML 1.0, QCVN 102:2016/BTTTT
//! as digested in `README.md`.

pub mod admin;
pub mod cli;
pub mod clock;
pub mod deliver;
pub mod directory;
pub mod dsig;
pub mod edxml;
pub mod hub;
pub mod metrics;
pub mod pki;
pub mod receipt;
pub mod store;
pub mod telemetry;
pub mod vxp;
pub mod xml;

#[doc(hidden)]
pub mod fuzzing;
