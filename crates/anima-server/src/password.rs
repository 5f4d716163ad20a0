//! Passwords: argon2id hashes, computed on a few fixed worker threads with
//! a bounded queue in front, so a flood of logins costs at most one
//! computation per core and a known amount of memory.

use std::{
    cell::RefCell,
    sync::{
        Arc, LazyLock, Mutex,
        mpsc::{SyncSender, TrySendError, sync_channel},
    },
};

use anima_core::{DomainError, ErrorCode, error::reason};
use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::{Output, ParamsString, Salt, SaltString, rand_core::OsRng},
};

/// Password computations that may wait for a worker; beyond this, callers
/// are told the server is busy instead of queueing without bound.
const MAX_WAITING: usize = 64;

type Job = Box<dyn FnOnce() + Send>;

/// The queue in front of the workers: one thread per core, each running
/// one computation at a time.
static QUEUE: LazyLock<SyncSender<Job>> = LazyLock::new(|| {
    let (queue, jobs) = sync_channel::<Job>(MAX_WAITING);
    let jobs = Arc::new(Mutex::new(jobs));
    for n in 0..std::thread::available_parallelism().map_or(1, usize::from) {
        let jobs = jobs.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("argon2-{n}"))
            .spawn(move || {
                loop {
                    let job = match jobs.lock() {
                        Ok(jobs) => jobs.recv(),
                        Err(poisoned) => poisoned.into_inner().recv(),
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
        if let Err(err) = spawned {
            tracing::error!(%err, "cannot start a password worker");
        }
    }
    queue
});

thread_local! {
    /// Each worker's argon2 memory (19 MiB with the default parameters),
    /// allocated once and reused. Allocating it per computation let the
    /// allocator keep hundreds of MiB after a flood (its threshold for
    /// returning large blocks to the system rises with their size).
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs `work` on a worker, or refuses at once when the queue is full
/// (`RESOURCE_EXHAUSTED`/`SERVER_BUSY`).
async fn on_worker<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DomainError> {
    let (done, result) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = done.send(work());
    });
    QUEUE.try_send(job).map_err(|err| match err {
        TrySendError::Full(_) => DomainError::new(
            ErrorCode::ResourceExhausted,
            reason::SERVER_BUSY,
            "the server is busy checking passwords; try again in a moment",
        ),
        TrySendError::Disconnected(_) => DomainError::internal("no password worker is running"),
    })?;
    result
        .await
        .map_err(|_| DomainError::internal("a password worker stopped"))
}

/// argon2 of `password` with `salt`, `len` bytes long, in this thread's
/// reused memory.
fn compute(
    argon2: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: Salt<'_>,
    len: usize,
) -> argon2::password_hash::Result<Output> {
    let mut salt_bytes = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_bytes)?;
    MEMORY.with_borrow_mut(|blocks| {
        blocks.resize(params.block_count(), Block::default());
        Output::init_with(len, |out| {
            Ok(argon2.hash_password_into_with_memory(password, salt, out, &mut blocks[..])?)
        })
    })
}

/// Hashes a password with argon2id (the crate's default parameters, which
/// follow the OWASP recommendation) into a PHC string.
pub async fn hash_password(password: String) -> Result<String, DomainError> {
    on_worker(move || {
        let salt = SaltString::generate(&mut OsRng);
        let params = Params::default();
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let hash = compute(&argon2, &params, password.as_bytes(), salt.as_salt(), len)?;
        Ok(PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params)?,
            salt: Some(salt.as_salt()),
            hash: Some(hash),
        }
        .to_string())
    })
    .await?
    .map_err(|e: argon2::password_hash::Error| {
        DomainError::internal(format!("hashing password: {e}"))
    })
}

/// Whether `password` matches a stored PHC hash (compared in constant
/// time); a malformed hash matches nothing.
pub async fn verify_password(password: String, hash: String) -> Result<bool, DomainError> {
    on_worker(move || -> argon2::password_hash::Result<bool> {
        let parsed = PasswordHash::new(&hash)?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Ok(false);
        };
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()?
            .unwrap_or_default();
        let params = Params::try_from(&parsed)?;
        let argon2 = Argon2::new(
            Algorithm::try_from(parsed.algorithm)?,
            version,
            params.clone(),
        );
        let computed = compute(&argon2, &params, password.as_bytes(), salt, expected.len())?;
        Ok(computed == expected)
    })
    .await
    .map(|matched| matched.unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use argon2::PasswordVerifier;

    use super::*;

    #[tokio::test]
    async fn passwords_verify_only_themselves() {
        let hash = hash_password("correct horse".into()).await.expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(
            verify_password("correct horse".into(), hash.clone())
                .await
                .expect("verify")
        );
        assert!(
            !verify_password("correct horsf".into(), hash.clone())
                .await
                .expect("verify")
        );
        assert!(
            !verify_password("x".into(), "not a hash".into())
                .await
                .expect("verify")
        );
        // The same hash as the argon2 crate's own, both ways.
        let parsed = PasswordHash::new(&hash).expect("phc");
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        let theirs = argon2::PasswordHasher::hash_password(
            &Argon2::default(),
            b"staple",
            &SaltString::generate(&mut OsRng),
        )
        .expect("theirs")
        .to_string();
        assert!(
            verify_password("staple".into(), theirs.clone())
                .await
                .expect("verify")
        );
        assert!(
            !verify_password("stapler".into(), theirs)
                .await
                .expect("verify")
        );
    }
}
