//! Model routes in LiteLLM's shapes: reads (`/model/info`, `/v1/model/info`, `/v2/model/info`,
//! `/model_group/info`) of the table served now, secrets masked, filtered to what a virtual key
//! may call; writes (`/model/new`, `/model/update`, `/model/delete`, admin only) of the models kept
//! in the database (`general_settings.store_model_in_db: true`), served by this replica at once
//! and by the others at their next poll of the table (see
//! [`LiveModels::watch`](crate::gateway::LiveModels::watch)).

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    extract::{Query, State},
    http::HeaderMap,
    routing::{get, post},
    Json, Router,
};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::health::{Ops, Who};
use crate::{
    error::{ErrorKind, LlmError},
    gateway::parse_model_entry,
    management::{bad, not_found, ApiError},
    probe::display_params,
    provider::Deployment,
    store::ModelRow,
};

pub(super) fn routes() -> Router<Arc<Ops>> {
    Router::new()
        .route("/model/info", get(model_info))
        .route("/v1/model/info", get(model_info))
        .route("/v2/model/info", get(model_info_v2))
        .route("/model_group/info", get(model_group_info))
        .route("/model/new", post(model_new))
        .route("/model/update", post(model_update))
        .route("/model/delete", post(model_delete))
}

type Reply = Result<Json<Value>, ApiError>;

/// The deployments the caller may see.
async fn visible(ops: &Ops, headers: &HeaderMap) -> Result<Vec<Arc<Deployment>>, ApiError> {
    let who = ops.who(headers).await?;
    let router = ops.models.router().current();
    Ok(router
        .all_deployments()
        .filter(|d| match &who {
            Who::Admin | Who::Open => true,
            Who::Key(k) => k.allows_model(&d.model_group),
        })
        .cloned()
        .collect())
}

/// One deployment as `/model/info` lists it.
fn info_row(ops: &Ops, dep: &Deployment) -> Value {
    let price = ops.models.price(dep);
    let mut info = dep.model_info.clone();
    info.insert("id".into(), (*dep.id).into());
    info.insert("db_model".into(), ops.models.is_db_model(&dep.id).into());
    info.entry("litellm_provider")
        .or_insert_with(|| (*dep.provider).into());
    let mode = info
        .get("mode")
        .cloned()
        .or_else(|| price.as_ref().and_then(|p| p.mode.clone()).map(Value::from))
        .unwrap_or_else(|| "chat".into());
    info.insert("mode".into(), mode);
    if let Some(p) = &price {
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                info.entry(k).or_insert(v);
            }
        };
        put("max_input_tokens", p.max_input_tokens.map(Value::from));
        put("max_output_tokens", p.max_output_tokens.map(Value::from));
        put(
            "input_cost_per_token",
            dep.input_cost_per_token
                .or(p.input_cost_per_token)
                .map(Value::from),
        );
        put(
            "output_cost_per_token",
            dep.output_cost_per_token
                .or(p.output_cost_per_token)
                .map(Value::from),
        );
    }
    json!({
        "model_name": &*dep.model_group,
        "litellm_params": display_params(dep),
        "model_info": info,
    })
}

#[derive(Debug, Default, Deserialize)]
struct InfoQuery {
    litellm_model_id: Option<String>,
    #[serde(rename = "modelId")]
    model_id: Option<String>,
    page: Option<usize>,
    size: Option<usize>,
}

