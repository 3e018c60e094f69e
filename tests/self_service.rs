//! Self-service reads over HTTP (issue 17 item 7): a virtual key reads its own `/key/info` and
//! its user's `/user/info`, as LiteLLM allows; another key's or user's info stays forbidden, and
//! every other management route stays admin-only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod governance_common;
mod support;

use governance_common::{get, new_key, post, Gov, MASTER};
use llmgate::{governance::BuildOptions, store::hash_key};
use serde_json::json;
use support::FakeUpstream;

#[tokio::test]
async fn a_key_reads_itself_and_its_user_but_no_one_else() {
    let up = FakeUpstream::start().await;
    let gw = Gov::start(
        &governance_common::config("g", &up.url(), ""),
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let base = gw.url("");
    for user in ["u1", "u2"] {
        let a = post(
            &gw.url("/user/new"),
            Some(MASTER),
            &json!({"user_id": user}),
        )
        .await;
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    }
    let (a, a_token) = new_key(&base, json!({"user_id": "u1", "key_alias": "a"})).await;
    let (_, b_token) = new_key(&base, json!({"user_id": "u1", "key_alias": "b"})).await;
    let (_, c_token) = new_key(&base, json!({"user_id": "u2", "key_alias": "c"})).await;
    let (lone, lone_token) = new_key(&base, json!({"key_alias": "lone"})).await;

    // Its own info: without `key` (the calling key), by key, by token.
    for path in [
        "/key/info".to_owned(),
        format!("/key/info?key={a}"),
        format!("/key/info?key={a_token}"),
    ] {
        let r = get(&gw.url(&path), Some(&a)).await;
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let v = r.json();
        assert_eq!(v["key"], a_token.as_str(), "{path}");
        assert_eq!(v["info"]["key_alias"], "a", "{path}");
        assert_eq!(v["info"]["user_id"], "u1", "{path}");
        // The secret itself is never echoed.
        assert!(!String::from_utf8_lossy(&r.body).contains(&a), "{path}");
    }
    assert_eq!(a_token, hash_key(&a));
    // Another key of its user: allowed (LiteLLM's `key_info.user_id == caller's user_id`).
    let r = get(&gw.url(&format!("/key/info?key={b_token}")), Some(&a)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["info"]["key_alias"], "b");
    // Another user's key, a key that does not exist, and (for a key without a user) any other
    // key: 403, with nothing saying whether the key exists.
    for (caller, other) in [
        (&a, c_token.clone()),
        (&a, lone_token.clone()),
        (&a, "sk-no-such-key-0000".to_owned()),
        (&lone, a_token.clone()),
    ] {
        let r = get(&gw.url(&format!("/key/info?key={other}")), Some(caller)).await;
        assert_eq!(
            r.status,
            403,
            "{other}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.error()["type"], "auth_error");
    }
    let r = get(&gw.url("/key/info"), Some(&lone)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["info"]["key_alias"], "lone");

    // Its user's info: without `user_id` (the key's user), or by its own id.
    for path in ["/user/info", "/user/info?user_id=u1"] {
        let r = get(&gw.url(path), Some(&a)).await;
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let v = r.json();
        assert_eq!(v["user_id"], "u1");
        let mut aliases: Vec<_> = v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|k| k["key_alias"].as_str())
            .collect();
        aliases.sort_unstable();
        assert_eq!(aliases, ["a", "b"], "{path}");
    }
    // Another user, and any user for a key that belongs to none: 403.
    for (caller, path) in [
        (&a, "/user/info?user_id=u2"),
        (&lone, "/user/info"),
        (&lone, "/user/info?user_id=u1"),
    ] {
        let r = get(&gw.url(path), Some(caller)).await;
        assert_eq!(
            r.status,
            403,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.error()["type"], "auth_error");
    }

    // An internal user's key makes and lists keys of its own user (LiteLLM's `internal_user`
    // key routes); a key without a user, or another user's `user_id`, may not.
    let made = post(&gw.url("/key/generate"), Some(&a), &json!({})).await;
    assert_eq!(made.status, 200, "{}", String::from_utf8_lossy(&made.body));
    assert_eq!(made.json()["user_id"], "u1");
    assert_eq!(
        post(
            &gw.url("/key/generate"),
            Some(&a),
            &json!({"user_id": "u2"})
        )
        .await
        .status,
        403
    );
    assert_eq!(
        post(&gw.url("/key/generate"), Some(&lone), &json!({}))
            .await
            .status,
        403
    );
    let listed = get(&gw.url("/key/list"), Some(&a)).await;
    assert_eq!(
        listed.status,
        200,
        "{}",
        String::from_utf8_lossy(&listed.body)
    );
    assert!(
        String::from_utf8_lossy(&listed.body).contains(&a_token),
        "{}",
        String::from_utf8_lossy(&listed.body)
    );
    assert!(
        !String::from_utf8_lossy(&listed.body).contains(&c_token),
        "another user's key is listed: {}",
        String::from_utf8_lossy(&listed.body)
    );
    assert_eq!(get(&gw.url("/key/list"), Some(&lone)).await.status, 403);
    // Everything else stays admin-only.
    assert_eq!(get(&gw.url("/spend/logs"), Some(&a)).await.status, 403);
    // No key, an unknown key, a blocked key: 401.
    assert_eq!(get(&gw.url("/key/info"), None).await.status, 401);
    assert_eq!(
        get(&gw.url("/key/info"), Some("sk-bogus-0000000"))
            .await
            .status,
        401
    );
    let r = post(&gw.url("/key/block"), Some(MASTER), &json!({"key": a})).await;
    assert_eq!(r.status, 200);
    assert_eq!(get(&gw.url("/key/info"), Some(&a)).await.status, 401);
    // The admin reads any key and any user, and must name the key.
    let r = get(&gw.url(&format!("/key/info?key={c_token}")), Some(MASTER)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["info"]["key_alias"], "c");
    assert_eq!(
        get(&gw.url("/user/info?user_id=u2"), Some(MASTER))
            .await
            .status,
        200
    );
    let r = get(&gw.url("/key/info"), Some(MASTER)).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error()["param"], "key");
}

