//! The edXML package model (QCVN 102:2016/BTTTT): reading, validating and building packages.
//!
//! # Data flow
//! ```text
//! bytes ──xml::Document::parse──▶ tree (spans into bytes)
//!       ──parse::parse(options)──▶ ParsedPackage { tree, Package model, warnings }
//!                              └─▶ Rejection { every problem: path, code, detail }
//! model ──build──▶ strict UTF-8 bytes (checked by parsing them back)
//! ```
//!
//! # Invariants
//! - A [`ParsedPackage`] keeps the bytes it was read from and is only ever forwarded as those
//!   bytes: nothing re-serializes a received package (re-serialization is what breaks
//!   signatures in the field).
//! - A [`Package`] exists only for input with no error in the requested [`Mode`].
//! - Elements are matched by namespace URI and local name, never by prefix, in any order.
//! - No DOCTYPE is ever accepted; size, depth, element and attribute counts are bounded by
//!   [`crate::xml::Limits`]. No input makes reading panic.
//! - Everything truc emits is valid in strict mode and against `schemas/`.
//!
//! # Non-guarantees
//! The `Signature` element is located ([`ParsedPackage::signature`]), not verified; that is
//! the job of the XML-Signature module.

mod agency;
pub mod attachment;
pub mod build;
pub mod model;
mod parse;
mod problem;
pub mod time;

pub use agency::{AgencyId, AgencyIdForm, InvalidAgencyId};
pub use model::Package;
pub use parse::{Options, ParsedPackage, SignatureLocation, parse, validate};
pub use problem::{Code, Mode, Problem, Rejection, Severity};

/// The QCVN 102:2016 namespace: every edXML element is in it.
pub const NS: &str = "http://www.mic.gov.vn/TBT/QCVN_102_2016";

/// The XML-Signature namespace.
pub const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
