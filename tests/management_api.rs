//! The management routes added toward LiteLLM's full API, over sockets, on SQLite (llmgate's
//! tables) and on PostgreSQL in LiteLLM's own schema (its published migrations; see
//! tests/litellm_db.rs): teams (block, unblock, members by id, models), users (update, delete,
//! list), budgets, `/key/health`, `/utils/token_counter`, key tags, refused fields, and the role
//! rules (proxy admin, `proxy_admin_viewer`, team admin, internal user).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod litellm_common;
mod support;

use governance_common::{chat, get, new_key, post, Gov, MASTER};
use llmgate::governance::BuildOptions;
use serde_json::{json, Value};
use support::{chat_completion, FakeUpstream, Reply};

fn config(upstream: &str) -> String {
    governance_common::config("g", upstream, "")
}

/// Creates a user through `/user/new`; returns its key.
async fn user(base: &str, id: &str, role: &str) -> String {
    let a = post(
        &format!("{base}/user/new"),
        Some(MASTER),
        &json!({"user_id": id, "user_role": role, "user_email": format!("{id}@example.com")}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    a.json()["key"].as_str().unwrap().to_owned()
}

/// Asserts a 400 whose `param` names `field`.
fn refused(a: &governance_common::Answer, field: &str) {
    assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(
        a.error()["param"],
        field,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
}

async fn routes(opts: BuildOptions) {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let gw = Gov::start(&config(&up.url()), opts).await;
    let base = gw.url("");
    let at = |p: &str| gw.url(p);

    // ---- teams: models, block ----
    let a = post(
        &at("/team/new"),
        Some(MASTER),
        &json!({"team_id": "t1", "models": ["g"]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let a = post(
        &at("/team/model/add"),
        Some(MASTER),
        &json!({"team_id": "t1", "models": ["other", "g"]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["models"], json!(["g", "other"]));
    let a = post(
        &at("/team/model/delete"),
        Some(MASTER),
        &json!({"team_id": "t1", "models": ["other"]}),
    )
    .await;
    assert_eq!(a.json()["models"], json!(["g"]));
    refused(
        &post(
            &at("/team/model/add"),
            Some(MASTER),
            &json!({"team_id": "t1"}),
        )
        .await,
        "models",
    );
    refused(
        &post(
            &at("/team/model/add"),
            Some(MASTER),
            &json!({"team_id": "t1", "models": "g"}),
        )
        .await,
        "models",
    );
    assert_eq!(
        post(
            &at("/team/model/add"),
            Some(MASTER),
            &json!({"team_id": "nope", "models": ["g"]})
        )
        .await
        .status,
        404
    );
    let (team_key, _) = new_key(&base, json!({"team_id": "t1"})).await;
    assert_eq!(chat(&base, &team_key, "g").await.status, 200);
    assert_eq!(chat(&base, &team_key, "other").await.status, 401);
    let a = post(&at("/team/block"), Some(MASTER), &json!({"team_id": "t1"})).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["blocked"], true);
    assert_eq!(chat(&base, &team_key, "g").await.status, 401);
    let a = post(
        &at("/team/unblock"),
        Some(MASTER),
        &json!({"team_id": "t1"}),
    )
    .await;
    assert_eq!(a.json()["blocked"], false);
    assert_eq!(chat(&base, &team_key, "g").await.status, 200);
    refused(
        &post(&at("/team/block"), Some(MASTER), &json!({})).await,
        "team_id",
    );

    // ---- users and roles ----
    let u1 = user(&base, "u1", "internal_user").await;
    let viewer = user(&base, "u2", "proxy_admin_viewer").await;
    let u3 = user(&base, "u3", "internal_user").await;
    let a = post(
        &at("/team/member_add"),
        Some(MASTER),
        &json!({"team_id": "t1", "member": [{"user_id": "u1", "role": "admin"}, {"user_id": "u3", "role": "user"}]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));

    // A team admin reads its team and manages its members; by id or e-mail.
    let a = get(&at("/team/info?team_id=t1"), Some(&u1)).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["team_id"], "t1");
    let a = post(
        &at("/team/member_update"),
        Some(&u1),
        &json!({"team_id": "t1", "user_id": "u3", "role": "admin"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["role"], "admin");
    assert_eq!(a.json()["user_id"], "u3");
    refused(
        &post(
            &at("/team/member_update"),
            Some(&u1),
            &json!({"team_id": "t1", "user_id": "u3", "max_budget_in_team": -5}),
        )
        .await,
        "max_budget_in_team",
    );
    refused(
        &post(
            &at("/team/member_update"),
            Some(&u1),
            &json!({"team_id": "t1", "user_id": "u3", "role": "owner"}),
        )
        .await,
        "role",
    );
    refused(
        &post(
            &at("/team/member_update"),
            Some(&u1),
            &json!({"team_id": "t1", "user_id": "nobody", "role": "user"}),
        )
        .await,
        "user_id",
    );
    let a = post(
        &at("/team/member_delete"),
        Some(&u1),
        &json!({"team_id": "t1", "user_id": "u3"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let members: Vec<Value> = a.json()["members_with_roles"].as_array().unwrap().clone();
    assert!(members.iter().all(|m| m["user_id"] != "u3"), "{members:?}");
    let a = get(&at("/user/info?user_id=u3"), Some(MASTER)).await;
    assert!(!a.json()["user_info"]["teams"]
        .as_array()
        .unwrap()
        .contains(&json!("t1")));
    // A non-member: no team info, no member management.
    assert_eq!(
        get(&at("/team/info?team_id=t1"), Some(&u3)).await.status,
        403
    );
    assert_eq!(
        get(&at("/team/info?team_id=nope"), Some(&u3)).await.status,
        403
    );
    assert_eq!(
        post(
            &at("/team/member_add"),
            Some(&u3),
            &json!({"team_id": "t1", "member": {"user_id": "u3", "role": "admin"}})
        )
        .await
        .status,
        403
    );
    // A plain member is not a team admin.
    post(
        &at("/team/member_add"),
        Some(MASTER),
        &json!({"team_id": "t1", "member": {"user_id": "u3"}}),
    )
    .await;
    assert_eq!(
        get(&at("/team/info?team_id=t1"), Some(&u3)).await.status,
        200
    );
    assert_eq!(
        post(
            &at("/team/member_delete"),
            Some(&u3),
            &json!({"team_id": "t1", "user_id": "u1"})
        )
        .await
        .status,
        403
    );
    // A team's admin makes keys for the team (for itself or a member); nothing else.
    let a = post(
        &at("/key/generate"),
        Some(&u1),
        &json!({"team_id": "t1", "user_id": "u3", "key_alias": "by-team-admin"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["team_id"], "t1");
    let made = a.json()["key"].as_str().unwrap().to_owned();
    assert_eq!(chat(&base, &made, "g").await.status, 200);
    post(&at("/team/new"), Some(MASTER), &json!({"team_id": "t2"})).await;
    // An internal user makes and lists keys for itself, as LiteLLM lets it (its key routes);
    // never for another user.
    let a = post(
        &at("/key/generate"),
        Some(&u1),
        &json!({"key_alias": "u1-own"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["user_id"], "u1");
    let own = a.json()["key"].as_str().unwrap().to_owned();
    // (No call with it here: a later check counts u1's spend rows.)
    let a = get(&at("/key/info"), Some(&own)).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let a = post(&at("/key/generate"), Some(&u1), &json!({"user_id": "u3"})).await;
    assert_eq!(a.status, 403, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(
        a.error()["message"],
        "User can only create keys for themselves. Got user_id=u3, Your ID=u1"
    );
    let a = get(&at("/key/list?return_full_object=true"), Some(&u1)).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let listed = a.json()["keys"].as_array().unwrap().clone();
    assert!(!listed.is_empty());
    assert!(listed.iter().all(|k| k["user_id"] == "u1"), "{listed:?}");
    assert_eq!(
        get(&at("/key/list?user_id=u3"), Some(&u1)).await.status,
        403
    );
    for (who, body) in [
        (&u1, json!({"team_id": "t2"})),
        (&u1, json!({"team_id": "t1", "user_id": "u2"})),
        (&u1, json!({"team_id": "nope"})),
        (&u3, json!({"team_id": "t1"})),
    ] {
        let a = post(&at("/key/generate"), Some(who), &body).await;
        assert_eq!(
            a.status,
            403,
            "{body}: {}",
            String::from_utf8_lossy(&a.body)
        );
    }
    // Team admins and internal users stay out of admin routes.
    assert_eq!(
        post(&at("/team/block"), Some(&u1), &json!({"team_id": "t1"}))
            .await
            .status,
        403
    );
    assert_eq!(get(&at("/user/list"), Some(&u1)).await.status, 403);

    // The viewer reads everything and changes nothing.
    for path in [
        "/user/list",
        "/key/list",
        "/team/list",
        "/budget/list",
        "/spend/logs",
        "/team/info?team_id=t1",
        "/user/info?user_id=u1",
    ] {
        let a = get(&at(path), Some(&viewer)).await;
        assert_eq!(
            a.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&a.body)
        );
    }
    for (path, body) in [
        ("/team/new", json!({"team_id": "v"})),
        ("/key/generate", json!({})),
        ("/budget/new", json!({"budget_id": "v"})),
        ("/user/update", json!({"user_id": "u1", "max_budget": 1})),
        (
            "/team/member_add",
            json!({"team_id": "t1", "member": {"user_id": "u2"}}),
        ),
    ] {
        let a = post(&at(path), Some(&viewer), &body).await;
        assert_eq!(
            a.status,
            403,
            "{path}: {}",
            String::from_utf8_lossy(&a.body)
        );
    }

    // /user/list: LiteLLM's page shape; the proxy-budget row is not a user.
    let a = get(&at("/user/list?page_size=2"), Some(MASTER)).await;
    assert_eq!(a.status, 200);
    let v = a.json();
    assert_eq!(v["total"], 3, "{v}");
    assert_eq!(v["users"].as_array().unwrap().len(), 2);
    assert_eq!(
        (
            v["page"].clone(),
            v["page_size"].clone(),
            v["total_pages"].clone()
        ),
        (json!(1), json!(2), json!(2))
    );
    let a = get(&at("/user/list?role=proxy_admin_viewer"), Some(MASTER)).await;
    assert_eq!(a.json()["users"][0]["user_id"], "u2");
    assert_eq!(a.json()["total"], 1);
    refused(
        &get(&at("/user/list?page_size=0"), Some(MASTER)).await,
        "page_size",
    );
    refused(
        &get(&at("/user/list?role=boss"), Some(MASTER)).await,
        "role",
    );
    refused(&get(&at("/user/list?page=x"), Some(MASTER)).await, "page");

    // /user/update: by id or e-mail; the user's keys follow at once.
    let a = post(
        &at("/user/update"),
        Some(MASTER),
        &json!({"user_id": "u3", "max_budget": 5, "models": ["g"]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["user_id"], "u3");
    assert_eq!(a.json()["data"]["max_budget"], 5.0);
    assert_eq!(chat(&base, &u3, "other").await.status, 401);
    let a = post(
        &at("/user/update"),
        Some(MASTER),
        &json!({"user_email": "u3@example.com", "user_role": "internal_user_viewer"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["data"]["user_role"], "internal_user_viewer");
    refused(
        &post(&at("/user/update"), Some(MASTER), &json!({"max_budget": 1})).await,
        "user_id",
    );
    refused(
        &post(
            &at("/user/update"),
            Some(MASTER),
            &json!({"user_id": "u3", "max_budget": "x"}),
        )
        .await,
        "max_budget",
    );
    refused(
        &post(
            &at("/user/update"),
            Some(MASTER),
            &json!({"user_id": "u3", "user_role": "god"}),
        )
        .await,
        "user_role",
    );
    assert_eq!(
        post(
            &at("/user/update"),
            Some(MASTER),
            &json!({"user_id": "ghost"})
        )
        .await
        .status,
        404
    );

    // /user/delete: the user, its keys and its team places go.
    let a = post(
        &at("/user/delete"),
        Some(MASTER),
        &json!({"user_ids": ["u3"]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["deleted_users"], json!(["u3"]));
    assert_eq!(chat(&base, &u3, "g").await.status, 401);
    assert_eq!(
        get(&at("/user/info?user_id=u3"), Some(MASTER)).await.status,
        404
    );
    let a = get(&at("/team/info?team_id=t1"), Some(MASTER)).await;
    let members = a.json()["team_info"]["members_with_roles"].clone();
    assert!(
        members
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["user_id"] != "u3"),
        "{members}"
    );
    assert_eq!(
        post(
            &at("/user/delete"),
            Some(MASTER),
            &json!({"user_ids": ["u3"]})
        )
        .await
        .status,
        404
    );
    refused(
        &post(&at("/user/delete"), Some(MASTER), &json!({"user_ids": []})).await,
        "user_ids",
    );

    // ---- budgets ----
    let a = post(&at("/budget/new"), Some(MASTER), &json!({"budget_id": "b1", "max_budget": 10, "budget_duration": "30d", "rpm_limit": 7, "soft_budget": 8})).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    assert_eq!(
        (
            v["budget_id"].clone(),
            v["max_budget"].clone(),
            v["rpm_limit"].clone(),
            v["soft_budget"].clone()
        ),
        (json!("b1"), json!(10.0), json!(7), json!(8.0))
    );
    assert!(v["budget_reset_at"].is_string(), "{v}");
    assert_eq!(v["created_by"], "default_user_id");
    refused(
        &post(
            &at("/budget/new"),
            Some(MASTER),
            &json!({"budget_id": "b1"}),
        )
        .await,
        "budget_id",
    );
    refused(
        &post(&at("/budget/new"), Some(MASTER), &json!({"max_budget": -1})).await,
        "max_budget",
    );
    refused(
        &post(
            &at("/budget/new"),
            Some(MASTER),
            &json!({"budget_duration": "soon"}),
        )
        .await,
        "budget_duration",
    );
    refused(
        &post(
            &at("/budget/new"),
            Some(MASTER),
            &json!({"model_max_budget": {"g": {"max_budget": 1}}}),
        )
        .await,
        "model_max_budget",
    );
    let a = post(
        &at("/budget/update"),
        Some(MASTER),
        &json!({"budget_id": "b1", "max_budget": 20}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["max_budget"], 20.0);
    assert_eq!(a.json()["rpm_limit"], 7);
    refused(
        &post(
            &at("/budget/update"),
            Some(MASTER),
            &json!({"max_budget": 1}),
        )
        .await,
        "budget_id",
    );
    assert_eq!(
        post(
            &at("/budget/update"),
            Some(MASTER),
            &json!({"budget_id": "none"})
        )
        .await
        .status,
        404
    );
    let a = post(
        &at("/budget/info"),
        Some(MASTER),
        &json!({"budgets": ["b1", "none"]}),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json().as_array().unwrap().len(), 1);
    assert_eq!(a.json()[0]["max_budget"], 20.0);
    refused(
        &post(&at("/budget/info"), Some(MASTER), &json!({"budgets": []})).await,
        "budgets",
    );
    let a = get(&at("/budget/list"), Some(MASTER)).await;
    assert!(a
        .json()
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["budget_id"] == "b1"));
    let a = post(&at("/budget/delete"), Some(MASTER), &json!({"id": "b1"})).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["budget_id"], "b1");
    assert_eq!(
        post(&at("/budget/delete"), Some(MASTER), &json!({"id": "b1"}))
            .await
            .status,
        404
    );
    refused(
        &post(&at("/budget/delete"), Some(MASTER), &json!({})).await,
        "id",
    );
    assert_eq!(
        post(&at("/budget/new"), Some(&u1), &json!({})).await.status,
        403
    );
    assert_eq!(post(&at("/budget/new"), None, &json!({})).await.status, 401);

    // ---- keys: tags, refused fields, health ----
    let a = post(&at("/key/generate"), Some(MASTER), &json!({"tags": ["prod", "batch"], "metadata": {"app": "x"}, "key_alias": "tagged", "max_parallel_requests": 3})).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(
        a.json()["metadata"],
        json!({"app": "x", "tags": ["prod", "batch"]})
    );
    assert_eq!(a.json()["max_parallel_requests"], 3);
    let tagged = a.json()["key"].as_str().unwrap().to_owned();
    let a = post(
        &at("/key/update"),
        Some(MASTER),
        &json!({"key": tagged, "tags": ["dev"]}),
    )
    .await;
    assert_eq!(a.json()["metadata"], json!({"app": "x", "tags": ["dev"]}));
    // Issue 23: `model_max_budget` is supported now (tests/budgets.rs); a malformed one is
    // still the 400 naming it.
    refused(
        &post(
            &at("/key/generate"),
            Some(MASTER),
            &json!({"model_max_budget": {"g": {"max_budget": -1}}}),
        )
        .await,
        "model_max_budget",
    );
    refused(
        &post(
            &at("/key/generate"),
            Some(MASTER),
            &json!({"budget_id": "b1"}),
        )
        .await,
        "budget_id",
    );
    refused(
        &post(&at("/key/generate"), Some(MASTER), &json!({"tags": "prod"})).await,
        "tags",
    );
    for k in [&tagged, &u1, &viewer] {
        let a = get(&at("/key/health"), Some(k)).await;
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        assert_eq!(a.json(), json!({"key": "healthy", "logging_details": null}));
    }
    assert_eq!(get(&at("/key/health"), None).await.status, 401);
    assert_eq!(
        get(&at("/key/health"), Some("sk-unknown-key")).await.status,
        401
    );

    // ---- /utils/token_counter ----
    let a = post(
        &at("/utils/token_counter"),
        Some(&u1),
        &json!({"model": "g", "messages": [{"role": "user", "content": "hello world"}]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    // ceil(11 / 4) + 3 for the message.
    assert_eq!(
        a.json(),
        json!({"total_tokens": 6, "request_model": "g", "model_used": "g", "tokenizer_type": "llmgate_estimate"})
    );
    let a = post(
        &at("/utils/token_counter"),
        Some(MASTER),
        &json!({"model": "g", "prompt": "12345678"}),
    )
    .await;
    assert_eq!(a.json()["total_tokens"], 2);
    refused(
        &post(
            &at("/utils/token_counter"),
            Some(MASTER),
            &json!({"messages": []}),
        )
        .await,
        "model",
    );
    refused(
        &post(
            &at("/utils/token_counter"),
            Some(MASTER),
            &json!({"model": "g"}),
        )
        .await,
        "messages",
    );
    refused(
        &post(
            &at("/utils/token_counter"),
            Some(MASTER),
            &json!({"model": "g", "messages": "hi"}),
        )
        .await,
        "messages",
    );
    assert_eq!(
        post(
            &at("/utils/token_counter"),
            None,
            &json!({"model": "g", "prompt": "x"})
        )
        .await
        .status,
        401
    );

    // ---- /spend/logs by key, user, team ----
    assert_eq!(chat(&base, &u1, "g").await.status, 200);
    gw.flush().await;
    let a = get(&at("/spend/logs?user_id=u1"), Some(MASTER)).await;
    let rows = a.json();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["user"], "u1");
    let a = get(&at(&format!("/spend/logs?api_key={u1}")), Some(MASTER)).await;
    assert_eq!(a.json()[0]["request_id"], rows[0]["request_id"]);
    let a = get(&at("/spend/logs?team_id=t1"), Some(MASTER)).await;
    assert!(a
        .json()
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["team_id"] == "t1"));
    assert!(!a.json().as_array().unwrap().is_empty());

    // ---- daily activity (LiteLLM's daily tables, or the spend log summed) ----
    let today = rows[0]["startTime"].as_str().unwrap()[..10].to_owned();
    let a = get(
        &at(&format!(
            "/user/daily/activity?start_date={today}&end_date={today}&user_id=u1"
        )),
        Some(MASTER),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    assert_eq!(v["results"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["results"][0]["date"], today);
    assert_eq!(v["results"][0]["metrics"]["api_requests"], 1, "{v}");
    assert_eq!(v["results"][0]["metrics"]["successful_requests"], 1, "{v}");
    assert_eq!(v["results"][0]["metrics"]["prompt_tokens"], 5, "{v}");
    assert_eq!(v["results"][0]["metrics"]["total_tokens"], 12, "{v}");
    let model = rows[0]["model"].as_str().unwrap();
    assert_eq!(
        v["results"][0]["breakdown"]["models"][model]["metrics"]["api_requests"], 1,
        "{v}"
    );
    assert_eq!(
        v["results"][0]["breakdown"]["users"]["u1"]["metrics"]["api_requests"], 1,
        "{v}"
    );
    assert_eq!(v["metadata"]["total_api_requests"], 1);
    assert_eq!(v["metadata"]["total_spend"], rows[0]["spend"]);
    // The team's three successful calls: two with the first team key, one with the key its
    // admin made (refused calls are not logged).
    let a = get(
        &at(&format!(
            "/team/daily/activity?start_date={today}&end_date={today}&team_ids=t1"
        )),
        Some(&viewer),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(
        a.json()["metadata"]["total_api_requests"],
        3,
        "{}",
        a.json()
    );
    assert_eq!(
        a.json()["results"][0]["breakdown"]["entities"]["t1"]["metrics"]["api_requests"],
        3
    );
    assert_eq!(
        a.json()["results"][0]["breakdown"]["api_keys"]
            .as_object()
            .unwrap()
            .len(),
        2
    );
    // Another day: nothing.
    let a = get(
        &at("/user/daily/activity?start_date=2001-01-01&end_date=2001-01-02"),
        Some(MASTER),
    )
    .await;
    assert_eq!(a.json()["results"], json!([]));
    refused(
        &get(
            &at("/user/daily/activity?end_date=2001-01-01"),
            Some(MASTER),
        )
        .await,
        "start_date",
    );
    refused(
        &get(
            &at("/user/daily/activity?start_date=2001-01-01&end_date=soon"),
            Some(MASTER),
        )
        .await,
        "end_date",
    );
    refused(
        &get(
            &at("/team/daily/activity?start_date=2001-01-02&end_date=2001-01-01"),
            Some(MASTER),
        )
        .await,
        "end_date",
    );
    assert_eq!(
        get(
            &at(&format!(
                "/user/daily/activity?start_date={today}&end_date={today}"
            )),
            Some(&u1)
        )
        .await
        .status,
        403
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_on_sqlite() {
    routes(BuildOptions::default().database_url("sqlite::memory:")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_on_litellms_own_database() {
    routes(BuildOptions::default().database_url(litellm_common::litellm_db().await)).await;
}

/// Organizations: create (with a budget row made from the body), teams joining one, members
/// (by id and by e-mail, created when missing), roles (an `org_admin` manages members, a member
/// reads its organization, another user does not), the organization's budget enforced on its
/// teams' calls, update, delete (its teams go too, as in LiteLLM).
async fn organizations(opts: BuildOptions) {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let gw = Gov::start(&config(&up.url()), opts).await;
    let base = gw.url("");
    let at = |p: &str| gw.url(p);
    let call = |method: &'static str, path: &str, key: &str, body: Value| {
        let url = at(path);
        let key = key.to_owned();
        async move { governance_common::call(method, &url, Some(&key), Some(&body)).await }
    };

    // ---- create ----
    let a = post(
        &at("/organization/new"),
        Some(MASTER),
        &json!({"organization_id": "o1", "organization_alias": "Org One", "models": ["g"], "max_budget": 0.000_000_1, "metadata": {"a": 1}}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let o = a.json();
    assert_eq!(o["organization_id"], "o1");
    assert_eq!(o["organization_alias"], "Org One");
    assert_eq!(o["models"], json!(["g"]));
    assert_eq!(o["spend"], 0.0);
    assert_eq!(o["litellm_budget_table"]["max_budget"], 0.000_000_1);
    assert_eq!(o["budget_id"], o["litellm_budget_table"]["budget_id"]);
    // The same id again, a missing alias, a malformed budget: 400 naming the field.
    refused(
        &post(
            &at("/organization/new"),
            Some(MASTER),
            &json!({"organization_id": "o1", "organization_alias": "x"}),
        )
        .await,
        "organization_id",
    );
    refused(
        &post(&at("/organization/new"), Some(MASTER), &json!({})).await,
        "organization_alias",
    );
    refused(
        &post(
            &at("/organization/new"),
            Some(MASTER),
            &json!({"organization_alias": "x", "max_budget": -1}),
        )
        .await,
        "max_budget",
    );
    refused(
        &post(
            &at("/organization/new"),
            Some(MASTER),
            &json!({"organization_alias": "x", "budget_id": "no-such-budget"}),
        )
        .await,
        "budget_id",
    );

    // ---- a team in the organization; an unknown organization is refused ----
    let a = post(
        &at("/team/new"),
        Some(MASTER),
        &json!({"team_id": "ot", "organization_id": "o1"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["organization_id"], "o1");
    refused(
        &post(
            &at("/team/new"),
            Some(MASTER),
            &json!({"team_id": "ot2", "organization_id": "nope"}),
        )
        .await,
        "organization_id",
    );

    // ---- members: admin by id (created), member by e-mail of an existing user ----
    let outsider = user(&base, "outsider", "internal_user").await;
    let _ = user(&base, "bob", "internal_user").await;
    let a = post(
        &at("/organization/member_add"),
        Some(MASTER),
        &json!({"organization_id": "o1", "member": [{"user_id": "oadmin", "role": "org_admin"}, {"user_email": "bob@example.com", "role": "internal_user"}]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    assert_eq!(v["organization_id"], "o1");
    assert_eq!(v["updated_users"][0]["user_id"], "oadmin");
    assert_eq!(v["updated_users"][1]["user_id"], "bob");
    assert_eq!(
        v["updated_organization_memberships"][0]["user_role"],
        "org_admin"
    );
    // The created user exists.
    let a = get(&at("/user/info?user_id=oadmin"), Some(MASTER)).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    refused(
        &post(
            &at("/organization/member_add"),
            Some(MASTER),
            &json!({"organization_id": "o1", "member": {"user_id": "x", "role": "emperor"}}),
        )
        .await,
        "role",
    );
    let a = post(
        &at("/organization/member_add"),
        Some(MASTER),
        &json!({"organization_id": "nope", "member": {"user_id": "x", "role": "internal_user"}}),
    )
    .await;
    assert_eq!(a.status, 404);

    // Keys of the org admin and of bob.
    let (oadmin, _) = new_key(&base, json!({"user_id": "oadmin"})).await;
    let (bob, _) = new_key(&base, json!({"user_id": "bob"})).await;
    // The org admin manages members; bob (internal_user) and an outsider may not.
    let a = call(
        "PATCH",
        "/organization/member_update",
        &oadmin,
        json!({"organization_id": "o1", "user_id": "bob", "role": "internal_user_viewer", "max_budget_in_organization": 5.0}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["user_role"], "internal_user_viewer");
    assert_eq!(a.json()["litellm_budget_table"]["max_budget"], 5.0);
    for k in [&bob, &outsider] {
        let a = call(
            "PATCH",
            "/organization/member_update",
            k,
            json!({"organization_id": "o1", "user_id": "oadmin", "role": "internal_user"}),
        )
        .await;
        assert_eq!(a.status, 403, "{}", String::from_utf8_lossy(&a.body));
    }
    // Members read their organization; the outsider neither reads it nor lists it.
    let a = get(&at("/organization/info?organization_id=o1"), Some(&bob)).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["members"].as_array().unwrap().len(), 2);
    assert_eq!(a.json()["teams"][0]["team_id"], "ot");
    assert_eq!(
        get(
            &at("/organization/info?organization_id=o1"),
            Some(&outsider)
        )
        .await
        .status,
        403
    );
    let a = get(&at("/organization/list"), Some(&outsider)).await;
    assert_eq!(a.json(), json!([]));
    let a = get(&at("/organization/list"), Some(&bob)).await;
    assert_eq!(a.json()[0]["organization_id"], "o1");
    // Only admins create, update, delete.
    assert_eq!(
        post(
            &at("/organization/new"),
            Some(&oadmin),
            &json!({"organization_alias": "mine"})
        )
        .await
        .status,
        403
    );
    let a = get(&at("/organization/info?organization_id=nope"), Some(MASTER)).await;
    assert_eq!(a.status, 404);

    // ---- the organization's budget on its team's calls ----
    let (team_key, _) = new_key(&base, json!({"team_id": "ot"})).await;
    let a = chat(&base, &team_key, "g").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    gw.flush().await;
    let a = get(&at("/organization/info?organization_id=o1"), Some(MASTER)).await;
    let spent = a.json()["spend"].as_f64().unwrap();
    assert!(spent > 0.0, "{}", a.json());
    let a = chat(&base, &team_key, "g").await;
    assert_eq!(a.status, 422, "{}", String::from_utf8_lossy(&a.body));
    let msg = a.error()["message"].as_str().unwrap().to_owned();
    assert!(
        msg.starts_with("Budget has been exceeded! Organization=o1 Current cost: "),
        "{msg}"
    );
    // Raising the budget through /organization/update lets the team call again.
    let a = call(
        "PATCH",
        "/organization/update",
        MASTER,
        json!({"organization_id": "o1", "max_budget": 100.0, "organization_alias": "Org 1", "metadata": {"b": 2}}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["organization_alias"], "Org 1");
    assert_eq!(a.json()["metadata"], json!({"a": 1, "b": 2}));
    assert_eq!(a.json()["litellm_budget_table"]["max_budget"], 100.0);
    let a = chat(&base, &team_key, "g").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));

    // ---- member_delete, delete ----
    let a = call(
        "DELETE",
        "/organization/member_delete",
        &oadmin,
        json!({"organization_id": "o1", "user_email": "bob@example.com"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["user_id"], "bob");
    let a = call(
        "DELETE",
        "/organization/member_delete",
        MASTER,
        json!({"organization_id": "o1", "user_id": "bob"}),
    )
    .await;
    assert_eq!(a.status, 404);
    let a = call(
        "DELETE",
        "/organization/delete",
        MASTER,
        json!({"organization_ids": ["o1"]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()[0]["organization_id"], "o1");
    assert_eq!(
        get(&at("/team/info?team_id=ot"), Some(MASTER)).await.status,
        404
    );
    let a = call(
        "DELETE",
        "/organization/delete",
        MASTER,
        json!({"organization_ids": ["o1"]}),
    )
    .await;
    assert_eq!(a.status, 404);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organizations_on_sqlite() {
    organizations(BuildOptions::default().database_url("sqlite::memory:")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organizations_on_litellms_own_database() {
    organizations(BuildOptions::default().database_url(litellm_common::litellm_db().await)).await;
}

/// Posts a chat call for the end user `user` (the body's `user`).
async fn chat_as(base: &str, key: &str, user: &str) -> governance_common::Answer {
    post(
        &format!("{base}/v1/chat/completions"),
        Some(key),
        &json!({"model": "g", "user": user, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
}

/// End users (`/customer/*`, `/end_user/*`): create with a budget row made from the body, read,
/// update, block (also one without a row), unblock, list, delete; on the request path a blocked
/// end user is refused (400), one over its budget too (422), and its calls are charged to it.
async fn end_users(opts: BuildOptions) {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    // `g` serves in region `eu`: `cust1` (`allowed_model_region: eu`) is routed there.
    let cfg = config(&up.url()).replace(
        "api_key: sk-upstream-key\n  - model_name: other",
        "api_key: sk-upstream-key\n      region_name: eu\n  - model_name: other",
    );
    assert!(cfg.contains("region_name: eu"), "{cfg}");
    let gw = Gov::start(&cfg, opts).await;
    let base = gw.url("");
    let at = |p: &str| gw.url(p);
    let (key, token) = new_key(&base, json!({})).await;

    let a = post(
        &at("/customer/new"),
        Some(MASTER),
        &json!({"user_id": "cust1", "alias": "Customer 1", "max_budget": 0.000_000_1, "allowed_model_region": "eu"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    assert_eq!(v["user_id"], "cust1");
    assert_eq!(v["alias"], "Customer 1");
    assert_eq!(v["allowed_model_region"], "eu");
    assert_eq!(v["blocked"], false);
    assert_eq!(v["litellm_budget_table"]["max_budget"], 0.000_000_1);
    refused(
        &post(
            &at("/customer/new"),
            Some(MASTER),
            &json!({"user_id": "cust1"}),
        )
        .await,
        "user_id",
    );
    refused(
        &post(
            &at("/end_user/new"),
            Some(MASTER),
            &json!({"user_id": "c9", "allowed_model_region": "mars"}),
        )
        .await,
        "allowed_model_region",
    );
    refused(
        &post(&at("/customer/new"), Some(MASTER), &json!({"alias": "x"})).await,
        "user_id",
    );
    let a = get(&at("/customer/info?end_user_id=nope"), Some(MASTER)).await;
    assert_eq!(a.status, 404);
    assert_eq!(
        a.error()["message"],
        "End User Id=nope does not exist in db"
    );
    // Admin routes: another key may not.
    assert_eq!(get(&at("/customer/list"), Some(&key)).await.status, 403);

    // ---- the request path: charged, then over budget ----
    let a = chat_as(&base, &key, "cust1").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    gw.flush().await;
    let a = get(&at("/end_user/info?end_user_id=cust1"), Some(MASTER)).await;
    assert!(a.json()["spend"].as_f64().unwrap() > 0.0, "{}", a.json());
    let logs = get(&at(&format!("/spend/logs?api_key={token}")), Some(MASTER)).await;
    assert_eq!(logs.json()[0]["end_user"], "cust1", "{}", logs.json());
    let a = chat_as(&base, &key, "cust1").await;
    assert_eq!(a.status, 422, "{}", String::from_utf8_lossy(&a.body));
    let msg = a.error()["message"].as_str().unwrap().to_owned();
    assert!(
        msg.starts_with("ExceededBudget: End User=cust1 over budget. Spend="),
        "{msg}"
    );
    // Another end user, and one without a row, are not affected.
    assert_eq!(chat_as(&base, &key, "nobody").await.status, 200);
    // A larger budget through /customer/update lets it call again.
    let a = post(
        &at("/customer/update"),
        Some(MASTER),
        &json!({"user_id": "cust1", "max_budget": 100.0, "alias": "C1"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["alias"], "C1");
    assert_eq!(a.json()["litellm_budget_table"]["max_budget"], 100.0);
    assert_eq!(chat_as(&base, &key, "cust1").await.status, 200);
    let a = post(
        &at("/customer/update"),
        Some(MASTER),
        &json!({"user_id": "nope", "alias": "x"}),
    )
    .await;
    assert_eq!(a.status, 404);

    // ---- block, unblock ----
    let a = post(
        &at("/customer/block"),
        Some(MASTER),
        &json!({"user_ids": ["cust2"]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["blocked_users"][0]["user_id"], "cust2");
    let a = chat_as(&base, &key, "cust2").await;
    assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(
        a.error()["message"],
        "User blocked from making LLM API Calls. User=cust2"
    );
    let a = post(
        &at("/end_user/unblock"),
        Some(MASTER),
        &json!({"user_ids": ["cust2"]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["blocked_users"], json!([]));
    assert_eq!(chat_as(&base, &key, "cust2").await.status, 200);

    // ---- list, delete ----
    let a = get(&at("/customer/list"), Some(MASTER)).await;
    assert_eq!(a.json().as_array().unwrap().len(), 2, "{}", a.json());
    let a = post(
        &at("/customer/delete"),
        Some(MASTER),
        &json!({"user_ids": ["cust1", "nope"]}),
    )
    .await;
    assert_eq!(a.status, 404);
    assert_eq!(
        a.error()["message"],
        "End User Id(s)=nope do not exist in db"
    );
    let a = post(
        &at("/customer/delete"),
        Some(MASTER),
        &json!({"user_ids": ["cust1", "cust2"]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["deleted_customers"], 2);
    assert_eq!(
        get(&at("/customer/list"), Some(MASTER)).await.json(),
        json!([])
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_users_on_sqlite() {
    end_users(BuildOptions::default().database_url("sqlite::memory:")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_users_on_litellms_own_database() {
    end_users(BuildOptions::default().database_url(litellm_common::litellm_db().await)).await;
}

/// `/spend/logs/v2` paging and filters, and `/global/spend/report` grouped by team, customer and
/// key, over real calls.
async fn spend_reports(opts: BuildOptions) {
    let up = FakeUpstream::start().await;
    up.set_default(Reply::json(200, chat_completion("hello")));
    let gw = Gov::start(&config(&up.url()), opts).await;
    let base = gw.url("");
    let at = |p: &str| gw.url(p);
    let a = post(
        &at("/team/new"),
        Some(MASTER),
        &json!({"team_id": "rt", "team_alias": "Reporting"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let (team_key, team_token) = new_key(&base, json!({"team_id": "rt"})).await;
    let (solo_key, solo_token) = new_key(&base, json!({})).await;
    assert_eq!(chat_as(&base, &team_key, "cust-a").await.status, 200);
    assert_eq!(chat_as(&base, &team_key, "cust-b").await.status, 200);
    assert_eq!(chat_as(&base, &solo_key, "cust-a").await.status, 200);
    gw.flush().await;

    // ---- paging ----
    let a = get(&at("/spend/logs/v2?page=1&page_size=2"), Some(MASTER)).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    assert_eq!(v["total"], 3);
    assert_eq!(v["total_pages"], 2);
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let first: Vec<Value> = v["data"].as_array().unwrap().clone();
    let v = get(&at("/spend/logs/v2?page=2&page_size=2"), Some(MASTER))
        .await
        .json();
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert!(!first.contains(&v["data"][0]), "pages do not overlap");
    assert_eq!(
        get(&at("/spend/logs/ui?page=3&page_size=2"), Some(MASTER))
            .await
            .json()["data"],
        json!([])
    );
    let v = get(&at("/spend/logs/v2?end_user=cust-a"), Some(MASTER))
        .await
        .json();
    assert_eq!(v["total"], 2);
    let v = get(
        &at(&format!(
            "/spend/logs/v2?api_key={team_key}&status_filter=success"
        )),
        Some(MASTER),
    )
    .await
    .json();
    assert_eq!(v["total"], 2);
    assert_eq!(
        get(&at("/spend/logs/v2?status_filter=failure"), Some(MASTER))
            .await
            .json()["total"],
        0
    );
    let today = first[0]["startTime"].as_str().unwrap()[..10].to_owned();
    let v = get(
        &at(&format!(
            "/spend/logs/v2?start_date={today}%2000:00:00&end_date={today}%2023:59:59"
        )),
        Some(MASTER),
    )
    .await
    .json();
    assert_eq!(v["total"], 3, "{v}");
    for (q, field) in [
        ("page_size=101", "page_size"),
        ("page=0", "page"),
        ("status_filter=maybe", "status_filter"),
        ("start_date=2024-01-01%2025:00:00", "start_date"),
    ] {
        refused(
            &get(&at(&format!("/spend/logs/v2?{q}")), Some(MASTER)).await,
            field,
        );
    }

    // ---- /global/spend/report ----
    let report = |q: String| {
        let url = at(&format!("/global/spend/report?{q}"));
        async move { get(&url, Some(MASTER)).await }
    };
    let a = report(format!("start_date={today}&end_date={today}")).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["group_by_day"].as_str().unwrap()[..10], today);
    let teams = v[0]["teams"].as_array().unwrap();
    let names: Vec<&str> = teams
        .iter()
        .map(|t| t["team_name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Reporting") && names.contains(&"Unassigned Team"),
        "{v}"
    );
    let total: f64 = teams
        .iter()
        .map(|t| t["total_spend"].as_f64().unwrap())
        .sum();
    assert!(total > 0.0, "{v}");
    let v = report(format!(
        "start_date={today}&end_date={today}&group_by=customer"
    ))
    .await
    .json();
    let customers = v[0]["customers"].as_array().unwrap();
    assert_eq!(customers.len(), 2, "{v}");
    let v = report(format!(
        "start_date={today}&end_date={today}&group_by=api_key"
    ))
    .await
    .json();
    let keys: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["api_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 2, "{v}");
    assert!(keys.contains(&team_token.as_str()) && keys.contains(&solo_token.as_str()));
    // The team key made two calls: it is the most expensive, and first.
    assert_eq!(keys[0], team_token);
    assert_eq!(v[0]["model_details"][0]["model"], "fake-model");
    let v = report(format!(
        "start_date={today}&end_date={today}&team_id=rt&group_by=customer"
    ))
    .await
    .json();
    assert_eq!(v[0]["customers"].as_array().unwrap().len(), 2, "{v}");
    // Another day: nothing.
    assert_eq!(
        report("start_date=2001-01-01&end_date=2001-01-02".into())
            .await
            .json(),
        json!([])
    );
    refused(&report(format!("end_date={today}")).await, "start_date");
    refused(
        &report(format!(
            "start_date={today}&end_date={today}&group_by=model"
        ))
        .await,
        "group_by",
    );
    refused(
        &report(format!("start_date=yesterday&end_date={today}")).await,
        "start_date",
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_reports_on_sqlite() {
    spend_reports(BuildOptions::default().database_url("sqlite::memory:")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_reports_on_litellms_own_database() {
    spend_reports(BuildOptions::default().database_url(litellm_common::litellm_db().await)).await;
}

/// Group `g` in two regions (one upstream each), `other` in none.
fn regions_config(eu: &str, us: &str) -> String {
    format!(
        "model_list:\n  - model_name: g\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {eu}/v1\n      api_key: sk-upstream-key\n      region_name: eu\n  - model_name: g\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: {us}/v1\n      api_key: sk-upstream-key\n      region_name: us\n  - model_name: other\n    litellm_params:\n      model: openai/gpt-4o\n      api_base: {us}/v1\n      api_key: sk-upstream-key\ngeneral_settings:\n  master_key: {MASTER}\n"
    )
}

/// Per-member team budgets (`max_budget_in_team` on `/team/member_add|member_update`, enforced
/// on the member's calls through the team with LiteLLM's message), team model aliases
/// (`model_aliases` on `/team/new|update`: a team key calling the alias reaches the aliased
/// group), and end users' `allowed_model_region` (only deployments of that `region_name`, none
/// is a 400, the answer carries `x-litellm-model-region`).
async fn members_aliases_regions(opts: BuildOptions) {
    let eu = FakeUpstream::start().await;
    eu.set_default(Reply::json(200, chat_completion("from eu")));
    let us = FakeUpstream::start().await;
    us.set_default(Reply::json(200, chat_completion("from us")));
    let gw = Gov::start(&regions_config(&eu.url(), &us.url()), opts).await;
    let base = gw.url("");
    let at = |p: &str| gw.url(p);

    // ---- per-member budgets ----
    let a = post(&at("/team/new"), Some(MASTER), &json!({"team_id": "tm"})).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    refused(
        &post(
            &at("/team/member_add"),
            Some(MASTER),
            &json!({"team_id": "tm", "member": {"user_id": "mb"}, "max_budget_in_team": "x"}),
        )
        .await,
        "max_budget_in_team",
    );
    let a = post(
        &at("/team/member_add"),
        Some(MASTER),
        &json!({"team_id": "tm", "member": [{"user_id": "mb"}], "max_budget_in_team": 0.000_000_1}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(
        a.json()["updated_team_memberships"][0]["litellm_budget_table"]["max_budget"],
        0.000_000_1,
        "{}",
        a.json()
    );
    let a = post(
        &at("/team/member_add"),
        Some(MASTER),
        &json!({"team_id": "tm", "member": {"user_id": "free"}}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let (mb_key, _) = new_key(&base, json!({"team_id": "tm", "user_id": "mb"})).await;
    let (free_key, _) = new_key(&base, json!({"team_id": "tm", "user_id": "free"})).await;
    let (solo_key, _) = new_key(&base, json!({"user_id": "mb"})).await;
    // Spend 0 is within the budget; after one priced call it is over it.
    assert_eq!(chat(&base, &mb_key, "g").await.status, 200);
    gw.flush().await;
    let a = chat(&base, &mb_key, "g").await;
    assert_eq!(a.status, 422, "{}", String::from_utf8_lossy(&a.body));
    let msg = a.error()["message"].as_str().unwrap().to_owned();
    assert!(
        msg.starts_with("Budget has been exceeded! Current cost: ")
            && msg.ends_with(", Max budget: 1e-07"),
        "{msg}"
    );
    assert_eq!(a.error()["type"], "budget_exceeded");
    // Another member of the team, and the same user outside the team, are not limited by it.
    assert_eq!(chat(&base, &free_key, "g").await.status, 200);
    assert_eq!(chat(&base, &solo_key, "g").await.status, 200);
    // The membership, its spend and its budget row are in /team/info.
    let a = get(&at("/team/info?team_id=tm"), Some(MASTER)).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let ms = a.json()["team_memberships"].clone();
    let mb = ms
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == "mb")
        .cloned()
        .unwrap_or_else(|| panic!("{ms}"));
    assert!(mb["spend"].as_f64().unwrap() > 0.0, "{mb}");
    assert_eq!(
        mb["litellm_budget_table"]["max_budget"], 0.000_000_1,
        "{mb}"
    );
    // Raising the member's budget lets it call again (its cached key is dropped).
    let a = post(
        &at("/team/member_update"),
        Some(MASTER),
        &json!({"team_id": "tm", "user_id": "mb", "max_budget_in_team": 100}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["max_budget_in_team"], 100.0);
    assert_eq!(chat(&base, &mb_key, "g").await.status, 200);
    // Per-member rate limits are not enforced: refused, not stored.
    refused(
        &post(
            &at("/team/member_update"),
            Some(MASTER),
            &json!({"team_id": "tm", "user_id": "mb", "rpm_limit": 5}),
        )
        .await,
        "rpm_limit",
    );

    // ---- team model aliases ----
    refused(
        &post(
            &at("/team/new"),
            Some(MASTER),
            &json!({"team_id": "bad", "model_aliases": {"fast": 3}}),
        )
        .await,
        "model_aliases",
    );
    let a = post(
        &at("/team/new"),
        Some(MASTER),
        &json!({"team_id": "ta", "models": ["g", "fast"], "model_aliases": {"fast": "other"}}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(
        a.json()["litellm_model_table"]["model_aliases"],
        json!({"fast": "other"})
    );
    let (ta_key, _) = new_key(&base, json!({"team_id": "ta"})).await;
    let (plain_key, _) = new_key(&base, json!({})).await;
    let a = chat(&base, &ta_key, "fast").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header("x-litellm-model-group"), Some("other"));
    assert_eq!(
        us.last_request().unwrap().json()["model"],
        "gpt-4o",
        "the alias reached group `other`"
    );
    // The alias is the team's way in: `other` itself is not in the team's models.
    assert_eq!(chat(&base, &ta_key, "other").await.status, 401);
    // Another key has no such alias: an unknown model (400, as LiteLLM's invalid model name).
    assert_eq!(chat(&base, &plain_key, "fast").await.status, 400);
    let a = get(&at("/team/info?team_id=ta"), Some(MASTER)).await;
    assert_eq!(
        a.json()["team_info"]["litellm_model_table"]["model_aliases"]["fast"],
        "other"
    );
    let a = post(
        &at("/team/update"),
        Some(MASTER),
        &json!({"team_id": "ta", "model_aliases": {"fast": "g"}}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let a = chat(&base, &ta_key, "fast").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header("x-litellm-model-group"), Some("g"));

    // ---- regions ----
    for (id, region) in [("c-eu", "eu"), ("c-us", "us")] {
        let a = post(
            &at("/customer/new"),
            Some(MASTER),
            &json!({"user_id": id, "allowed_model_region": region}),
        )
        .await;
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    }
    let (key, _) = new_key(&base, json!({})).await;
    for (id, region, up, other) in [("c-eu", "eu", &eu, &us), ("c-us", "us", &us, &eu)] {
        let (before, before_other) = (up.hits(), other.hits());
        for _ in 0..4 {
            let a = chat_as(&base, &key, id).await;
            assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
            assert_eq!(a.header("x-litellm-model-region"), Some(region));
        }
        assert_eq!(up.hits() - before, 4, "{id}: every call in {region}");
        assert_eq!(other.hits(), before_other, "{id}: none outside {region}");
    }
    // A group without a deployment in the region: refused, nothing sent.
    let hits = (eu.hits(), us.hits());
    let a = post(
        &at("/v1/chat/completions"),
        Some(&key),
        &json!({"model": "other", "user": "c-eu", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.error()["code"], "no_deployment_in_region");
    assert_eq!((eu.hits(), us.hits()), hits);
    // Without a region (no end user, or one without a row): both regions serve, no header.
    let a = chat(&base, &key, "g").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("x-litellm-model-region"), None);
    let a = chat_as(&base, &key, "no-row").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("x-litellm-model-region"), None);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_aliases_regions_on_sqlite() {
    members_aliases_regions(BuildOptions::default().database_url("sqlite::memory:")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_aliases_regions_on_litellms_own_database() {
    members_aliases_regions(
        BuildOptions::default().database_url(litellm_common::litellm_db().await),
    )
    .await;
}
