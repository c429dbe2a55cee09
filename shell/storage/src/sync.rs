//! Group commit off the event-loop thread.
//!
//! [`Engine::begin_sync`](crate::Engine::begin_sync) captures what a sync will cover (the
//! highest index written so far) and a cloned handle of the file to fsync, as a [`SyncJob`].
//! Running the job is just the fsync, so it can happen on any thread; its [`SyncDone`] goes
//! back to [`Engine::finish_sync`](crate::Engine::finish_sync), which advances the durable
//! index. While one job runs, appends keep landing in the OS and the next job covers them all:
//! one fsync for however many entries arrived meanwhile.
//!
//! [`Syncer`] is the worker thread that runs jobs for a single-threaded (mio) loop and pokes
//! it through a callback when one completes. With [`MemFs`](crate::MemFs), run jobs inline.

use crate::fs::FsFile;
use std::io;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use zmq_raft_core::LogIndex;

/// One fsync to perform, covering the log up to [`SyncJob::target`].
pub struct SyncJob<H> {
    pub(crate) id: u64,
    pub(crate) target: LogIndex,
    pub(crate) path: PathBuf,
    pub(crate) file: H,
}

/// The outcome of a [`SyncJob`], to hand to [`Engine::finish_sync`](crate::Engine::finish_sync).
#[derive(Debug)]
pub struct SyncDone {
    pub(crate) id: u64,
    pub(crate) target: LogIndex,
    pub(crate) path: PathBuf,
    pub(crate) result: io::Result<()>,
}

impl<H: FsFile> SyncJob<H> {
    /// The highest log index this sync makes durable: the last one appended before it began.
    pub fn target(&self) -> LogIndex {
        self.target
    }

    /// Performs the fsync (blocking).
    pub fn run(self) -> SyncDone {
        let result = self.file.sync_data();
        SyncDone {
            id: self.id,
            target: self.target,
            path: self.path,
            result,
        }
    }
}

impl SyncDone {
    /// The index the job covered; whether it all counts as durable is for `finish_sync`
    /// to say (a truncation meanwhile lowers it).
    pub fn target(&self) -> LogIndex {
        self.target
    }
}

/// A worker thread running [`SyncJob`]s one after another.
pub struct Syncer<H> {
    jobs: Option<mpsc::Sender<SyncJob<H>>>,
    done: mpsc::Receiver<SyncDone>,
    worker: Option<thread::JoinHandle<()>>,
}

impl<H: FsFile + Send + 'static> Syncer<H> {
    /// Starts the worker. `notify` runs on the worker after each job completes, e.g. to wake a
    /// `mio::Waker`; the result is then waiting in [`Syncer::try_recv`].
    pub fn spawn(notify: impl Fn() + Send + 'static) -> io::Result<Syncer<H>> {
        let (jobs_tx, jobs_rx) = mpsc::channel::<SyncJob<H>>();
        let (done_tx, done_rx) = mpsc::channel();
        let worker = thread::Builder::new()
            .name("raft-fsync".into())
            .spawn(move || {
                for job in jobs_rx {
                    if done_tx.send(job.run()).is_err() {
                        break;
                    }
                    notify();
                }
            })?;
        Ok(Syncer {
            jobs: Some(jobs_tx),
            done: done_rx,
            worker: Some(worker),
        })
    }

    /// Queues a job. Fails only if the worker thread is gone.
    pub fn submit(&self, job: SyncJob<H>) -> io::Result<()> {
        self.jobs
            .as_ref()
            .and_then(|tx| tx.send(job).ok())
            .ok_or_else(|| io::Error::other("fsync worker thread has stopped"))
    }

    /// A finished job, if one is waiting.
    pub fn try_recv(&self) -> Option<SyncDone> {
        self.done.try_recv().ok()
    }

    /// Waits for a finished job; `None` if the worker is gone.
    pub fn recv(&self) -> Option<SyncDone> {
        self.done.recv().ok()
    }
}

impl<H> Drop for Syncer<H> {
    fn drop(&mut self) {
        // Closing the job channel ends the worker's loop once queued jobs are done.
        self.jobs.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
