//! The integration suite: one binary (as ripgrep does), one module per topic.
//!
//! Fixtures live in `tests/fixtures/` (see its README); schemas in `schemas/`. The `schema`
//! module runs Debian's `xmllint`, which `.ci/run` installs.

#![allow(clippy::unwrap_used)]

#[path = "truc/util.rs"]
mod util;

#[path = "truc/admin.rs"]
mod admin;
#[path = "truc/bench.rs"]
mod bench;
#[path = "truc/c14n.rs"]
mod c14n;
#[path = "truc/cli.rs"]
mod cli;
#[path = "truc/client.rs"]
mod client;
#[path = "truc/dashboard.rs"]
mod dashboard;
#[path = "truc/dsig_interop.rs"]
mod dsig_interop;
#[path = "truc/dsig_mutation.rs"]
mod dsig_mutation;
#[path = "truc/fixtures.rs"]
mod fixtures;
#[path = "truc/flows.rs"]
mod flows;
#[path = "truc/hub.rs"]
mod hub;
#[path = "truc/logs.rs"]
mod logs;
#[path = "truc/malformed.rs"]
mod malformed;
#[path = "truc/receipt.rs"]
mod receipt;
#[path = "truc/roundtrip.rs"]
mod roundtrip;
#[path = "truc/schema.rs"]
mod schema;
#[path = "truc/trust.rs"]
mod trust;
#[path = "truc/vxp.rs"]
mod vxp;
#[path = "truc/xsw.rs"]
mod xsw;
