//! The redaction threads. Every source's batches run here (files and stdin through
//! [`super::Pipeline::process`], Kafka messages through the Kafka source), so `--threads`
//! means the same thing for all of them.

use std::sync::{mpsc as std_mpsc, Arc, Mutex};

use crate::engine::{Engine, Scratch};

/// Work for a redaction thread: it gets the engine and the thread's own scratch space.
pub(crate) type Task = Box<dyn FnOnce(&Engine, &mut Scratch) + Send>;

/// Redaction threads; each owns its scratch space.
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
