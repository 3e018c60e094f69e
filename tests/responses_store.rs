//! The Responses store in the database (issue 20, item 2): two gateways on one database (SQLite
//! file, PostgreSQL from `LLMGATE_TEST_DATABASE_URL`) continue one bridged conversation with
//! `previous_response_id` (the second gateway sends the whole conversation upstream), and
//! another key finds nothing of it: 404 to read, to continue and to delete. A response deleted
//! on one gateway is gone on the other. Real sockets, the fake upstream (Anthropic's answer).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod litellm_common;
mod support;

use std::{sync::Arc, time::Duration};

use governance_common::{call, fresh_pg, new_key, post, Answer, Gov, TempDir, MASTER};
use llmgate::{
    governance::BuildOptions,
    store::{
        responses::{ResponseStore as _, StoredResponse},
        SchemaChoice, SqlResponseStore, Store,
    },
};
use serde_json::{json, Value};
use support::{FakeUpstream, Reply};

fn config(up: &str) -> String {
    format!(
        "model_list:\n  - model_name: claude\n    litellm_params:\n      model: anthropic/claude-sonnet-4-5-20250929\n      api_base: {up}\n      api_key: test-key\ngeneral_settings:\n  master_key: {MASTER}\n"
    )
}

/// Anthropic's answer "Hello!" (the conformance corpus's `text_basic`).
fn anthropic_text() -> Reply {
    let path = format!(
        "{}/tests/conformance/anthropic/text_basic.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let case: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    Reply::json(200, case["upstream_response"]["body"].clone())
}

fn body(a: &Answer) -> String {
    String::from_utf8_lossy(&a.body).into_owned()
}

/// `GET /v1/responses/{id}` on `gw` until it answers 200 (the first gateway writes the row off
/// the request path); the last answer.
async fn read_until_found(gw: &Gov, id: &str, key: &str) -> Answer {
    let url = gw.url(&format!("/v1/responses/{id}"));
    let mut a = call("GET", &url, Some(key), None).await;
    for _ in 0..100 {
        if a.status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        a = call("GET", &url, Some(key), None).await;
    }
    a
}

async fn two_gateways_share_a_conversation(database_url: &str) {
    let up = FakeUpstream::start().await;
    let opts = || BuildOptions::default().database_url(database_url);
    let one = Gov::start(&config(&up.url()), opts()).await;
    let two = Gov::start(&config(&up.url()), opts()).await;
    // Keys live in the same database: made on one, used on both.
    let (alice, _) = new_key(&one.url(""), json!({})).await;
    let (bob, _) = new_key(&one.url(""), json!({})).await;

    up.enqueue(anthropic_text());
    let first = post(
        &one.url("/v1/responses"),
        Some(&alice),
        &json!({"model": "claude", "input": "Say hello."}),
    )
    .await;
    assert_eq!(first.status, 200, "{}", body(&first));
    let first = first.json();
    assert_eq!(first["store"], true);
    let id = first["id"].as_str().unwrap().to_owned();

    // The other gateway has it (from the database) for its owner.
    let got = read_until_found(&two, &id, &alice).await;
    assert_eq!(got.status, 200, "{}", body(&got));
    assert_eq!(got.json()["id"], json!(id));
    assert_eq!(got.json()["output"], first["output"]);

    // ...and continues the conversation: the whole of it goes upstream.
    up.enqueue(anthropic_text());
    let second = post(
        &two.url("/v1/responses"),
        Some(&alice),
        &json!({"model": "claude", "input": "Again, in French.", "previous_response_id": id}),
    )
    .await;
    assert_eq!(second.status, 200, "{}", body(&second));
    assert_eq!(second.json()["previous_response_id"], json!(id));
    let sent = up.last_request().unwrap().json();
    let msgs = sent["messages"].to_string();
    let (a, b, c) = (
        msgs.find("Say hello.").expect("first turn sent"),
        msgs.find("Hello!").expect("first answer sent"),
        msgs.find("Again, in French.").expect("second turn sent"),
    );
    assert!(a < b && b < c, "{msgs}");
    let second_id = second.json()["id"].as_str().unwrap().to_owned();
    // The first gateway reads the second turn's input items from the database.
    let found = read_until_found(&one, &second_id, &alice).await;
    assert_eq!(found.status, 200, "{}", body(&found));
    let items = call(
        "GET",
        &one.url(&format!("/v1/responses/{second_id}/input_items")),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(items.status, 200, "{}", body(&items));
    assert!(
        body(&items).contains("Again, in French."),
        "{}",
        body(&items)
    );

    // Another key finds nothing, on either gateway: not to read, continue nor delete.
    let hits = up.hits();
    for gw in [&one, &two] {
        let path = gw.url(&format!("/v1/responses/{id}"));
        let other = call("GET", &path, Some(&bob), None).await;
        assert_eq!(other.status, 404, "{}", body(&other));
        other.error();
        let other = post(
            &gw.url("/v1/responses"),
            Some(&bob),
            &json!({"model": "claude", "input": "x", "previous_response_id": id}),
        )
        .await;
        assert_eq!(other.status, 404, "{}", body(&other));
        assert_eq!(other.error()["code"], "previous_response_not_found");
        let other = call("DELETE", &path, Some(&bob), None).await;
        assert_eq!(other.status, 404, "{}", body(&other));
    }
    assert_eq!(up.hits(), hits, "nothing of another key's went upstream");

    // Deleted on one gateway: gone on the other.
    let del = call(
        "DELETE",
        &two.url(&format!("/v1/responses/{id}")),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(del.status, 200, "{}", body(&del));
    assert_eq!(del.json()["deleted"], true);
    let gone = call(
        "GET",
        &one.url(&format!("/v1/responses/{id}")),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(gone.status, 404, "{}", body(&gone));
}

#[tokio::test]
async fn two_gateways_on_one_sqlite_file_share_a_conversation() {
    let dir = TempDir::new();
    let url = format!("sqlite://{}?mode=rwc", dir.0.join("gw.db").display());
    two_gateways_share_a_conversation(&url).await;
}

#[tokio::test]
async fn two_gateways_on_one_postgres_database_share_a_conversation() {
    two_gateways_share_a_conversation(&fresh_pg().await).await;
}

/// The same on a LiteLLM proxy's own database (made by LiteLLM's migrations; `auto` picks its
/// schema): the conversation lives in llmgate's own table there, `llmgate_responses`.
#[tokio::test]
async fn two_gateways_on_litellms_database_share_a_conversation() {
    let url = litellm_common::litellm_db().await;
    two_gateways_share_a_conversation(&url).await;
    let mut conn = <sqlx::postgres::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM llmgate_responses WHERE kind = 'made'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 2, "both turns are rows of llmgate_responses");
    let ours: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_catalog.pg_tables WHERE tablename = 'llmgate_keys'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(ours, 0, "LiteLLM's schema was used, not llmgate's");
}

/// On LiteLLM's database llmgate keeps responses in a table of its own, `llmgate_responses`,
/// made on first use (LiteLLM's tables are not altered).
#[tokio::test]
async fn on_litellms_schema_the_store_makes_its_own_table() {
    let url = fresh_pg().await;
    // The table `auto` and `litellm` look for; enough to be LiteLLM's schema for this store.
    let setup = Store::connect_schema(&url, 2, SchemaChoice::Llmgate)
        .await
        .unwrap();
    drop(setup);
    let mut conn = <sqlx::postgres::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("DROP TABLE llmgate_responses")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE \"LiteLLM_VerificationToken\" (token TEXT PRIMARY KEY)")
        .execute(&mut conn)
        .await
        .unwrap();
    let store = Store::connect_schema(&url, 2, SchemaChoice::LiteLlm)
        .await
        .unwrap();
    assert_eq!(store.schema(), llmgate::store::Schema::LiteLlm);
    let (a, b) = (
        SqlResponseStore::new(store.clone()),
        SqlResponseStore::new(store),
    );
    let first = Arc::new(StoredResponse::new(
        "resp_1".into(),
        "alice".into(),
        json!({"id": "resp_1"}),
        vec![json!({"role": "user", "content": "hi"})],
        vec![json!({"type": "message"})],
        None,
    ));
    a.put(first.clone()).await.unwrap();
    a.put(Arc::new(StoredResponse::new(
        "resp_2".into(),
        "alice".into(),
        json!({"id": "resp_2"}),
        vec![json!({"role": "user", "content": "again"})],
        vec![json!({"type": "message"})],
        Some(first),
    )))
    .await
    .unwrap();
    let got = b.get("resp_2", "alice").await.unwrap().unwrap();
    assert_eq!(got.conversation().len(), 4);
    assert!(b.get("resp_2", "bob").await.unwrap().is_none());
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM llmgate_responses")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 2);
}
