//! Logging: `tracing` events to stderr, filtered by the `TRUC_LOG` environment variable
//! (`RUST_LOG` syntax, e.g. `TRUC_LOG=truc=debug`); default `warn`.

use tracing_subscriber::EnvFilter;

/// Installs the subscriber once; later calls do nothing.
pub fn init() {
    let filter = EnvFilter::try_from_env("TRUC_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
