//! Warnings and notices on stderr, which `--quiet` silences. Errors are not notices: they
//! are returned and printed by `main` whatever the flag says, and the Kafka client's error
//! lines (a broker outage is an error to the operator) are printed by its own log.

use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Silences (or not) the warnings and notices of this process.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// True when `--quiet` was given.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Prints `logveil: warning: MSG` unless quiet.
pub fn warn(msg: impl std::fmt::Display) {
    if !quiet() {
        crate::progress::eprint_line(format_args!("logveil: warning: {msg}"));
    }
}

/// Prints `logveil: MSG` (a notice: what the process is doing) unless quiet.
pub fn notice(msg: impl std::fmt::Display) {
    if !quiet() {
        crate::progress::eprint_line(format_args!("logveil: {msg}"));
    }
}
