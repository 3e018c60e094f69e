//! `POST /v1/rerank` (and `/v2/rerank`, `/rerank`) in Cohere's format (issue 21, item 1), over
//! real sockets against fake upstreams: the wire shape each provider gets (Cohere's v2 rerank,
//! Jina AI, Voyage's `top_k`, vLLM), the answer in Cohere's shape, errors in OpenAI's shape with
//! the upstream's status, virtual keys and their model access, spend rows priced per search unit
//! (Cohere) or per token (Voyage), and a fallback from a failing rerank deployment. The official
//! Cohere Python SDK (`cohere.ClientV2`) calls it with a virtual key (`LLMGATE_PYTHON`, else a
//! `python3` that can `import cohere`; the test fails without one).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use llmgate::{
    config::Config,
    gateway::{Gateway, GatewayBuilder},
    governance::Governance,
    provider::HttpClient,
    rate_limit::Counters,
    secret::Secret,
    server::{serve, ServeConfig},
    spend::SpendConfig,
    store::{InMemoryStore, NewKey, SpendFilter, SpendRow},
};
use serde_json::{json, Value};
use support::{
    gw::{send, Answer},
    FakeUpstream, Reply,
};

const MASTER: &str = "sk-master-rerank";

/// A gateway from `yaml`, governed over an in-memory store, on a loopback socket.
struct Served {
    base: String,
    gateway: Gateway,
    store: InMemoryStore,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Served {
    async fn start(yaml: &str) -> Self {
        let loaded = Config::from_yaml_str(yaml, "test").unwrap_or_else(|e| panic!("config: {e}"));
        let store = InMemoryStore::new();
        let gov = Governance::with_stores(
            store.clone(),
            store.clone(),
            Counters::memory(),
            Duration::from_secs(60),
            SpendConfig::default().linger(Duration::ZERO),
        );
        let gateway = GatewayBuilder::from_config(&loaded.config)
            .master_key(Some(Secret::new(MASTER)))
            .governance(gov)
            .build(&HttpClient::new())
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(
            listener,
            gateway.app(),
            ServeConfig::default(),
            async {
                let _ = stopped.await;
            },
        ));
        Self {
            base,
            gateway,
            store,
            stop: Some(stop),
        }
    }

    /// A virtual key for `models` (every model when empty), and its hash.
    fn key(&self, models: &[&str]) -> (String, String) {
        let (key, row) = self
            .store
            .create_key(NewKey {
                models: models.iter().map(|m| (*m).to_owned()).collect(),
                ..NewKey::default()
            })
            .unwrap();
        (key.expose().to_owned(), row.token)
    }