fn query<T: serde::de::DeserializeOwned + Default>(
    q: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ApiError> {
    q.map(|Query(q)| q).map_err(|e| bad("query", e.body_text()))
}

/// `GET /model/info` (and `/v1/model/info`): `{"data": [...]}`, one row per deployment;
/// `?litellm_model_id=` for one.
async fn model_info(
    State(ops): State<Arc<Ops>>,
    headers: HeaderMap,
    q: Result<Query<InfoQuery>, axum::extract::rejection::QueryRejection>,
) -> Reply {
    let deps = visible(&ops, &headers).await?;
    let q = query(q)?;
    let id = q.litellm_model_id.or(q.model_id);
    let data: Vec<Value> = deps
        .iter()
        .filter(|d| id.as_deref().is_none_or(|id| &*d.id == id))
        .map(|d| info_row(&ops, d))
        .collect();
    Ok(Json(json!({ "data": data })))
}

/// `GET /v2/model/info`: the rows of `/model/info`, paged (`page` from 1, `size` default 50).
async fn model_info_v2(
    State(ops): State<Arc<Ops>>,
    headers: HeaderMap,
    q: Result<Query<InfoQuery>, axum::extract::rejection::QueryRejection>,
) -> Reply {
    let deps = visible(&ops, &headers).await?;
    let q = query(q)?;
    let id = q.model_id.or(q.litellm_model_id);
    let rows: Vec<&Arc<Deployment>> = deps
        .iter()
        .filter(|d| id.as_deref().is_none_or(|id| &*d.id == id))
        .collect();
    let size = q.size.unwrap_or(50).clamp(1, 1000);
    let page = q.page.unwrap_or(1).max(1);
    let total = rows.len();
    let data: Vec<Value> = rows
        .iter()
        .skip((page - 1).saturating_mul(size))
        .take(size)
        .map(|d| info_row(&ops, d))
        .collect();
    Ok(Json(json!({
        "data": data,
        "total_count": total,
        "current_page": page,
        "total_pages": total.div_ceil(size),
        "size": size,
    })))
}

#[derive(Debug, Default, Deserialize)]
struct GroupQuery {
    model_group: Option<String>,
}

/// `GET /model_group/info`: one row per model group (`providers`, limits, prices, `mode`).
async fn model_group_info(
    State(ops): State<Arc<Ops>>,
    headers: HeaderMap,
    q: Result<Query<GroupQuery>, axum::extract::rejection::QueryRejection>,
) -> Reply {
    let deps = visible(&ops, &headers).await?;
    let q = query(q)?;
    let mut groups: BTreeMap<String, Vec<&Arc<Deployment>>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for d in &deps {
        let g = d.model_group.to_string();
        if q.model_group.as_deref().is_some_and(|want| want != g) {
            continue;
        }
        if !groups.contains_key(&g) {
            order.push(g.clone());
        }
        groups.entry(g).or_default().push(d);
    }
    let data: Vec<Value> = order
        .iter()
        .filter_map(|g| groups.get(g).map(|ds| (g, ds)))
        .map(|(g, ds)| {
            let mut providers: Vec<&str> = Vec::new();
            let (mut max_in, mut max_out) = (None::<u64>, None::<u64>);
            let (mut cin, mut cout) = (None::<f64>, None::<f64>);
            let (mut tpm, mut rpm) = (None::<u64>, None::<u64>);
            let mut mode = None::<String>;
            for d in ds {
                if !providers.contains(&&*d.provider) {
                    providers.push(&d.provider);
                }
                let p = ops.models.price(d);
                let info_u64 = |k: &str| d.model_info.get(k).and_then(Value::as_u64);
                let input = info_u64("max_input_tokens")
                    .or_else(|| p.as_ref().and_then(|p| p.max_input_tokens));
                let output = info_u64("max_output_tokens")
                    .or_else(|| p.as_ref().and_then(|p| p.max_output_tokens));
                max_in = max_in.max(input);
                max_out = max_out.max(output);
                let ci = d
                    .input_cost_per_token
                    .or_else(|| p.as_ref().and_then(|p| p.input_cost_per_token));
                let co = d
                    .output_cost_per_token
                    .or_else(|| p.as_ref().and_then(|p| p.output_cost_per_token));
                cin = cin.or(ci);
                cout = cout.or(co);
                tpm = sum(tpm, d.tpm);
                rpm = sum(rpm, d.rpm);
                mode = mode
                    .or_else(|| {
                        d.model_info
                            .get("mode")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    })
                    .or_else(|| p.and_then(|p| p.mode));
            }
            json!({
                "model_group": g,
                "providers": providers,
                "max_input_tokens": max_in,
                "max_output_tokens": max_out,
                "input_cost_per_token": cin,
                "output_cost_per_token": cout,
                "mode": mode.unwrap_or_else(|| "chat".to_owned()),
                "tpm": tpm,
                "rpm": rpm,
            })
        })
        .collect();
    Ok(Json(json!({ "data": data })))
}

fn sum(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.saturating_add(b)),
        (a, b) => a.or(b),
    }
}

