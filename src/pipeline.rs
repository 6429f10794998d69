//! Wiring: source → framer → redaction workers → reorder → sink.
//!
//! A reader task turns the input into batches of whole records ([`LineBatchDecoder`]) and
//! hands each to the worker pool (plain threads, off the async runtime), queueing the promise
//! of its result in a bounded channel. The writer takes results from that channel in order,
//! so the output order is the input order whatever worker finishes first, and the bounded
//! channel is the backpressure: at most `threads × batches_per_thread` batches are in flight.
//!
//! Fail closed: if a worker fails, the batch is not forwarded and the run stops with an
//! error; everything before it has been written.

use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, Result};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedRead;

use crate::config::PipelineConfig;
use crate::engine::multiline::{self, Carry};
use crate::engine::{Engine, Redacted, Scratch};
use crate::framer::{Batch, LineBatchDecoder};
use crate::metrics::Stats;
use crate::signals::{self, StopSignal};
use crate::source::Opened;

/// Work for a redaction thread: it gets the engine and the thread's own scratch space.
pub(crate) type Task = Box<dyn FnOnce(&Engine, &mut Scratch) + Send>;

/// Redaction threads; each owns its scratch space. Every source's batches run here (files
/// and stdin through [`Pipeline::process`], Kafka messages through `kafka::run`), so
/// `--threads` means the same thing for all of them.
pub(crate) struct WorkerPool {
    tx: Option<std_mpsc::Sender<Task>>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl WorkerPool {
    pub(crate) fn new(engine: &Engine, threads: usize) -> WorkerPool {
        let (tx, rx) = std_mpsc::channel::<Task>();
        let rx = Arc::new(Mutex::new(rx));
        let handles = (0..threads.max(1))
            .map(|i| {
                let rx = Arc::clone(&rx);
                let engine = engine.clone();
                std::thread::Builder::new()
                    .name(format!("logveil-redact-{i}"))
                    .spawn(move || worker(engine, rx))
                    .expect("spawn redaction thread")
            })
            .collect();
        WorkerPool {
            tx: Some(tx),
            handles,
        }
    }

    /// A handle that hands tasks to the pool, for a source's reader task.
    pub(crate) fn submitter(&self) -> Submitter {
        Submitter(self.tx.clone().expect("pool is running"))
    }
}

/// Hands tasks to a [`WorkerPool`].
#[derive(Clone)]
pub(crate) struct Submitter(std_mpsc::Sender<Task>);

impl Submitter {
    /// Runs `task` on the next free thread. A task reports its result through a channel of
    /// its own; a task that panics drops that channel, which its receiver sees as a failure.
    pub(crate) fn submit(&self, task: Task) {
        let _ = self.0.send(task);
    }
}

fn worker(engine: Engine, rx: Arc<Mutex<std_mpsc::Receiver<Task>>>) {
    let mut scratch = engine.scratch();
    loop {
        let task = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        let Ok(task) = task else { return };
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task(&engine, &mut scratch)));
        if result.is_err() {
            // The task's reply channel is dropped: its batch is not forwarded. The scratch
            // may be half-updated: start afresh.
            scratch = engine.scratch();
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.tx.take();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// How processing of one input ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// The input is done.
    Done,
    /// The reader of our output went away (`| head`): stop quietly.
    OutputClosed,
    /// A stop signal (SIGTERM/SIGINT) ended the input at a record boundary; everything read
    /// before it was written. No further input is opened.
    Stopped,
}

/// After a stop signal, how long the reader goes on reading to finish the record it is in
/// (a writer in the middle of a line); past this, the unfinished record is written as read.
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

enum Msg {
    Batch {
        read_at: Instant,
        result: oneshot::Receiver<Redacted>,
    },
    Failed(anyhow::Error),
    /// The reader stopped on a stop signal after handing out everything it had read.
    Stopped,
}

/// One run's pipeline: the engine, its worker pool and the statistics, reused across inputs.
pub struct Pipeline {
    engine: Engine,
    pool: WorkerPool,
    opts: PipelineConfig,
    in_flight: usize,
    stop: Option<StopSignal>,
    pub stats: Stats,
}

impl Pipeline {
    pub fn new(engine: Engine, threads: usize, opts: PipelineConfig) -> Pipeline {
        let threads = threads.max(1);
        let pool = WorkerPool::new(&engine, threads);
        let stats = Stats::new(engine.matcher().rules().len());
        Pipeline {
            in_flight: threads * opts.batches_per_thread.max(1),
            engine,
            pool,
            opts,
            stop: None,
            stats,
        }
    }

