//! llmgate over LiteLLM's own database, unchanged: a throw-away PostgreSQL database gets the
//! migration SQL LiteLLM ships (the `litellm-proxy-extras` package from PyPI, which `.ci/test`
//! installs into the test venv), keys, teams, users and budgets are inserted as LiteLLM stores
//! them, and the gateway serves traffic with them over sockets: auth, model access, budgets (the
//! key's own and its `LiteLLM_BudgetTable` row's), and spend written where LiteLLM reads it
//! (`LiteLLM_SpendLogs`, the key, team, user and membership totals, the daily rollups).
//!
//! Needs `LLMGATE_TEST_DATABASE_URL` and either `LLMGATE_LITELLM_MIGRATIONS` (the `migrations`
//! folder of `litellm_proxy_extras`) or `LLMGATE_PYTHON` with `litellm-proxy-extras` installed;
//! `bash .ci/test` provides both. A missing one fails the test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod litellm_common;
mod support;

use governance_common::{chat, fresh_pg, get, post, Gov, MASTER};
use litellm_common::litellm_db;
use llmgate::{
    governance::BuildOptions,
    store::{hash_key, Schema, SchemaChoice, Store},
};
use serde_json::json;
use sqlx::{Connection as _, Row as _};
use support::{chat_completion, FakeUpstream, Reply};

