//! Governance as a library, without a database: `AuthLayer` + `BudgetLayer` + `CostLayer` over the
//! in-memory store, served by `OpenAiServer` on a loopback socket in front of a fake upstream,
//! called over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod support;

use std::{sync::Arc, time::Duration};

use governance_common::{chat, post};
use llmgate::{
    auth::{AuthLayer, KeyCache},
    budget::BudgetLayer,
    cost::{CostLayer, PriceTable, Pricing},
    provider::{self, Deployment, HttpClient, ProviderLayer},
    secret::Secret,
    server::{serve, OpenAiServer, ServeConfig},
    spend::{OnCommit, SpendConfig, SpendWriter},
    store::{InMemoryStore, Limits, NewKey, SpendFilter},
};
use serde_json::json;
use support::{chat_completion, FakeUpstream, Reply};
use tower::ServiceBuilder;

const MASTER: &str = "sk-master-1234";

#[tokio::test]
async fn keys_budgets_and_spend_over_the_memory_store() {
    let up = FakeUpstream::start().await;
    // 5 + 7 = 12 tokens a call.
    up.set_default(Reply::json(200, chat_completion("hello")));

    let store = InMemoryStore::new();
    let (key, row) = store
        .create_key(NewKey {
            key_alias: Some("budgeted".into()),
            limits: Limits {
                max_budget: Some(0.01),
                ..Limits::default()
            },
            ..NewKey::default()
        })
        .unwrap();
    let (other, _) = store
        .create_key(NewKey {
            models: vec!["some-other-group".into()],
            ..NewKey::default()
        })
        .unwrap();

    let keys = KeyCache::new(store.clone(), Duration::from_secs(60));
    let hook_keys = keys.clone();
    let on_commit: OnCommit = Arc::new(move |totals| {
        hook_keys.add_spend(totals, std::time::Instant::now());
    });
    let writer = SpendWriter::spawn_with(
        store.clone(),
        SpendConfig::default().linger(Duration::ZERO),
        Some(on_commit),
    );

    // A tenth of a cent a token: 12 tokens cost 0.012, over the key's 0.01.
    let mut dep = Deployment::new("g", "openai/fake-model")
        .with_api_base(format!("{}/v1", up.url()))
        .with_api_key("sk-upstream");
    dep.input_cost_per_token = Some(0.001);
    dep.output_cost_per_token = Some(0.001);
    let dep = Arc::new(dep);
    let pricing = Arc::new(Pricing::new(&PriceTable::builtin(), [dep.as_ref()]));
    let auth = AuthLayer::new(Some(Secret::new(MASTER)), Some(keys));
    let admission = auth.admission();
    let stack = ServiceBuilder::new()
        .layer(auth)
        .layer(BudgetLayer::new(Some(writer.log().ledger().clone())))
        .layer(CostLayer::new(pricing).spend_log(writer.log()))
        .layer(ProviderLayer::new(provider::lookup("openai").unwrap(), dep))
        .service(HttpClient::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        OpenAiServer::new(stack).admission(Some(admission)),
        ServeConfig::default(),
        async {
            let _ = stopped.await;
        },
    ));

    // The key's first call is answered and priced.
    let first = chat(&base, key.expose(), "g").await;
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    let cost: f64 = first
        .header("x-litellm-response-cost")
        .expect("cost header")
        .parse()
        .unwrap();
    assert!((cost - 0.012).abs() < 1e-9, "{cost}");

    // Its spend row lands in the store, and the key's total with it.
    writer.flush().await;
    let rows = store.spend_logs(&SpendFilter {
        api_key: Some(row.token.clone()),
        ..SpendFilter::default()
    });
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].key_alias.as_deref(), Some("budgeted"));
    assert!((rows[0].spend - 0.012).abs() < 1e-9);
    assert!((store.key(&row.token).unwrap().spend - 0.012).abs() < 1e-9);

    // Over its budget now: refused before the upstream is called.
    let hits = up.hits();
    let refused = chat(&base, key.expose(), "g").await;
    assert_eq!(refused.status, 422);
    assert_eq!(refused.error()["type"], "budget_exceeded");
    assert_eq!(up.hits(), hits);

    // Unknown key, and a key for another model group: 401.
    let unknown = chat(&base, "sk-not-a-key", "g").await;
    assert_eq!(unknown.status, 401);
    let denied = chat(&base, other.expose(), "g").await;
    assert_eq!(denied.status, 401);
    assert_eq!(denied.error()["type"], "key_model_access_denied");

    // The master key has no budget.
    let master = post(
        &format!("{base}/v1/chat/completions"),
        Some(MASTER),
        &json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(master.status, 200);
    writer.flush().await;
    assert_eq!(store.spend_log_count(), 2);

    let stats = writer.shutdown(Duration::from_secs(5)).await;
    assert_eq!(stats.dropped, 0);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// The whole gateway from `Gateway::builder()`, governed over the in-memory store: no YAML, no
/// database. Keys, their model lists and budgets come from the store; spend goes back to it.
#[tokio::test]
async fn the_builder_governs_over_the_memory_store() {
    use llmgate::{gateway::Gateway, governance::Governance, rate_limit::Counters};

    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let store = InMemoryStore::new();
    let (key, row) = store
        .create_key(NewKey {
            models: vec!["g".into()],
            limits: Limits {
                max_budget: Some(0.01),
                ..Limits::default()
            },
            ..NewKey::default()
        })
        .unwrap();
    let gov = Governance::with_stores(
        store.clone(),
        store.clone(),
        Counters::memory(),
        Duration::from_secs(60),
        SpendConfig::default().linger(Duration::ZERO),
    );
    let mut dep = Deployment::new("g", "openai/fake-model")
        .with_api_base(format!("{}/v1", up.url()))
        .with_api_key("sk-upstream");
    dep.input_cost_per_token = Some(0.001);
    dep.output_cost_per_token = Some(0.001);
    let gateway = Gateway::builder()
        .deployment(dep)
        .master_key(Some(Secret::new(MASTER)))
        .governance(gov)
        .build(&HttpClient::new())
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        gateway.app(),
        ServeConfig::default(),
        async {
            let _ = stopped.await;
        },
    ));

    // The key may use "g": answered, priced, and its spend lands in the store.
    let first = chat(&base, key.expose(), "g").await;
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    gateway.governance().unwrap().spend.flush().await;
    let rows = store.spend_logs(&SpendFilter {
        api_key: Some(row.token.clone()),
        ..SpendFilter::default()
    });
    assert_eq!(rows.len(), 1);
    assert!((store.key(&row.token).unwrap().spend - 0.012).abs() < 1e-9);
    // Over its budget now (0.012 > 0.01): refused.
    let refused = chat(&base, key.expose(), "g").await;
    assert_eq!(refused.status, 422);
    // An unknown key: 401. No key at all: 401.
    assert_eq!(chat(&base, "sk-not-a-key", "g").await.status, 401);
    let anonymous = post(
        &format!("{base}/v1/chat/completions"),
        None,
        &json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(anonymous.status, 401);
    // The management API needs the SQL store: it says so (503), it does not answer open.
    let mgmt = post(&format!("{base}/key/generate"), Some(MASTER), &json!({})).await;
    assert_eq!(mgmt.status, 503, "{}", String::from_utf8_lossy(&mgmt.body));

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// A library user's gateway on a manual clock: the store, the counters, the governance and the
/// builder take the same handle, and a key's budget period and expiry follow it, not the wall
/// clock (the test never sleeps).
#[tokio::test]
async fn a_manual_clock_moves_budget_periods_and_expiry() {
    use llmgate::{clock::Clock, gateway::Gateway, governance::Governance, rate_limit::Counters};

    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let clock = Clock::manual();
    let store = InMemoryStore::new().with_clock(clock.clone());
    let (key, row) = store
        .create_key(NewKey {
            models: vec!["g".into()],
            limits: Limits {
                max_budget: Some(0.01),
                budget_duration: Some("1h".into()),
                ..Limits::default()
            },
            duration: Some(Duration::from_secs(2 * 3600)),
            ..NewKey::default()
        })
        .unwrap();
    assert_eq!(row.budget_reset_at, Some(clock.unix_ms() + 3_600_000));
    let gov = Governance::with_stores_on(
        clock.clone(),
        store.clone(),
        store.clone(),
        Counters::memory().with_clock(clock.clone()),
        Duration::from_secs(60),
        SpendConfig::default().linger(Duration::ZERO),
    );
    let mut dep = Deployment::new("g", "openai/fake-model")
        .with_api_base(format!("{}/v1", up.url()))
        .with_api_key("sk-upstream");
    dep.input_cost_per_token = Some(0.001);
    dep.output_cost_per_token = Some(0.001);
    let gateway = Gateway::builder()
        .deployment(dep)
        .master_key(Some(Secret::new(MASTER)))
        .governance(gov)
        .clock(clock.clone())
        .build(&HttpClient::new())
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        gateway.app(),
        ServeConfig::default(),
        async {
            let _ = stopped.await;
        },
    ));

    // 0.012 spent of 0.01: refused for the rest of the hour.
    assert_eq!(chat(&base, key.expose(), "g").await.status, 200);
    gateway.governance().unwrap().spend.flush().await;
    assert_eq!(chat(&base, key.expose(), "g").await.status, 422);
    clock.advance(Duration::from_millis(3_600_000 - 1));
    assert_eq!(chat(&base, key.expose(), "g").await.status, 422);
    // The hour ends on the gateway's clock: a new period, nothing spent in it.
    clock.advance(Duration::from_millis(1));
    assert_eq!(chat(&base, key.expose(), "g").await.status, 200);
    // Two hours after it was made, the key has expired.
    clock.advance(Duration::from_secs(3600));
    let expired = chat(&base, key.expose(), "g").await;
    assert_eq!(expired.status, 401);
    assert!(
        String::from_utf8_lossy(&expired.body).contains("Expired Key"),
        "{}",
        String::from_utf8_lossy(&expired.body)
    );
    assert_eq!(up.hits(), 2);

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
