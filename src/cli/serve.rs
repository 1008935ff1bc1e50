//! `truc serve`: runs the hub until SIGTERM or SIGINT.
//!
//! ```text
//! truc serve [--config FILE] [--data DIR] [--listen ADDR:PORT] [--admin-listen ADDR:PORT]
//!            [--ready-file FILE]
//! truc serve --check-config FILE
//! ```
//! Without `--config` the hub runs on the embedded defaults ([`Config::embedded`]): the test
//! PKI and demo directory in `certs-test/`, data in `./truc-data`, the API on
//! `https://127.0.0.1:8443`, the admin listener on `http://127.0.0.1:8444` (its token in
//! `<data>/admin.token`, generated on first start). Flags override the file. `--ready-file`
//! receives the bound API address and, on the second line, the admin address (`ADDR:PORT`
//! each, written atomically) once the hub accepts connections, for supervisors and tests
//! that listen on port 0. SIGHUP reloads the agency directory and
//! the CRLs.
//!
//! Exit codes: 0 after a graceful shutdown (or a valid `--check-config`), 64 for a
//! configuration that cannot be used (every problem printed, with its field), 1 for a
//! runtime failure (the address is taken, the store cannot be opened).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use super::{EXIT_OK, EXIT_USAGE, Outcome};
use crate::clock::{Clock, SystemClock};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::admin::AdminServer;
use crate::admin::auth::Auth;
use crate::hub::server::{Drained, Server, Signals};
use crate::hub::{Config, ConfigError, Hub, HubError};

/// Most threads running API handlers at once (the store waits on fdatasync in them; group
/// commit wants many concurrent acceptances).
const BLOCKING_THREADS: usize = 64;

/// `truc serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML). Without it, the embedded defaults, which use the test PKI
    /// in certs-test/ and work from the root of a checkout.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (overrides `data`).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Address of the agencies' HTTPS API (overrides `listen`); port 0 picks a free port.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Address of the admin API (overrides `admin_listen`).
    #[arg(long, value_name = "ADDR:PORT")]
    pub admin_listen: Option<SocketAddr>,
    /// Validate this configuration file and every file it names, then exit: 0 when usable,
    /// 64 listing every problem.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub check_config: Option<PathBuf>,
    /// Once listening, write the bound API address (ADDR:PORT) to this file, the admin
    /// listener's on a second line and, when configured, the VXP plain-HTTP listener's on a
    /// third.
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,
}

