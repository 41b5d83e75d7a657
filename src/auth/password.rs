use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::config::HashSettings;
use crate::metrics::Metrics;

/// argon2id on threads of its own, at most `concurrency` at once.
///
/// Hashing costs tens of milliseconds of CPU and 19 MiB of memory, so it must never run on an async worker
/// (it would stall every request on that worker), and an unbounded number at once would let
/// a burst of logins exhaust memory. Callers wait for a permit instead. The threads run at a
/// lower CPU priority than the async workers, so while logins keep every hashing thread busy,
/// requests that need no hashing still get the CPU when they need it.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    memory: Arc<MemoryPool>,
    /// A hash of a random password, verified against when the email is unknown, so an unknown
    /// account costs the same time as a wrong password.
    dummy_hash: Arc<str>,
    metrics: Arc<Metrics>,
    threads: Arc<HashThreads>,
}

type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads: `concurrency` of them (the permits keep every job from waiting here),
/// each at nice 10, where the async workers' nice is 0.
struct HashThreads {
    jobs: std::sync::mpsc::Sender<Job>,
}

/// The niceness of the hashing threads: under contention the scheduler gives a nice-0 thread
/// about ten times the CPU share of a nice-10 one.
const HASH_NICENESS: i32 = 10;

impl HashThreads {
    fn start(count: usize) -> anyhow::Result<Self> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..count {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    // On Linux the niceness is per thread; `who = 0` is the calling thread. A
                    // refusal only costs the isolation, so it is not an error.
                    #[cfg(target_os = "linux")]
                    // SAFETY: setpriority takes no pointers and only changes this thread's niceness.
                    unsafe {
                        libc::setpriority(libc::PRIO_PROCESS, 0, HASH_NICENESS);
                    }
                    loop {
                        let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => break,
                        }
                    }
                })
                .context("cannot start a hashing thread")?;
        }
        Ok(Self { jobs })
    }

    /// Runs `work` on a hashing thread; a panic in it is an error, and the thread lives on.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)));
        });
        self.jobs
            .send(job)
            .map_err(|_| anyhow::anyhow!("hashing threads stopped"))?;
        match result.await {
            Ok(Ok(value)) => Ok(value),
            _ => Err(anyhow::anyhow!("hashing task panicked")),
        }
    }
}

/// argon2's working memory (`m_cost` KiB each), kept from one computation to the next.
///
/// Allocated afresh per hash, as argon2's own `hash_password` does, glibc kept the freed 19 MiB
/// blocks in the arena of every blocking thread that had run one: 1.4 GiB RSS after 10 s of
/// logins at `HASH_CONCURRENCY=2`. Taken from here after a permit, there are never more than
/// `concurrency` of them, and they are not page-faulted in again for every login.
struct MemoryPool {
    free: Mutex<Vec<Vec<Block>>>,
    blocks: usize,
}

impl MemoryPool {
    fn take(&self) -> Vec<Block> {
        let reused = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        reused.unwrap_or_else(|| vec![Block::default(); self.blocks])
    }

    fn give_back(&self, memory: Vec<Block>) {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).push(memory);
    }
}

impl PasswordHasher {
    pub fn new(settings: &HashSettings, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let params = Params::new(settings.memory_kib, settings.iterations, settings.parallelism, None)
            .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        let memory = Arc::new(MemoryPool {
            free: Mutex::new(Vec::new()),
            blocks: params.block_count(),
        });
        let dummy = crate::auth::refresh_token::random_token();
        let mut first = memory.take();
        let dummy_hash = hash_with_memory(&params, &mut first, dummy.as_bytes())
            .map_err(|e| anyhow::anyhow!("argon2 self-test failed: {e}"))?;
        memory.give_back(first);
        Ok(Self {
            memory,
            params,
            permits: Arc::new(Semaphore::new(settings.concurrency)),
            dummy_hash: dummy_hash.into(),
            metrics,
            threads: Arc::new(HashThreads::start(settings.concurrency)?),
        })
    }

    /// A PHC string (`$argon2id$v=19$m=…`) with a fresh random salt.
    pub async fn hash(&self, password: &SecretString) -> anyhow::Result<String> {
        let password = password.clone();
        let params = self.params.clone();
        self.run("password.hash", move |memory| {
            hash_with_memory(&params, memory, password.expose_secret().as_bytes())
                .map_err(|e| anyhow::anyhow!("argon2 hash failed: {e}"))
        })
        .await?
    }

    /// Whether `password` matches `stored`; with no stored hash (unknown account) it checks the
    /// dummy hash and answers false, spending the same time.
    pub async fn verify(&self, password: &SecretString, stored: Option<String>) -> anyhow::Result<bool> {
        let password = password.clone();
        let (hash, known): (Arc<str>, bool) = match stored {
            // An account without a password (`''`) is checked as an unknown one: the same work,
            // and never a match.
            Some(h) if !h.is_empty() => (h.into(), true),
            Some(_) => (self.dummy_hash.clone(), false),
            None => (self.dummy_hash.clone(), false),
        };
        let matches = self
            .run("password.verify", move |memory| {
                verify_with_memory(memory, password.expose_secret().as_bytes(), &hash)
            })
            .await?;
        Ok(known && matches)
    }

