//! Authentication: the master key and virtual keys.
//!
//! [`OpenAiServer`](crate::server::OpenAiServer) reads the caller's key from `Authorization: Bearer`,
//! `api-key`, `x-api-key` or `x-litellm-api-key` into the [`PresentedKey`] extension.
//!
//! - [`MasterKey`] refuses every request whose presented key is not the master key, compared in
//!   constant time, with [`ErrorKind::Authentication`](crate::error::ErrorKind::Authentication) (401). Without a master key configured the
//!   gateway is open, as LiteLLM's proxy is.
//! - [`Auth`] adds virtual keys (`sk-…`, stored only as their SHA-256, see
//!   [`store`](crate::store)): the key is hashed and looked up through a [`KeyCache`] (fresh for a
//!   short ttl, refreshed in the background, invalidated by the management API), refused when
//!   unknown, blocked or expired (401), and refused for a model outside its key's, team's or
//!   user's `models` (401, type `key_model_access_denied` / `team_model_access_denied` /
//!   `user_model_access_denied`; an empty list or `all-proxy-models` allows every model; see
//!   [`ModelCatalog`] for wildcard patterns, access groups, aliases and comma-separated models).
//!   Every fallback group a request body names (`fallbacks`, `context_window_fallbacks`,
//!   `content_policy_fallbacks`) is checked the same way, before anything is called; configured
//!   fallbacks the caller may not use are skipped by the [fallback](crate::fallback) layer through
//!   [`ModelAccess`]. `GET /v1/models` lists only the key's models. The
//!   caller's identity goes into the extensions as `Arc<`[`KeyInfo`]`>`; a master-key caller gets
//!   one too ([`KeyInfo::master`]). A key lookup that cannot reach the database fails with 503.
//!
//! Place in the default order: first, before anything that spends. The edge runs the same key
//! check on the headers, before it reads a body ([`Admission`], from
//! [`AuthLayer::admission`] or [`MasterKeyLayer::admission`]), so a caller without a valid key
//! never makes the gateway buffer a body.
//!
//! Extensions read: [`PresentedKey`]. Written: `Arc<KeyInfo>`.
//!
//! ```
//! use llmgate::auth::MasterKeyLayer;
//! use llmgate::secret::Secret;
//! use tower::ServiceBuilder;
//! # use llmgate::{LlmRequest, LlmResponse, LlmError};
//! # let inner = tower::service_fn(|_r: LlmRequest| async { Err::<LlmResponse, _>(LlmError::internal("x")) });
//! let svc = ServiceBuilder::new()
//!     .layer(MasterKeyLayer::new(Some(Secret::new("sk-1234"))))
//!     .service(inner);
//! ```
//!
//! Virtual keys over a store:
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::time::Duration;
//! use llmgate::auth::{AuthLayer, KeyCache};
//! use llmgate::secret::Secret;
//! use llmgate::store::Store;
//! use tower::ServiceBuilder;
//! # use llmgate::{LlmRequest, LlmResponse, LlmError};
//! # let inner = tower::service_fn(|_r: LlmRequest| async { Err::<LlmResponse, _>(LlmError::internal("x")) });
//! let store = Store::connect("sqlite::memory:").await.unwrap();
//! let keys = KeyCache::new(store, Duration::from_secs(10));
//! let svc = ServiceBuilder::new()
//!     .layer(AuthLayer::new(Some(Secret::new("sk-1234")), Some(keys)))
//!     .service(inner);
//! # let _ = svc;
//! # });
//! ```

mod access;
mod key_cache;
mod key_info;
mod keys;
mod master_key;

pub use self::access::{ModelAccess, ModelCatalog};
pub use self::{
    key_cache::KeyCache,
    key_info::{EndUserInfo, KeyInfo, Scope, ALL_PROXY_MODELS, ALL_TEAM_MODELS},
    keys::{Admission, Auth, AuthLayer, AuthRefusal, ResponseFuture},
    master_key::{MasterKey, MasterKeyLayer},
};
pub use crate::types::extensions::PresentedKey;
