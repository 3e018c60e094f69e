//! The models of `store_model_in_db` in LiteLLM's own table, `LiteLLM_ProxyModelTable`
//! ([`Schema::LiteLlm`](super::Schema::LiteLlm)), as LiteLLM's `/model/new` writes it:
//! `model_id`, `model_name`, `litellm_params` (JSONB, each string value encrypted by the
//! [`EncryptedModels`](crate::store::EncryptedModels) above this store, as LiteLLM's are),
//! `model_info` (JSONB, with its `id`), `created_by` / `updated_by`, and the timestamps. A model
//! added by llmgate is served by a LiteLLM proxy on the same database and the other way round.
//!
//! Each statement takes the same parameters, in the same order, as the statement over llmgate's
//! `llmgate_models` it stands for (`store/sql/models.rs`), and the `SELECT` names its columns as
//! that table does (times as Unix ms, JSON as text), so the row decoder is shared. Nothing here
//! creates a table: LiteLLM's migrations made it.

/// Every row, oldest first.
pub(super) const LIST: &str = concat!(
    "SELECT model_id, model_name, CAST(litellm_params AS TEXT) AS litellm_params, ",
    "COALESCE(CAST(model_info AS TEXT), '{}') AS model_info, created_by, ",
    "CAST(EXTRACT(EPOCH FROM created_at) * 1000 AS BIGINT) AS created_at, ",
    "CAST(EXTRACT(EPOCH FROM updated_at) * 1000 AS BIGINT) AS updated_at ",
    "FROM \"LiteLLM_ProxyModelTable\" ORDER BY created_at, model_id"
);

/// `($1 model_id, $2 model_name, $3 litellm_params, $4 model_info, $5 created_by,
/// $6 created_at ms, $7 updated_at ms)`; `model_info` gets the `id` LiteLLM keeps there, and
/// `updated_by` is the creator (LiteLLM's columns are `NOT NULL`).
pub(super) const INSERT: &str = concat!(
    "INSERT INTO \"LiteLLM_ProxyModelTable\" (model_id, model_name, litellm_params, model_info, ",
    "created_by, created_at, updated_at, updated_by) VALUES ($1, $2, CAST($3 AS JSONB), ",
    "CAST($4 AS JSONB) || jsonb_build_object('id', CAST($1 AS TEXT)), ",
    "COALESCE(CAST($5 AS TEXT), 'default_user_id'), ",
    "(to_timestamp(CAST($6 AS BIGINT) / 1000.0) AT TIME ZONE 'UTC'), ",
    "(to_timestamp(CAST($7 AS BIGINT) / 1000.0) AT TIME ZONE 'UTC'), ",
    "COALESCE(CAST($5 AS TEXT), 'default_user_id'))"
);

/// `($1 model_name, $2 litellm_params, $3 model_info, $4 updated_at ms, $5 model_id)`.
pub(super) const UPDATE: &str = concat!(
    "UPDATE \"LiteLLM_ProxyModelTable\" SET model_name = $1, litellm_params = CAST($2 AS JSONB), ",
    "model_info = CAST($3 AS JSONB) || jsonb_build_object('id', CAST($5 AS TEXT)), ",
    "updated_at = (to_timestamp(CAST($4 AS BIGINT) / 1000.0) AT TIME ZONE 'UTC') ",
    "WHERE model_id = $5"
);

/// `($1 model_id)`.
pub(super) const DELETE: &str = "DELETE FROM \"LiteLLM_ProxyModelTable\" WHERE model_id = $1";