// ---------------------------------------------------------------------------------------------
// Writes
// ---------------------------------------------------------------------------------------------

fn no_store() -> ApiError {
    ApiError(
        LlmError::new(
            ErrorKind::InternalServer,
            "Set `general_settings.store_model_in_db: true` (with a database) to add, update or delete models over the API",
        )
        .with_code("500"),
    )
}

fn json_body(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad("body", "expected a JSON object")),
        Err(e) => Err(bad("body", format!("invalid JSON: {e}"))),
    }
}

fn object(m: &Map<String, Value>, key: &str) -> Result<Map<String, Value>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(o)) => Ok(o.clone()),
        Some(_) => Err(bad(key, format!("`{key}` must be an object"))),
    }
}

/// A new model id (random, UUID-shaped).
fn new_id() -> String {
    let n = fastrand::u128(..);
    let h = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Checks a row with the config's rules (the answer names every problem).
fn validate(row: &ModelRow) -> Result<(), ApiError> {
    if row.model_name.trim().is_empty() {
        return Err(bad("model_name", "`model_name` is required"));
    }
    if row.model_name.len() > crate::management::MAX_TEXT_BYTES || row.model_name.contains('\0') {
        return Err(bad("model_name", "invalid `model_name`"));
    }
    if row.model_id.is_empty() || row.model_id.len() > crate::management::MAX_TEXT_BYTES {
        return Err(bad("model_info.id", "invalid model id"));
    }
    let entry = json!({
        "model_name": row.model_name,
        "litellm_params": row.litellm_params,
        "model_info": row.model_info,
    });
    parse_model_entry(&entry)
        .map(drop)
        .map_err(|e| bad("litellm_params", e))
}

/// A row as the write routes answer it: `litellm_params` masked.
fn row_json(row: &ModelRow) -> Result<Value, ApiError> {
    let mut params = row.litellm_params.clone();
    for (k, v) in &mut params {
        if crate::probe::is_secret_name(k) {
            *v = match v {
                Value::String(s) if !s.starts_with("os.environ/") => crate::secret::mask(s).into(),
                Value::String(s) => s.clone().into(),
                _ => "*****".into(),
            };
        }
    }
    Ok(json!({
        "model_id": row.model_id,
        "model_name": row.model_name,
        "litellm_params": params,
        "model_info": row.model_info,
        "created_by": row.created_by,
        "created_at": crate::management::iso(row.created_at),
        "updated_at": crate::management::iso(row.updated_at),
    }))
}

/// Reads the table again and serves it here now (other replicas at their next poll).
async fn refresh(ops: &Ops) -> Result<(), ApiError> {
    if let Some(store) = &ops.store {
        let rows = store.list_models().await?;
        for w in ops.models.set_db_models(rows).1 {
            tracing::warn!("{w}");
        }
    }
    Ok(())
}

/// `POST /model/new`: `{"model_name", "litellm_params", "model_info"}`; answers the stored row.
async fn model_new(State(ops): State<Arc<Ops>>, headers: HeaderMap, body: Bytes) -> Reply {
    ops.admin(&headers).await?;
    let Some(store) = &ops.store else {
        return Err(no_store());
    };
    let m = json_body(&body)?;
    let model_name = match m.get("model_name") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(bad("model_name", "`model_name` is required")),
    };
    let litellm_params = object(&m, "litellm_params")?;
    let mut model_info = object(&m, "model_info")?;
    let model_id = match model_info.remove("id") {
        Some(Value::String(s)) if !s.is_empty() => s,
        Some(Value::Number(n)) => n.to_string(),
        _ => new_id(),
    };
    if ops
        .models
        .router()
        .current()
        .all_deployments()
        .any(|d| *d.id == *model_id)
    {
        return Err(bad(
            "model_info.id",
            format!("a deployment with id `{model_id}` exists"),
        ));
    }
    let now = ops.now_ms();
    let row = ModelRow {
        model_id,
        model_name,
        litellm_params,
        model_info,
        created_by: Some("default_user_id".to_owned()),
        created_at: now,
        updated_at: now,
    };
    validate(&row)?;
    // A literal credential is only stored encrypted: without a key, 400 before any write.
    store
        .check_params(&row.litellm_params)
        .map_err(|e| bad("litellm_params", e.to_string()))?;
    store.insert_model(&row).await?;
    refresh(&ops).await?;
    tracing::info!(model_id = %row.model_id, model_name = %row.model_name, "model added");
    Ok(Json(row_json(&row)?))
}

