//! Users' UI passwords: Argon2id (the `argon2` crate's defaults: 19 MiB, 2 passes), hashed and
//! checked on the blocking pool, at most two at a time (each takes ~19 MiB and tens of
//! milliseconds: a flood of sign-ins queues instead of exhausting memory).

use std::sync::OnceLock;

use argon2::{
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use tokio::sync::Semaphore;

/// The user `metadata` entry that holds the PHC-format hash. Never shown by the management API
/// (the user views drop it) and never set through `metadata` directly (a 400).
pub(crate) const PASSWORD_HASH_KEY: &str = "llmgate_password_hash";

fn gate() -> &'static Semaphore {
    static GATE: OnceLock<Semaphore> = OnceLock::new();
    GATE.get_or_init(|| Semaphore::new(2))
}

async fn on_blocking_pool<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let _permit = gate().acquire().await.ok()?;
    tokio::task::spawn_blocking(f).await.ok()
}

/// The Argon2id PHC string of `password` (a fresh random salt); `None` when no hash could be made
/// (no system randomness).
pub(crate) async fn hash_password(password: String) -> Option<String> {
    on_blocking_pool(move || {
        let mut bytes = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).ok()?;
        let salt = SaltString::encode_b64(&bytes).ok()?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .ok()
            .map(|h| h.to_string())
    })
    .await
    .flatten()
}

/// Whether `password` matches the PHC string `phc` (a malformed `phc` matches nothing).
pub(crate) async fn verify_password(password: String, phc: String) -> bool {
    on_blocking_pool(move || {
        PasswordHash::new(&phc).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let h = hash_password("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("correct horse"));
        assert!(verify_password("correct horse".into(), h.clone()).await);
        assert!(!verify_password("correct horse ".into(), h.clone()).await);
        assert!(!verify_password(String::new(), h).await);
        // Two hashes of one password differ (salted).
        let a = hash_password("pw".into()).await.unwrap();
        let b = hash_password("pw".into()).await.unwrap();
        assert_ne!(a, b);
        // A stored value that is not a PHC string (e.g. a plain password) matches nothing.
        assert!(!verify_password("pw".into(), "pw".into()).await);
        assert!(!verify_password("x".into(), String::new()).await);
    }
}