/// An internal user updates, regenerates and deletes its own keys, as LiteLLM lets it; another
/// user's key (or a team's, for a member who is not its admin) is a 403 and stays as it was; a
/// team's admin deletes its team's keys; a `proxy_admin_viewer` changes nothing.
#[tokio::test]
async fn an_internal_user_manages_its_own_keys_and_no_one_elses() {
    let up = FakeUpstream::start().await;
    let gw = Gov::start(
        &governance_common::config("g", &up.url(), ""),
        BuildOptions::default().database_url("sqlite::memory:"),
    )
    .await;
    let base = gw.url("");
    for (user, role) in [
        ("u1", "internal_user"),
        ("u2", "internal_user"),
        ("v1", "internal_user_viewer"),
        ("ro", "proxy_admin_viewer"),
    ] {
        let a = post(
            &gw.url("/user/new"),
            Some(MASTER),
            &json!({"user_id": user, "user_role": role, "auto_create_key": false}),
        )
        .await;
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    }
    let t = post(
        &gw.url("/team/new"),
        Some(MASTER),
        &json!({"team_id": "t1", "members_with_roles": [
            {"user_id": "u1", "role": "admin"}, {"user_id": "u2", "role": "user"}
        ]}),
    )
    .await;
    assert_eq!(t.status, 200, "{}", String::from_utf8_lossy(&t.body));
    let (a, a_token) = new_key(&base, json!({"user_id": "u1", "key_alias": "a"})).await;
    let (_, b_token) = new_key(&base, json!({"user_id": "u1", "key_alias": "b"})).await;
    let (c, c_token) = new_key(&base, json!({"user_id": "u2", "key_alias": "c"})).await;
    let (_, team_token) = new_key(
        &base,
        json!({"user_id": "u2", "team_id": "t1", "key_alias": "tk"}),
    )
    .await;
    let (v, v_token) = new_key(&base, json!({"user_id": "v1", "key_alias": "v"})).await;
    let (ro, _) = new_key(&base, json!({"user_id": "ro", "key_alias": "ro"})).await;

    // Its own key: limits, alias and metadata change.
    let r = post(
        &gw.url("/key/update"),
        Some(&a),
        &json!({"key": b_token, "key_alias": "b2", "max_budget": 5.0, "rpm_limit": 7}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let info = get(&gw.url(&format!("/key/info?key={b_token}")), Some(MASTER))
        .await
        .json();
    assert_eq!(info["info"]["key_alias"], "b2");
    assert_eq!(info["info"]["max_budget"], 5.0);
    assert_eq!(info["info"]["rpm_limit"], 7);

    // Another user's key, a team's key, a key that does not exist: 403, nothing changed.
    for (caller, token) in [
        (&a, c_token.as_str()),
        (&c, a_token.as_str()),
        (&c, team_token.as_str()),
        (&a, "sk-no-such-key-0000"),
        (&v, v_token.as_str()),
    ] {
        let r = post(
            &gw.url("/key/update"),
            Some(caller),
            &json!({"key": token, "key_alias": "stolen"}),
        )
        .await;
        assert_eq!(
            r.status,
            403,
            "{token}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.error()["type"], "auth_error");
    }
    for token in [&c_token, &team_token] {
        let info = get(&gw.url(&format!("/key/info?key={token}")), Some(MASTER))
            .await
            .json();
        assert_ne!(info["info"]["key_alias"], "stolen", "{info}");
    }
    // The team's admin updates the team's key (LiteLLM's team-member permissions).
    let r = post(
        &gw.url("/key/update"),
        Some(&a),
        &json!({"key": team_token, "rpm_limit": 3, "team_id": "t1"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["rpm_limit"], 3);
    // Its own key handed to another user, moved into a team, or its spend rewritten: 403.
    for body in [
        json!({"key": a_token, "user_id": "u2"}),
        json!({"key": a_token, "team_id": "t1"}),
        json!({"key": a_token, "spend": 0.0}),
    ] {
        let r = post(&gw.url("/key/update"), Some(&a), &body).await;
        assert_eq!(
            r.status,
            403,
            "{body}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let r = post(
        &gw.url("/key/update"),
        Some(&a),
        &json!({"key": a_token, "user_id": "u2"}),
    )
    .await;
    assert_eq!(
        r.error()["message"],
        format!("User=u2 is not allowed to update key={a_token} to belong to user=u1")
    );
    // The viewer writes nothing.
    let r = post(
        &gw.url("/key/update"),
        Some(&ro),
        &json!({"key": c_token, "key_alias": "x"}),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        post(
            &gw.url("/key/delete"),
            Some(&ro),
            &json!({"keys": [c_token]})
        )
        .await
        .status,
        403
    );

    // Regenerate: its own key (the old secret stops working, the new one works); another's: 403.
    let r = post(
        &gw.url("/key/regenerate"),
        Some(&c),
        &json!({"key": a_token}),
    )
    .await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    let r = post(
        &gw.url(&format!("/key/{c_token}/regenerate")),
        Some(&a),
        &json!({}),
    )
    .await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    let (_, d_token) = new_key(&base, json!({"user_id": "u2", "key_alias": "d"})).await;
    let r = post(
        &gw.url("/key/regenerate"),
        Some(&c),
        &json!({"key": d_token}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let fresh = r.json()["key"].as_str().unwrap().to_owned();
    assert_eq!(get(&gw.url("/key/info"), Some(&fresh)).await.status, 200);

    // Delete: a batch with another's key deletes nothing; its own keys go.
    let r = post(
        &gw.url("/key/delete"),
        Some(&a),
        &json!({"keys": [b_token, c_token]}),
    )
    .await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.error()["message"],
        "You are not authorized to delete this key"
    );
    assert_eq!(
        get(&gw.url(&format!("/key/info?key={b_token}")), Some(MASTER))
            .await
            .status,
        200,
        "a refused batch deleted a key"
    );
    // A team member who is not the team's admin may not delete the team's key (even its own).
    let r = post(
        &gw.url("/key/delete"),
        Some(&c),
        &json!({"keys": [team_token]}),
    )
    .await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    let r = post(
        &gw.url("/key/delete"),
        Some(&a),
        &json!({"keys": [b_token]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["deleted_keys"], json!([b_token]));
    // The team's admin deletes the team's key.
    let r = post(
        &gw.url("/key/delete"),
        Some(&a),
        &json!({"keys": [team_token]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // Its own calling key too: afterwards it is unknown (401).
    let r = post(&gw.url("/key/delete"), Some(&a), &json!({"keys": [a]})).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(get(&gw.url("/key/info"), Some(&a)).await.status, 401);
}