/// `POST /model/update`: `{"model_info": {"id"}, "model_name"?, "litellm_params"?}`; the given
/// `litellm_params` and `model_info` keys replace the stored ones.
async fn model_update(State(ops): State<Arc<Ops>>, headers: HeaderMap, body: Bytes) -> Reply {
    ops.admin(&headers).await?;
    let Some(store) = &ops.store else {
        return Err(no_store());
    };
    let m = json_body(&body)?;
    let info = object(&m, "model_info")?;
    let id = match info.get("id").or_else(|| m.get("id")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(bad("model_info.id", "`model_info.id` is required")),
    };
    let rows = store.list_models().await?;
    let Some(mut row) = rows.into_iter().find(|r| r.model_id == id) else {
        return Err(not_found(format!("Model with id={id} not found in db")));
    };
    if let Some(Value::String(name)) = m.get("model_name") {
        row.model_name.clone_from(name);
    }
    for (k, v) in object(&m, "litellm_params")? {
        if v.is_null() {
            continue;
        }
        row.litellm_params.insert(k, v);
    }
    for (k, v) in info {
        if k != "id" {
            row.model_info.insert(k, v);
        }
    }
    row.updated_at = ops.now_ms().max(row.updated_at + 1);
    validate(&row)?;
    store
        .check_params(&row.litellm_params)
        .map_err(|e| bad("litellm_params", e.to_string()))?;
    if !store.update_model(&row).await? {
        return Err(not_found(format!("Model with id={id} not found in db")));
    }
    refresh(&ops).await?;
    tracing::info!(model_id = %row.model_id, "model updated");
    Ok(Json(row_json(&row)?))
}

/// `POST /model/delete`: `{"id"}`.
async fn model_delete(State(ops): State<Arc<Ops>>, headers: HeaderMap, body: Bytes) -> Reply {
    ops.admin(&headers).await?;
    let Some(store) = &ops.store else {
        return Err(no_store());
    };
    let m = json_body(&body)?;
    let id = match m.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(bad("id", "`id` is required")),
    };
    if !store.delete_model(&id).await? {
        return Err(not_found(format!("Model with id={id} not found in db")));
    }
    refresh(&ops).await?;
    tracing::info!(model_id = %id, "model deleted");
    Ok(Json(
        json!({ "message": format!("Model: {id} deleted successfully") }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_look_like_uuids() {
        let id = new_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_ne!(id, new_id());
    }

    #[test]
    fn answered_rows_mask_literal_keys_and_keep_env_references() {
        let row = ModelRow {
            model_id: "m".into(),
            model_name: "g".into(),
            litellm_params: json!({"model": "openai/x", "api_key": "sk-literal-secret-1234", "aws_secret_access_key": "os.environ/AWS_SECRET"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            ..ModelRow::default()
        };
        let v = row_json(&row).unwrap_or_default();
        assert_eq!(v["litellm_params"]["api_key"], "sk-…34");
        assert_eq!(
            v["litellm_params"]["aws_secret_access_key"],
            "os.environ/AWS_SECRET"
        );
        assert!(!v.to_string().contains("literal-secret"));
    }
}
