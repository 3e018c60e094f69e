//! Virtual keys, budgets and spend without a database: `AuthLayer` + `BudgetLayer` + `CostLayer`
//! over the in-memory store, in front of a provider, called over sockets.
//!
//! The "upstream" is llmgate's own gateway on its embedded mock config, started on a free loopback
//! port, so the example runs offline: `cargo run --example governed_client`.
//!
//! What it shows: a key made in an [`InMemoryStore`], the key cache and the auth layer reading it
//! through the `KeyStore` trait, the cost layer pricing each call and handing its spend row to the
//! spend writer, which writes it into the same store through the `SpendSink` trait, and the budget
//! layer refusing the key once its spend has passed its `max_budget`.

use std::{sync::Arc, time::Duration};

use llmgate::{
    auth::{AuthLayer, KeyCache, PresentedKey},
    budget::BudgetLayer,
    client::Client,
    config::Config,
    cost::{CostLayer, PriceTable, Pricing},
    gateway::{Gateway, DEFAULT_CONFIG},
    provider::{self, Deployment, HttpClient, ProviderLayer},
    secret::Secret,
    server::{serve, ServeConfig},
    spend::{OnCommit, SpendConfig, SpendWriter},
    store::{InMemoryStore, Limits, NewKey},
    types::chat::{ChatRequest, Message},
    ErrorKind, LlmRequest,
};
use tower::ServiceBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // 1. A local OpenAI-compatible upstream: llmgate serving its mock model group.
    let config = Config::from_yaml_str(DEFAULT_CONFIG, "default")?.config;
    let upstream = Gateway::from_config(&config, &HttpClient::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        upstream.server(),
        ServeConfig::default(),
        async {
            let _ = stopped.await;
        },
    ));

    // 2. The store, in memory, with one key whose budget is a tenth of a cent.
    let store = InMemoryStore::new();
    let (key, row) = store.create_key(NewKey {
        key_alias: Some("example".into()),
        limits: Limits {
            max_budget: Some(0.001),
            ..Limits::default()
        },
        ..NewKey::default()
    })?;
    println!("key {} (stored as {}…)", key.masked(), &row.token[..12]);

    // 3. Governance over it: key lookups (cached), the spend writer (its ledger counts a call's
    //    spend against budgets at once; each committed batch is added to the cached keys).
    let keys = KeyCache::new(store.clone(), Duration::from_secs(10));
    let hook_keys = keys.clone();
    let on_commit: OnCommit = Arc::new(move |totals| {
        hook_keys.add_spend(totals, std::time::Instant::now());
    });
    let writer = SpendWriter::spawn_with(
        store.clone(),
        SpendConfig::default().linger(Duration::ZERO),
        Some(on_commit),
    );

    // 4. One priced deployment: a dollar per thousand tokens, so one call passes the budget.
    let mut deployment = Deployment::new("my-model", "openai/mock")
        .with_api_base(format!("http://{addr}/v1"))
        .with_api_key("sk-local");
    deployment.input_cost_per_token = Some(0.001);
    deployment.output_cost_per_token = Some(0.001);
    let deployment = Arc::new(deployment);
    let pricing = Arc::new(Pricing::new(&PriceTable::builtin(), [deployment.as_ref()]));
    let openai = provider::lookup("openai").ok_or("openai provider is built in")?;

    // 5. The stack: auth, budget, cost, then the provider over the pooled HTTP client.
    let stack = ServiceBuilder::new()
        .layer(AuthLayer::new(Some(Secret::new("sk-master")), Some(keys)))
        .layer(BudgetLayer::new(Some(writer.log().ledger().clone())))
        .layer(CostLayer::new(pricing).spend_log(writer.log()))
        .layer(ProviderLayer::new(openai, deployment).default_timeout(Duration::from_secs(30)))
        .service(HttpClient::new());
    let client = Client::new(stack);
    let call = |key: &Secret| {
        let mut req = LlmRequest::chat(ChatRequest {
            model: "my-model".into(),
            messages: vec![Message::new("user", "Say hello")],
            ..ChatRequest::default()
        });
        req.extensions.insert(PresentedKey(key.clone()));
        client.send(req)
    };

    // 6. The key pays for its first call; the second is over budget. An unknown key is refused.
    call(&key).await?;
    writer.flush().await;
    let spent = store.key(&row.token).map_or(0.0, |k| k.spend);
    println!("first call: answered; the key has spent ${spent:.4}");
    let refused = call(&key).await.err().ok_or("the budget should refuse")?;
    assert_eq!(refused.kind(), ErrorKind::BudgetExceeded);
    println!("second call: {} {}", refused.status(), refused.message());
    let unknown = call(&Secret::new("sk-unknown"))
        .await
        .err()
        .ok_or("an unknown key should be refused")?;
    assert_eq!(unknown.kind(), ErrorKind::Authentication);
    println!("unknown key: {} {}", unknown.status(), unknown.message());
    println!("spend-log rows: {}", store.spend_log_count());

    writer.shutdown(Duration::from_secs(5)).await;
    let _ = stop.send(());
    server.await??;
    Ok(())
}
