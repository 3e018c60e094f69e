//! Bad input is a client error everywhere, over real sockets: every management route refuses NUL
//! bytes, over-long strings and wrong types with a 400 naming the field, identically on SQLite and
//! PostgreSQL (`LLMGATE_TEST_DATABASE_URL`); wrongly typed gateway controls in a request are a 400
//! naming the control, before any upstream call; and the answers hyper writes by itself (414, 431,
//! a malformed request) carry the OpenAI error JSON like every other error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod support;

use std::time::Duration;

use governance_common::{call, config, fresh_pg, get, post, Answer, Gov, MASTER};
use llmgate::governance::BuildOptions;
use serde_json::{json, Value};
use support::{chat_completion, FakeUpstream, Reply};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn sqlite() -> BuildOptions {
    BuildOptions::default().database_url("sqlite::memory:")
}

async fn pg() -> BuildOptions {
    BuildOptions::default().database_url(fresh_pg().await)
}

/// A 400 OpenAI error JSON whose `param` is `param`.
#[track_caller]
fn assert_400(a: &Answer, param: &str, what: &str) {
    assert_eq!(
        a.status,
        400,
        "{what}: {}",
        String::from_utf8_lossy(&a.body[..a.body.len().min(300)])
    );
    let e = a.error();
    assert_eq!(e["param"], param, "{what}: {e}");
    assert_eq!(e["type"], "invalid_request_error", "{what}: {e}");
}

const NUL: &str = "a\u{0}b";

