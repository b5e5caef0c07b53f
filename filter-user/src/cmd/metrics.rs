//! `gotofw metrics`: serve the counters over HTTP in the foreground until interrupted.

use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use tokio::{
    net::TcpListener,
    signal::unix::{SignalKind, signal},
};

use crate::{
    cli::MetricsArgs,
    error::UsageError,
    metrics::{self, Scope},
    system,
};

/// Runs the command.
pub fn run(args: &MetricsArgs) -> anyhow::Result<()> {
    system::require_capabilities()?;
    let scope = match &args.iface {
        Some(iface) => {
            if !system::key_dir(&system::key_for(iface)?)?.exists() {
                return Err(UsageError::NotAttached(iface.clone()).into());
            }
            Scope::Only(vec![iface.clone()])
        }
        None => Scope::All,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let mut term = signal(SignalKind::terminate()).context("handling SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("handling SIGINT")?;
        let listener = bind(args.listen).await?;
        eprintln!(
            "gotofw: serving metrics on http://{}/metrics (Ctrl-C to stop)",
            listener.local_addr()?
        );
        tokio::select! {
            () = metrics::serve(listener, Arc::new(RwLock::new(scope))) => {}
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        Ok(())
    })
}

/// Listens on `addr`, with an error that says what to change.
pub async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} for metrics: pick another address or port (--listen, or [metrics] listen)")
    })
}
