//! Where the desktop keeps its session token between starts: the OS
//! keyring (the Secret Service on Linux, the Keychain, the Credential
//! Manager) when one answers, else the read cache, a file only its owner
//! may read (0600). A token found in the cache moves to the keyring once
//! one answers.

use crate::cache::Cache;

/// The keyring entries' service name; each entry is named by its server.
const KEYRING_SERVICE: &str = "anima-desktop";

/// The cache key of `server`'s token, kept there without a keyring.
fn cache_key(server: &str) -> String {
    format!("token:{server}")
}

/// Where versions before the keyring kept the one token, whatever its
/// server (the cached `server`).
const LEGACY_CACHE_KEY: &str = "token";

/// Where a token was put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// In the OS keyring.
    Keyring,
    /// In the read cache (no keyring answered).
    Cache,
}

/// The session token of each server signed in to.
#[derive(Clone)]
pub struct SessionTokens {
    cache: Cache,
}

impl SessionTokens {
    /// Tokens kept in the keyring, else in `cache`.
    pub fn new(cache: Cache) -> Self {
        Self { cache }
    }

    /// Remembers `token` for `server`, in the keyring if one answers (and
    /// then nowhere else).
    pub async fn save(&self, server: &str, token: &str) -> anyhow::Result<Kept> {
        let (server_name, secret) = (server.to_owned(), token.to_owned());
        let in_keyring = keyring_call(move || {
            keyring::Entry::new(KEYRING_SERVICE, &server_name)?.set_password(&secret)
        })
        .await;
        // Kept in one place only.
        self.cache.forget(LEGACY_CACHE_KEY).await?;
        match in_keyring {
            Ok(()) => {
                self.cache.forget(&cache_key(server)).await?;
                Ok(Kept::Keyring)
            }
            Err(why) => {
                tracing::info!("no keyring ({why}); the session token stays in the cache");
                self.cache.set_meta(&cache_key(server), token).await?;
                Ok(Kept::Cache)
            }
        }
    }

    /// The token remembered for `server`, if any. A token an earlier
    /// version kept is taken as `server`'s only when the cache names that
    /// server as the one signed in to.
    pub async fn load(&self, server: &str) -> anyhow::Result<Option<String>> {
        let server_name = server.to_owned();
        let from_keyring = keyring_call(move || {
            keyring::Entry::new(KEYRING_SERVICE, &server_name)?.get_password()
        })
        .await;
        match from_keyring {
            Ok(token) => Ok(Some(token)),
            Err(why) => {
                let mut cached = self.cache.meta(&cache_key(server)).await?;
                let mut legacy = false;
                if cached.is_none() && self.cache.meta("server").await?.as_deref() == Some(server) {
                    cached = self.cache.meta(LEGACY_CACHE_KEY).await?;
                    legacy = cached.is_some();
                }
                // A keyring that answers now takes the token over; a token
                // an earlier version kept moves to where this one keeps it.
                // Without a keyring, a cached token stays where it is.
                if let Some(token) = &cached
                    && (legacy || matches!(why, keyring::Error::NoEntry))
                {
                    self.save(server, token).await?;
                }
                Ok(cached)
            }
        }
    }

    /// Forgets the token for `server`, wherever it is; an error says the
    /// keyring still holds it.
    pub async fn forget(&self, server: &str) -> anyhow::Result<()> {
        let server_name = server.to_owned();
        let deleted = keyring_call(move || {
            keyring::Entry::new(KEYRING_SERVICE, &server_name)?.delete_credential()
        })
        .await;
        self.cache.forget(&cache_key(server)).await?;
        self.cache.forget(LEGACY_CACHE_KEY).await?;
        match deleted {
            Ok(()) | Err(keyring::Error::NoEntry | keyring::Error::NoDefaultStore) => Ok(()),
            Err(why) => Err(anyhow::anyhow!(
                "the keyring still holds the session token: {why}"
            )),
        }
    }
}

/// Runs a (blocking) keyring call off the async workers.
async fn keyring_call<T: Send + 'static>(
    call: impl FnOnce() -> keyring::Result<T> + Send + 'static,
) -> keyring::Result<T> {
    tokio::task::spawn_blocking(call)
        .await
        .unwrap_or_else(|join| {
            Err(keyring::Error::PlatformFailure(
                format!("the keyring call did not finish: {join}").into(),
            ))
        })
}