    async fn run<T: Send + 'static>(
        &self,
        name: &'static str,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let span = tracing::info_span!("argon2", otel.name = name, queue_wait_ms = tracing::field::Empty);
        async {
            let queued = Instant::now();
            let _permit = self.permits.acquire().await.context("hashing pool closed")?;
            let waited = queued.elapsed();
            self.metrics.hash_wait.observe(waited.as_secs_f64());
            tracing::Span::current().record("queue_wait_ms", waited.as_secs_f64() * 1000.0);
            let span = tracing::Span::current();
            let metrics = self.metrics.clone();
            let pool = self.memory.clone();
            self.threads
                .run(move || {
                    let _in_flight = InFlight::start(&metrics);
                    let mut memory = pool.take();
                    let started = Instant::now();
                    let result = span.in_scope(|| work(&mut memory));
                    metrics.hash_duration.observe(started.elapsed().as_secs_f64());
                    pool.give_back(memory);
                    result
                })
                .await
        }
        .instrument(span)
        .await
    }
}

/// Counts a running computation in `auth_password_hash_in_flight`, even if it panics.
struct InFlight<'a>(&'a Metrics);

impl<'a> InFlight<'a> {
    fn start(metrics: &'a Metrics) -> Self {
        metrics.hash_in_flight.inc();
        Self(metrics)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.hash_in_flight.dec();
    }
}

/// argon2id of `password` with a fresh 16-byte salt, as a PHC string; what argon2's
/// `hash_password` does, but in the caller's memory.
fn hash_with_memory(params: &Params, memory: &mut [Block], password: &[u8]) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("no randomness for a salt: {e}"))?;
    let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, &salt, &mut output, memory)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| anyhow::anyhow!("{e}"))?,
        salt: Some(Salt::new(&salt).map_err(|e| anyhow::anyhow!("{e}"))?),
        hash: Some(Output::new(&output).map_err(|e| anyhow::anyhow!("{e}"))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `stored`, computed with the parameters recorded
/// in it (older hashes keep verifying after a parameter change) and compared in constant time
/// (`Output`'s equality). A malformed stored hash never matches.
fn verify_with_memory(memory: &mut Vec<Block>, password: &[u8], stored: &str) -> bool {
    let Ok(hash) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(version), Ok(params)) = (
        Algorithm::try_from(hash.algorithm.as_str()),
        hash.version.map_or(Ok(Version::default()), Version::try_from),
        Params::try_from(&hash),
    ) else {
        return false;
    };
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let mut output = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt.as_ref(), &mut output, &mut memory[..])
        .is_ok()
        && Output::new(&output).is_ok_and(|computed| &computed == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> PasswordHasher {
        let settings = HashSettings {
            concurrency: 2,
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        };
        PasswordHasher::new(&settings, Arc::new(Metrics::new())).unwrap()
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let h = hasher();
        let pw = SecretString::from("fishcake");
        let stored = h.hash(&pw).await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{stored}");
        assert!(h.verify(&pw, Some(stored.clone())).await.unwrap());
        assert!(!h.verify(&SecretString::from("fishcakes"), Some(stored)).await.unwrap());
    }

    /// Hashes already stored (made by argon2's own `hash_password`, with other parameters)
    /// must keep verifying, and ours must verify with argon2's own verifier.
    #[tokio::test]
    async fn interoperates_with_argon2s_own_phc_strings() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let theirs = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(2048, 2, 1, None).unwrap(),
        )
        .hash_password(b"fishcake")
        .unwrap()
        .to_string();
        let h = hasher();
        assert!(
            h.verify(&SecretString::from("fishcake"), Some(theirs.clone()))
                .await
                .unwrap()
        );
        assert!(!h.verify(&SecretString::from("fishcak"), Some(theirs)).await.unwrap());

        let ours = h.hash(&SecretString::from("fishcake")).await.unwrap();
        assert!(Argon2::default().verify_password(b"fishcake", ours.as_str()).is_ok());
        assert!(Argon2::default().verify_password(b"fishcakes", ours.as_str()).is_err());
    }

    #[tokio::test]
    async fn malformed_stored_hashes_never_verify() {
        let h = hasher();
        for stored in ["", "plain text", "$argon2id$v=19$m=1024,t=1,p=1$c2FsdA", "$bcrypt$xyz"] {
            assert!(
                !h.verify(&SecretString::from("x"), Some(stored.into())).await.unwrap(),
                "{stored}"
            );
        }
    }

    #[tokio::test]
    async fn memory_is_reused_not_reallocated() {
        let h = hasher();
        for _ in 0..6 {
            h.hash(&SecretString::from("fishcake")).await.unwrap();
        }
        // At most one working memory per permit ever exists (concurrency 2 here).
        assert!(h.memory.free.lock().unwrap().len() <= 2);
    }

    #[tokio::test]
    async fn unknown_account_never_verifies() {
        assert!(!hasher().verify(&SecretString::from("anything"), None).await.unwrap());
    }
}