    async fn rerank(&self, path: &str, key: &str, body: &Value) -> Answer {
        send(
            http::Request::post(format!("{}{path}", self.base))
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {key}"))
                .body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap())))
                .unwrap(),
        )
        .await
    }

    async fn rows(&self, token: &str) -> Vec<SpendRow> {
        self.gateway.governance().unwrap().spend.flush().await;
        self.store.spend_logs(&SpendFilter {
            api_key: Some(token.to_owned()),
            ..SpendFilter::default()
        })
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn deployment(group: &str, model: &str, base: &str, extra: &str) -> String {
    format!(
        "  - model_name: {group}\n    litellm_params:\n      model: {model}\n      api_base: {base}\n      api_key: up-key\n{extra}"
    )
}

fn cohere_answer() -> Value {
    json!({
        "id": "c-1",
        "results": [
            {"index": 1, "relevance_score": 0.98},
            {"index": 0, "relevance_score": 0.12}
        ],
        "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 2}}
    })
}

fn request(model: &str) -> Value {
    json!({
        "model": model,
        "query": "What is the capital of France?",
        "documents": ["Berlin is in Germany.", {"text": "Paris is the capital of France."}],
        "top_n": 2,
        "return_documents": true,
        "metadata": {"tag": "x"}
    })
}

fn header<'a>(a: &'a Answer, name: &str) -> Option<&'a str> {
    a.headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn cohere_rerank_on_every_route_with_its_wire_shape_answer_and_priced_spend_rows() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, cohere_answer()));
    let yaml = format!(
        "model_list:\n{}",
        deployment("rr", "cohere/rerank-v3.5", &up.url(), "")
    );
    let gw = Served::start(&yaml).await;
    let (key, token) = gw.key(&[]);
    for path in ["/v1/rerank", "/v2/rerank", "/rerank"] {
        let a = gw.rerank(path, &key, &request("rr")).await;
        assert_eq!(
            a.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&a.body)
        );
        // Cohere's answer, relayed as sent.
        assert_eq!(a.json(), cohere_answer(), "{path}");
        assert_eq!(header(&a, "x-litellm-model-group"), Some("rr"));
        assert!(header(&a, "x-litellm-call-id").is_some());
        // Two search units at rerank-v3.5's $0.002 a query (LiteLLM's price map).
        let cost: f64 = header(&a, "x-litellm-response-cost")
            .unwrap()
            .parse()
            .unwrap();
        assert!((cost - 0.004).abs() < 1e-9, "{cost}");
        let got = up.last_request().unwrap();
        assert_eq!(got.path(), "/v2/rerank");
        assert_eq!(got.header("authorization"), Some("Bearer up-key"));
        assert_eq!(
            got.json(),
            json!({
                "model": "rerank-v3.5",
                "query": "What is the capital of France?",
                "documents": ["Berlin is in Germany.", {"text": "Paris is the capital of France."}],
                "top_n": 2,
                "return_documents": true
            })
        );
    }
    let rows = gw.rows(&token).await;
    assert_eq!(rows.len(), 3);
    for row in &rows {
        assert_eq!(row.model_group, "rr");
        assert_eq!(row.custom_llm_provider.as_deref(), Some("cohere"));
        assert_eq!(row.status, "success");
        assert!((row.spend - 0.004).abs() < 1e-9, "{}", row.spend);
    }
}