    /// Stops reading at the next record boundary when `stop` fires (see [`Flow::Stopped`]).
    pub fn stop_on(&mut self, stop: StopSignal) {
        self.stop = Some(stop);
    }

    /// True once a stop signal has come.
    pub fn stop_requested(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| *s.borrow())
    }

    /// The stop signal given to [`Pipeline::stop_on`], for the sources.
    pub fn stop_signal(&self) -> Option<StopSignal> {
        self.stop.clone()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Hands tasks to this pipeline's redaction threads (for sources that batch on their
    /// own, such as Kafka).
    pub(crate) fn submitter(&self) -> Submitter {
        self.pool.submitter()
    }

    /// How many batches may be in flight between a reader and its writer.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Processes one input. With `out == None` (scan mode) nothing is written and only the
    /// statistics are kept. On error the caller still owns `out` and should shut it down, so
    /// that everything redacted so far is flushed.
    pub async fn process<W>(
        &mut self,
        input: Opened,
        name: &str,
        mut out: Option<&mut W>,
    ) -> Result<Flow>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        let emit = out.is_some();
        let (order_tx, mut order_rx) = mpsc::channel::<Msg>(self.in_flight);
        let pool = self.pool.submitter();
        let decoder =
            LineBatchDecoder::new(self.opts.read_buffer_bytes, self.opts.max_record_bytes);
        let capacity = self.opts.read_buffer_bytes;
        let input_name = name.to_string();
        let multiline = self.engine.matcher().tracks_multiline();
        let mut stop = self.stop.clone();
        let ends_on_stop = input.ends_on_stop;
        let input = input.reader;
        let reader = tokio::spawn(async move {
            // State that crosses records belongs to this input alone, and is computed in
            // input order here, so that the batches themselves can run in parallel.
            let mut carry = Carry::default();
            let mut submit = |batch: Batch| {
                let start = carry;
                if multiline {
                    carry = multiline::walk(carry, &batch.data, |_| {});
                }
                let (reply, result) = oneshot::channel();
                pool.submit(Box::new(move |engine: &Engine, scratch: &mut Scratch| {
                    let _ = reply.send(engine.redact_from(&batch, start, scratch, emit));
                }));
                Msg::Batch {
                    read_at: Instant::now(),
                    result,
                }
            };
            let mut framed = FramedRead::with_capacity(input, decoder, capacity);
            // Set by a stop signal: read on until the record in progress is complete (or the
            // grace time is over), then stop. Every batch handed out ends with a newline unless
            // it is a piece of an over-long record, so the stream is at a record boundary as
            // soon as no such record is open: the bytes after the last newline stay unread (in
            // a regular file they are still there; see `Opened::ends_on_stop` for pipes).
            let mut stopping: Option<tokio::time::Instant> = None;
            let at_boundary = |f: &FramedRead<_, LineBatchDecoder>| !f.decoder().in_record();
            loop {
                let item = match stopping {
                    // The stream ends by itself at a newline after the stop.
                    None if ends_on_stop => framed.next().await,
                    None => tokio::select! {
                        biased;
                        _ = signals::stopped(&mut stop) => {
                            stopping = Some(tokio::time::Instant::now() + STOP_GRACE);
                            if at_boundary(&framed) {
                                let _ = order_tx.send(Msg::Stopped).await;
                                return;
                            }
                            continue;
                        }
                        item = framed.next() => item,
                    },
                    Some(deadline) => {
                        match tokio::time::timeout_at(deadline, framed.next()).await {
                            Ok(item) => item,
                            Err(_) => {
                                // The writer did not finish its line in time: what was read
                                // of it is written as it is (nothing read is lost).
                                let mut rest = std::mem::take(framed.read_buffer_mut());
                                for batch in framed.decoder_mut().drain(&mut rest) {
                                    if order_tx.send(submit(batch)).await.is_err() {
                                        return;
                                    }
                                }
                                eprintln!("logveil: warning: input {input_name}: stopped inside a record that did not end within {} ms; its start was written without a newline", STOP_GRACE.as_millis());
                                let _ = order_tx.send(Msg::Stopped).await;
                                return;
                            }
                        }
                    }
                };
                let Some(item) = item else {
                    if stop.as_ref().is_some_and(|s| *s.borrow()) {
                        let _ = order_tx.send(Msg::Stopped).await;
                    }
                    break;
                };
                match item {
                    Ok(batch) => {
                        if order_tx.send(submit(batch)).await.is_err() {
                            return;
                        }
                        if stopping.is_some() && at_boundary(&framed) {
                            let _ = order_tx.send(Msg::Stopped).await;
                            return;
                        }
                    }
                    Err(e) => {
                        // Redact and forward what was read before the error, then report it.
                        let mut rest = std::mem::take(framed.read_buffer_mut());
                        for batch in framed.decoder_mut().drain(&mut rest) {
                            if order_tx.send(submit(batch)).await.is_err() {
                                return;
                            }
                        }
                        let _ = order_tx
                            .send(Msg::Failed(anyhow!("input {input_name}: {}", describe(&e))))
                            .await;
                        return;
                    }
                }
            }
        });

        let mut pending: Vec<(Instant, u64)> = Vec::new();
        let mut outcome = Ok(Flow::Done);
        while let Some(msg) = order_rx.recv().await {
            let (read_at, result) = match msg {
                Msg::Batch { read_at, result } => (read_at, result),
                Msg::Failed(e) => {
                    outcome = Err(e);
                    break;
                }
                Msg::Stopped => {
                    outcome = Ok(Flow::Stopped);
                    break;
                }
            };
            let Ok(r) = result.await else {
                outcome = Err(anyhow!(
                    "input {name}: a redaction worker failed; the batch was not forwarded"
                ));
                break;
            };
            if let Some(w) = out.as_deref_mut() {
                match write_chunks(w, &r.chunks).await {
                    Ok(true) => {}
                    Ok(false) => {
                        outcome = Ok(Flow::OutputClosed);
                        break;
                    }
                    Err(e) => {
                        outcome = Err(e);
                        break;
                    }
                }
            }
            // Distinct fingerprints are kept for `scan`'s summary only: a long-running `run`
            // must not grow a set with every new secret it sees (bounded memory).
            self.stats.add_batch(&r, !emit);
            pending.push((read_at, r.records));
            // Nothing else is ready: flush now, so a trickle of records is not held back.
            if order_rx.is_empty() {
                match flush(&mut out).await {
                    Ok(true) => {}
                    Ok(false) => {
                        outcome = Ok(Flow::OutputClosed);
                        break;
                    }
                    Err(e) => {
                        outcome = Err(e);
                        break;
                    }
                }
                self.stats.add_latencies(&mut pending);
            }
        }
        drop(order_rx);
        let finished = matches!(outcome, Ok(Flow::Done | Flow::Stopped));
        if let (true, Ok(flow)) = (finished, &outcome) {
            let flow = *flow;
            outcome = flush(&mut out)
                .await
                .map(|open| if open { flow } else { Flow::OutputClosed });
            self.stats.add_latencies(&mut pending);
        }
        if !finished {
            // Stopped early (output closed, write error, failed batch): the reader may be
            // waiting on a pipe that never ends, so stop it rather than wait for it.
            reader.abort();
        } else if let Err(e) = reader.await {
            if e.is_panic() {
                return Err(anyhow!("input {name}: reader failed"));
            }
        }
        outcome
    }
}

/// Writes all chunks. Ok(false) means the output was closed by its reader (broken pipe).
async fn write_chunks<W: AsyncWrite + Unpin + ?Sized>(w: &mut W, chunks: &[Bytes]) -> Result<bool> {
    for c in chunks {
        if let Err(e) = w.write_all(c).await {
            return io_outcome(e);
        }
    }
    Ok(true)
}

async fn flush<W: AsyncWrite + Unpin + ?Sized>(out: &mut Option<&mut W>) -> Result<bool> {
    match out.as_deref_mut() {
        Some(w) => match w.flush().await {
            Ok(()) => Ok(true),
            Err(e) => io_outcome(e),
        },
        None => Ok(true),
    }
}

fn io_outcome(e: std::io::Error) -> Result<bool> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(false)
    } else {
        Err(anyhow!("output: write error: {e}"))
    }
}

/// A read error in words a user can act on.
fn describe(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            format!("truncated compressed stream ({e}); everything before the cut was redacted and written")
        }
        std::io::ErrorKind::InvalidData | std::io::ErrorKind::Other => {
            format!(
                "corrupt compressed stream ({e}); everything before it was redacted and written"
            )
        }
        _ => format!("read error: {e}"),
    }
}
