//! Many instances: two `llmgate` processes on one config share cooldowns and rpm usage through a
//! real Redis (`router_settings.redis_url`).
//!
//! Needs `LLMGATE_TEST_REDIS_URL` (set by `bash .ci/test`, which starts a throw-away Redis). Without
//! it the tests fail and say so: they never skip silently.

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use llmgate::clock::Clock;
use serde_json::json;
use support::{
    gw,
    process::{Binary, TempFile},
    FakeUpstream, Reply,
};

fn redis_url() -> String {
    std::env::var("LLMGATE_TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!("LLMGATE_TEST_REDIS_URL is not set: run `bash .ci/test`, which starts a throw-away Redis and sets it")
    })
}

/// A running `llmgate` process (killed when dropped) and its config file.
struct Gateway {
    bin: Binary,
    _config: TempFile,
}

impl Gateway {
    /// Starts one process; a log line saying Redis state is "NOT shared" fails the start.
    fn start(config: &str) -> Self {
        let file = TempFile::new("llmgate-routing", "yaml", config);
        Self {
            bin: Binary::spawn(&file.0, &["NOT shared"]),
            _config: file,
        }
    }

    fn url(&self) -> String {
        self.bin.url("/v1/chat/completions")
    }
}

fn entry(group: &str, up: &FakeUpstream, extra: &str) -> String {
    // A fresh id per run, so that keys left in Redis by an earlier run never match.
    format!(
        "  - model_name: {group}\n    litellm_params:\n      model: openai/m\n      api_base: {}/v1\n      api_key: sk-up\n{extra}    model_info:\n      id: dep-{:016x}\n",
        up.url(),
        fastrand::u64(..)
    )
}

fn chat(model: &str) -> serde_json::Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn a_deployment_cooled_by_one_instance_is_skipped_by_the_other() {
    let redis = redis_url();
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    a.set_default(
        Reply::json(429, json!({"error": {"message": "slow down", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}))
            .header("retry-after", "30"),
    );
    let cfg = format!(
        "model_list:\n{}{}router_settings:\n  num_retries: 1\n  redis_url: {redis}\n",
        entry("g", &a, "      order: 1\n"),
        entry("g", &b, "      order: 2\n"),
    );
    let one = Gateway::start(&cfg);
    let two = Gateway::start(&cfg);

    // Instance one: a answers 429 and cools down; the retry goes to b.
    let ans = gw::post_json(&one.url(), &chat("g")).await;
    assert_eq!(ans.status, 200);
    assert_eq!((a.hits(), b.hits()), (1, 1));

    // Instance two never saw a fail, and order 1 would pick a: it skips a all the same.
    for _ in 0..5 {
        let ans = gw::post_json(&two.url(), &chat("g")).await;
        assert_eq!(ans.status, 200);
        assert_eq!(ans.headers["x-litellm-attempted-retries"], "0");
    }
    assert_eq!((a.hits(), b.hits()), (1, 6));
}

/// Two gateways in this process, each with its own router and Redis connection (what two
/// instances share is Redis alone; that two processes do is shown above). Usage windows are
/// per minute on the gateways' clock: a manual one, moved to the start of a minute and held
/// there, so the calls never straddle two windows (the binary has no test clock, so this is
/// not a child-process test).
#[tokio::test]
async fn rpm_limits_hold_across_instances() {
    let redis = redis_url();
    let clock = Clock::manual();
    clock.advance(clock.to_next_minute());
    let up = FakeUpstream::start().await;
    let cfg = format!(
        "model_list:\n{}router_settings:\n  routing_strategy: usage-based-routing-v2\n  num_retries: 0\n  redis_url: {redis}\n",
        entry("g", &up, "      rpm: 3\n"),
    );
    let one = gw::TestGateway::start_on(&cfg, &clock).await;
    let two = gw::TestGateway::start_on(&cfg, &clock).await;
    let mut ok = 0;
    let mut limited = 0;
    for i in 0..8 {
        let gw = if i % 2 == 0 { &one } else { &two };
        let ans = gw::post_json(&gw.url("/v1/chat/completions"), &chat("g")).await;
        match ans.status {
            200 => ok += 1,
            429 => {
                limited += 1;
                let e = ans.error();
                assert!(e["message"].as_str().unwrap().contains("rpm"), "{e}");
            }
            s => panic!("unexpected status {s}"),
        }
    }
    assert_eq!((ok, limited), (3, 5));
    assert_eq!(up.hits(), 3);
    // The next minute is a new window, on both.
    clock.advance(Duration::from_secs(60));
    for gw in [&one, &two] {
        let ans = gw::post_json(&gw.url("/v1/chat/completions"), &chat("g")).await;
        assert_eq!(ans.status, 200);
    }
    assert_eq!(up.hits(), 5);
}
