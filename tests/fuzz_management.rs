//! Fuzzing the management API's JSON inputs and query strings: every route of
//! `management::router`, called with the master key, with bodies of any bytes and JSON objects of
//! its own field names with values of any shape, over one SQLite store shared by all cases.
//!
//! Properties: no input panics; every answer is a 2xx, or a 4xx carrying OpenAI error JSON (the
//! store is healthy, so a 5xx would be a parse the API failed to refuse).
//!
//! Cases per property: `PROPTEST_CASES` (256 when unset). A long run:
//! `PROPTEST_CASES=20000 cargo test --test fuzz_management` (see docs/reliability.md).

#![allow(clippy::unwrap_used)]

use std::{sync::LazyLock, time::Duration};

use axum::{body::Body, Router};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::BodyExt as _;
use llmgate::{auth::KeyCache, management, secret::Secret, store::Store};
use proptest::prelude::*;
use serde_json::{json, Value};
use tower::ServiceExt as _;

const MASTER: &str = "sk-master-fuzz";

static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
});

static API: LazyLock<Router> = LazyLock::new(|| {
    RT.block_on(async {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let keys = KeyCache::new(store, Duration::from_secs(10));
        let api = management::router(Some(Secret::new(MASTER)), keys, Some(100.0));
        // Rows the fuzzed bodies may name, so that they reach more than "not found".
        for (uri, body) in [
            ("/team/new", json!({"team_id": "team-1", "team_alias": "t"})),
            ("/user/new", json!({"user_id": "user-1", "auto_create_key": false})),
            ("/key/generate", json!({"key": SEEDED_KEY, "team_id": "team-1", "user_id": "user-1", "key_alias": "alias-1"})),
            ("/organization/new", json!({"organization_id": "org-1", "organization_alias": "o", "max_budget": 1.0})),
            ("/organization/member_add", json!({"organization_id": "org-1", "member": {"user_id": "user-1", "role": "org_admin"}})),
            ("/customer/new", json!({"user_id": "cust-1", "max_budget": 1.0})),
        ] {
            let req = Request::builder()
                .method(Method::POST)
                .uri(uri)
                .header("authorization", format!("Bearer {MASTER}"))
                .body(Body::from(body.to_string()))
                .unwrap();
            let resp = api.clone().oneshot(req).await.unwrap();
            assert!(resp.status().is_success(), "seeding {uri}: {}", resp.status());
        }
        api
    })
});

const SEEDED_KEY: &str = "sk-seeded-key";

const POSTS: &[&str] = &[
    "/key/generate",
    "/key/update",
    "/key/delete",
    "/key/block",
    "/key/unblock",
    "/key/regenerate",
    "/key/sk-x/regenerate",
    "/key/sk-seeded-key/regenerate",
    "/team/new",
    "/team/update",
    "/team/delete",
    "/team/member_add",
    "/team/member_update",
    "/team/member_delete",
    "/team/block",
    "/team/unblock",
    "/team/model/add",
    "/team/model/delete",
    "/user/new",
    "/user/update",
    "/user/delete",
    "/budget/new",
    "/budget/update",
    "/budget/info",
    "/budget/delete",
    "/organization/new",
    "/organization/update",
    "/organization/delete",
    "/organization/info",
    "/organization/member_add",
    "/organization/member_update",
    "/organization/member_delete",
    "/customer/new",
    "/customer/update",
    "/customer/delete",
    "/customer/block",
    "/customer/unblock",
    "/end_user/new",
    "/key/health",
    "/utils/token_counter",
];

const GETS: &[&str] = &[
    "/key/info",
    "/key/list",
    "/team/info",
    "/team/list",
    "/user/info",
    "/spend/logs",
    "/global/spend",
    "/user/list",
    "/budget/list",
    "/organization/info",
    "/organization/list",
    "/customer/info",
    "/customer/list",
    "/end_user/info",
    "/spend/logs/v2",
    "/global/spend/report",
    "/key/health",
    "/user/daily/activity",
    "/team/daily/activity",
];

fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(vec![
            "key", "keys", "key_alias", "key_aliases", "team_id", "team_ids", "team_alias",
            "user_id", "user_email", "user_role", "models", "max_budget", "budget_duration",
            "tpm_limit", "rpm_limit", "max_parallel_requests", "metadata", "duration", "blocked",
            "spend", "new_key", "member", "members_with_roles", "role", "auto_create_key",
            "teams", "expires", "page", "size", "return_full_object", "start_date", "end_date",
            "request_id", "api_key", "budget_id", "budgets", "id", "soft_budget", "tags",
            "model_max_budget", "user_ids", "page_size", "team_ids", "messages", "prompt",
            "model", "max_budget_in_team", "organization_id", "organization_ids",
            "organization_alias", "organizations", "max_budget_in_organization", "end_user_id",
            "alias", "allowed_model_region", "default_model", "group_by", "customer_id",
            "internal_user_id", "status_filter", "end_user",
        ])
        .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        proptest::sample::select(vec![
            "",
            "sk-x",
            SEEDED_KEY,
            "team-1",
            "user-1",
            "alias-1",
            "30d",
            "1h",
            "-1s",
            "999999999999d",
            "admin",
            "user",
            "proxy_admin",
            "internal_user",
            "gpt-4o",
            "*",
            "2024-01-01",
            "not-a-date",
            "org-1",
            "cust-1",
            "org_admin",
            "eu",
        ])
        .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(field(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..128),
        proptest::collection::btree_map(field(), value(), 0..5)
            .prop_map(|m| serde_json::to_vec(&m).unwrap()),
        value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
    ]
}

/// Calls the API; checks the answer is a 2xx or a 4xx with OpenAI error JSON.
fn call(method: &Method, uri: &str, body: Vec<u8>) -> Result<(), TestCaseError> {
    let Ok(req) = Request::builder()
        .method(method.clone())
        .uri(uri)
        .header("authorization", format!("Bearer {MASTER}"))
        .header("content-type", "application/json")
        .body(Body::from(Bytes::from(body)))
    else {
        // Not a URI http accepts: no request reaches the API.
        return Ok(());
    };
    let api = API.clone();
    let (status, bytes) = RT.block_on(async {
        let resp = api.oneshot(req).await.unwrap();
        let status = resp.status();
        (status, resp.into_body().collect().await.unwrap().to_bytes())
    });
    prop_assert!(
        status.is_success() || status.is_client_error(),
        "{} {} -> {}: {}",
        method,
        uri,
        status,
        String::from_utf8_lossy(&bytes)
    );
    if status.is_client_error() {
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| TestCaseError::fail(format!("{status}: {e}: {bytes:?}")))?;
        prop_assert!(v["error"]["message"].is_string(), "{}", v);
    }
    Ok(())
}

proptest! {
    /// Any body to any write route.
    #[test]
    fn write_routes_answer_any_body(route in proptest::sample::select(POSTS), body in body()) {
        call(&Method::POST, route, body)?;
    }

    /// Any query string to any read route.
    #[test]
    fn read_routes_answer_any_query(
        route in proptest::sample::select(GETS),
        query in proptest::collection::vec((field(), prop_oneof![
            "[a-zA-Z0-9_.:-]{0,12}",
            "-?[0-9]{1,22}",
            "%[0-9a-fA-F]{0,2}[^&#]{0,6}",
        ]), 0..4),
    ) {
        let mut uri = route.to_owned();
        for (i, (k, v)) in query.iter().enumerate() {
            uri.push(if i == 0 { '?' } else { '&' });
            uri.extend(percent_encoding::utf8_percent_encode(k, percent_encoding::NON_ALPHANUMERIC));
            uri.push('=');
            uri.push_str(v);
        }
        call(&Method::GET, &uri, Vec::new())?;
    }
}