async fn exec(url: &str, sql: &str) {
    let mut conn = sqlx::postgres::PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn one(url: &str, sql: &str) -> sqlx::postgres::PgRow {
    let mut conn = sqlx::postgres::PgConnection::connect(url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

const KEY_OK: &str = "sk-litellm-made-key-ok-0001";
const KEY_BLOCKED: &str = "sk-litellm-made-key-blocked";
const KEY_OVER: &str = "sk-litellm-made-key-over-budget";
const KEY_BUDGET_ROW: &str = "sk-litellm-made-key-budget-table";

/// Rows as LiteLLM's proxy writes them (`/team/new`, `/user/new`, `/key/generate`,
/// `/budget/new`): hashed tokens, `TEXT[]` model lists, JSONB metadata and members.
async fn seed(url: &str) {
    let sql = format!(
        r#"
INSERT INTO "LiteLLM_BudgetTable" (budget_id, max_budget, created_by, updated_by) VALUES ('tight', 0.5, 'admin', 'admin');
INSERT INTO "LiteLLM_TeamTable" (team_id, team_alias, models, members_with_roles, metadata, max_budget, spend)
  VALUES ('team-a', 'Team A', ARRAY['g'], '[{{"role": "admin", "user_id": "alice", "user_email": null}}]', '{{}}', 100.0, 1.5);
INSERT INTO "LiteLLM_UserTable" (user_id, user_email, user_role, teams, models, spend, max_budget)
  VALUES ('alice', 'alice@example.com', 'internal_user', ARRAY['team-a'], ARRAY[]::text[], 0.25, 50.0);
INSERT INTO "LiteLLM_TeamMembership" (user_id, team_id) VALUES ('alice', 'team-a');
INSERT INTO "LiteLLM_VerificationToken" (token, key_name, key_alias, models, team_id, user_id, spend, max_budget, metadata, expires)
  VALUES ('{ok}', 'sk-...0001', 'alice-app', ARRAY['g'], 'team-a', 'alice', 0.0, 10.0, '{{"env": "prod"}}', NOW() + INTERVAL '1 day');
INSERT INTO "LiteLLM_VerificationToken" (token, key_name, models, blocked) VALUES ('{blocked}', 'sk-...cked', ARRAY[]::text[], true);
INSERT INTO "LiteLLM_VerificationToken" (token, key_name, models, spend, max_budget, key_alias) VALUES ('{over}', 'sk-...dget', ARRAY[]::text[], 2.0, 1.0, 'spent');
INSERT INTO "LiteLLM_VerificationToken" (token, key_name, models, spend, budget_id) VALUES ('{budget_row}', 'sk-...able', ARRAY[]::text[], 0.75, 'tight');
"#,
        ok = hash_key(KEY_OK),
        blocked = hash_key(KEY_BLOCKED),
        over = hash_key(KEY_OVER),
        budget_row = hash_key(KEY_BUDGET_ROW),
    );
    exec(url, &sql).await;
}

fn config(upstream: &str, url: &str, extra: &str) -> String {
    format!(
        "model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {upstream}/v1\n      api_key: sk-upstream-key\n  - model_name: other\n    litellm_params:\n      model: openai/gpt-4o\n      api_base: {upstream}/v1\n      api_key: sk-upstream-key\ngeneral_settings:\n  master_key: {MASTER}\n  database_url: {url}\n{extra}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_traffic_from_litellms_own_tables() {
    let url = litellm_db().await;
    seed(&url).await;
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    // No `database_schema`: `auto` finds LiteLLM's tables and no llmgate ones.
    let gw = Gov::start(&config(&up.url(), &url, ""), BuildOptions::default()).await;
    let base = gw.url("");
    let store = gw
        .gateway
        .as_ref()
        .unwrap()
        .governance()
        .unwrap()
        .store
        .clone()
        .unwrap();
    assert_eq!(store.schema(), Schema::LiteLlm);
    // Nothing of llmgate's own was created in LiteLLM's database.
    let n: i64 = one(
        &url,
        "SELECT COUNT(*) FROM pg_tables WHERE tablename LIKE 'llmgate%'",
    )
    .await
    .get(0);
    assert_eq!(n, 0);

    // A key LiteLLM made works, for the models it and its team allow.
    let a = chat(&base, KEY_OK, "g").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let a = chat(&base, KEY_OK, "other").await;
    assert_eq!(a.status, 401);
    assert_eq!(a.error()["type"], "key_model_access_denied");
    // Blocked, unknown: 401.
    assert_eq!(chat(&base, KEY_BLOCKED, "g").await.status, 401);
    assert_eq!(chat(&base, "sk-not-a-litellm-key", "g").await.status, 401);
    // Over the key's own budget, and over its `LiteLLM_BudgetTable` row's: 422.
    let a = chat(&base, KEY_OVER, "g").await;
    assert_eq!(a.status, 422, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(
        a.error()["message"],
        "Budget has been exceeded! Key=spent Current cost: 2.0, Max budget: 1.0"
    );
    let a = chat(&base, KEY_BUDGET_ROW, "g").await;
    assert_eq!(a.status, 422, "{}", String::from_utf8_lossy(&a.body));

    // The management API reads LiteLLM's rows.
    let a = get(&gw.url(&format!("/key/info?key={KEY_OK}")), Some(MASTER)).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let info = a.json();
    assert_eq!(info["info"]["key_alias"], "alice-app");
    assert_eq!(info["info"]["team_id"], "team-a");
    assert_eq!(info["info"]["metadata"]["env"], "prod");
    let a = get(&gw.url("/team/info?team_id=team-a"), Some(MASTER)).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["team_info"]["team_alias"], "Team A");
    assert_eq!(
        a.json()["team_info"]["members_with_roles"][0]["user_id"],
        "alice"
    );

    // Spend lands where LiteLLM reads it.
    gw.flush().await;
    let row = one(
        &url,
        &format!(
            r#"SELECT request_id, api_key, "user", team_id, model_group, model, status, spend, prompt_tokens, completion_tokens, total_tokens, cache_hit, metadata->>'user_api_key_alias' AS alias, "startTime" <= "endTime" AS ordered FROM "LiteLLM_SpendLogs" WHERE api_key = '{}'"#,
            hash_key(KEY_OK)
        ),
    )
    .await;
    let request_id: String = row.get("request_id");
    assert!(!request_id.is_empty());
    assert_eq!(row.get::<String, _>("user"), "alice");
    assert_eq!(
        row.get::<Option<String>, _>("team_id").as_deref(),
        Some("team-a")
    );
    assert_eq!(
        row.get::<Option<String>, _>("model_group").as_deref(),
        Some("g")
    );
    assert_eq!(
        row.get::<Option<String>, _>("status").as_deref(),
        Some("success")
    );
    assert_eq!(row.get::<i32, _>("prompt_tokens"), 5);
    assert_eq!(row.get::<i32, _>("completion_tokens"), 7);
    assert_eq!(row.get::<i32, _>("total_tokens"), 12);
    assert_eq!(
        row.get::<Option<String>, _>("cache_hit").as_deref(),
        Some("False")
    );
    assert_eq!(
        row.get::<Option<String>, _>("alias").as_deref(),
        Some("alice-app")
    );
    assert!(row.get::<bool, _>("ordered"));
    let logged_model: String = row.get("model");
    let cost: f64 = row.get("spend");
    assert!(cost > 0.0, "gpt-4o-mini is priced: {cost}");

    // Totals: the key from 0, the team from 1.5, the user from 0.25, the membership from 0.
    let near = |a: f64, b: f64| (a - b).abs() < 1e-12;
    let key_spend: f64 = one(
        &url,
        &format!(
            r#"SELECT spend FROM "LiteLLM_VerificationToken" WHERE token = '{}'"#,
            hash_key(KEY_OK)
        ),
    )
    .await
    .get(0);
    assert!(near(key_spend, cost), "{key_spend} vs {cost}");
    let team_spend: f64 = one(
        &url,
        r#"SELECT spend FROM "LiteLLM_TeamTable" WHERE team_id = 'team-a'"#,
    )
    .await
    .get(0);
    assert!(near(team_spend, 1.5 + cost), "{team_spend}");
    let user_spend: f64 = one(
        &url,
        r#"SELECT spend FROM "LiteLLM_UserTable" WHERE user_id = 'alice'"#,
    )
    .await
    .get(0);
    assert!(near(user_spend, 0.25 + cost), "{user_spend}");
    let member_spend: f64 = one(
        &url,
        r#"SELECT spend FROM "LiteLLM_TeamMembership" WHERE user_id = 'alice' AND team_id = 'team-a'"#,
    )
    .await
    .get(0);
    assert!(near(member_spend, cost), "{member_spend}");
    // Daily rollups: one successful request today for alice and for team-a.
    for (table, col, id) in [
        ("LiteLLM_DailyUserSpend", "user_id", "alice"),
        ("LiteLLM_DailyTeamSpend", "team_id", "team-a"),
    ] {
        let r = one(
            &url,
            &format!(
                r#"SELECT CAST(SUM(api_requests) AS BIGINT) AS n, CAST(SUM(successful_requests) AS BIGINT) AS ok, CAST(SUM(prompt_tokens) AS BIGINT) AS p, SUM(spend) AS s, MIN(date) AS d, MIN(model) AS m FROM "{table}" WHERE {col} = '{id}'"#
            ),
        )
        .await;
        assert_eq!(r.get::<i64, _>("n"), 1, "{table}");
        assert_eq!(r.get::<i64, _>("ok"), 1, "{table}");
        assert_eq!(r.get::<i64, _>("p"), 5, "{table}");
        assert!(near(r.get::<f64, _>("s"), cost), "{table}");
        let today = one(
            &url,
            "SELECT CAST(CAST(now() AT TIME ZONE 'UTC' AS DATE) AS TEXT)",
        )
        .await
        .get::<String, _>(0);
        assert_eq!(r.get::<String, _>("d"), today, "{table}");
        // The model the upstream answered with, as in the spend-log row.
        assert_eq!(r.get::<String, _>("m"), logged_model, "{table}");
    }

    // `/spend/logs` reads LiteLLM's rows back, by key and by request id.
    let a = get(
        &gw.url(&format!("/spend/logs?api_key={KEY_OK}")),
        Some(MASTER),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let logs = a.json();
    assert_eq!(logs.as_array().map(Vec::len), Some(1), "{logs}");
    assert_eq!(logs[0]["request_id"], request_id);
    assert_eq!(logs[0]["user"], "alice");
    let a = get(
        &gw.url(&format!("/spend/logs?request_id={request_id}")),
        Some(MASTER),
    )
    .await;
    assert_eq!(a.json().as_array().map(Vec::len), Some(1));

    // A key made through llmgate's API is a LiteLLM row (hashed as LiteLLM hashes) and works.
    let a = post(
        &gw.url("/key/generate"),
        Some(MASTER),
        &json!({"key_alias": "made-here", "team_id": "team-a", "models": ["g"], "max_budget": 5, "metadata": {"owner": "ops"}}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let made = a.json()["key"].as_str().unwrap().to_owned();
    let r = one(
        &url,
        &format!(
            r#"SELECT key_alias, models, team_id, max_budget, metadata->>'owner' AS owner, blocked FROM "LiteLLM_VerificationToken" WHERE token = '{}'"#,
            hash_key(&made)
        ),
    )
    .await;
    assert_eq!(
        r.get::<Option<String>, _>("key_alias").as_deref(),
        Some("made-here")
    );
    assert_eq!(r.get::<Vec<String>, _>("models"), ["g"]);
    assert_eq!(r.get::<Option<f64>, _>("max_budget"), Some(5.0));
    assert_eq!(r.get::<Option<String>, _>("owner").as_deref(), Some("ops"));
    assert_eq!(r.get::<Option<bool>, _>("blocked"), Some(false));
    assert_eq!(chat(&base, &made, "g").await.status, 200);
    // Blocking through the API writes LiteLLM's `blocked`.
    let a = post(&gw.url("/key/block"), Some(MASTER), &json!({"key": made})).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(chat(&base, &made, "g").await.status, 401);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_is_chosen_safely() {
    // Auto on a fresh database: llmgate's own tables (the default stays).
    let fresh = fresh_pg().await;
    let s = Store::connect_schema(&fresh, 2, SchemaChoice::Auto)
        .await
        .unwrap();
    assert_eq!(s.schema(), Schema::Llmgate);
    // `litellm` on a database without LiteLLM's tables: refused, nothing created.
    let e = Store::connect_schema(&fresh_pg().await, 2, SchemaChoice::LiteLlm)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("LiteLLM_VerificationToken"), "{e}");
    // `litellm` on SQLite: refused.
    let e = Store::connect_schema("sqlite::memory:", 1, SchemaChoice::LiteLlm)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("PostgreSQL"), "{e}");
    // Both schemas in one database: `auto` is ambiguous and refused; an explicit choice works.
    let both = litellm_db().await;
    Store::connect_schema(&both, 2, SchemaChoice::Llmgate)
        .await
        .unwrap();
    let e = Store::connect_schema(&both, 2, SchemaChoice::Auto)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("both"), "{e}");
    let s = Store::connect_schema(&both, 2, SchemaChoice::LiteLlm)
        .await
        .unwrap();
    assert_eq!(s.schema(), Schema::LiteLlm);
    // And the gateway's start fails closed with the config key.
    let up = FakeUpstream::start().await;
    let loaded =
        llmgate::config::Config::from_yaml_str(&config(&up.url(), &both, ""), "t").unwrap();
    let e = llmgate::gateway::Gateway::build(
        &loaded.config,
        &llmgate::provider::HttpClient::new(),
        BuildOptions::default(),
    )
    .await
    .expect_err("ambiguous schema refused");
    assert!(
        e.to_string().contains("general_settings.database_schema"),
        "{e}"
    );
    let loaded = llmgate::config::Config::from_yaml_str(
        &config(&up.url(), &both, "  database_schema: prisma\n"),
        "t",
    )
    .unwrap();
    let e = llmgate::gateway::Gateway::build(
        &loaded.config,
        &llmgate::provider::HttpClient::new(),
        BuildOptions::default(),
    )
    .await
    .expect_err("unknown schema refused");
    assert!(
        e.to_string().contains("general_settings.database_schema"),
        "{e}"
    );
}

/// Issue 23: a key's `model_max_budget` as LiteLLM stores it (its JSONB column, LiteLLM's older
/// `budget_limit` / `time_period` names) is enforced on LiteLLM's database, the spend per model
/// is written into the key's `model_spend` column, and a key made through llmgate's API stores
/// its model budgets in LiteLLM's column, in LiteLLM's shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_max_budget_lives_in_litellms_columns() {
    const KEY_MODEL: &str = "sk-litellm-made-key-model-budget";
    let url = litellm_db().await;
    exec(
        &url,
        &format!(
            r#"INSERT INTO "LiteLLM_VerificationToken" (token, key_name, key_alias, models, model_max_budget) VALUES ('{}', 'sk-...dget', 'per-model', ARRAY[]::text[], '{{"g": {{"budget_limit": 0.000001, "time_period": "1d"}}}}')"#,
            hash_key(KEY_MODEL)
        ),
    )
    .await;
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let gw = Gov::start(&config(&up.url(), &url, ""), BuildOptions::default()).await;
    let base = gw.url("");
    // The first call is within the budget (spend 0); it spends more than it.
    assert_eq!(chat(&base, KEY_MODEL, "g").await.status, 200);
    let a = chat(&base, KEY_MODEL, "g").await;
    assert_eq!(a.status, 422, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(
        a.error()["message"],
        format!(
            "LiteLLM Virtual Key: {}, key_alias: per-model, exceeded budget for model=g",
            hash_key(KEY_MODEL)
        )
    );
    assert_eq!(chat(&base, KEY_MODEL, "other").await.status, 200);
    gw.flush().await;
    let row = one(
        &url,
        &format!(
            r#"SELECT CAST(model_spend->>'g' AS DOUBLE PRECISION) AS g, model_spend ? 'other' AS other, CAST(model_max_budget->'g'->>'budget_reset_at' AS BIGINT) AS reset FROM "LiteLLM_VerificationToken" WHERE token = '{}'"#,
            hash_key(KEY_MODEL)
        ),
    )
    .await;
    let g: f64 = row.get("g");
    assert!(g > 0.0, "{g}");
    assert!(!row.get::<bool, _>("other"));
    let reset: i64 = row.get("reset");
    assert!(reset > 0);
    // Still refused after the key is read again from the database.
    let r = post(
        &gw.url("/key/update"),
        Some(MASTER),
        &json!({"key": KEY_MODEL, "metadata": {"x": 1}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(chat(&base, KEY_MODEL, "g").await.status, 422);

    // Made through llmgate: LiteLLM's column holds LiteLLM's `BudgetConfig` shape.
    let a = post(
        &gw.url("/key/generate"),
        Some(MASTER),
        &json!({"model_max_budget": {"g": {"max_budget": 5.0, "budget_duration": "30d", "rpm_limit": 9}}}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let token = a.json()["token"].as_str().unwrap().to_owned();
    let row = one(
        &url,
        &format!(
            r#"SELECT CAST(model_max_budget->'g'->>'max_budget' AS DOUBLE PRECISION) AS m, model_max_budget->'g'->>'budget_duration' AS d, CAST(model_max_budget->'g'->>'rpm_limit' AS BIGINT) AS r FROM "LiteLLM_VerificationToken" WHERE token = '{token}'"#
        ),
    )
    .await;
    assert_eq!(row.get::<f64, _>("m"), 5.0);
    assert_eq!(row.get::<String, _>("d"), "30d");
    assert_eq!(row.get::<i64, _>("r"), 9);
}

/// The spend history LiteLLM itself rolled up (`LiteLLM_DailyTeamSpend`, `LiteLLM_DailyUserSpend`,
/// `LiteLLM_DailyEndUserSpend` rows as its `DBSpendUpdateWriter` writes them: a `''` team for a
/// key without one) is what `/global/spend/report` and the daily activity routes answer with,
/// with no spend-log row at all, and llmgate's own calls are added to the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_read_the_daily_tables_litellm_wrote() {
    let url = litellm_db().await;
    seed(&url).await;
    let tok = hash_key(KEY_OK);
    exec(
        &url,
        &format!(
            r#"
INSERT INTO "LiteLLM_DailyTeamSpend" (id, team_id, date, api_key, model, model_group, custom_llm_provider, prompt_tokens, completion_tokens, spend, api_requests, successful_requests, failed_requests, updated_at)
  VALUES ('d1', 'team-a', '2025-03-04', '{tok}', 'gpt-4o-mini', 'g', 'openai', 100, 50, 1.25, 4, 3, 1, NOW()),
         ('d2', '', '2025-03-04', 'other-key', 'gpt-4o', 'other', 'openai', 10, 5, 0.5, 1, 1, 0, NOW());
INSERT INTO "LiteLLM_DailyUserSpend" (id, user_id, date, api_key, model, model_group, custom_llm_provider, prompt_tokens, completion_tokens, spend, api_requests, successful_requests, failed_requests, updated_at)
  VALUES ('u1', 'alice', '2025-03-04', '{tok}', 'gpt-4o-mini', 'g', 'openai', 100, 50, 1.25, 4, 3, 1, NOW());
INSERT INTO "LiteLLM_DailyEndUserSpend" (id, end_user_id, date, api_key, model, model_group, custom_llm_provider, prompt_tokens, completion_tokens, spend, api_requests, successful_requests, failed_requests, updated_at)
  VALUES ('e1', 'cust-1', '2025-03-04', '{tok}', 'gpt-4o-mini', 'g', 'openai', 100, 50, 1.25, 4, 3, 1, NOW());
"#
        ),
    )
    .await;
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let gw = Gov::start(&config(&up.url(), &url, ""), BuildOptions::default()).await;
    let at = |p: &str| gw.url(p);
    let day = "start_date=2025-03-04&end_date=2025-03-04";
    let v = get(&at(&format!("/global/spend/report?{day}")), Some(MASTER))
        .await
        .json();
    let teams = v[0]["teams"].as_array().unwrap();
    assert_eq!(teams.len(), 2, "{v}");
    let a = teams.iter().find(|t| t["team_name"] == "Team A").unwrap();
    assert!(
        (a["total_spend"].as_f64().unwrap() - 1.25).abs() < 1e-9,
        "{v}"
    );
    assert!(teams.iter().any(|t| t["team_name"] == "Unassigned Team"));
    let v = get(
        &at(&format!("/global/spend/report?{day}&group_by=customer")),
        Some(MASTER),
    )
    .await
    .json();
    assert_eq!(v[0]["customers"][0]["customer"], "cust-1", "{v}");
    let v = get(
        &at(&format!(
            "/global/spend/report?{day}&internal_user_id=alice"
        )),
        Some(MASTER),
    )
    .await
    .json();
    assert_eq!(v[0]["api_key"], tok.as_str(), "{v}");
    assert_eq!(v[0]["total_input_tokens"], 100, "{v}");
    let v = get(
        &at(&format!("/team/daily/activity?{day}&team_ids=team-a")),
        Some(MASTER),
    )
    .await
    .json();
    assert_eq!(v["metadata"]["total_failed_requests"], 1, "{v}");
    assert_eq!(v["metadata"]["total_api_requests"], 4, "{v}");

    // A call through llmgate today lands in LiteLLM's end-user and tag tables too.
    let a = post(
        &gw.url("/v1/chat/completions"),
        Some(KEY_OK),
        &json!({"model": "g", "user": "cust-2", "metadata": {"tags": ["nightly"]},
                "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    gw.flush().await;
    for (table, col, id) in [
        ("LiteLLM_DailyEndUserSpend", "end_user_id", "cust-2"),
        ("LiteLLM_DailyTagSpend", "tag", "nightly"),
    ] {
        let n: i64 = one(
            &url,
            &format!(
                r#"SELECT CAST(SUM(api_requests) AS BIGINT) FROM "{table}" WHERE {col} = '{id}'"#
            ),
        )
        .await
        .get(0);
        assert_eq!(n, 1, "{table}");
    }
    gw.shutdown().await;
}

/// Every row of `table` matching `filter`, as PostgreSQL's `row_to_json` writes it.
async fn rows_json(url: &str, table: &str, filter: &str) -> serde_json::Value {
    let mut conn = sqlx::postgres::PgConnection::connect(url).await.unwrap();
    let sql = format!(
        r#"SELECT CAST(COALESCE(json_agg(row_to_json(t)), '[]') AS TEXT) FROM "{table}" t WHERE {filter}"#
    );
    let text: String = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0);
    serde_json::from_str(&text).unwrap()
}

/// LiteLLM reads what llmgate writes: llmgate's management API and traffic write a team (with
/// model aliases and a member's budget), a user with a UI password, a key, an end user with a
/// region and spend into LiteLLM's own tables; LiteLLM's own pydantic row types
/// (`litellm.proxy._types`, the litellm package in `LLMGATE_PYTHON`) load every row, and
/// LiteLLM's `hash_token` accepts the key (tests/litellm_reads.py); the UI password is Argon2id in
/// LiteLLM's column. A UI user whose password LiteLLM stored signs in to llmgate with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litellm_reads_what_llmgate_writes() {
    let url = litellm_db().await;
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let gw = Gov::start(
        &config(&up.url(), &url, "").replace(
            "      api_key: sk-upstream-key\n  - model_name: other",
            "      api_key: sk-upstream-key\n      region_name: eu\n  - model_name: other",
        ),
        BuildOptions::default(),
    )
    .await;
    let _ = gw.url("");
    let ok = |a: &governance_common::Answer| {
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    };
    ok(&post(
        &gw.url("/team/new"),
        Some(MASTER),
        &json!({"team_id": "lt", "team_alias": "LiteLLM reads", "model_aliases": {"fast": "g"}}),
    )
    .await);
    ok(&post(
        &gw.url("/user/new"),
        Some(MASTER),
        &json!({"user_id": "lu", "user_email": "lu@example.com", "user_role": "internal_user", "password": "pw-from-llmgate", "auto_create_key": false}),
    )
    .await);
    ok(&post(
        &gw.url("/team/member_add"),
        Some(MASTER),
        &json!({"team_id": "lt", "member": {"user_id": "lu", "role": "user"}, "max_budget_in_team": 25}),
    )
    .await);
    ok(&post(
        &gw.url("/customer/new"),
        Some(MASTER),
        &json!({"user_id": "lc", "allowed_model_region": "eu"}),
    )
    .await);
    let a = post(
        &gw.url("/key/generate"),
        Some(MASTER),
        &json!({"team_id": "lt", "user_id": "lu", "key_alias": "lk", "max_budget": 10, "metadata": {"app": "x"}}),
    )
    .await;
    ok(&a);
    let key = a.json()["key"].as_str().unwrap().to_owned();
    let a = post(
        &gw.url("/v1/chat/completions"),
        Some(&key),
        &json!({"model": "fast", "user": "lc", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    ok(&a);
    assert_eq!(a.header("x-litellm-model-region"), Some("eu"));
    gw.flush().await;

    // The password llmgate wrote (Argon2id, in LiteLLM's column) signs in here.
    let a = post(
        &gw.url("/v2/login"),
        None,
        &json!({"username": "lu@example.com", "password": "pw-from-llmgate"}),
    )
    .await;
    ok(&a);
    let a = post(
        &gw.url("/v2/login"),
        None,
        &json!({"username": "lu@example.com", "password": "pw-wrong"}),
    )
    .await;
    assert_eq!(a.status, 401, "{}", String::from_utf8_lossy(&a.body));
    // Users whose password LiteLLM stored (its hash_token form, and its plain `/user/update` form)
    // sign in with it; the stored hash itself is not a password.
    exec(
        &url,
        &format!(
            r#"INSERT INTO "LiteLLM_UserTable" (user_id, user_email, user_role, password, teams, models) VALUES ('lh', 'lh@example.com', 'internal_user', '{}', ARRAY[]::text[], ARRAY[]::text[]), ('lp', 'lp@example.com', 'internal_user_viewer', 'plain-pw', ARRAY[]::text[], ARRAY[]::text[])"#,
            hash_key("pw-from-litellm")
        ),
    )
    .await;
    for (user, pw, status) in [
        ("lh@example.com", "pw-from-litellm".to_owned(), 200),
        ("lh@example.com", hash_key("pw-from-litellm"), 401),
        ("lp@example.com", "plain-pw".to_owned(), 200),
        ("lp@example.com", "plain-pw ".to_owned(), 401),
    ] {
        let a = post(
            &gw.url("/v2/login"),
            None,
            &json!({"username": user, "password": pw}),
        )
        .await;
        assert_eq!(
            a.status,
            status,
            "{user}: {}",
            String::from_utf8_lossy(&a.body)
        );
    }
    gw.shutdown().await;

    // Everything llmgate wrote, through LiteLLM's own types.
    let token = hash_key(&key);
    let mut tables = serde_json::Map::new();
    for (table, filter) in [
        ("LiteLLM_VerificationToken", format!("token = '{token}'")),
        ("LiteLLM_TeamTable", "team_id = 'lt'".to_owned()),
        (
            "LiteLLM_ModelTable",
            r#"id = (SELECT model_id FROM "LiteLLM_TeamTable" WHERE team_id = 'lt')"#.to_owned(),
        ),
        (
            "LiteLLM_TeamMembership",
            "team_id = 'lt' AND user_id = 'lu'".to_owned(),
        ),
        (
            "LiteLLM_BudgetTable",
            r#"budget_id = (SELECT budget_id FROM "LiteLLM_TeamMembership" WHERE team_id = 'lt' AND user_id = 'lu')"#.to_owned(),
        ),
        ("LiteLLM_UserTable", "user_id = 'lu'".to_owned()),
        ("LiteLLM_EndUserTable", "user_id = 'lc'".to_owned()),
        ("LiteLLM_SpendLogs", format!("api_key = '{token}'")),
    ] {
        tables.insert(table.to_owned(), rows_json(&url, table, &filter).await);
    }
    let input = json!({"tables": tables, "key": key, "password": "pw-from-llmgate"});
    let py = std::env::var("LLMGATE_PYTHON")
        .expect("LLMGATE_PYTHON (with litellm installed: `bash .ci/test`) is needed");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/litellm_reads.py");
    let mut child = std::process::Command::new(&py)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {py}: {e}"));
    {
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.to_string().as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "LiteLLM's types refused llmgate's rows:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(read["key"]["token_matches"], true, "{read}");
    assert_eq!(read["key"]["key_alias"], "lk");
    assert_eq!(read["key"]["team_id"], "lt");
    assert_eq!(read["key"]["user_id"], "lu");
    assert_eq!(read["key"]["max_budget"], 10.0);
    assert_eq!(read["key"]["metadata"]["app"], "x");
    assert!(read["key"]["spend"].as_f64().unwrap() > 0.0, "{read}");
    assert_eq!(read["team"]["team_id"], "lt");
    assert_eq!(read["team"]["model_aliases"], json!({"fast": "g"}));
    assert_eq!(read["team"]["members_with_roles"][0]["user_id"], "lu");
    assert_eq!(read["membership"]["max_budget_in_team"], 25.0);
    assert!(
        read["membership"]["spend"].as_f64().unwrap() > 0.0,
        "{read}"
    );
    // Argon2id in LiteLLM's column, not LiteLLM's unsalted SHA-256 (docs/ui.md): LiteLLM's row
    // type loads it; LiteLLM's own sign-in does not take it (nor, of course, a wrong password).
    assert_eq!(read["user"]["password_is_argon2id"], true, "{read}");
    assert_eq!(read["user"]["password_accepted"], false, "{read}");
    assert_eq!(read["user"]["wrong_password_accepted"], false, "{read}");
    assert_eq!(read["user"]["teams"], json!(["lt"]));
    assert_eq!(read["end_user"]["allowed_model_region"], "eu");
    assert!(read["end_user"]["spend"].as_f64().unwrap() > 0.0, "{read}");
    let logs = read["spend_logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1, "{read}");
    assert_eq!(logs[0]["user"], "lu");
    assert_eq!(logs[0]["team_id"], "lt");
    assert_eq!(logs[0]["end_user"], "lc");
    assert_eq!(logs[0]["status"], "success");
    assert_eq!(logs[0]["model_group"], "g", "the alias's group");
    assert_eq!(logs[0]["start_before_end"], true);
}
