//! Wiring: source → framer → redaction workers → reorder → sink.
//!
//! Every source feeds one [`Pipeline`]: byte streams (files, stdin) through
//! [`Pipeline::process`], which frames them into batches of whole records
//! ([`framer::LineBatchDecoder`]); message sources (Kafka) through [`messages`], batches of
//! messages of one partition. Either way a reader hands each batch to the worker pool
//! ([`pool`]: plain threads, off the async runtime) and queues the promise of its result in
//! a bounded channel; the delivery side takes results from that channel in order and hands
//! them to a [`Sink`], so the output order is the input order whatever worker finishes
//! first, and the bounded channel is the backpressure: at most `threads ×
//! batches_per_thread` batches are in flight. State that crosses records (an open private
//! key) is kept per stream (input, partition) by the reader, in input order.
//!
//! Fail closed: if a worker fails, the batch is not forwarded and the run stops with an
//! error; everything before it has been delivered.

// The message path (batches of messages, their delivery loop) serves message sources; Kafka
// is the only one today, so a build without it does not use the path (but sinks still take
// messages: the `Sink` interface is the same in every build).
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
pub(crate) mod deliver;
pub mod framer;
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
pub mod messages;
pub(crate) mod pool;
mod sink;

pub use sink::{Ack, Acker, Drain, InputInfo, Origin, Sink};

use std::time::Instant;

use anyhow::{anyhow, Result};
use futures_util::StreamExt;
use tokio::io::AsyncRead;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedRead;

use crate::config::PipelineConfig;
use crate::engine::multiline::{self, Carry};
use crate::engine::{Engine, Redacted, Scratch};
use crate::metrics::{Probes, SharedStats, Stage};
use crate::signals::{self, StopSignal};
use framer::{Batch, LineBatchDecoder};
use pool::{Submitter, WorkerPool};

/// An opened byte-stream input: what the pipeline reads, and what the sink is told of it.
pub struct Input {
    /// Name, path and compression, for messages and for sinks that mirror inputs.
    pub info: InputInfo,
    /// The decompressed bytes.
    pub reader: Box<dyn AsyncRead + Send + Unpin>,
    /// After a stop signal the stream itself ends at the next newline (a plain pipe, FIFO or
    /// terminal read by [`crate::sources::pipe::PipeReader`]): the pipeline reads on to its
    /// end. Otherwise (regular files, where stopping early takes nothing away, and
    /// compressed streams) the pipeline stops at the next record boundary itself.
    pub ends_on_stop: bool,
}

/// A failure of the input itself (a read error, a truncated or corrupt archive), as opposed
/// to one of the output or of redaction: a replay of many files reports it and goes on with
/// the next input, since nothing of the others depends on it.
#[derive(Debug)]
pub struct InputFailed(pub String);

impl std::fmt::Display for InputFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputFailed {}

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
    /// A read error: where, its type (for the metrics), and the error.
    Failed(Stage, &'static str, anyhow::Error),
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
    /// The run's statistics (shared with the metrics endpoint).
    pub stats: SharedStats,
    /// What sources and sinks report to the metrics endpoint.
    pub probes: Probes,
    /// True when a metrics endpoint is served: sources may then gather figures that cost
    /// something (the Kafka client's statistics).
    pub observed: bool,
    /// The findings audit trails (`--findings`; `scan --json` adds stdout), written batch
    /// by batch in input order.
    pub findings: Vec<crate::sinks::findings::FindingsLog>,
}

