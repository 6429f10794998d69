//! Reading pipes, FIFOs and terminals so that a stop signal loses nothing.
//!
//! tokio reads stdin on a blocking thread with a buffer of its own; when a stop signal ends a
//! run, whatever that read had taken out of the pipe would be gone with it. Here one thread
//! per input reads only when `poll(2)` says there is data (so no read ever waits with bytes
//! taken), hands every chunk to the pipeline, and after a stop signal goes on only until the
//! bytes it handed out end with a newline (or [`crate::pipeline::STOP_GRACE`] is over): then
//! it ends the stream. Everything taken from the pipe is redacted and written; whatever the
//! writer sent after that stays in the pipe for the next reader.

use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

use crate::signals::StopSignal;

/// Bytes taken from the pipe per read at most.
const CHUNK: usize = 256 * 1024;
/// How often a quiet input looks at the stop flag.
const POLL_MS: i32 = 20;

/// The async side: chunks from the reading thread.
pub struct PipeReader {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    pending: Bytes,
}

/// Set once the input is known to be plain text: only then does a stop end the stream at a
/// newline of the raw bytes (in a compressed stream a raw newline means nothing; there the
/// pipeline stops at a record boundary itself).
pub type SplitAtNewline = Arc<AtomicBool>;

impl PipeReader {
    /// Starts the reading thread: it opens the input with `open` (opening a FIFO waits for a
    /// writer, so that happens on this thread too, never on the runtime) and reads it.
    pub fn spawn<R, F>(
        open: F,
        name: String,
        stop: Option<StopSignal>,
    ) -> (PipeReader, SplitAtNewline)
    where
        R: Read + AsRawFd,
        F: FnOnce() -> std::io::Result<R> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(4);
        let split: SplitAtNewline = Arc::new(AtomicBool::new(false));
        let split2 = Arc::clone(&split);
        std::thread::Builder::new()
            .name("logveil-read".into())
            .spawn(move || match open() {
                Ok(src) => read_loop(src, tx, stop, split2, &name),
                Err(e) => {
                    let _ = tx.blocking_send(Err(std::io::Error::new(
                        e.kind(),
                        format!("cannot open: {e}"),
                    )));
                }
            })
            .expect("spawn input thread");
        (
            PipeReader {
                rx,
                pending: Bytes::new(),
            },
            split,
        )
    }
}

fn readable(fd: RawFd, timeout_ms: i32) -> std::io::Result<bool> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, for the duration of the call.
    let n = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return if e.kind() == std::io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    // POLLHUP/POLLERR too: the read then says EOF or the error.
    Ok(n > 0)
}

fn read_loop<R: Read + AsRawFd>(
    mut src: R,
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    stop: Option<StopSignal>,
    split: SplitAtNewline,
    name: &str,
) {
    let fd = src.as_raw_fd();
    let mut buf = vec![0u8; CHUNK];
    let mut at_newline = true;
    let mut delivered = false;
    let mut deadline: Option<Instant> = None;
    loop {
        let stopping = stop.as_ref().is_some_and(|s| *s.borrow());
        // Nothing read yet: nothing to finish, whatever the input turns out to be.
        if stopping && !delivered {
            return;
        }
        let split_now = stopping && split.load(Ordering::Acquire);
        if split_now {
            let d = *deadline.get_or_insert_with(|| Instant::now() + crate::pipeline::STOP_GRACE);
            if at_newline {
                return;
            }
            if Instant::now() >= d {
                crate::notice::warn(format_args!("input {name}: stopped inside a record that did not end within {} ms; its start was written without a newline", crate::pipeline::STOP_GRACE.as_millis()));
                return;
            }
        }
        match readable(fd, POLL_MS) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
        // Finishing a record after a stop: one byte at a time, so that not a byte past its
        // newline is taken from the pipe.
        let want = if split_now { 1 } else { buf.len() };
        let n = match src.read(&mut buf[..want]) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        at_newline = buf[n - 1] == b'\n';
        delivered = true;
        if tx
            .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
            .is_err()
        {
            return;
        }
    }
}

impl AsyncRead for PipeReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.pending.is_empty() {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(b))) => self.pending = b,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = self.pending.len().min(out.remaining());
        let chunk = self.pending.split_to(n);
        out.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}
