//! The progress bar of a batch replay (`run`/`scan` over files, stderr a terminal): bytes
//! read of the inputs' total size on disk (compressed bytes for archives, so the ETA is
//! right), the rate, the ETA and the findings so far. Drawn on stderr only (never mixed
//! into stdout), at most a few times a second by a task of its own, never by the pipeline.
//! Off when stderr is not a terminal, with `--quiet`, with `--no-progress`, and for stdin
//! or Kafka (no total to measure against).
//!
//! While a bar is shown, every other line on stderr (warnings, errors) goes through
//! [`eprint_line`], which lifts the bar, prints, and draws it again.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::metrics::SharedStats;

static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Prints one line on stderr, around the progress bar when one is shown.
pub fn eprint_line(msg: impl std::fmt::Display) {
    let bar = BAR.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match bar {
        Some(b) => b.suspend(|| eprintln!("{msg}")),
        None => eprintln!("{msg}"),
    }
}

/// A running progress bar.
pub struct Progress {
    bar: ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
    done: Arc<AtomicU64>,
    stats: SharedStats,
}

/// True when a bar would be shown: stderr is a terminal and it is not switched off.
pub fn wanted(off: bool) -> bool {
    !off && !crate::notice::quiet() && std::io::stderr().is_terminal()
}

impl Progress {
    /// Starts a bar over `total` bytes; `done` is the count of input bytes read (the file
    /// source adds to it). Call inside the runtime.
    pub fn start(total: u64, done: Arc<AtomicU64>, stats: SharedStats) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg} [{wide_bar}]",
            )
            .expect("valid progress template")
            .progress_chars("=> "),
        );
        *BAR.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
        let ticker = {
            let (bar, done, stats) = (bar.clone(), Arc::clone(&done), stats.clone());
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_millis(200));
                loop {
                    every.tick().await;
                    update(&bar, &done, &stats);
                }
            })
        };
        Progress {
            bar,
            ticker,
            done,
            stats,
        }
    }

    /// Draws the final state and leaves it on the terminal.
    pub fn finish(self) {
        self.ticker.abort();
        update(&self.bar, &self.done, &self.stats);
        self.bar.finish();
        *BAR.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

fn update(bar: &ProgressBar, done: &AtomicU64, stats: &SharedStats) {
    let findings = stats.lock().total_findings();
    bar.set_position(done.load(Ordering::Relaxed));
    bar.set_message(format!("{findings} findings"));
}