#[tokio::test]
async fn jina_voyage_vllm_and_infinity_get_their_own_wire_shapes_and_answer_in_cohere_shape() {
    let jina = FakeUpstream::start().await;
    jina.set_default(Reply::json(
        200,
        json!({"model": "jina-reranker-v2-base-multilingual", "usage": {"total_tokens": 40},
            "results": [{"index": 1, "relevance_score": 0.9, "document": {"text": "Paris is the capital of France."}}]}),
    ));
    let voyage = FakeUpstream::start().await;
    voyage.set_default(Reply::json(
        200,
        json!({"object": "list", "model": "rerank-2", "usage": {"total_tokens": 1000},
            "data": [{"index": 1, "relevance_score": 0.8, "document": "Paris is the capital of France."},
                     {"index": 0, "relevance_score": 0.1, "document": "Berlin is in Germany."}]}),
    ));
    let vllm = FakeUpstream::start().await;
    vllm.set_default(Reply::json(
        200,
        json!({"id": "rerank-v", "model": "BAAI/bge-reranker-v2-m3", "usage": {"total_tokens": 9},
            "results": [{"index": 1, "relevance_score": 0.7, "document": {"text": "Paris is the capital of France."}}]}),
    ));
    let infinity = FakeUpstream::start().await;
    infinity.set_default(Reply::json(
        200,
        json!({"object": "rerank", "model": "mixedbread-ai/mxbai-rerank-xsmall-v1",
            "usage": {"prompt_tokens": 11, "total_tokens": 11},
            "results": [{"relevance_score": 0.6, "index": 1}]}),
    ));
    let yaml = format!(
        "model_list:\n{}{}{}{}",
        deployment(
            "infinity",
            "infinity/mixedbread-ai/mxbai-rerank-xsmall-v1",
            &infinity.url(),
            ""
        ),
        deployment(
            "jina",
            "jina_ai/jina-reranker-v2-base-multilingual",
            &jina.url(),
            ""
        ),
        deployment(
            "voyage",
            "voyage/rerank-2",
            &format!("{}/v1", voyage.url()),
            ""
        ),
        deployment(
            "vllm",
            "hosted_vllm/BAAI/bge-reranker-v2-m3",
            &format!("{}/v1", vllm.url()),
            ""
        ),
    );
    let gw = Served::start(&yaml).await;
    let (key, token) = gw.key(&[]);

    let a = gw.rerank("/v1/rerank", &key, &request("jina")).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    assert_eq!(v["results"][0]["index"], 1);
    assert_eq!(
        v["results"][0]["document"]["text"],
        "Paris is the capital of France."
    );
    assert_eq!(v["meta"]["billed_units"]["total_tokens"], 40);
    assert!(v["id"].as_str().is_some_and(|s| !s.is_empty()));
    let got = jina.last_request().unwrap();
    assert_eq!(got.path(), "/v1/rerank");
    assert_eq!(got.header("authorization"), Some("Bearer up-key"));
    assert_eq!(
        got.json(),
        json!({"model": "jina-reranker-v2-base-multilingual", "query": "What is the capital of France?",
            "documents": ["Berlin is in Germany.", {"text": "Paris is the capital of France."}],
            "top_n": 2, "return_documents": true})
    );

    let a = gw.rerank("/v1/rerank", &key, &request("voyage")).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    assert_eq!(
        v["results"],
        json!([{"index": 1, "relevance_score": 0.8, "document": {"text": "Paris is the capital of France."}},
               {"index": 0, "relevance_score": 0.1, "document": {"text": "Berlin is in Germany."}}])
    );
    assert_eq!(v["meta"]["billed_units"]["total_tokens"], 1000);
    // 1000 tokens at voyage/rerank-2's $5e-8 a token.
    let cost: f64 = header(&a, "x-litellm-response-cost")
        .unwrap()
        .parse()
        .unwrap();
    assert!((cost - 5e-5).abs() < 1e-12, "{cost}");
    let got = voyage.last_request().unwrap();
    assert_eq!(got.path(), "/v1/rerank");
    let sent = got.json();
    assert_eq!(sent["top_k"], 2);
    assert!(sent.get("top_n").is_none(), "{sent}");
    assert_eq!(sent["model"], "rerank-2");

    let a = gw.rerank("/v1/rerank", &key, &request("vllm")).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    assert_eq!(v["id"], "rerank-v");
    assert_eq!(v["results"][0]["relevance_score"], 0.7);
    let got = vllm.last_request().unwrap();
    assert_eq!(got.path(), "/v1/rerank");
    assert_eq!(got.json()["model"], "BAAI/bge-reranker-v2-m3");
    // vLLM has no max_chunks_per_doc: refused before any call.
    let mut chunks = request("vllm");
    chunks["max_chunks_per_doc"] = json!(3);
    let a = gw.rerank("/v1/rerank", &key, &chunks).await;
    assert_eq!(a.status, 400);
    assert!(a.error()["message"]
        .as_str()
        .unwrap()
        .contains("max_chunks_per_doc"));
    assert_eq!(vllm.hits(), 1);

    // Infinity: `{api_base}/rerank`, no rank_fields, its usage in meta.
    let mut fields = request("infinity");
    fields["rank_fields"] = json!(["text"]);
    let a = gw.rerank("/v1/rerank", &key, &fields).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    assert_eq!(v["results"], json!([{"index": 1, "relevance_score": 0.6}]));
    assert_eq!(v["meta"]["billed_units"]["total_tokens"], 11);
    let got = infinity.last_request().unwrap();
    assert_eq!(got.path(), "/rerank");
    assert_eq!(got.header("authorization"), Some("Bearer up-key"));
    assert!(got.json().get("rank_fields").is_none());
    assert_eq!(got.json()["model"], "mixedbread-ai/mxbai-rerank-xsmall-v1");

    let rows = gw.rows(&token).await;
    let voyage_row = rows
        .iter()
        .find(|r| r.model_group == "voyage")
        .expect("a voyage spend row");
    assert_eq!(voyage_row.prompt_tokens, 1000);
    assert!((voyage_row.spend - 5e-5).abs() < 1e-12);
    assert!(rows
        .iter()
        .any(|r| r.model_group == "jina" && r.prompt_tokens == 40));
}

