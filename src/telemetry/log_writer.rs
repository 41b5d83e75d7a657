//! Where JSON log lines go: a buffer that a background thread writes to stdout every few
//! milliseconds while lines keep coming, many lines per `write`.
//!
//! Rather than `tracing_appender::non_blocking`, which allocates each line, sends it over a
//! channel and wakes its thread for it: per request that costs about as much CPU as the rest of
//! the access line (bench/README.md compares the two). The writer thread here wakes on a timer
//! while there is traffic and sleeps on a condition variable once a batch comes back empty, so
//! under load no logging thread makes a system call to hand its line over.
//! Lines keep their order and are never dropped: when stdout cannot keep up and the buffer
//! reaches `HIGH_WATER`, the thread logging writes it out itself, as an unbuffered writer would.
//! What is lost on SIGKILL is at most the last `FLUSH_DELAY` of lines; `flush` runs at shutdown
//! and after a panic's line.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

/// How often the writer thread writes out what arrived, while lines keep arriving.
const FLUSH_DELAY: Duration = Duration::from_millis(5);

/// A buffer this large is written out at once, by the thread that filled it.
const HIGH_WATER: usize = 1 << 20;

/// Lines waiting to be written, and whether the writer thread waits for the next one.
struct Pending {
    lines: Vec<u8>,
    writer_idle: bool,
}

/// A buffered, line-ordered writer over `W`, flushed by a thread of its own.
pub struct LogWriter<W> {
    pending: Mutex<Pending>,
    wake: Condvar,
    /// Held while writing, so batches leave in the order they were taken.
    out: Mutex<W>,
}

impl<W: Write + Send + 'static> LogWriter<W> {
    /// A writer over `out`, with its flushing thread started.
    pub fn start(out: W) -> std::io::Result<Arc<Self>> {
        let writer = Arc::new(Self {
            pending: Mutex::new(Pending {
                lines: Vec::with_capacity(64 * 1024),
                writer_idle: false,
            }),
            wake: Condvar::new(),
            out: Mutex::new(out),
        });
        let flusher = writer.clone();
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || flusher.run())?;
        Ok(writer)
    }

    /// Queues one whole line (or several).
    pub fn write(&self, line: &[u8]) {
        let mut pending = lock(&self.pending);
        pending.lines.extend_from_slice(line);
        if pending.writer_idle {
            // Only the first line after a quiet spell wakes the writer thread.
            pending.writer_idle = false;
            self.wake.notify_one();
        }
        if pending.lines.len() >= HIGH_WATER {
            drop(pending);
            self.flush();
        }
    }

    /// Writes out everything queued so far.
    pub fn flush(&self) {
        let mut out = lock(&self.out);
        let batch = std::mem::take(&mut lock(&self.pending).lines);
        let _ = out.write_all(&batch);
        let _ = out.flush();
    }

    fn run(&self) {
        let mut batch = Vec::with_capacity(64 * 1024);
        loop {
            {
                let mut pending = lock(&self.pending);
                while pending.lines.is_empty() {
                    pending.writer_idle = true;
                    pending = self.wake.wait(pending).unwrap_or_else(PoisonError::into_inner);
                }
            }
            // Lines are coming: write them out every FLUSH_DELAY until a batch is empty.
            loop {
                std::thread::sleep(FLUSH_DELAY);
                let mut out = lock(&self.out);
                std::mem::swap(&mut batch, &mut lock(&self.pending).lines);
                if batch.is_empty() {
                    break;
                }
                let _ = out.write_all(&batch);
                let _ = out.flush();
                batch.clear();
            }
        }
    }
}

/// A logging thread that panicked while holding a lock left whole lines behind: keep going.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

static STDOUT: OnceLock<Arc<LogWriter<std::io::Stdout>>> = OnceLock::new();

/// Sends log lines through the buffered writer from now on. Without it (unit tests) each line
/// is written to stdout at once.
pub fn install() -> std::io::Result<()> {
    if STDOUT.get().is_none() {
        let _ = STDOUT.set(LogWriter::start(std::io::stdout())?);
    }
    Ok(())
}

/// Writes a whole line to stdout, through the buffer once installed.
pub fn write_line(line: &[u8]) {
    match STDOUT.get() {
        Some(writer) => writer.write(line),
        None => {
            let _ = std::io::stdout().lock().write_all(line);
        }
    }
}

/// Writes out every line logged so far.
pub fn flush() {
    if let Some(writer) = STDOUT.get() {
        writer.flush();
    }
}

/// Stdout through the buffer, for a layer that writes one whole line per `write`.
pub struct BufferedStdout;

impl Write for BufferedStdout {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        write_line(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink tests can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn lines(&self) -> Vec<String> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        }
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_and_in_order() {
        let sink = Shared::default();
        let writer = LogWriter::start(sink.clone()).unwrap();
        // Enough lines to pass the high-water mark too.
        let padding = "x".repeat(200);
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let (writer, padding) = (&writer, &padding);
                scope.spawn(move || {
                    for i in 0..2_000 {
                        writer.write(format!("{thread} {i} {padding}\n").as_bytes());
                    }
                });
            }
        });
        writer.flush();
        let lines = sink.lines();
        assert_eq!(lines.len(), 8_000);
        let mut next = [0; 4];
        for line in &lines {
            let mut parts = line.splitn(3, ' ');
            let thread: usize = parts.next().unwrap().parse().unwrap();
            let i: usize = parts.next().unwrap().parse().unwrap();
            assert_eq!(parts.next(), Some(padding.as_str()), "a whole line");
            assert_eq!(i, next[thread], "thread {thread}'s lines in order");
            next[thread] += 1;
        }
    }

    #[test]
    fn a_line_is_written_soon_without_a_flush() {
        let sink = Shared::default();
        let writer = LogWriter::start(sink.clone()).unwrap();
        writer.write(b"alone\n");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sink.lines().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(sink.lines(), ["alone"]);
    }
}
