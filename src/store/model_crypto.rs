//! The values of `litellm_params` kept in the database encrypted as LiteLLM keeps them
//! (`proxy/common_utils/encrypt_decrypt_utils.py`): NaCl's `crypto_secretbox` (XSalsa20-Poly1305)
//! keyed by SHA-256 of the salt key (`LITELLM_SALT_KEY`, else the master key), a random 24-byte
//! nonce before the box, the whole URL-safe base64. A row written by LiteLLM decrypts here and
//! one written here decrypts in LiteLLM, given the same salt key.
//!
//! As LiteLLM, every string value of `litellm_params` is encrypted when written and decrypted
//! when read; a value that is not one of these boxes (a row written before, or by hand) is read
//! as it is. Without any key, nothing can be encrypted: a row whose secrets are all
//! `os.environ/` references is stored as it is, one with a literal secret is refused
//! ([`SaltKey::seal_params`] fails closed).

use std::fmt;

use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE},
    Engine as _,
};
use crypto_secretbox::{
    aead::{Aead, KeyInit},
    XSalsa20Poly1305,
};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

const NONCE: usize = 24;
const TAG: usize = 16;

/// The key the stored model parameters are encrypted with. Its `Debug` prints no key.
#[derive(Clone)]
pub struct SaltKey {
    cipher: XSalsa20Poly1305,
}

impl fmt::Debug for SaltKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SaltKey(*****)")
    }
}

/// Why a row could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealError {
    /// The parameter that holds a literal secret.
    pub param: String,
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "litellm_params.{}: a literal credential is only stored encrypted, and there is no key to encrypt it with: set LITELLM_SALT_KEY (or a master key), or pass it as `os.environ/NAME`",
            self.param
        )
    }
}

impl std::error::Error for SealError {}

impl SaltKey {
    /// The key derived from `salt` (LiteLLM: SHA-256 of the salt key's UTF-8 bytes).
    #[must_use]
    pub fn new(salt: &str) -> Self {
        let digest = Sha256::digest(salt.as_bytes());
        Self {
            cipher: XSalsa20Poly1305::new(&digest),
        }
    }

    /// LiteLLM's choice: `LITELLM_SALT_KEY` when set and not empty, else the master key.
    #[must_use]
    pub fn from_env_or(master_key: Option<&str>) -> Option<Self> {
        std::env::var("LITELLM_SALT_KEY")
            .ok()
            .filter(|s| !s.is_empty())
            .as_deref()
            .or(master_key.filter(|m| !m.is_empty()))
            .map(Self::new)
    }

    /// `value` encrypted: URL-safe base64 of nonce ‖ tag ‖ ciphertext (PyNaCl's
    /// `SecretBox.encrypt`, then `base64.urlsafe_b64encode`).
    ///
    /// # Errors
    /// When the system's random source fails (no nonce, nothing encrypted).
    pub fn encrypt(&self, value: &str) -> Result<String, ring::error::Unspecified> {
        let mut nonce = [0u8; NONCE];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)?;
        let boxed = self
            .cipher
            .encrypt((&nonce).into(), value.as_bytes())
            .map_err(|_| ring::error::Unspecified)?;
        let mut out = Vec::with_capacity(NONCE + boxed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&boxed);
        Ok(URL_SAFE.encode(out))
    }

    /// `value` decrypted, when it is a box this key opens (URL-safe base64, else standard, as
    /// LiteLLM reads both); `None` otherwise.
    #[must_use]
    pub fn decrypt(&self, value: &str) -> Option<String> {
        let bytes = URL_SAFE
            .decode(value)
            .or_else(|_| STANDARD.decode(value))
            .ok()?;
        if bytes.len() < NONCE + TAG {
            return None;
        }
        let (nonce, boxed) = bytes.split_at(NONCE);
        let plain = self.cipher.decrypt(nonce.into(), boxed).ok()?;
        String::from_utf8(plain).ok()
    }

    /// Every string value of `params` encrypted (LiteLLM's `_add_model_to_db`).
    ///
    /// # Errors
    /// When the random source fails, naming the parameter.
    pub fn seal_params(
        &self,
        params: &Map<String, Value>,
    ) -> Result<Map<String, Value>, SealError> {
        params
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => self
                    .encrypt(s)
                    .map(|e| (k.clone(), Value::String(e)))
                    .map_err(|_| SealError { param: k.clone() }),
                other => Ok((k.clone(), other.clone())),
            })
            .collect()
    }

    /// Every string value of `params` that this key opens, decrypted; the others as they are
    /// (LiteLLM's `decrypt_value_helper(..., return_original_value=True)`).
    #[must_use]
    pub fn open_params(&self, params: &Map<String, Value>) -> Map<String, Value> {
        params
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => (
                    k.clone(),
                    Value::String(self.decrypt(s).unwrap_or_else(|| s.clone())),
                ),
                other => (k.clone(), other.clone()),
            })
            .collect()
    }
}