/// Runs `truc serve`.
pub fn run(a: &ServeArgs, out: &mut dyn Write, err: &mut dyn Write) -> Outcome {
    let now = SystemClock.now();
    if let Some(file) = &a.check_config {
        // Every problem at once: the values and the files.
        let checked = Config::read(file).and_then(|mut c| {
            overrides(&mut c, a);
            c.validate(now).map_err(|mut e| {
                e.file = Some(file.clone());
                e
            })
        });
        return Ok(match checked {
            Ok(()) => {
                writeln!(out, "{}: configuration OK", file.display()).context("cannot write")?;
                EXIT_OK
            }
            Err(e) => report(&e, err),
        });
    }
    let config = match configuration(a.config.as_deref(), a) {
        Ok(c) => c,
        Err(e) => return Ok(report(&e, err)),
    };
    let hub = match Hub::open(config, now) {
        Ok(hub) => Arc::new(hub),
        Err(HubError::Config(e)) => return Ok(report(&e, err)),
        Err(e) => return Err(anyhow::Error::from(e).into()),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("truc-hub")
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
        .context("cannot start the async runtime")?;
    let served = runtime.block_on(serve(hub.clone(), a, err));
    // Handlers still running after the drain get one more grace period, then the runtime
    // is gone; the store is closed only if none of them still holds the hub.
    runtime.shutdown_timeout(hub.config.limits.shutdown_grace);
    let drained = served?;
    let _ = writeln!(
        err,
        "truc serve: stopped ({} connection(s) open at shutdown, {} dropped after the grace period)",
        drained.open, drained.aborted
    );
    match Arc::try_unwrap(hub) {
        Ok(hub) => hub.close().context("cannot close the store")?,
        Err(_) => tracing::warn!(
            "a request handler outlived the shutdown; the store is not closed explicitly \
             (acceptances it acknowledged are durable; the log is replayed on the next start)"
        ),
    }
    Ok(EXIT_OK)
}

/// The configuration: the file (or the embedded defaults) with the flags applied, checked
/// (the files it names are read by [`Hub::open`]).
fn configuration(file: Option<&Path>, a: &ServeArgs) -> Result<Config, ConfigError> {
    let mut config = match file {
        Some(f) => Config::read(f)?,
        None => Config::embedded(),
    };
    overrides(&mut config, a);
    config.check().map_err(|mut e| {
        e.file = file.map(Path::to_owned);
        e
    })?;
    Ok(config)
}

/// Applies the flags that override the configuration.
fn overrides(config: &mut Config, a: &ServeArgs) {
    if let Some(d) = &a.data {
        config.data = std::path::absolute(d).unwrap_or_else(|_| d.clone());
    }
    if let Some(l) = a.listen {
        config.listen = l;
    }
    if let Some(l) = a.admin_listen {
        config.admin_listen = l;
    }
}

/// Prints every problem, one a line, and returns the usage exit code.
fn report(e: &ConfigError, err: &mut dyn Write) -> u8 {
    let file = match &e.file {
        Some(f) => f.display().to_string(),
        None => "embedded configuration".into(),
    };
    for p in &e.problems {
        let _ = writeln!(err, "error: {file}: {p}");
    }
    EXIT_USAGE
}

async fn serve(hub: Arc<Hub>, a: &ServeArgs, err: &mut dyn Write) -> anyhow::Result<Drained> {
    let signals = Signals::install().context("cannot install signal handlers")?;
    let token_file = hub.config.admin_token_file();
    if let Some(dir) = token_file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let (auth, created) = Auth::load_or_create(&token_file)?;
    if created {
        tracing::info!(file = %token_file.display(), "admin token generated");
    }
    let api_ready = Arc::new(AtomicBool::new(false));
    let admin = AdminServer::bind(
        hub.clone(),
        hub.config.admin_listen,
        auth,
        api_ready.clone(),
    )
    .await?;
    let server = Server::bind(hub.clone(), hub.config.listen).await?;
    let vxp_http = match hub.config.vxp.http_listen {
        Some(a) => Some(Server::bind_plain(hub.clone(), a).await?),
        None => None,
    };
    let vxp_addr = vxp_http.as_ref().map(Server::local_addr);
    api_ready.store(true, Ordering::SeqCst);
    let addr = server.local_addr();
    let admin_addr = admin.local_addr();
    tracing::info!(%addr, admin = %admin_addr, hub = %hub.config.id, "listening");
    banner(&hub, addr, admin_addr, &token_file, err);
    if let Some(file) = &a.ready_file {
        let tmp = file.with_extension("tmp");
        let vxp_line = vxp_addr.map_or(String::new(), |a| format!("{a}\n"));
        std::fs::write(&tmp, format!("{addr}\n{admin_addr}\n{vxp_line}"))
            .and_then(|()| std::fs::rename(&tmp, file))
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    let reloading = hub.clone();
    let on_hangup = move || {
        let hub = reloading.clone();
        tokio::task::spawn_blocking(move || {
            tracing::info!("SIGHUP: reloading the agency directory and the CRLs");
            if let Err(e) = hub.reload_directory() {
                tracing::error!(error = %e, "directory not reloaded; the previous one stays");
            }
            hub.reload_crls();
        });
    };
    let (down, is_down) = tokio::sync::watch::channel(false);
    let vxp_http = vxp_http.map(|server| {
        let mut is_down = is_down.clone();
        tracing::info!(addr = ?vxp_addr, "VXP API also served over plain HTTP");
        tokio::spawn(server.run(async move {
            let _ = is_down.wait_for(|d| *d).await;
        }))
    });
    let mut is_down = is_down;
    let shutdown = async move {
        let signal = signals.terminated(on_hangup).await;
        tracing::info!(signal, "shutting down");
        let _ = down.send(true);
    };
    let admin = tokio::spawn(admin.run(async move {
        let _ = is_down.wait_for(|d| *d).await;
    }));
    // Push workers: one per push endpoint. On shutdown they stop claiming and finish the
    // attempts in flight (bounded by the push timeout), within the grace period.
    let endpoints = hub.push_endpoints().map_err(anyhow::Error::msg)?;
    let settings = hub.push_settings().map_err(anyhow::Error::msg)?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut workers = crate::deliver::push::run(hub.clone(), endpoints, settings, stopped);
    let drained = server.run(shutdown).await;
    let _ = stop.send(true);
    let _ = admin.await;
    if let Some(v) = vxp_http {
        let _ = v.await;
    }
    let grace = hub.config.limits.shutdown_grace;
    if tokio::time::timeout(grace, async {
        while workers.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!("push attempts still running after the grace period were abandoned");
    }
    Ok(drained)
}

/// What the operator sees on start: where the hub listens and how to send a first package.
fn banner(hub: &Hub, addr: SocketAddr, admin: SocketAddr, token_file: &Path, err: &mut dyn Write) {
    let c = &hub.config;
    let host = if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    let url = format!("https://{host}");
    let token = "$(cat certs-test/agencies/000.00.00.G12/token)";
    let _ = writeln!(
        err,
        "truc serve: hub {:?} ({}) listening on {url}\n\
         truc serve: {} agencies from {}; store in {}\n\
         truc serve: admin API, dashboard and /metrics on {}://{admin} (token in {})\n\
         truc serve: VXP SDK endpoint {url}{} ({} system(s))\n\
         \n\
         Send a first package (agency 000.00.00.G12, from the root of a checkout):\n  \
         truc package new --from 000.00.00.G12 --to 000.00.00.H29 --number 1 --notation BTC-VP \\\n      \
         --subject 'First package' > first.edxml\n  \
         truc sign first.edxml --key certs-test/agencies/000.00.00.G12/sign.key \\\n      \
         --cert certs-test/agencies/000.00.00.G12/sign.pem > first-signed.edxml\n  \
         curl --cacert certs-test/root-ca.pem -H \"Authorization: Bearer {token}\" \\\n      \
         -H 'Content-Type: application/xml' --data-binary @first-signed.edxml {url}/api/v1/packages\n\
         List the agencies:\n  \
         curl --cacert certs-test/root-ca.pem -H \"Authorization: Bearer {token}\" {url}/api/v1/agencies\n",
        c.id,
        c.name,
        hub.directory().agencies().count(),
        c.directory.display(),
        c.data.join("store").display(),
        if c.admin.tls { "https" } else { "http" },
        token_file.display(),
        c.vxp.prefix,
        hub.vxp.len(),
    );
}
