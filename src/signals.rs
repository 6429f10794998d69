//! SIGTERM and SIGINT for file and stdin runs: how systemd, Docker and Kubernetes stop a
//! pipe stage, and what Ctrl-C sends.
//!
//! The first signal asks the pipeline to stop reading at the end of the record it is in,
//! redact and write everything already read, flush, and exit 0: nothing read is lost and no
//! record is cut. A second signal exits at once (130 for SIGINT, 143 for SIGTERM), for a
//! stage that must go now. Kafka runs have their own handling (drain, commit, exit 0).

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Receives `true` once a stop was asked for.
pub type StopSignal = watch::Receiver<bool>;

/// Installs the handlers (from inside the runtime) and returns the stop flag.
pub fn install() -> Result<StopSignal> {
    let mut term = signal(SignalKind::terminate()).context("cannot install a SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install a SIGINT handler")?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        crate::notice::notice(format_args!(
            "{name}: finishing the records already read (a second signal stops at once)"
        ));
        let _ = tx.send(true);
        let code = tokio::select! {
            _ = term.recv() => 143,
            _ = int.recv() => 130,
        };
        crate::notice::warn("second signal: stopping at once; output may end mid-record");
        std::process::exit(code);
    });
    Ok(rx)
}

/// Resolves once a stop was asked for; never without a stop signal.
pub async fn stopped(stop: &mut Option<StopSignal>) {
    match stop {
        Some(rx) => {
            if rx.wait_for(|s| *s).await.is_err() {
                // The handler task is gone (runtime shutting down): no stop will come.
                std::future::pending::<()>().await
            }
        }
        None => std::future::pending().await,
    }
}