#[tokio::test]
async fn errors_are_openai_shaped_with_the_upstreams_status_and_keys_are_checked() {
    let up = FakeUpstream::start().await;
    let yaml = format!(
        "model_list:\n{}  - model_name: chat\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {}/v1\n      api_key: k\nrouter_settings:\n  num_retries: 0\n",
        deployment("rr", "cohere/rerank-v3.5", &up.url(), ""),
        up.url()
    );
    let gw = Served::start(&yaml).await;
    let (key, token) = gw.key(&[]);

    // The upstream's 429 with Cohere's error body: a 429 in OpenAI's shape with its message.
    up.enqueue(Reply::json(
        429,
        json!({"message": "You are using a Trial key"}),
    ));
    let a = gw.rerank("/v1/rerank", &key, &request("rr")).await;
    assert_eq!(a.status, 429, "{}", String::from_utf8_lossy(&a.body));
    let e = a.error();
    assert!(e["message"].as_str().unwrap().contains("Trial key"), "{e}");
    // A bad key upstream: 401.
    up.enqueue(Reply::json(401, json!({"message": "invalid api token"})));
    let a = gw.rerank("/v1/rerank", &key, &request("rr")).await;
    assert_eq!(a.status, 401);
    a.error();
    // Not a rerank answer: 502.
    up.enqueue(Reply::json(200, json!({"nope": true})));
    let a = gw.rerank("/v1/rerank", &key, &request("rr")).await;
    assert_eq!(a.status, 502);
    a.error();
    let hits = up.hits();

    // Bad bodies: 400 before any call.
    for bad in [
        json!({"model": "rr", "documents": ["a"]}),
        json!({"model": "rr", "query": "q"}),
        json!({"model": "rr", "query": "q", "documents": [1, 2]}),
        json!({"query": "q", "documents": ["a"]}),
    ] {
        let a = gw.rerank("/v1/rerank", &key, &bad).await;
        assert_eq!(a.status, 400, "{bad}: {}", String::from_utf8_lossy(&a.body));
        a.error();
    }
    // A model the gateway does not serve: LiteLLM's 400.
    let a = gw.rerank("/v1/rerank", &key, &request("nope")).await;
    assert_eq!(a.status, 400);
    assert!(a.error()["message"]
        .as_str()
        .unwrap()
        .starts_with("/rerank: Invalid model name passed in model=nope"));
    // A provider without a rerank API: 400 naming it.
    let a = gw.rerank("/v1/rerank", &key, &request("chat")).await;
    assert_eq!(a.status, 400);
    assert!(a.error()["message"]
        .as_str()
        .unwrap()
        .contains("does not support rerank"));
    assert_eq!(up.hits(), hits);

    // Keys: none, unknown, or one not allowed the model.
    let a = gw.rerank("/v1/rerank", "sk-unknown", &request("rr")).await;
    assert_eq!(a.status, 401);
    a.error();
    let (narrow, _) = gw.key(&["chat"]);
    let a = gw.rerank("/v1/rerank", &narrow, &request("rr")).await;
    assert!(a.status == 401 || a.status == 403, "{}", a.status);
    a.error();
    assert_eq!(up.hits(), hits);

    // Failed calls are in the spend log too, at no cost.
    let rows = gw.rows(&token).await;
    assert!(rows.iter().filter(|r| r.status == "failure").count() >= 3);
    assert!(rows.iter().all(|r| r.spend == 0.0));
}

