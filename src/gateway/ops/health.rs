//! Operations routes served with or without a database: `GET /health` (deployment probes, see
//! [`probe`](crate::probe)), `GET /routes`, `GET /`, and (in `models.rs`) the model routes.
//! Mounted in front of the management API by the gateway ([`ops_router`]).
//!
//! Who may call: with `general_settings.master_key` set, `/health` needs the master key or a
//! `proxy_admin`'s virtual key (the answer lists every deployment's endpoint); the model reads
//! (`/model/info`, `/model_group/info`) any valid key, filtered to the models it may call; the
//! model writes the master key or a `proxy_admin`'s key. Without a master key, reads are open
//! (as LiteLLM without one) and writes are refused (403). `/routes` and `/` are public.

use std::sync::Arc;

use axum::{
    extract::{Query, State},
    http::HeaderMap,
    routing::get,
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::management::{bad, forbidden, not_found, ApiError};
use crate::{
    auth::{KeyCache, KeyInfo},
    error::{ErrorKind, LlmError},
    gateway::LiveModels,
    probe::{matches_model, Prober},
    secret::Secret,
    server::presented_key,
    store::{hash_key, ModelStore},
};

/// What the operations routes need.
pub(crate) struct Ops {
    pub(super) master: Option<Secret>,
    pub(super) keys: Option<KeyCache>,
    pub(super) prober: Prober,
    pub(super) models: LiveModels,
    pub(super) store: Option<Arc<dyn ModelStore>>,
    pub(super) governed: bool,
}

impl std::fmt::Debug for Ops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ops")
            .field("prober", &self.prober)
            .field("store_model_in_db", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

impl Ops {
    /// Unix ms on the gateway's clock (its key cache's; the system clock without governance).
    pub(super) fn now_ms(&self) -> i64 {
        self.keys.as_ref().map_or_else(
            || crate::clock::Clock::system().unix_ms(),
            |k| k.clock().unix_ms(),
        )
    }

    /// The state of the operations routes: `master` and `keys` authenticate callers, `prober`
    /// answers `/health`, `models` is the table `/model/*` reads and changes, `store` (with
    /// `store_model_in_db: true`) keeps the models added over the API.
    #[must_use]
    pub(crate) fn new(
        master: Option<Secret>,
        keys: Option<KeyCache>,
        prober: Prober,
        models: LiveModels,
        store: Option<Arc<dyn ModelStore>>,
    ) -> Self {
        Self {
            master: master.filter(|m| !m.is_empty()),
            governed: keys.is_some(),
            keys,
            prober,
            models,
            store,
        }
    }
}

/// Who calls an operations route.
pub(super) enum Who {
    /// The master key or a `proxy_admin`'s key.
    Admin,
    /// Another valid virtual key.
    Key(Arc<KeyInfo>),
    /// No master key is configured: reads are open.
    Open,
}

fn unauthorized(msg: &str) -> ApiError {
    ApiError(
        LlmError::new(ErrorKind::Authentication, msg)
            .with_type("auth_error")
            .with_code("401"),
    )
}

impl Ops {
    pub(super) async fn who(&self, headers: &HeaderMap) -> Result<Who, ApiError> {
        let Some(master) = &self.master else {
            return Ok(Who::Open);
        };
        let Some(presented) = presented_key(headers) else {
            return Err(unauthorized(
                "Authentication Error, no API key passed in. Pass it as `Authorization: Bearer <key>`",
            ));
        };
        if master.matches(presented.expose()) {
            return Ok(Who::Admin);
        }
        let Some(keys) = &self.keys else {
            return Err(unauthorized("Authentication Error, invalid API key"));
        };
        match keys.get(&hash_key(presented.expose())).await? {
            Some(i) if i.refusal(keys.clock().unix_ms()).is_none() && i.is_admin => Ok(Who::Admin),
            Some(i) if i.refusal(keys.clock().unix_ms()).is_none() => Ok(Who::Key(i)),
            _ => Err(unauthorized("Authentication Error, invalid API key")),
        }
    }

    /// The master key or a `proxy_admin`'s key; nothing else.
    pub(super) async fn admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match self.who(headers).await? {
            Who::Admin => Ok(()),
            Who::Open => Err(forbidden(
                "This route needs general_settings.master_key to be set",
            )),
            Who::Key(_) => Err(forbidden(
                "Only the master key or a proxy_admin may call this route",
            )),
        }
    }
}

/// The operations routes over `ops`, answering everything else with `fallback` (the management
/// API).
pub(crate) fn ops_router(ops: Ops, fallback: Router) -> Router {
    let state = Arc::new(ops);
    Router::new()
        .route("/health", get(health))
        .route("/routes", get(routes))
        .route("/", get(root))
        .merge(super::models::routes())
        .with_state(state)
        .fallback_service(fallback)
        .layer(axum::middleware::map_response(
            crate::management::json_errors,
        ))
}

#[derive(Debug, Default, Deserialize)]
struct HealthQuery {
    model: Option<String>,
    model_id: Option<String>,
}

/// `GET /health`: probes (or, in the background mode, the last probes) of every deployment, or
/// of `?model=` / `?model_id=`.
async fn health(
    State(ops): State<Arc<Ops>>,
    headers: HeaderMap,
    query: Result<Query<HealthQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    match ops.who(&headers).await? {
        Who::Admin | Who::Open => {}
        Who::Key(_) => {
            return Err(forbidden(
                "Only the master key or a proxy_admin may call /health",
            ))
        }
    }
    let Query(q) = query.map_err(|e| bad("model", e.body_text()))?;
    let router = ops.models.router().current();
    let deps: Vec<_> = router.all_deployments().cloned().collect();
    let only: Option<Vec<Arc<str>>> = match (&q.model, &q.model_id) {
        (_, Some(id)) => {
            if !deps.iter().any(|d| &*d.id == id.as_str()) {
                return Err(not_found(format!("Model with ID {id} not found")));
            }
            Some(vec![Arc::from(id.as_str())])
        }
        (Some(m), None) => Some(matches_model(&deps, m)),
        (None, None) => None,
    };
    let keep =
        |d: &crate::provider::Deployment| only.as_ref().is_none_or(|ids| ids.contains(&d.id));
    if ops.prober.is_background() {
        let body = match ops.prober.last() {
            Some(report) => report.to_json(&keep),
            None => crate::probe::Report::default().to_json(&keep),
        };
        return Ok(Json(body));
    }
    let report = ops.prober.run(only.as_deref()).await;
    Ok(Json(report.to_json(&keep)))
}

/// One route the gateway serves: path, methods, name (LiteLLM's `/routes` rows).
const ROUTES: &[(&str, &str, &str, bool)] = &[
    ("/v1/chat/completions", "POST", "chat_completion", false),
    ("/chat/completions", "POST", "chat_completion", false),
    ("/v1/embeddings", "POST", "embeddings", false),
    ("/embeddings", "POST", "embeddings", false),
    ("/v1/models", "GET", "model_list", false),
    ("/models", "GET", "model_list", false),
    ("/health", "GET", "health_endpoint", false),
    ("/health/readiness", "GET", "health_readiness", false),
    ("/health/liveliness", "GET", "health_liveliness", false),
    ("/health/liveness", "GET", "health_liveliness", false),
    ("/routes", "GET", "get_routes", false),
    ("/", "GET", "home", false),
    ("/model/info", "GET", "model_info_v1", false),
    ("/v1/model/info", "GET", "model_info_v1", false),
    ("/v2/model/info", "GET", "model_info_v2", false),
    ("/model_group/info", "GET", "model_group_info", false),
    ("/model/new", "POST", "add_new_model", false),
    ("/model/update", "POST", "update_model", false),
    ("/model/delete", "POST", "delete_model", false),
    ("/key/generate", "POST", "generate_key_fn", true),
    ("/key/update", "POST", "update_key_fn", true),
    ("/key/info", "GET", "info_key_fn", true),
    ("/key/delete", "POST", "delete_key_fn", true),
    ("/key/list", "GET", "list_keys", true),
    ("/key/block", "POST", "block_key", true),
    ("/key/unblock", "POST", "unblock_key", true),
    ("/key/regenerate", "POST", "regenerate_key_fn", true),
    ("/key/{key}/regenerate", "POST", "regenerate_key_fn", true),
    ("/team/new", "POST", "new_team", true),
    ("/team/update", "POST", "update_team", true),
    ("/team/delete", "POST", "delete_team", true),
    ("/team/member_add", "POST", "team_member_add", true),
    ("/team/info", "GET", "team_info", true),
    ("/team/list", "GET", "list_team", true),
    ("/user/new", "POST", "new_user", true),
    ("/user/info", "GET", "user_info", true),
    ("/spend/logs", "GET", "view_spend_logs", true),
    ("/global/spend", "GET", "global_spend", true),
];

/// `GET /routes`: LiteLLM's shape, `{"routes": [{"path", "methods", "name", "endpoint"}]}`.
async fn routes(State(ops): State<Arc<Ops>>) -> Json<Value> {
    let rows: Vec<Value> = ROUTES
        .iter()
        .filter(|(_, _, _, governed)| !governed || ops.governed)
        .map(|(path, method, name, _)| {
            json!({"path": path, "methods": [method], "name": name, "endpoint": name})
        })
        .collect();
    Json(json!({ "routes": rows }))
}

/// `GET /`: a small answer saying what runs here.
async fn root() -> Json<Value> {
    Json(json!({
        "name": "llmgate",
        "version": env!("CARGO_PKG_VERSION"),
        "message": "llmgate is running: an OpenAI-format API at /v1",
    }))
}