async fn management_bad_input(opts: BuildOptions) {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let gw = Gov::start(&config("g", &up.url(), ""), opts).await;
    let long = "x".repeat(1_500_000);
    let over = "y".repeat(1025);
    // Things that exist, so the later checks are not answered by a 404 first.
    let a = post(
        &gw.url("/team/new"),
        Some(MASTER),
        &json!({"team_id": "t1"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let a = post(&gw.url("/key/generate"), Some(MASTER), &json!({})).await;
    assert_eq!(a.status, 200);
    let key = a.json()["key"].as_str().unwrap().to_owned();

    // Every text field of every body route: a NUL, 1.5 MB, and 1 KiB + 1 byte.
    let text_fields: &[(&str, &str, Value)] = &[
        ("/key/generate", "key_alias", json!({})),
        ("/key/generate", "team_id", json!({})),
        ("/key/generate", "user_id", json!({})),
        ("/key/generate", "budget_duration", json!({})),
        ("/key/generate", "duration", json!({})),
        ("/key/generate", "key", json!({})),
        ("/key/update", "key", json!({})),
        ("/key/update", "key_alias", json!({"key": key})),
        ("/key/update", "user_id", json!({"key": key})),
        ("/key/block", "key", json!({})),
        ("/key/unblock", "key", json!({})),
        ("/key/regenerate", "key", json!({})),
        ("/key/regenerate", "new_key", json!({"key": key})),
        ("/team/new", "team_id", json!({})),
        ("/team/new", "team_alias", json!({})),
        ("/team/update", "team_id", json!({})),
        ("/team/update", "team_alias", json!({"team_id": "t1"})),
        (
            "/team/member_add",
            "team_id",
            json!({"member": {"user_id": "u"}}),
        ),
        ("/user/new", "user_id", json!({})),
        ("/user/new", "user_email", json!({})),
        ("/user/new", "key_alias", json!({})),
    ];
    for (path, field, base) in text_fields {
        for (value, what) in [
            (NUL, "NUL"),
            (long.as_str(), "1.5 MB"),
            (over.as_str(), "1025 B"),
        ] {
            let mut body = base.clone();
            body[*field] = json!(value);
            let a = post(&gw.url(path), Some(MASTER), &body).await;
            assert_400(&a, field, &format!("{path} {field} {what}"));
        }
    }
    // List fields: a NUL or an over-long item, and too many items.
    let list_fields: &[(&str, &str, Value)] = &[
        ("/key/generate", "models", json!({})),
        ("/key/update", "models", json!({"key": key})),
        ("/key/delete", "keys", json!({})),
        ("/key/delete", "key_aliases", json!({})),
        ("/team/new", "models", json!({})),
        ("/team/delete", "team_ids", json!({})),
        ("/user/new", "teams", json!({})),
        ("/user/new", "models", json!({})),
    ];
    let many: Vec<String> = (0..1001).map(|i| format!("m{i}")).collect();
    for (path, field, base) in list_fields {
        for (value, what) in [
            (json!(["ok", NUL]), "NUL item"),
            (json!([long]), "1.5 MB item"),
            (json!(many), "1001 items"),
        ] {
            let mut body = base.clone();
            body[*field] = value;
            let a = post(&gw.url(path), Some(MASTER), &body).await;
            assert_400(&a, field, &format!("{path} {field} {what}"));
        }
    }
    // Free-form JSON: NUL in a key or a value, or more than 64 KiB in all.
    for (path, field, base) in [
        ("/key/generate", "metadata", json!({})),
        ("/key/update", "metadata", json!({"key": key})),
        ("/team/new", "metadata", json!({})),
        (
            "/team/update",
            "members_with_roles",
            json!({"team_id": "t1"}),
        ),
        ("/user/new", "metadata", json!({})),
    ] {
        let shaped = |v: Value| {
            if field == "members_with_roles" {
                json!([v])
            } else {
                v
            }
        };
        for (value, what) in [
            (shaped(json!({"k": NUL})), "NUL value"),
            (shaped(json!({NUL: 1})), "NUL key"),
            (shaped(json!({"k": long})), "1.5 MB"),
        ] {
            let mut body = base.clone();
            body[field] = value;
            let a = post(&gw.url(path), Some(MASTER), &body).await;
            assert_400(&a, field, &format!("{path} {field} {what}"));
        }
    }
    // A team member's id.
    let a = post(
        &gw.url("/team/member_add"),
        Some(MASTER),
        &json!({"team_id": "t1", "member": {"user_id": NUL}}),
    )
    .await;
    assert_400(&a, "member", "member_add NUL user_id");
    // The key in the path of `/key/{key}/regenerate`.
    let a = post(
        &gw.url(&format!("/key/sk-{}/regenerate", "z".repeat(2000))),
        Some(MASTER),
        &json!({}),
    )
    .await;
    assert_400(&a, "key", "regenerate path key too long");
    let a = post(
        &gw.url("/key/sk-a%00b/regenerate"),
        Some(MASTER),
        &json!({}),
    )
    .await;
    assert_400(&a, "key", "regenerate path key NUL");

    // Wrong types: the field is named.
    for (path, body, field) in [
        ("/key/generate", json!({"key_alias": 5}), "key_alias"),
        ("/key/generate", json!({"models": "g"}), "models"),
        ("/key/generate", json!({"tpm_limit": "x"}), "tpm_limit"),
        ("/key/generate", json!({"rpm_limit": 1.5}), "rpm_limit"),
        ("/key/generate", json!({"max_budget": "lots"}), "max_budget"),
        ("/key/generate", json!({"blocked": "yes"}), "blocked"),
        ("/key/generate", json!({"metadata": [1]}), "metadata"),
        ("/key/update", json!({"key": key, "spend": "x"}), "spend"),
        ("/key/delete", json!({"keys": "sk-1"}), "keys"),
        ("/key/block", json!({"key": 1}), "key"),
        ("/team/new", json!({"team_alias": []}), "team_alias"),
        (
            "/team/update",
            json!({"team_id": "t1", "blocked": 1}),
            "blocked",
        ),
        ("/team/delete", json!({"team_ids": "t1"}), "team_ids"),
        ("/user/new", json!({"teams": "t1"}), "teams"),
        (
            "/user/new",
            json!({"auto_create_key": "no"}),
            "auto_create_key",
        ),
    ] {
        let a = post(&gw.url(path), Some(MASTER), &body).await;
        assert_400(&a, field, &format!("{path} {body}"));
    }
    // A budget period of no time disables the budget: refused on every route that takes one.
    for (path, base) in [
        ("/key/generate", json!({})),
        ("/key/update", json!({"key": key})),
        ("/team/new", json!({})),
        ("/team/update", json!({"team_id": "t1"})),
        ("/user/new", json!({})),
    ] {
        for d in ["0s", "0d", "0mo"] {
            let mut body = base.clone();
            body["budget_duration"] = json!(d);
            let a = post(&gw.url(path), Some(MASTER), &body).await;
            assert_400(&a, "budget_duration", &format!("{path} {d}"));
        }
    }

    // Query strings of the management GETs: NUL, too long, wrong type, each named.
    for (path, param) in [
        ("/key/info?key=sk-a%00b", "key"),
        ("/team/info?team_id=%00", "team_id"),
        ("/user/info?user_id=u%00", "user_id"),
        ("/spend/logs?api_key=%00", "api_key"),
        ("/spend/logs?team_id=%00", "team_id"),
        ("/key/list?team_id=%00", "team_id"),
        ("/key/list?page=x", "page"),
        ("/key/list?size=1.5", "size"),
        ("/key/list?return_full_object=maybe", "return_full_object"),
        ("/key/list?page=99999999999999999", "page"),
        ("/key/list?page=999999999999999999999999", "page"),
        ("/spend/logs?limit=ten", "limit"),
        ("/spend/logs?start_date=yesterday", "start_date"),
    ] {
        let a = get(&gw.url(path), Some(MASTER)).await;
        assert_400(&a, param, path);
    }
    let a = get(
        &gw.url(&format!("/key/info?key=sk-{}", "q".repeat(2000))),
        Some(MASTER),
    )
    .await;
    assert_400(&a, "key", "long key query");

    // Errors axum writes itself are JSON too: a wrong method, a body over its limit.
    let a = get(&gw.url("/key/generate"), Some(MASTER)).await;
    assert_eq!(a.status, 405);
    assert_eq!(a.error()["code"], "405");
    assert_eq!(a.header("content-type"), Some("application/json"));
    let a = post(
        &gw.url("/key/generate"),
        Some(MASTER),
        &json!({"metadata": {"k": "z".repeat(3 << 20)}}),
    )
    .await;
    assert_eq!(a.status, 413);
    assert_eq!(a.error()["code"], "413");
    // Bad JSON: the route's error JSON saying so.
    let a = call_raw(&gw, "/key/generate", b"{\"key_alias\": ").await;
    assert_eq!(a.status, 400);
    assert!(a.error()["message"]
        .as_str()
        .unwrap()
        .contains("Invalid JSON"));

    // Nothing above reached the database as a failure: it still works, and no 503 was seen.
    let a = post(
        &gw.url("/key/generate"),
        Some(MASTER),
        &json!({"key_alias": "fine", "metadata": {"note": "ok"}, "budget_duration": "30d"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let a = get(&gw.url("/key/info?key="), Some(&key)).await;
    assert_eq!(a.status, 200);
    gw.shutdown().await;
}

/// A POST with a raw body (not JSON-encoded by the helper).
async fn call_raw(gw: &Gov, path: &str, body: &'static [u8]) -> Answer {
    use http_body_util::{BodyExt as _, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let req = http::Request::post(gw.url(path))
        .header("authorization", format!("Bearer {MASTER}"))
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from_static(body)))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

#[tokio::test]
async fn management_bad_input_is_a_400_on_sqlite() {
    management_bad_input(sqlite()).await;
}

#[tokio::test]
async fn management_bad_input_is_a_400_on_postgres() {
    management_bad_input(pg().await).await;
}

#[tokio::test]
async fn wrongly_typed_gateway_controls_are_a_400_naming_them() {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let gw = Gov::start(&config("g", &up.url(), ""), sqlite()).await;
    let chat = |extra: Value| {
        let mut body = json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for (param, value) in [
        ("num_retries", json!("x")),
        ("max_retries", json!(-1)),
        ("timeout", json!("30")),
        ("request_timeout", json!(0)),
        ("stream_timeout", json!([])),
        ("fallbacks", json!("other")),
        ("context_window_fallbacks", json!([1])),
        ("content_policy_fallbacks", json!([{"g": "other"}])),
        ("max_fallbacks", json!(1.5)),
        ("disable_fallbacks", json!("true")),
        ("metadata", json!("m")),
        ("litellm_metadata", json!(1)),
        ("tags", json!("a")),
        ("mock_response", json!(42)),
        ("mock_tool_calls", json!("x")),
        ("caching", json!("false")),
        ("cache", json!("no-cache")),
        ("drop_params", json!(1)),
        ("additional_drop_params", json!("logit_bias")),
        ("guardrails", json!(7)),
        ("extra_headers", json!(["x"])),
    ] {
        let a = post(
            &gw.url("/v1/chat/completions"),
            Some(MASTER),
            &chat(json!({param: value})),
        )
        .await;
        assert_400(&a, param, &format!("{param}: {value}"));
        assert!(
            a.error()["message"].as_str().unwrap().contains(param),
            "{param}"
        );
    }
    let a = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER),
        &chat(json!({"cache": {"no-cache": "yes"}})),
    )
    .await;
    assert_400(&a, "cache.no-cache", "cache.no-cache");
    // A model name with a NUL, or over 1 KiB, never reaches routing or the spend log.
    for model in [json!("g\u{0}"), json!("g".repeat(1025))] {
        let a = post(
            &gw.url("/v1/chat/completions"),
            Some(MASTER),
            &json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        assert_400(&a, "model", "chat model");
        let a = post(
            &gw.url("/v1/embeddings"),
            Some(MASTER),
            &json!({"model": model, "input": "hi"}),
        )
        .await;
        assert_400(&a, "model", "embeddings model");
    }
    // Embeddings too.
    let a = post(
        &gw.url("/v1/embeddings"),
        Some(MASTER),
        &json!({"model": "g", "input": "hi", "num_retries": "x"}),
    )
    .await;
    assert_400(&a, "num_retries", "embeddings num_retries");
    // None of them reached the upstream; well-typed controls do.
    assert_eq!(up.hits(), 0);
    let a = post(
        &gw.url("/v1/chat/completions"),
        Some(MASTER),
        &chat(json!({"num_retries": 1, "timeout": 30, "fallbacks": ["other"], "metadata": {"a": 1}, "tags": ["t"], "caching": false, "max_fallbacks": null})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(up.hits(), 1);
    gw.shutdown().await;
}

/// Sends `raw` on a new connection and reads the answer until the server closes it.
async fn raw_exchange(addr: std::net::SocketAddr, raw: &[u8]) -> (u16, String, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before reading all of a huge head.
    let _ = s.write_all(raw).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the server closes the connection");
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head: {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {head:?}"));
    let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"));
    (status, head.to_ascii_lowercase(), json)
}

#[tokio::test]
async fn answers_hyper_writes_itself_are_openai_error_json() {
    let up = FakeUpstream::start().await;
    let gw = Gov::start(&config("g", &up.url(), ""), sqlite()).await;
    let many_headers: String = (0..120).map(|i| format!("x-h{i}: v\r\n")).collect();
    let cases: Vec<(String, u16)> = vec![
        // A URI over hyper's 64 KiB limit.
        (
            format!(
                "GET /v1/models?q={} HTTP/1.1\r\nhost: x\r\n\r\n",
                "a".repeat(70_000)
            ),
            414,
        ),
        // More headers than hyper takes (100).
        (
            format!("GET /v1/models HTTP/1.1\r\nhost: x\r\n{many_headers}\r\n"),
            431,
        ),
        // One header larger than the read buffer (~400 KiB).
        (
            format!(
                "GET /v1/models HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
                "b".repeat(500_000)
            ),
            431,
        ),
        // Malformed request line, malformed header, bad method.
        ("GARBAGE\r\n\r\n".to_owned(), 400),
        (
            "GET /v1/models HTTP/1.1\r\nhost: x\r\nbad header line\r\n\r\n".to_owned(),
            400,
        ),
        ("G@T /v1/models HTTP/1.1\r\nhost: x\r\n\r\n".to_owned(), 400),
    ];
    for (raw, want) in &cases {
        let (status, head, v) = raw_exchange(gw.addr, raw.as_bytes()).await;
        let what = &raw[..raw.len().min(40)];
        assert_eq!(status, *want, "{what:?}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let e = &v["error"];
        for f in ["message", "type", "param", "code"] {
            assert!(e.get(f).is_some(), "{what:?}: error.{f} missing in {v}");
        }
        assert_eq!(e["code"], want.to_string(), "{what:?}");
        assert_eq!(e["type"], "invalid_request_error", "{what:?}");
    }
    // Bad JSON on the OpenAI routes: 400 with the error JSON (the gateway's own answer).
    let body = "{\"model\": ";
    let (status, _, v) = raw_exchange(
        gw.addr,
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {MASTER}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Invalid JSON"));
    // A well-formed request on the same server is untouched.
    let a = call("GET", &gw.url("/health/liveliness"), None, None).await;
    assert_eq!(a.status, 200);
    assert_eq!(up.hits(), 0);
    gw.shutdown().await;
}
