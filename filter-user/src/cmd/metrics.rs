//! `gotofw metrics`: serve the counters over HTTP in the foreground until interrupted.

use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    cli::MetricsArgs,
    metrics::{self, Scope},
    system,
};

/// Runs the command.
pub fn run(args: &MetricsArgs) -> anyhow::Result<()> {
    system::require_capabilities()?;
    let scope = match &args.iface {
        Some(iface) => {
            // A name that cannot be an interface is refused; one without a filter (yet) is
            // served as not filtering (`gotofw_filtering 0`).
            system::key_for(iface)?;
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
        let listener = metrics::bind(args.listen).await?;
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
