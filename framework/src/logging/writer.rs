//! The log writer behind [`super::init`]: lines are appended to a shared buffer on the thread
//! that logs them, and a thread of its own writes the buffer out every few milliseconds.
//!
//! Why not `tracing-appender`'s non-blocking writer, which this replaced: it sends each line
//! through a channel to a writer thread that blocks on it, so on a busy server every line can
//! wake that thread, which then takes the core from the request threads to write one line. On
//! the peer benchmark (`benches/peers`, the server on one core) that made the production stack
//! with JSON logs slower than writing each line synchronously. Here nothing wakes the writer: a
//! line costs a lock and a copy, and the writer wakes on its own clock, so under load one
//! `write` carries hundreds of lines.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a line waits, at most, before it is written.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_millis(10);

/// The most bytes that may wait for the writer; lines beyond it are dropped and counted.
pub const MAX_BUFFERED_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Default)]
struct Shared {
    buffer: Mutex<Vec<u8>>,
    dropped: AtomicU64,
    stopping: AtomicBool,
}

/// What the `tracing` layer writes each formatted line to (a `MakeWriter`).
#[derive(Debug, Clone)]
pub(crate) struct BufferedWriter {
    shared: Arc<Shared>,
}

impl BufferedWriter {
    pub(crate) fn dropped_lines(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl Write for BufferedWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut buffer = self.shared.buffer.lock().unwrap_or_else(|e| e.into_inner());
        if buffer.len() + line.len() > MAX_BUFFERED_BYTES {
            drop(buffer);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            buffer.extend_from_slice(line);
        }
        // Accepted either way: a dropped line is counted, not an error for the caller.
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BufferedWriter {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The writer thread; dropping this writes what is left and stops it.
#[derive(Debug)]
pub(crate) struct WriterThread {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A buffered writer to `out`, and the thread that empties it.
pub(crate) fn start<W: Write + Send + 'static>(mut out: W) -> (BufferedWriter, WriterThread) {
    let shared = Arc::new(Shared::default());
    let writer = BufferedWriter {
        shared: Arc::clone(&shared),
    };
    let thread_shared = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("arbor-log-writer".into())
        .spawn(move || {
            // Swapped with the shared buffer, so both keep their capacity.
            let mut spare = Vec::new();
            loop {
                let stopping = thread_shared.stopping.load(Ordering::Acquire);
                std::mem::swap(
                    &mut *thread_shared
                        .buffer
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()),
                    &mut spare,
                );
                if !spare.is_empty() {
                    // Nowhere to report a failed write of the log but the log itself.
                    let _ = out.write_all(&spare).and_then(|()| out.flush());
                    spare.clear();
                }
                if stopping {
                    return;
                }
                std::thread::park_timeout(FLUSH_INTERVAL);
            }
        })
        .ok();
    (writer, WriterThread { shared, thread })
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Collected(Arc<Mutex<Vec<u8>>>);

    impl Write for Collected {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_by_the_time_the_thread_stops() {
        let out = Collected::default();
        let (mut writer, thread) = start(out.clone());
        for n in 0..10_000 {
            writer.write_all(format!("line {n}\n").as_bytes()).unwrap();
        }
        drop(thread);
        let written = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(written.lines().count(), 10_000);
        assert!(written.starts_with("line 0\nline 1\n"));
        assert!(written.ends_with("line 9999\n"));
        assert_eq!(writer.dropped_lines(), 0);
    }

    #[test]
    fn lines_past_the_limit_are_dropped_and_counted() {
        // No writer thread: nothing empties the buffer under the test.
        let mut writer = BufferedWriter {
            shared: Arc::default(),
        };
        let buffered = |writer: &BufferedWriter| writer.shared.buffer.lock().unwrap().len();
        writer
            .shared
            .buffer
            .lock()
            .unwrap()
            .resize(MAX_BUFFERED_BYTES - 10, b'.');

        let long = b"a line of more than ten bytes\n";
        assert_eq!(writer.write(long).unwrap(), long.len(), "not an error");
        assert_eq!(writer.dropped_lines(), 1);
        assert_eq!(buffered(&writer), MAX_BUFFERED_BYTES - 10);

        writer.write_all(b"fits\n").unwrap();
        assert_eq!(writer.dropped_lines(), 1);
        assert_eq!(buffered(&writer), MAX_BUFFERED_BYTES - 5);
    }
}