impl Pipeline {
    /// A pipeline with `threads` redaction threads.
    pub fn new(engine: Engine, threads: usize, opts: PipelineConfig) -> Pipeline {
        let threads = threads.max(1);
        let pool = WorkerPool::new(&engine, threads);
        let stats = SharedStats::new(engine.matcher().rules().len());
        Pipeline {
            in_flight: threads * opts.batches_per_thread.max(1),
            engine,
            pool,
            opts,
            stop: None,
            stats,
            probes: Probes::default(),
            observed: false,
            findings: Vec::new(),
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

    /// The read size of byte-stream inputs (`pipeline.read_buffer_bytes`).
    pub fn read_buffer_bytes(&self) -> usize {
        self.opts.read_buffer_bytes
    }

    /// The stop signal given to [`Pipeline::stop_on`], for the sources.
    pub fn stop_signal(&self) -> Option<StopSignal> {
        self.stop.clone()
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Hands tasks to this pipeline's redaction threads (for sources that batch on their
    /// own, such as Kafka).
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub(crate) fn submitter(&self) -> Submitter {
        self.pool.submitter()
    }

    /// How many batches may be in flight between a reader and its writer.
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Processes one byte-stream input into `sink`: [`Sink::begin`], the redacted records,
    /// [`Sink::end`] (also after an error, so that everything redacted reaches the output).
    /// A sink that does not [`Sink::emit`] (scan mode) gets nothing; only the statistics
    /// are kept.
    pub async fn process<S: Sink>(&mut self, input: Input, sink: &mut S) -> Result<Flow> {
        match sink.begin(&input.info).await {
            Ok(true) => {}
            Ok(false) => return Ok(Flow::OutputClosed),
            Err(e) => return Err(e),
        }
        let outcome = self.stream(input, sink).await;
        if outcome.as_ref().ok() == Some(&Flow::OutputClosed) {
            return outcome;
        }
        match (outcome, sink.end().await) {
            (Err(e), _) => Err(e),
            (Ok(_), Ok(false)) => Ok(Flow::OutputClosed),
            (Ok(_), Err(e)) => Err(e),
            (Ok(f), Ok(true)) => Ok(f),
        }
    }

    async fn stream<S: Sink>(&mut self, input: Input, sink: &mut S) -> Result<Flow> {
        let name = input.info.name.as_str();
        let emit = sink.emits();
        let (order_tx, mut order_rx) = mpsc::channel::<Msg>(self.in_flight);
        let pool = self.pool.submitter();
        let decoder =
            LineBatchDecoder::new(self.opts.read_buffer_bytes, self.opts.max_record_bytes);
        let capacity = self.opts.read_buffer_bytes;
        let input_name = name.to_string();
        for log in self.findings.iter_mut() {
            log.begin_input(name);
        }
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
                    carry = multiline::walk(carry, &batch.data, |_, _| {});
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
            // a regular file they are still there; see `Input::ends_on_stop` for pipes).
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
                                crate::notice::warn(format_args!("input {input_name}: stopped inside a record that did not end within {} ms; its start was written without a newline", STOP_GRACE.as_millis()));
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
                            .send(Msg::Failed(
                                Stage::Receiving,
                                "reader_failed",
                                anyhow::Error::new(InputFailed(format!(
                                    "input {input_name}: {}",
                                    describe(&e)
                                ))),
                            ))
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
                Msg::Failed(stage, kind, e) => {
                    self.stats.lock().error(stage, kind);
                    outcome = Err(e);
                    break;
                }
                Msg::Stopped => {
                    outcome = Ok(Flow::Stopped);
                    break;
                }
            };
            let Ok(r) = result.await else {
                self.stats
                    .lock()
                    .error(Stage::Processing, "redaction_failed");
                outcome = Err(anyhow!(
                    "input {name}: a redaction worker failed; the batch was not forwarded"
                ));
                break;
            };
            // The audit line of a finding is written before the redacted batch.
            let audit = self.findings.iter_mut().try_for_each(|log| log.batch(&r));
            if let Err(e) = audit {
                self.stats
                    .lock()
                    .error(Stage::Sending, "audit_write_failed");
                outcome = Err(e);
                break;
            }
            if emit {
                match sink.write_lines(&r.chunks).await {
                    Ok(true) => {}
                    Ok(false) => {
                        outcome = Ok(Flow::OutputClosed);
                        break;
                    }
                    Err(e) => {
                        self.stats.lock().error(Stage::Sending, "writer_failed");
                        outcome = Err(e);
                        break;
                    }
                }
            }
            // Distinct fingerprints are kept for `scan`'s summary only: a long-running `run`
            // must not grow a set with every new secret it sees (bounded memory).
            self.stats.lock().add_batch(&r, !emit);
            pending.push((read_at, r.records));
            // Nothing else is ready: flush now, so a trickle of records is not held back.
            if order_rx.is_empty() {
                let audit = self.findings.iter_mut().try_for_each(|log| log.flush());
                if let Err(e) = audit {
                    self.stats
                        .lock()
                        .error(Stage::Sending, "audit_write_failed");
                    outcome = Err(e);
                    break;
                }
                match sink.flush().await {
                    Ok(true) => {}
                    Ok(false) => {
                        outcome = Ok(Flow::OutputClosed);
                        break;
                    }
                    Err(e) => {
                        self.stats.lock().error(Stage::Sending, "writer_failed");
                        outcome = Err(e);
                        break;
                    }
                }
                self.stats.lock().add_latencies(&mut pending);
            }
        }
        drop(order_rx);
        let finished = matches!(outcome, Ok(Flow::Done | Flow::Stopped));
        if let (true, Ok(flow)) = (finished, &outcome) {
            let flow = *flow;
            outcome = sink
                .flush()
                .await
                .map(|open| if open { flow } else { Flow::OutputClosed });
            self.stats.lock().add_latencies(&mut pending);
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