#[tokio::test]
async fn a_failing_rerank_deployment_falls_back_to_another_group() {
    let failing = FakeUpstream::start().await;
    failing.set_default(Reply::json(500, json!({"message": "internal error"})));
    let backup = FakeUpstream::start().await;
    backup.set_default(Reply::json(200, cohere_answer()));
    let yaml = format!(
        "model_list:\n{}{}router_settings:\n  num_retries: 1\n  retry_after: 0\n  fallbacks: [{{\"primary\": [\"backup\"]}}]\n",
        deployment("primary", "cohere/rerank-v3.5", &failing.url(), ""),
        deployment("backup", "cohere/rerank-english-v3.0", &backup.url(), ""),
    );
    let gw = Served::start(&yaml).await;
    let (key, token) = gw.key(&[]);
    let a = gw.rerank("/v1/rerank", &key, &request("primary")).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json(), cohere_answer());
    assert_eq!(header(&a, "x-litellm-model-group"), Some("backup"));
    assert_eq!(header(&a, "x-litellm-attempted-fallbacks"), Some("1"));
    // The failing deployment was tried and retried once, then the backup answered.
    assert_eq!(failing.hits(), 2);
    assert_eq!(backup.hits(), 1);
    assert_eq!(
        backup.last_request().unwrap().json()["model"],
        "rerank-english-v3.0"
    );
    let rows = gw.rows(&token).await;
    let ok: Vec<_> = rows.iter().filter(|r| r.status == "success").collect();
    assert_eq!(ok.len(), 1);
    assert!((ok[0].spend - 0.004).abs() < 1e-9, "{}", ok[0].spend);
}

/// `LLMGATE_PYTHON` (set by `bash .ci/test`, which installs `cohere` into its venv), else a
/// `python3` that can `import cohere`; otherwise the test fails saying how to run it (SDK tests
/// never skip).
fn cohere_python() -> String {
    if let Ok(p) = std::env::var("LLMGATE_PYTHON") {
        return p;
    }
    let has_sdk = std::process::Command::new("python3")
        .args(["-c", "import cohere"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        has_sdk,
        "the Cohere SDK test needs Python with the `cohere` package: run `bash .ci/test` (it makes a venv), or set LLMGATE_PYTHON"
    );
    "python3".to_owned()
}

/// The official Cohere Python SDK (`cohere.ClientV2`) calls `rerank` on llmgate with a virtual
/// key, and gets a 401 with a wrong one.
#[tokio::test]
async fn the_cohere_python_sdk_reranks_through_llmgate() {
    let python = cohere_python();
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, cohere_answer()));
    let yaml = format!(
        "model_list:\n{}",
        deployment("rr", "cohere/rerank-v3.5", &up.url(), "")
    );
    let gw = Arc::new(Served::start(&yaml).await);
    let (key, token) = gw.key(&["rr"]);
    let script = r#"
import json, sys, cohere
co = cohere.ClientV2(base_url=sys.argv[1], api_key=sys.argv[2])
r = co.rerank(model="rr", query="What is the capital of France?",
              documents=["Berlin is in Germany.", "Paris is the capital of France."], top_n=2)
print(json.dumps({"id": r.id, "results": [[x.index, x.relevance_score] for x in r.results],
                  "search_units": r.meta.billed_units.search_units}))
try:
    cohere.ClientV2(base_url=sys.argv[1], api_key="sk-wrong").rerank(
        model="rr", query="q", documents=["a"])
    print("NO ERROR")
except cohere.core.api_error.ApiError as e:
    print(json.dumps({"status": e.status_code}))
"#;
    let base = gw.base.clone();
    let out = tokio::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(&base)
        .arg(&key)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    let first: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(
        first,
        // The SDK types search units as a float.
        json!({"id": "c-1", "results": [[1, 0.98], [0, 0.12]], "search_units": 2.0})
    );
    let second: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(second, json!({"status": 401}));
    // The SDK posts to /v2/rerank; upstream got Cohere's v2 call.
    assert_eq!(up.last_request().unwrap().path(), "/v2/rerank");
    let rows = gw.rows(&token).await;
    assert_eq!(rows.len(), 1);
    assert!((rows[0].spend - 0.004).abs() < 1e-9);
}