/// `params` sealed with `key`, or, without a key, as they are when they hold no literal
/// secret (a parameter named like a credential whose value is not an `os.environ/` reference).
///
/// # Errors
/// [`SealError`] naming the first literal secret when there is no key (fail closed), or when
/// the random source fails.
pub(super) fn seal(
    key: Option<&SaltKey>,
    params: &Map<String, Value>,
) -> Result<Map<String, Value>, SealError> {
    match key {
        Some(k) => k.seal_params(params),
        None => match literal_secret(params) {
            Some(param) => Err(SealError { param }),
            None => Ok(params.clone()),
        },
    }
}

/// The first parameter holding a literal credential: a string, named like a credential
/// (`api_key`, `aws_secret_access_key`, `*token*`, …), that is not an `os.environ/` reference.
#[must_use]
pub fn literal_secret(params: &Map<String, Value>) -> Option<String> {
    params.iter().find_map(|(k, v)| {
        // Strings only: a number named like one (`input_cost_per_token`) is no credential.
        let secret = is_credential_name(k)
            && matches!(v, Value::String(s) if !s.is_empty() && !s.starts_with("os.environ/"));
        secret.then(|| k.clone())
    })
}

/// Whether a parameter is named like a credential: the words `/health` and `/model/info` mask
/// (`probe::is_secret_name`, which is part of the `gateway` feature; the store is not).
fn is_credential_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["key", "secret", "token", "password", "credential", "auth"]
        .iter()
        .any(|w| n.contains(w))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn params(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn a_value_round_trips_and_another_key_cannot_open_it() {
        let k = SaltKey::new("sk-salt");
        let e = k.encrypt("sk-live-secret").expect("random");
        assert!(!e.contains("sk-live-secret"));
        // URL-safe base64 of 24 + 16 + 14 bytes.
        assert_eq!(URL_SAFE.decode(&e).expect("b64").len(), 24 + 16 + 14);
        assert_eq!(k.decrypt(&e).as_deref(), Some("sk-live-secret"));
        assert_eq!(SaltKey::new("other").decrypt(&e), None);
        // Two encryptions differ (random nonces).
        assert_ne!(
            k.encrypt("x").expect("random"),
            k.encrypt("x").expect("random")
        );
        // Not a box: read as it is by open_params, None from decrypt.
        assert_eq!(k.decrypt("sk-plain"), None);
        assert_eq!(k.decrypt(""), None);
        assert_eq!(k.decrypt("AAAA"), None);
    }

    #[test]
    fn params_are_sealed_and_opened_every_string_and_only_strings() {
        let k = SaltKey::new("salt");
        let p = params(
            json!({"model": "openai/x", "api_key": "sk-1", "rpm": 5, "api_base": "os.environ/BASE"}),
        );
        let sealed = k.seal_params(&p).expect("sealed");
        assert_eq!(sealed["rpm"], 5);
        for f in ["model", "api_key", "api_base"] {
            assert_ne!(sealed[f], p[f], "{f} stays plain");
        }
        assert!(!serde_json::to_string(&sealed)
            .expect("json")
            .contains("sk-1"));
        assert_eq!(k.open_params(&sealed), p);
        // A row stored in plain text before reads as it is.
        assert_eq!(k.open_params(&p), p);
    }

    #[test]
    fn without_a_key_a_literal_secret_is_refused_and_references_pass() {
        let refs = params(
            json!({"model": "openai/x", "api_key": "os.environ/OPENAI_API_KEY",
                                 "input_cost_per_token": 0.001, "max_tokens": 10}),
        );
        assert_eq!(seal(None, &refs).expect("no secret"), refs);
        let lit = params(json!({"model": "openai/x", "aws_secret_access_key": "abc"}));
        let e = seal(None, &lit).expect_err("fails closed");
        assert_eq!(e.param, "aws_secret_access_key");
        assert!(e.to_string().contains("LITELLM_SALT_KEY"));
        assert!(!e.to_string().contains("abc"));
    }

    #[test]
    fn a_box_made_by_pynacl_opens() {
        // PyNaCl 1.6: SecretBox(sha256(b"sk-1234").digest()).encrypt(b"sk-upstream-secret",
        // nonce=bytes(range(24))), URL-safe base64 (fixed nonce, so the test is reproducible).
        let k = SaltKey::new("sk-1234");
        let from_python = PYNACL_BOX;
        assert_eq!(
            k.decrypt(from_python).as_deref(),
            Some("sk-upstream-secret")
        );
    }

    const PYNACL_BOX: &str =
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX8Dov9AJmwlfkEi1_TGnTboSczct7HhgytISd83EulAeBag==";
}
