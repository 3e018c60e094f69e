//! Model management without restarts (issue 22 item 5), over sockets: `/model/new`,
//! `/model/update` and `/model/delete` with `store_model_in_db: true` are served at once; the
//! model reads (`/model/info`, `/v1/model/info`, `/v2/model/info`, `/model_group/info`) mask
//! secrets and show a virtual key only its models; two `llmgate` processes over one PostgreSQL
//! serve a model added on the other within seconds; `SIGHUP` reloads `config.yaml` (a valid file
//! is served, an invalid one changes nothing and is logged problem by problem).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod litellm_common;
mod support;

use std::time::{Duration, Instant};

use governance_common::{chat, fresh_pg, get, new_key, post, Gov, Proc, TempDir, MASTER};
use llmgate::governance::BuildOptions;
use serde_json::{json, Value};
use support::FakeUpstream;

const KEY: &str = "sk-db-model-secret-0123456789";

fn base_config(upstream: &str, extra: &str) -> String {
    format!(
        "model_list:\n  - model_name: base\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {upstream}/v1\n      api_key: sk-config-key-0123456789\ngeneral_settings:\n  master_key: {MASTER}\n  store_model_in_db: true\n  model_poll_interval: 0.5\n{extra}"
    )
}

fn new_model(group: &str, upstream: &str) -> Value {
    json!({
        "model_name": group,
        "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": format!("{upstream}/v1"), "api_key": KEY,
                           "input_cost_per_token": 0.001, "output_cost_per_token": 0.002},
        "model_info": {"mode": "chat"},
    })
}