/// `GET /health` probes a rerank deployment with a one-document rerank: Jina AI and Voyage
/// always, Cohere when `model_info.mode` is `rerank` (as LiteLLM's health check reads it).
#[tokio::test]
async fn health_probes_rerank_deployments_with_a_rerank() {
    let cohere = FakeUpstream::start().await;
    cohere.set_default(Reply::json(200, cohere_answer()));
    let voyage = FakeUpstream::start().await;
    voyage.set_default(Reply::json(
        200,
        json!({"data": [{"index": 0, "relevance_score": 0.5}], "usage": {"total_tokens": 2}}),
    ));
    let yaml = format!(
        "model_list:\n{}    model_info:\n      mode: rerank\n{}",
        deployment("rr", "cohere/rerank-v3.5", &cohere.url(), ""),
        deployment("voyage", "voyage/rerank-2", &voyage.url(), ""),
    );
    let gw = Served::start(&yaml).await;
    let a = send(
        http::Request::get(format!("{}/health", gw.base))
            .header("authorization", format!("Bearer {MASTER}"))
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    assert_eq!(v["healthy_count"], 2, "{v}");
    assert_eq!(v["unhealthy_count"], 0, "{v}");
    let got = cohere.last_request().unwrap();
    assert_eq!(got.path(), "/v2/rerank");
    assert_eq!(got.json()["documents"], json!(["ping"]));
    assert_eq!(voyage.last_request().unwrap().path(), "/v1/rerank");
}

/// Together AI (`{base}/rerank` under its `/v1` base), Cohere on Azure AI (`{base}/v1/rerank`,
/// Cohere v1's body, the answer relayed and priced per search unit) and Bedrock's agent-runtime
/// `Rerank` (SigV4, the model's ARN, one search unit per 100 documents), each answered in
/// Cohere's shape.
#[tokio::test]
async fn together_azure_ai_and_bedrock_rerank_in_their_own_wire_shapes() {
    let together = FakeUpstream::start().await;
    together.set_default(Reply::json(
        200,
        json!({"id": "t-1", "object": "rerank", "model": "Salesforce/Llama-Rank-V1",
            "results": [{"index": 1, "relevance_score": 0.93, "document": {"text": "Paris is the capital of France."}}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 0, "total_tokens": 30}}),
    ));
    let azure = FakeUpstream::start().await;
    azure.set_default(Reply::json(
        200,
        json!({"id": "az-1", "results": [{"index": 1, "relevance_score": 0.97}],
            "meta": {"api_version": {"version": "1"}, "billed_units": {"search_units": 1}}}),
    ));
    let bedrock = FakeUpstream::start().await;
    bedrock.set_default(Reply::json(
        200,
        json!({"results": [{"index": 1, "relevanceScore": 0.88}, {"index": 0, "relevanceScore": 0.02}]}),
    ));
    let aws = "      aws_access_key_id: AKIDEXAMPLE\n      aws_secret_access_key: wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n      aws_region_name: us-west-2\n";
    let bedrock_dep = format!(
        "  - model_name: bedrock-rr\n    litellm_params:\n      model: bedrock/amazon.rerank-v1:0\n      api_base: {}\n{aws}",
        bedrock.url()
    );
    let yaml = format!(
        "model_list:\n{}{}{bedrock_dep}",
        deployment(
            "together",
            "together_ai/Salesforce/Llama-Rank-V1",
            &format!("{}/v1", together.url()),
            ""
        ),
        deployment(
            "azure-rr",
            "azure_ai/cohere-rerank-v4.0-fast",
            &azure.url(),
            ""
        ),
    );
    let gw = Served::start(&yaml).await;
    let (key, token) = gw.key(&[]);

    let mut body = request("together");
    body["rank_fields"] = json!(["text"]);
    let a = gw.rerank("/v1/rerank", &key, &body).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    assert_eq!(v["id"], "t-1");
    assert_eq!(
        v["results"],
        json!([{"index": 1, "relevance_score": 0.93, "document": {"text": "Paris is the capital of France."}}])
    );
    assert_eq!(v["meta"]["billed_units"]["total_tokens"], 30);
    let got = together.last_request().unwrap();
    assert_eq!(got.path(), "/v1/rerank");
    assert_eq!(got.header("authorization"), Some("Bearer up-key"));
    assert_eq!(
        got.json(),
        json!({"model": "Salesforce/Llama-Rank-V1", "query": "What is the capital of France?",
            "documents": ["Berlin is in Germany.", {"text": "Paris is the capital of France."}],
            "top_n": 2, "rank_fields": ["text"], "return_documents": true})
    );

    let mut body = request("azure-rr");
    body["max_chunks_per_doc"] = json!(4);
    let a = gw.rerank("/v2/rerank", &key, &body).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["id"], "az-1");
    // One search unit at azure_ai/cohere-rerank-v4.0-fast's $0.002.
    let cost: f64 = header(&a, "x-litellm-response-cost")
        .unwrap()
        .parse()
        .unwrap();
    assert!((cost - 0.002).abs() < 1e-12, "{cost}");
    let got = azure.last_request().unwrap();
    assert_eq!(got.path(), "/v1/rerank");
    assert_eq!(got.header("authorization"), Some("Bearer up-key"));
    assert_eq!(
        got.json(),
        json!({"model": "cohere-rerank-v4.0-fast", "query": "What is the capital of France?",
            "documents": ["Berlin is in Germany.", {"text": "Paris is the capital of France."}],
            "top_n": 2, "return_documents": true, "max_chunks_per_doc": 4})
    );

    let a = gw.rerank("/v1/rerank", &key, &request("bedrock-rr")).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    assert_eq!(
        v["results"],
        json!([{"index": 1, "relevance_score": 0.88, "document": {"text": "Paris is the capital of France."}},
               {"index": 0, "relevance_score": 0.02, "document": {"text": "Berlin is in Germany."}}])
    );
    assert_eq!(v["meta"]["billed_units"]["search_units"], 1);
    // One query at amazon.rerank-v1:0's $0.001.
    let cost: f64 = header(&a, "x-litellm-response-cost")
        .unwrap()
        .parse()
        .unwrap();
    assert!((cost - 0.001).abs() < 1e-12, "{cost}");
    let got = bedrock.last_request().unwrap();
    assert_eq!(got.path(), "/rerank");
    let auth = got.header("authorization").unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
            && auth.contains("/us-west-2/bedrock/aws4_request"),
        "{auth}"
    );
    let sent = got.json();
    assert_eq!(
        sent["rerankingConfiguration"]["bedrockRerankingConfiguration"],
        json!({"numberOfResults": 2, "modelConfiguration":
            {"modelArn": "arn:aws:bedrock:us-west-2::foundation-model/amazon.rerank-v1:0"}})
    );
    assert_eq!(
        sent["queries"],
        json!([{"type": "TEXT", "textQuery": {"text": "What is the capital of France?"}}])
    );
    assert_eq!(
        sent["sources"][1],
        json!({"type": "INLINE", "inlineDocumentSource": {"type": "JSON", "jsonDocument": {"text": "Paris is the capital of France."}}})
    );
    // Bedrock's own error, with its status.
    bedrock.set_default(
        Reply::json(
            400,
            json!({"message": "1 validation error detected: numberOfResults"}),
        )
        .header("x-amzn-errortype", "ValidationException"),
    );
    let a = gw.rerank("/v1/rerank", &key, &request("bedrock-rr")).await;
    assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(&a.body));
    assert!(a.error()["message"]
        .as_str()
        .unwrap()
        .contains("numberOfResults"));

    let rows = gw.rows(&token).await;
    for group in ["together", "azure-rr", "bedrock-rr"] {
        assert!(
            rows.iter()
                .any(|r| r.model_group == group && r.status == "success"),
            "{group}: {rows:?}"
        );
    }
}
