//! Daily spend rollups (LiteLLM's `LiteLLM_Daily*Spend` tables; llmgate's `llmgate_daily_*_spend`,
//! migration 10): calls over real sockets fill them in the spend writer's batch, and
//! `/global/spend/report`, `/user/daily/activity` and `/team/daily/activity` answer from them
//! — shown by deleting the spend log after the calls: the answers stay. On SQLite, on llmgate's
//! tables in PostgreSQL, and on LiteLLM's own database (made by LiteLLM's migrations). Also:
//! an existing llmgate database is rolled up by the migration, and concurrent writers add up.
//!
//! Needs `LLMGATE_TEST_DATABASE_URL` (and, for LiteLLM's database, `LLMGATE_LITELLM_MIGRATIONS`
//! or `LLMGATE_PYTHON`); `bash .ci/test` provides them. A missing one fails the test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod litellm_common;
mod support;

use governance_common::{fresh_pg, get, new_key, post, Gov, TempDir, MASTER};
use llmgate::{
    governance::BuildOptions,
    store::{ReportGroup, SpendFilter, SpendRow, Store, MIGRATIONS},
};
use serde_json::{json, Value};
use sqlx::{Connection as _, Row as _};
use support::{chat_completion, FakeUpstream, Reply};

/// Runs `sql` on the database at `url` (SQLite or PostgreSQL).
async fn exec(url: &str, sql: &str) {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The first column of the first row of `sql`, as an integer.
async fn count(url: &str, sql: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let row = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    row.try_get::<i64, _>(0).unwrap()
}

fn config(upstream: &str) -> String {
    governance_common::config("g", upstream, "")
}

async fn chat(base: &str, key: &str, end_user: &str, tags: &[&str]) -> u16 {
    post(
        &format!("{base}/v1/chat/completions"),
        Some(key),
        &json!({"model": "g", "user": end_user, "metadata": {"tags": tags},
                "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .status
}

/// Which tables the database at `url` holds the log and rollups in.
struct Tables {
    log: &'static str,
    tag: &'static str,
    tag_col: &'static str,
    team: &'static str,
}

const OURS: Tables = Tables {
    log: "llmgate_spend_logs",
    tag: "llmgate_daily_tag_spend",
    tag_col: "tag",
    team: "llmgate_daily_team_spend",
};
const LITELLMS: Tables = Tables {
    log: "\"LiteLLM_SpendLogs\"",
    tag: "\"LiteLLM_DailyTagSpend\"",
    tag_col: "tag",
    team: "\"LiteLLM_DailyTeamSpend\"",
};

/// Three successful calls and a failed one, by a team's key (with a user) and a key of no team;
/// then the log is emptied, and every report and activity route still answers from the rollups.
async fn reports_from_rollups(url: String, t: Tables) {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let gw = Gov::start(
        &config(&up.url()),
        BuildOptions::default().database_url(url.clone()),
    )
    .await;
    let base = gw.url("");
    let at = |p: &str| gw.url(p);
    let a = post(
        &at("/team/new"),
        Some(MASTER),
        &json!({"team_id": "rt", "team_alias": "Reporting"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let a = post(
        &at("/user/new"),
        Some(MASTER),
        &json!({"user_id": "ru", "auto_create_key": false}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let (team_key, team_token) = new_key(&base, json!({"team_id": "rt", "user_id": "ru"})).await;
    let (solo_key, solo_token) = new_key(&base, json!({})).await;
    assert_eq!(chat(&base, &team_key, "cust-a", &["blue"]).await, 200);
    assert_eq!(
        chat(&base, &team_key, "cust-b", &["blue", "red"]).await,
        200
    );
    assert_eq!(chat(&base, &solo_key, "cust-a", &[]).await, 200);
    // A call the upstream refuses: logged as a failure (400s are not retried).
    up.enqueue(Reply::json(
        400,
        json!({"error": {"message": "bad", "type": "invalid_request_error"}}),
    ));
    assert_eq!(chat(&base, &team_key, "cust-a", &[]).await, 400);
    gw.flush().await;
    let logged = count(
        &url,
        &format!("SELECT CAST(COUNT(*) AS BIGINT) FROM {}", t.log),
    )
    .await;
    assert_eq!(logged, 4);
    let today = get(&at("/spend/logs?limit=1"), Some(MASTER)).await.json()[0]["startTime"]
        .as_str()
        .unwrap()[..10]
        .to_owned();
    let cost_of = |v: &Value| v.as_f64().unwrap();
    let one_call = cost_of(
        &get(
            &at(&format!("/spend/logs?api_key={solo_token}")),
            Some(MASTER),
        )
        .await
        .json()[0]["spend"],
    );
    assert!(one_call > 0.0);

    // The tag rollup: one row per tag, with the calls that carried it.
    let blue = count(
        &url,
        &format!(
            "SELECT CAST(SUM(api_requests) AS BIGINT) FROM {} WHERE {} = 'blue'",
            t.tag, t.tag_col
        ),
    )
    .await;
    assert_eq!(blue, 2);
    // The team rollup holds every call: the team's and, under '', the others.
    let unassigned = count(
        &url,
        &format!(
            "SELECT CAST(SUM(api_requests) AS BIGINT) FROM {} WHERE team_id = ''",
            t.team
        ),
    )
    .await;
    assert_eq!(unassigned, 1);

    // From here on the log is empty: what answers is the rollups.
    exec(&url, &format!("DELETE FROM {}", t.log)).await;

    let report = |q: String| {
        let u = at(&format!(
            "/global/spend/report?start_date={today}&end_date={today}{q}"
        ));
        async move {
            let a = get(&u, Some(MASTER)).await;
            assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
            a.json()
        }
    };
    let v = report(String::new()).await;
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["group_by_day"].as_str().unwrap()[..10], today);
    let team = |name: &str| {
        v[0]["teams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["team_name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {v}"))
    };
    let reporting = team("Reporting");
    assert!(
        (cost_of(&reporting["total_spend"]) - (one_call + one_call)).abs() < 1e-9,
        "{v}"
    );
    assert!((cost_of(&team("Unassigned Team")["total_spend"]) - one_call).abs() < 1e-9);
    assert_eq!(reporting["metadata"][0]["api_key"], team_token.as_str());

    let v = report("&group_by=customer".into()).await;
    let customers = v[0]["customers"].as_array().unwrap();
    assert_eq!(customers.len(), 2, "{v}");
    let a = customers
        .iter()
        .find(|c| c["customer"] == "cust-a")
        .unwrap();
    assert!(
        (cost_of(&a["total_spend"]) - (one_call + one_call)).abs() < 1e-9,
        "{v}"
    );

    let v = report("&group_by=api_key".into()).await;
    let keys: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["api_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, [team_token.as_str(), solo_token.as_str()], "{v}");
    // The model the upstream named; the refused call has none (`""`, costing 0).
    let models: Vec<&str> = v[0]["model_details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    assert_eq!(models, ["", "fake-model"], "{v}");
    // One user's keys: the user rollup.
    let v = report("&internal_user_id=ru".into()).await;
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["api_key"], team_token.as_str());
    // A team and an end user at once: no rollup holds both, the log answers (now empty).
    assert_eq!(
        report("&team_id=rt&group_by=customer".into()).await,
        json!([])
    );

    let v = get(
        &at(&format!(
            "/team/daily/activity?start_date={today}&end_date={today}&team_ids=rt"
        )),
        Some(MASTER),
    )
    .await
    .json();
    assert_eq!(v["metadata"]["total_api_requests"], 3, "{v}");
    assert_eq!(v["metadata"]["total_successful_requests"], 2, "{v}");
    assert_eq!(v["metadata"]["total_failed_requests"], 1, "{v}");
    let v = get(
        &at(&format!(
            "/user/daily/activity?start_date={today}&end_date={today}"
        )),
        Some(MASTER),
    )
    .await
    .json();
    // Calls without a user are not a user's activity.
    let users = v["results"][0]["breakdown"]["users"].as_object().unwrap();
    assert_eq!(users.keys().collect::<Vec<_>>(), ["ru"], "{v}");
    assert_eq!(v["metadata"]["total_api_requests"], 3, "{v}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_read_the_rollups_on_sqlite() {
    let dir = TempDir::new();
    let url = format!("sqlite://{}?mode=rwc", dir.0.join("r.db").display());
    reports_from_rollups(url, OURS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_read_the_rollups_on_postgres() {
    reports_from_rollups(fresh_pg().await, OURS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_read_the_rollups_on_litellms_own_database() {
    reports_from_rollups(litellm_common::litellm_db().await, LITELLMS).await;
}

fn row(id: usize, team: &str, spend: f64, start_time: i64) -> SpendRow {
    SpendRow {
        request_id: format!("r{id}"),
        api_key: "hash-k".into(),
        team_id: Some(team.into()),
        user_id: Some("u".into()),
        model_group: "g".into(),
        model: Some("m".into()),
        custom_llm_provider: Some("openai".into()),
        prompt_tokens: 2,
        completion_tokens: 3,
        total_tokens: 5,
        spend,
        start_time,
        end_time: start_time + 10,
        status: "success".into(),
        ..SpendRow::default()
    }
}

/// A database made before migration 10, with a spend log, gets its rollups from that log when
/// the new version starts, and its reports are the same as before.
#[tokio::test]
async fn an_existing_database_is_rolled_up_by_the_migration() {
    let dir = TempDir::new();
    let url = format!("sqlite://{}?mode=rwc", dir.0.join("old.db").display());
    // The schema as migrations 1-5 left it, with three calls over two days.
    let mut sql = String::from(
        "CREATE TABLE llmgate_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);\n",
    );
    for (v, m) in MIGRATIONS.iter().filter(|(v, _)| *v <= 5) {
        sql.push_str(m);
        sql.push_str(";\n");
        sql.push_str(&format!(
            "INSERT INTO llmgate_migrations VALUES ({v}, 0);\n"
        ));
    }
    let day = 86_400_000_i64 * 20_000; // 2024-10-04
    for (i, (team, t)) in [("a", day + 5), ("a", day + 7), ("b", day + 86_400_000)]
        .into_iter()
        .enumerate()
    {
        sql.push_str(&format!(
            "INSERT INTO llmgate_spend_logs (request_id, api_key, team_id, user_id, model_group, model, custom_llm_provider, prompt_tokens, completion_tokens, total_tokens, spend, start_time, end_time, latency_ms, cache_hit, status, request_tags) VALUES ('r{i}', 'hash-k', '{team}', 'u', 'g', 'm', 'openai', 2, 3, 5, 0.25, {t}, {t}, 1, 0, 'success', '[]');\n"
        ));
    }
    exec(&url, &sql).await;
    let s = Store::connect(&url).await.unwrap();
    let f = SpendFilter::default();
    let (from, to) = (day, day + 2 * 86_400_000);
    let rolled = s
        .spend_report_grouped(from, to, &f, ReportGroup::Team)
        .await
        .unwrap();
    let raw = s.spend_report(from, to, &f).await.unwrap();
    assert_eq!(rolled.len(), 2, "{rolled:?}");
    assert_eq!(rolled, raw);
    assert!((rolled[0].spend - 0.5).abs() < 1e-12);
    assert_eq!(rolled[0].total_tokens, 10);
    assert_eq!(
        count(
            &url,
            "SELECT CAST(SUM(api_requests) AS BIGINT) FROM llmgate_daily_user_spend WHERE user_id = 'u'"
        )
        .await,
        3
    );
    // A second start does not roll the log up again.
    drop(s);
    let s = Store::connect(&url).await.unwrap();
    let again = s
        .spend_report_grouped(from, to, &f, ReportGroup::Team)
        .await
        .unwrap();
    assert_eq!(again, rolled);
}

/// Several writers adding to the same rollup rows at once (two gateways, or a retried batch
/// beside a new one) lose nothing: the upsert adds in the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_add_up_on_postgres() {
    let url = fresh_pg().await;
    let a = Store::connect(&url).await.unwrap();
    let b = Store::connect(&url).await.unwrap();
    let now = 86_400_000_i64 * 20_100;
    let mut tasks = Vec::new();
    for w in 0..8 {
        let s = if w % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            for batch in 0..5 {
                let rows: Vec<SpendRow> = (0..20)
                    .map(|i| {
                        row(
                            w * 1000 + batch * 100 + i,
                            if i % 2 == 0 { "x" } else { "y" },
                            0.125,
                            now + i as i64,
                        )
                    })
                    .collect();
                s.write_spend(&rows).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        count(
            &url,
            "SELECT CAST(SUM(api_requests) AS BIGINT) FROM llmgate_daily_user_spend"
        )
        .await,
        800
    );
    assert_eq!(
        count(
            &url,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM llmgate_daily_team_spend"
        )
        .await,
        2
    );
    let rows = a
        .spend_report_grouped(
            now,
            now + 86_400_000,
            &SpendFilter::default(),
            ReportGroup::ApiKey,
        )
        .await
        .unwrap();
    let total: f64 = rows.iter().map(|r| r.spend).sum();
    assert!((total - 100.0).abs() < 1e-9, "{total}");
    // A retried batch (its commit reported as failed) adds only the rows it stores.
    let retry: Vec<SpendRow> = (0..3).map(|i| row(i, "x", 1.0, now)).collect();
    a.rewrite_spend(&retry).await.unwrap();
    assert_eq!(
        count(
            &url,
            "SELECT CAST(SUM(api_requests) AS BIGINT) FROM llmgate_daily_user_spend"
        )
        .await,
        800
    );
}