fn groups(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn models_added_updated_and_deleted_over_http_are_served_without_restart() {
    let up_a = FakeUpstream::start().await;
    let up_b = FakeUpstream::start().await;
    let gw = Gov::start(
        &base_config(&up_a.url(), ""),
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let base = format!("http://{}", gw.addr);

    // Admin only: no key 401, a virtual key 403.
    let (user_key, _) = new_key(&base, json!({"models": ["base"]})).await;
    let body = new_model("fresh", &up_a.url());
    assert_eq!(post(&gw.url("/model/new"), None, &body).await.status, 401);
    let a = post(&gw.url("/model/new"), Some(&user_key), &body).await;
    assert_eq!(a.status, 403);
    a.error();
    // Invalid entries are refused with the config's own words.
    let a = post(
        &gw.url("/model/new"),
        Some(MASTER),
        &json!({"model_name": "x", "litellm_params": {"api_base": "http://h"}}),
    )
    .await;
    assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(&a.body));
    a.error();

    assert_eq!(
        chat(&base, MASTER, "fresh").await.status,
        // LiteLLM's answer to a model it does not serve (issue 21): 400.
        400,
        "not served yet"
    );
    let a = post(&gw.url("/model/new"), Some(MASTER), &body).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let row = a.json();
    let id = row["model_id"].as_str().unwrap().to_owned();
    assert_eq!(row["model_name"], "fresh");
    assert_eq!(row["litellm_params"]["api_key"], "sk-…89");
    // Served by this gateway at once, and priced: 5 prompt + 7 completion tokens at the
    // deployment's own prices (a model added at runtime is not free).
    let a = chat(&base, MASTER, "fresh").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let cost: f64 = a
        .header("x-litellm-response-cost")
        .unwrap()
        .parse()
        .unwrap();
    assert!((cost - 0.019).abs() < 1e-9, "cost {cost}");
    let last = up_a.last_request().unwrap();
    assert_eq!(
        last.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    let models = get(&gw.url("/v1/models"), Some(MASTER)).await.json();
    assert!(groups(&models).contains(&"fresh".to_owned()), "{models}");

    // `/model/info` and `/v1/model/info`: every deployment, secrets masked, `db_model` marked.
    for path in ["/model/info", "/v1/model/info"] {
        let v = get(&gw.url(path), Some(MASTER)).await.json();
        let text = v.to_string();
        assert!(
            !text.contains(KEY) && !text.contains("sk-config-key-0123456789"),
            "{text}"
        );
        let data = v["data"].as_array().unwrap();
        assert_eq!(data.len(), 2, "{v}");
        let fresh = data.iter().find(|m| m["model_name"] == "fresh").unwrap();
        assert_eq!(fresh["model_info"]["id"], id.as_str());
        assert_eq!(fresh["model_info"]["db_model"], true);
        assert_eq!(fresh["litellm_params"]["api_key"], "sk-…89");
        let cfg = data.iter().find(|m| m["model_name"] == "base").unwrap();
        assert_eq!(cfg["model_info"]["db_model"], false);
        assert!(cfg["model_info"]["max_input_tokens"].is_u64(), "{cfg}");
    }
    let v = get(
        &gw.url(&format!("/model/info?litellm_model_id={id}")),
        Some(MASTER),
    )
    .await
    .json();
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    let v = get(&gw.url("/v2/model/info?page=2&size=1"), Some(MASTER))
        .await
        .json();
    assert_eq!(
        (v["total_count"].as_u64(), v["total_pages"].as_u64()),
        (Some(2), Some(2)),
        "{v}"
    );
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    // A virtual key sees only its models.
    let v = get(&gw.url("/model/info"), Some(&user_key)).await.json();
    let names: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["base"]);
    let v = get(&gw.url("/model_group/info"), Some(MASTER)).await.json();
    let g = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["model_group"] == "fresh")
        .cloned()
        .unwrap();
    assert_eq!(g["providers"], json!(["openai"]));
    assert_eq!(g["mode"], "chat");
    let v = get(
        &gw.url("/model_group/info?model_group=base"),
        Some(&user_key),
    )
    .await
    .json();
    assert_eq!(v["data"].as_array().unwrap().len(), 1);

    // Update: the new api_base is served at once.
    let a = post(
        &gw.url("/model/update"),
        Some(MASTER),
        &json!({"model_info": {"id": id}, "litellm_params": {"api_base": format!("{}/v1", up_b.url())}}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let before_b = up_b.hits();
    assert_eq!(chat(&base, MASTER, "fresh").await.status, 200);
    assert_eq!(up_b.hits(), before_b + 1, "the updated deployment serves");
    let a = post(
        &gw.url("/model/update"),
        Some(MASTER),
        &json!({"model_info": {"id": "nope"}}),
    )
    .await;
    assert_eq!(a.status, 404);
    a.error();

    // Delete: not served any more.
    let a = post(&gw.url("/model/delete"), Some(MASTER), &json!({"id": id})).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.json()["message"],
        format!("Model: {id} deleted successfully")
    );
    assert_eq!(chat(&base, MASTER, "fresh").await.status, 400);
    assert_eq!(
        post(&gw.url("/model/delete"), Some(MASTER), &json!({"id": id}))
            .await
            .status,
        404
    );
    // The config's model was never touched.
    assert_eq!(chat(&base, MASTER, "base").await.status, 200);
}

#[tokio::test]
async fn without_store_model_in_db_writes_are_refused() {
    let up = FakeUpstream::start().await;
    let gw = Gov::start(
        &base_config(&up.url(), "").replace("  store_model_in_db: true\n", ""),
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let a = post(
        &gw.url("/model/new"),
        Some(MASTER),
        &new_model("x", &up.url()),
    )
    .await;
    assert_eq!(a.status, 500);
    assert!(a.error()["message"]
        .as_str()
        .unwrap()
        .contains("store_model_in_db"));
    // Reads work all the same.
    assert_eq!(get(&gw.url("/model/info"), Some(MASTER)).await.status, 200);
}

/// Polls `url` until `pred` holds on its JSON (at most `limit`); returns how long it took.
async fn until(url: &str, limit: Duration, pred: impl Fn(&Value) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let a = get(url, Some(MASTER)).await;
        if a.status == 200 && pred(&a.json()) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "not within {limit:?}: {}",
            String::from_utf8_lossy(&a.body)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn two_processes_over_one_postgres_serve_a_model_added_on_the_other() {
    let up = FakeUpstream::start().await;
    let db = fresh_pg().await;
    let dir = TempDir::new();
    let path = dir.0.join("config.yaml");
    std::fs::write(
        &path,
        base_config(&up.url(), &format!("  database_url: {db}\n")),
    )
    .unwrap();
    let a = Proc::start(&path, &[]);
    let b = Proc::start(&path, &[]);
    let added = post(
        &format!("{}/model/new", a.base()),
        Some(MASTER),
        &new_model("replicated", &up.url()),
    )
    .await;
    assert_eq!(
        added.status,
        200,
        "{}",
        String::from_utf8_lossy(&added.body)
    );
    let id = added.json()["model_id"].as_str().unwrap().to_owned();
    // Served by the other process after its next poll of the table (every 0.5 s here).
    let took = until(
        &format!("{}/v1/models", b.base()),
        Duration::from_secs(5),
        |v| groups(v).contains(&"replicated".to_owned()),
    )
    .await;
    eprintln!("replica B served the model added on A after {took:?}");
    let answer = chat(&b.base(), MASTER, "replicated").await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(
        up.last_request().unwrap().header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    // Deleted on B: gone from A too.
    let del = post(
        &format!("{}/model/delete", b.base()),
        Some(MASTER),
        &json!({"id": id}),
    )
    .await;
    assert_eq!(del.status, 200);
    until(
        &format!("{}/v1/models", a.base()),
        Duration::from_secs(5),
        |v| !groups(v).contains(&"replicated".to_owned()),
    )
    .await;
    assert_eq!(chat(&a.base(), MASTER, "replicated").await.status, 400);
    let log_b = b.stop();
    let log_a = a.stop();
    for log in [&log_a, &log_b] {
        assert!(!log.contains(KEY), "a key was logged:\n{log}");
    }
    assert!(log_b.contains("now serving the new table"), "{log_b}");
}

#[tokio::test]
async fn sighup_reloads_a_valid_config_and_keeps_the_running_one_on_an_invalid_file() {
    let up = FakeUpstream::start().await;
    let dir = TempDir::new();
    let path = dir.0.join("config.yaml");
    let with_group = |group: &str| {
        format!(
            "model_list:\n  - model_name: {group}\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {}/v1\n      api_key: sk-config-key-0123456789\ngeneral_settings:\n  master_key: {MASTER}\n",
            up.url()
        )
    };
    std::fs::write(&path, with_group("one")).unwrap();
    let p = Proc::start(&path, &[("RUST_LOG", "info")]);
    let models = format!("{}/v1/models", p.base());
    let hup = || {
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &p.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    };

    // A request in flight when the reload happens finishes on the deployment it started on.
    up.enqueue(support::Reply::default_chat().delay(Duration::from_millis(1500)));
    let base = p.base();
    let in_flight = tokio::spawn(async move { chat(&base, MASTER, "one").await });
    assert!(up.wait_for_hits(1, Duration::from_secs(5)).await);

    std::fs::write(&path, with_group("two")).unwrap();
    hup();
    until(&models, Duration::from_secs(5), |v| groups(v) == ["two"]).await;
    assert_eq!(
        in_flight.await.unwrap().status,
        200,
        "the in-flight request finished"
    );
    assert_eq!(chat(&p.base(), MASTER, "two").await.status, 200);
    assert_eq!(chat(&p.base(), MASTER, "one").await.status, 400);

    // An invalid file: every problem logged, the running config stays.
    std::fs::write(
        &path,
        "model_list:\n  - model_name: broken\n    litellm_params: {api_base: http://x}\nrouter_settings:\n  routing_strategy: no-such-strategy\n",
    )
    .unwrap();
    hup();
    let started = Instant::now();
    loop {
        let log = p.stderr.lock().unwrap().clone();
        if log.contains("config reload refused") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no refusal logged:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(groups(&get(&models, Some(MASTER)).await.json()), ["two"]);
    assert_eq!(chat(&p.base(), MASTER, "two").await.status, 200);
    let log = p.stop();
    assert!(
        log.contains("problems=2") || log.contains("problems: 2"),
        "{log}"
    );
    assert!(log.contains("litellm_params.model"), "{log}");
    assert!(log.contains("routing_strategy"), "{log}");
    assert!(!log.contains("sk-config-key-0123456789"), "{log}");
}

/// LiteLLM's own encryption, run by PyNaCl in `LLMGATE_PYTHON` (`bash .ci/test` installs it):
/// `encrypt` or `decrypt` `value` with `salt`, as `encrypt_value_helper` /
/// `decrypt_value_helper` do. `None` when no Python is configured (outside CI).
fn litellm_crypto(op: &str, salt: &str, value: &str) -> Option<String> {
    let Ok(py) = std::env::var("LLMGATE_PYTHON") else {
        assert!(
            std::env::var("CI").is_err(),
            "LLMGATE_PYTHON is not set under CI"
        );
        eprintln!("LLMGATE_PYTHON not set: the PyNaCl half of this test is skipped");
        return None;
    };
    let script = r#"
import base64, hashlib, sys
import nacl.secret
op, salt, value = sys.argv[1], sys.argv[2], sys.argv[3]
box = nacl.secret.SecretBox(hashlib.sha256(salt.encode()).digest())
if op == "encrypt":
    print(base64.urlsafe_b64encode(box.encrypt(value.encode("utf-8"))).decode("utf-8"))
else:
    print(box.decrypt(base64.urlsafe_b64decode(value)).decode("utf-8"))
"#;
    let out = std::process::Command::new(&py)
        .args(["-c", script, op, salt, value])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {py}: {e}"));
    assert!(
        out.status.success(),
        "PyNaCl in {py} (`bash .ci/test` installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap().trim().to_owned())
}

async fn pg_text(url: &str, sql: &str) -> Vec<String> {
    use sqlx::{Connection as _, Row as _};
    let mut conn = sqlx::postgres::PgConnection::connect(url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect()
}

async fn pg_exec(url: &str, sql: &str) {
    use sqlx::Connection as _;
    let mut conn = sqlx::postgres::PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Every string of `params` encrypted by LiteLLM's code (PyNaCl), as LiteLLM's `/model/new`
/// stores them.
fn litellm_params_encrypted(salt: &str, params: &Value) -> Option<Value> {
    let mut out = serde_json::Map::new();
    for (k, v) in params.as_object().unwrap() {
        let v = match v {
            Value::String(s) => Value::String(litellm_crypto("encrypt", salt, s)?),
            other => other.clone(),
        };
        out.insert(k.clone(), v);
    }
    Some(Value::Object(out))
}

#[tokio::test]
async fn literal_keys_are_stored_encrypted_and_rows_litellm_encrypted_are_served() {
    let up = FakeUpstream::start().await;
    let db = fresh_pg().await;
    let gw = Gov::start(
        &base_config(&up.url(), &format!("  database_url: {db}\n")),
        BuildOptions::default(),
    )
    .await;
    let base = format!("http://{}", gw.addr);
    let a = post(
        &gw.url("/model/new"),
        Some(MASTER),
        &new_model("sealed", &up.url()),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    // The row holds no plaintext: neither the key nor any other string parameter. (Not a search
    // for "sk-": url-safe base64 ciphertext may hold those three characters by chance.)
    let stored = pg_text(
        &db,
        "SELECT litellm_params FROM llmgate_models WHERE model_name = 'sealed'",
    )
    .await;
    assert_eq!(stored.len(), 1);
    assert!(
        !stored[0].contains(KEY)
            && !stored[0].contains("gpt-4o-mini")
            && !stored[0].contains(&up.url()),
        "{}",
        stored[0]
    );
    // Served, with the key decrypted when the deployment was built.
    let r = chat(&base, MASTER, "sealed").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        up.last_request().unwrap().header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    let params: Value = serde_json::from_str(&stored[0]).unwrap();
    let api_key = params["api_key"].as_str().unwrap();
    // LiteLLM's code (PyNaCl, keyed by the master key: no LITELLM_SALT_KEY) opens it.
    let Some(opened) = litellm_crypto("decrypt", MASTER, api_key) else {
        return;
    };
    assert_eq!(opened, KEY);
    // A row LiteLLM wrote (every string encrypted by PyNaCl) is served after the next poll.
    let python_key = "sk-written-by-python-0123456789";
    let enc = litellm_params_encrypted(
        MASTER,
        &json!({"model": "openai/gpt-4o-mini", "api_base": format!("{}/v1", up.url()), "api_key": python_key}),
    )
    .unwrap();
    pg_exec(
        &db,
        &format!(
            "INSERT INTO llmgate_models (model_id, model_name, litellm_params, model_info, created_by, created_at, updated_at) VALUES ('py-1', 'from-python', '{enc}', '{{}}', 'admin', 1, 1)"
        ),
    )
    .await;
    until(&gw.url("/v1/models"), Duration::from_secs(5), |v| {
        groups(v).contains(&"from-python".to_owned())
    })
    .await;
    let r = chat(&base, MASTER, "from-python").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        up.last_request().unwrap().header("authorization"),
        Some(format!("Bearer {python_key}").as_str())
    );
}

#[tokio::test]
async fn on_litellms_schema_models_live_in_litellm_proxy_model_table_for_both_replicas() {
    let up = FakeUpstream::start().await;
    let db = litellm_common::litellm_db().await;
    let dir = TempDir::new();
    let path = dir.0.join("config.yaml");
    std::fs::write(
        &path,
        base_config(
            &up.url(),
            &format!("  database_url: {db}\n  database_schema: litellm\n"),
        ),
    )
    .unwrap();
    let salt = "sk-salt-for-this-test";
    let a = Proc::start(&path, &[("LITELLM_SALT_KEY", salt)]);
    let b = Proc::start(&path, &[("LITELLM_SALT_KEY", salt)]);
    let added = post(
        &format!("{}/model/new", a.base()),
        Some(MASTER),
        &new_model("in-litellm", &up.url()),
    )
    .await;
    assert_eq!(
        added.status,
        200,
        "{}",
        String::from_utf8_lossy(&added.body)
    );
    let id = added.json()["model_id"].as_str().unwrap().to_owned();
    // LiteLLM's table, LiteLLM's columns; no table of llmgate's made.
    let row = pg_text(
        &db,
        &format!("SELECT json_build_object('name', model_name, 'params', litellm_params, 'info', model_info, 'by', created_by, 'up', updated_by)::text FROM \"LiteLLM_ProxyModelTable\" WHERE model_id = '{id}'"),
    )
    .await;
    assert_eq!(row.len(), 1, "the row is in LiteLLM_ProxyModelTable");
    let row: Value = serde_json::from_str(&row[0]).unwrap();
    assert_eq!(row["name"], "in-litellm");
    assert_eq!(row["info"]["id"], id.as_str());
    assert_eq!(row["info"]["mode"], "chat");
    assert_eq!(row["by"], "default_user_id");
    assert_eq!(row["up"], "default_user_id");
    assert!(!row["params"].to_string().contains(KEY), "{row}");
    assert!(
        pg_text(
            &db,
            "SELECT tablename::text FROM pg_catalog.pg_tables WHERE tablename = 'llmgate_models'"
        )
        .await
        .is_empty(),
        "llmgate_models was created in LiteLLM's database"
    );
    // The other replica serves it.
    until(
        &format!("{}/v1/models", b.base()),
        Duration::from_secs(5),
        |v| groups(v).contains(&"in-litellm".to_owned()),
    )
    .await;
    let r = chat(&b.base(), MASTER, "in-litellm").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        up.last_request().unwrap().header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    // Updated on B (a new key, sealed again), then A calls with it.
    let upd = post(
        &format!("{}/model/update", b.base()),
        Some(MASTER),
        &json!({"model_info": {"id": id}, "litellm_params": {"api_key": "sk-rotated-0123456789"}}),
    )
    .await;
    assert_eq!(upd.status, 200, "{}", String::from_utf8_lossy(&upd.body));
    let took = Instant::now();
    loop {
        let r = chat(&a.base(), MASTER, "in-litellm").await;
        assert_eq!(r.status, 200);
        if up.last_request().unwrap().header("authorization")
            == Some("Bearer sk-rotated-0123456789")
        {
            break;
        }
        assert!(
            took.elapsed() < Duration::from_secs(5),
            "replica A still uses the old key"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // LiteLLM's code opens what llmgate sealed with LITELLM_SALT_KEY, and a row LiteLLM
    // wrote is served by both replicas.
    let params = pg_text(
        &db,
        &format!("SELECT CAST(litellm_params AS TEXT) FROM \"LiteLLM_ProxyModelTable\" WHERE model_id = '{id}'"),
    )
    .await;
    let params: Value = serde_json::from_str(&params[0]).unwrap();
    if let Some(opened) = litellm_crypto("decrypt", salt, params["api_key"].as_str().unwrap()) {
        assert_eq!(opened, "sk-rotated-0123456789");
        let python_key = "sk-litellm-wrote-this-0123456789";
        let enc = litellm_params_encrypted(
            salt,
            &json!({"model": "openai/gpt-4o-mini", "api_base": format!("{}/v1", up.url()), "api_key": python_key}),
        )
        .unwrap();
        pg_exec(
            &db,
            &format!("INSERT INTO \"LiteLLM_ProxyModelTable\" (model_id, model_name, litellm_params, model_info, created_by, updated_by) VALUES ('from-litellm-1', 'litellm-made', '{enc}'::jsonb, '{{\"id\": \"from-litellm-1\"}}'::jsonb, 'admin', 'admin')"),
        )
        .await;
        for p in [&a, &b] {
            until(
                &format!("{}/v1/models", p.base()),
                Duration::from_secs(5),
                |v| groups(v).contains(&"litellm-made".to_owned()),
            )
            .await;
            let r = chat(&p.base(), MASTER, "litellm-made").await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            assert_eq!(
                up.last_request().unwrap().header("authorization"),
                Some(format!("Bearer {python_key}").as_str())
            );
        }
    }
    let log_b = b.stop();
    let log_a = a.stop();
    for log in [&log_a, &log_b] {
        assert!(
            !log.contains(KEY) && !log.contains("sk-rotated"),
            "a key was logged:\n{log}"
        );
    }
}
