//! The loader's tests.

use std::collections::HashMap;

use serde_json::Value;

use super::*;
use crate::secret::Secret;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

fn load(text: &str, env: &[(&str, &str)]) -> Result<Loaded, ConfigErrors> {
    Config::from_yaml_str_with_env(text, "test.yaml", &env_of(env))
}

fn load_ok(text: &str, env: &[(&str, &str)]) -> Loaded {
    match load(text, env) {
        Ok(l) => l,
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

fn load_err(text: &str) -> Vec<ConfigError> {
    match load(text, &[]) {
        Ok(l) => panic!("expected errors, got {:?}", l.config),
        Err(e) => e.0,
    }
}

fn ci_template() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/configs/litellm-ci.template.yaml"
    );
    std::fs::read_to_string(path)
        .expect("CI template")
        .replace("@MOCK@", "http://127.0.0.1:18001")
        .replace("@DEAD@", "http://127.0.0.1:1")
}

/// Found by tests/fuzz_config.rs: a tagged, list or mapping key (here at the top level)
/// gave an error with no key.
#[test]
fn a_key_that_is_not_a_scalar_is_named() {
    for (text, key) in [
        ("!tag litellm_settings: {}\n", "[\"!tag litellm_settings\"]"),
        ("[a, b]: 1\n", "[\"- a - b\"]"),
        (
            "litellm_settings:\n  ? {x: 1}\n  : 2\n",
            "litellm_settings[\"x: 1\"]",
        ),
    ] {
        let errors = load_err(text);
        assert_eq!(errors.len(), 1, "{text}: {errors:?}");
        assert_eq!(errors[0].key, key, "{text}");
        assert!(errors[0]
            .reason
            .contains("not a list, a mapping or a tagged value"));
    }
}

#[test]
fn litellm_ci_config_loads() {
    let text = ci_template();
    let entries = text
        .lines()
        .filter(|l| l.trim_start().starts_with("- model_name:"))
        .count();
    assert!(entries > 20, "template has {entries} entries");
    // LiteLLM's own CI config asks for one thing llmgate does not do yet, which changes money:
    // refused by name. (`success_callback: ["prometheus"]` is implemented, see `callbacks`, and
    // `store_model_in_db` too, see docs/operations.md.)
    let env = [("OPENAI_API_KEY", "sk-openai-from-env")];
    let refused = match load(&text, &env) {
        Ok(_) => panic!("refused keys loaded"),
        Err(e) => e.0,
    };
    let keys: Vec<&str> = refused.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        ["model_list[5].litellm_params.input_cost_per_second",]
    );
    assert!(refused
        .iter()
        .all(|e| e.reason.starts_with("not supported by llmgate yet: ")
            && e.reason.contains("allow_unsupported_config")));
    // The operator accepts the risk: each becomes a warning.
    let text = text.replace(
        "general_settings:\n",
        "general_settings:\n  allow_unsupported_config: true\n",
    );
    let loaded = load_ok(&text, &env);
    for key in keys {
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.starts_with(key) && w.contains("allow_unsupported_config is true")),
            "{key}: {:?}",
            loaded.warnings
        );
    }
    let c = &loaded.config;
    assert_eq!(c.model_list.len(), entries);

    let first = &c.model_list[0];
    assert_eq!(first.model_name, "gpt-3.5-turbo-end-user-test");
    assert_eq!(first.litellm_params.model, "gpt-3.5-turbo");
    assert_eq!(
        first.litellm_params.api_base.as_deref(),
        Some("http://127.0.0.1:18001/v1")
    );
    assert_eq!(
        first.litellm_params.api_key.as_ref().map(Secret::expose),
        Some("sk-openai-from-env")
    );
    assert_eq!(
        first.litellm_params.other.get("region_name"),
        Some(&Value::from("eu"))
    );
    assert_eq!(first.model_info.get("id"), Some(&Value::from("1")));

    let large = c.deployments("gpt-3.5-turbo-large").next().expect("large");
    assert_eq!(large.litellm_params.rpm, Some(480));
    assert_eq!(large.litellm_params.timeout, Some(300.0));
    assert_eq!(large.litellm_params.stream_timeout, Some(60.0));

    let bad = c.deployments("bad-model").next().expect("bad-model");
    assert_eq!(
        bad.litellm_params.other.get("mock_timeout"),
        Some(&Value::Bool(true))
    );
    let fake4 = c
        .deployments("fake-openai-endpoint-4")
        .next()
        .expect("fake4");
    assert_eq!(
        fake4.litellm_params.other.get("num_retries"),
        Some(&Value::from(50))
    );
    assert_eq!(c.deployments("fake-openai-endpoint-3").count(), 2);

    // Unset provider keys warn and become absent; the AWS entry keeps its other keys.
    let anthropic = c.deployments("anthropic/*").next().expect("anthropic");
    assert!(anthropic.litellm_params.api_key.is_none());
    assert!(loaded
        .warnings
        .iter()
        .any(|w| w.contains("litellm_params.api_key") && w.contains("ANTHROPIC_API_KEY")));
    let bedrock = c.deployments("bedrock/*").next().expect("bedrock");
    assert_eq!(
        bedrock
            .litellm_params
            .other
            .get("aws_bedrock_runtime_endpoint"),
        Some(&Value::from("http://127.0.0.1:1"))
    );
    assert_eq!(
        bedrock.litellm_params.other.get("aws_access_key_id"),
        Some(&Value::Null)
    );

    let ls = &c.litellm_settings;
    assert_eq!(ls.drop_params, Some(true));
    assert_eq!(ls.telemetry, Some(false));
    assert_eq!(ls.num_retries, Some(5));
    assert_eq!(ls.request_timeout, Some(600.0));
    assert_eq!(
        ls.success_callback.as_deref(),
        Some(&["prometheus".to_owned()][..])
    );
    let cwf = ls.context_window_fallbacks.as_ref().expect("cwf");
    assert_eq!(
        cwf[0]["gpt-3.5-turbo"],
        vec!["gpt-3.5-turbo-large".to_owned()]
    );

    let rs = &c.router_settings;
    assert_eq!(
        rs.routing_strategy.as_deref(),
        Some("usage-based-routing-v2")
    );
    assert_eq!(rs.enable_pre_call_checks, Some(true));
    assert_eq!(
        rs.model_group_alias
            .as_ref()
            .and_then(|m| m.get("my-special-fake-model-alias-name")),
        Some(&Value::from("fake-openai-endpoint-3"))
    );

    let gs = &c.general_settings;
    assert_eq!(gs.master_key.as_ref().map(Secret::expose), Some("sk-1234"));
    assert!(gs
        .master_key
        .as_ref()
        .expect("master key")
        .matches("sk-1234"));
    assert_eq!(gs.store_model_in_db, Some(true));
    assert_eq!(gs.proxy_budget_rescheduler_min_time, Some(60));
    assert_eq!(gs.proxy_budget_rescheduler_max_time, Some(64));
    assert_eq!(gs.proxy_batch_write_at, Some(1));
    assert_eq!(gs.database_connection_pool_limit, Some(10));
    assert_eq!(gs.dangerously_allow_mock_testing_request_params, Some(true));
    assert_eq!(gs.allow_public_health_readiness_details, Some(true));
    let pte = gs.pass_through_endpoints.as_ref().expect("pass-through");
    assert_eq!(pte[0]["path"], "/v1/rerank");

    let ft = c.finetune_settings.as_ref().expect("finetune_settings");
    assert_eq!(ft[0]["api_key"], "sk-openai-from-env");
    assert!(c.files_settings.is_some());
    // Known sections and provider-specific params never produce unknown-key warnings.
    assert!(
        loaded.warnings.iter().all(|w| !w.contains("unknown")),
        "{:?}",
        loaded.warnings
    );

    // Secrets never appear in Debug output.
    let debug = format!("{c:?}");
    assert!(!debug.contains("sk-1234"), "{debug}");
    assert!(!debug.contains("sk-openai-from-env"));
    assert!(!debug.contains("my-fake-key"));
    assert!(debug.contains("gpt-3.5-turbo-large"));
}

#[test]
fn from_path_reads_and_names_the_file() {
    let dir = std::env::temp_dir().join(format!("llmgate-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("config.yaml");
    let allowed = ci_template().replace(
        "general_settings:\n",
        "general_settings:\n  allow_unsupported_config: true\n",
    );
    std::fs::write(&path, allowed).expect("write");
    let loaded =
        Config::from_path_with_env(&path, &env_of(&[("OPENAI_API_KEY", "k")])).expect("loads");
    assert!(!loaded.config.model_list.is_empty());

    std::fs::write(&path, "model_list: [{model_name: x}]\n").expect("write");
    let errs = Config::from_path(&path).expect_err("missing litellm_params");
    assert_eq!(errs.0[0].file, path.display().to_string());
    assert_eq!(errs.0[0].key, "model_list[0].litellm_params");

    let missing = dir.join("nope.yaml");
    let errs = Config::from_path(&missing).expect_err("no file");
    assert_eq!(errs.0.len(), 1);
    assert_eq!(errs.0[0].key, "");
    assert!(errs.0[0].reason.contains("cannot read"));
    assert!(errs.to_string().starts_with(&missing.display().to_string()));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn master_key_fails_closed() {
    // An os.environ reference to an unset variable stops start-up, naming key and variable.
    let text = "general_settings:\n  master_key: os.environ/MY_MASTER\n";
    let errs = match load(text, &[]) {
        Ok(_) => panic!("an unset master key loaded"),
        Err(e) => e.0,
    };
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].key, "general_settings.master_key");
    assert!(
        errs[0].reason.contains("\"MY_MASTER\""),
        "{}",
        errs[0].reason
    );
    assert!(errs[0].reason.contains("not set"), "{}", errs[0].reason);
    // Set but empty, a literal empty string, or no value at all: the same.
    for (text, env) in [
        (text, vec![("MY_MASTER", "")]),
        ("general_settings:\n  master_key: \"\"\n", vec![]),
        ("general_settings:\n  master_key:\n", vec![]),
    ] {
        let errs = match load(text, &env) {
            Ok(_) => panic!("{text:?} loaded"),
            Err(e) => e.0,
        };
        assert_eq!(errs[0].key, "general_settings.master_key", "{text:?}");
    }
    let loaded = load_ok(text, &[("MY_MASTER", "sk-from-env")]);
    assert_eq!(
        loaded
            .config
            .general_settings
            .master_key
            .as_ref()
            .map(Secret::expose),
        Some("sk-from-env")
    );
}

#[test]
fn litellm_master_key_from_the_environment() {
    let loaded = load_ok("model_list: []\n", &[("LITELLM_MASTER_KEY", "sk-env")]);
    let gs = &loaded.config.general_settings;
    assert_eq!(gs.master_key.as_ref().map(Secret::expose), Some("sk-env"));
    assert!(gs.master_key_from_env);
    // The config wins when both are set.
    let loaded = load_ok(
        "general_settings:\n  master_key: sk-config\n",
        &[("LITELLM_MASTER_KEY", "sk-env")],
    );
    let gs = &loaded.config.general_settings;
    assert_eq!(
        gs.master_key.as_ref().map(Secret::expose),
        Some("sk-config")
    );
    assert!(!gs.master_key_from_env);
    // Set but empty: refused rather than open.
    let errs = match load("model_list: []\n", &[("LITELLM_MASTER_KEY", " ")]) {
        Ok(_) => panic!("empty LITELLM_MASTER_KEY loaded"),
        Err(e) => e.0,
    };
    assert!(errs[0].reason.contains("LITELLM_MASTER_KEY"), "{errs:?}");
    // A master key that does not look like one is a warning.
    let loaded = load_ok("general_settings:\n  master_key: hunter2\n", &[]);
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("weak master key")),
        "{:?}",
        loaded.warnings
    );
    assert!(!loaded.warnings.iter().any(|w| w.contains("hunter2")));
}

#[test]
fn every_key_acts_or_is_refused() {
    let text = "guardrails: [{guardrail_name: pii}]\n\
                litellm_settings:\n  callbacks: [otel, datadog]\n  force_ipv4: true\n  set_verbose: true\n  drop_parms: true\n\
                router_settings:\n  provider_budget_config: {openai: {budget_limit: 1}}\n  routing_stratgy: least-busy\n\
                general_settings:\n  allowed_routes: [/chat/completions]\n  enforce_user_param: false\n\
                model_list:\n  - model_name: a\n    litellm_params: {model: openai/a, temperature: 0.2, temprature: 1, vertex_project: p}\n";
    let errs = match load(text, &[]) {
        Ok(_) => panic!("refused keys loaded"),
        Err(e) => e.0,
    };
    let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
    // Every refused key in one run; `enforce_user_param: false` asks for nothing.
    assert_eq!(
        keys,
        [
            "litellm_settings.callbacks",
            "router_settings.provider_budget_config",
            "general_settings.allowed_routes",
            "guardrails",
        ]
    );
    assert!(errs
        .iter()
        .all(|e| e.reason.contains("not supported by llmgate yet")));
    let text = text.replace(
        "general_settings:\n",
        "general_settings:\n  allow_unsupported_config: true\n",
    );
    let loaded = load_ok(&text, &[]);
    let w = &loaded.warnings;
    let has =
        |prefix: &str, text: &str| w.iter().any(|w| w.starts_with(prefix) && w.contains(text));
    assert!(
        has("guardrails:", "allow_unsupported_config is true"),
        "{w:?}"
    );
    assert!(
        has(
            "litellm_settings.force_ipv4:",
            "not supported by llmgate yet; ignored"
        ),
        "{w:?}"
    );
    assert!(
        has(
            "litellm_settings.drop_parms:",
            "did you mean `drop_params`?"
        ),
        "{w:?}"
    );
    assert!(
        has(
            "router_settings.routing_stratgy:",
            "did you mean `routing_strategy`?"
        ),
        "{w:?}"
    );
    assert!(
        has(
            "model_list[0].litellm_params.temprature:",
            "did you mean `temperature`?"
        ),
        "{w:?}"
    );
    // Ignored on purpose (documented), request defaults and provider parameters: no warning.
    assert!(!w.iter().any(|w| w.contains("set_verbose")), "{w:?}");
    assert!(!w.iter().any(|w| w.contains(".temperature")), "{w:?}");
    assert!(!w.iter().any(|w| w.contains("vertex_project")), "{w:?}");
    assert_eq!(w.len(), 8, "{w:?}");
}

#[test]
fn include_merges_files_relative_to_the_config() {
    let dir = std::env::temp_dir().join(format!("llmgate-include-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("more")).expect("dir");
    std::fs::write(
        dir.join("more/models.yaml"),
        "model_list:\n  - model_name: b\n    litellm_params: {model: openai/b}\ninclude: [settings.yaml]\n",
    )
    .expect("write");
    // Nested includes are relative to the first file's directory, as in LiteLLM.
    std::fs::write(
        dir.join("settings.yaml"),
        "litellm_settings: {num_retries: 7}\n",
    )
    .expect("write");
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        "include: [more/models.yaml]\nmodel_list:\n  - model_name: a\n    litellm_params: {model: openai/a}\n",
    )
    .expect("write");
    let loaded = Config::from_path_with_env(&path, &env_of(&[])).expect("loads");
    let names: Vec<&str> = loaded
        .config
        .model_list
        .iter()
        .map(|m| m.model_name.as_str())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(loaded.config.litellm_settings.num_retries, Some(7));

    // A missing include is an error naming the file, listed with every other problem.
    std::fs::write(
        &path,
        "include: [nope.yaml]\nrouter_settings: {routing_strategy: fastest}\n",
    )
    .expect("write");
    let errs = Config::from_path_with_env(&path, &env_of(&[])).expect_err("missing include");
    let keys: Vec<&str> = errs.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["include[0]", "router_settings.routing_strategy"]);
    assert!(errs.0[0].reason.contains("nope.yaml"), "{:?}", errs.0[0]);
    // A cycle is an error, not a hang.
    std::fs::write(&path, "include: [config.yaml]\n").expect("write");
    let errs = Config::from_path_with_env(&path, &env_of(&[])).expect_err("cycle");
    assert!(errs.0[0].reason.contains("more than once"), "{:?}", errs.0);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn empty_file_is_an_empty_config() {
    for text in ["", "\n", "# only a comment\n", "---\n"] {
        let loaded = load_ok(text, &[]);
        assert!(loaded.config.model_list.is_empty());
        assert!(loaded.warnings.is_empty());
    }
    let loaded = load_ok("model_list:\nlitellm_settings:\nrouter_settings:\n", &[]);
    assert!(loaded.config.model_list.is_empty());
}

#[test]
fn unknown_keys_warn_with_their_path() {
    let loaded = load_ok(
        "model_list:\n  - model_name: a\n    litellm_params: {model: openai/a, aws_region_name: x}\n    modle_info: {}\n\
         router_settings:\n  foo_bar: 1\n  routing_strategy: simple-shuffle\n\
         litellm_settings:\n  nested_unknown: {a: 1}\n\
         general_settings:\n  master_key: sk-1\n  weird: true\n\
         some_new_section: {}\n",
        &[],
    );
    let w = &loaded.warnings;
    assert!(
        w.iter().any(|w| w.starts_with("router_settings.foo_bar:")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|w| w.starts_with("litellm_settings.nested_unknown:")),
        "{w:?}"
    );
    assert!(
        w.iter().any(|w| w.starts_with("general_settings.weird:")),
        "{w:?}"
    );
    assert!(
        w.iter().any(|w| w.starts_with("model_list[0].modle_info:")),
        "{w:?}"
    );
    assert!(
        w.iter().any(|w| w.starts_with("some_new_section:")),
        "{w:?}"
    );
    // Provider-specific litellm_params keys are not warned about.
    assert!(!w.iter().any(|w| w.contains("aws_region_name")), "{w:?}");
    assert_eq!(w.len(), 5, "{w:?}");
    assert_eq!(
        loaded.config.model_list[0]
            .litellm_params
            .other
            .get("aws_region_name"),
        Some(&Value::from("x"))
    );
}

#[test]
fn every_bad_entry_is_reported() {
    let errs = load_err(
        "model_list:\n\
         - model_name: a\n  litellm_params: {model: openai/a, timeout: soon}\n\
         - model_name: b\n  litellm_params: {model: openai/b}\n\
         - model_name: c\n  litellm_params: {model: openai/c}\n\
         - model_name: d\n  litellm_params: {model: openai/d, rpm: -5}\n\
         - litellm_params: {model: openai/e}\n\
         - model_name: f\n  litellm_params: {api_base: http://x}\n\
         router_settings:\n  num_retries: many\n\
         general_settings:\n  disable_spend_logs: maybe\n",
    );
    let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "model_list[0].litellm_params.timeout",
            "model_list[3].litellm_params.rpm",
            "model_list[4].model_name",
            "model_list[5].litellm_params.model",
            "router_settings.num_retries",
            "general_settings.disable_spend_logs",
        ],
        "{errs:?}"
    );
    assert!(errs.iter().all(|e| e.file == "test.yaml"));
    assert_eq!(errs[2].reason, "required key is missing");
    let text = ConfigErrors(errs.clone()).to_string();
    assert_eq!(text.lines().count(), errs.len());
    assert!(
        text.starts_with("test.yaml: model_list[0].litellm_params.timeout: "),
        "{text}"
    );
}

#[test]
fn semantic_errors_keep_the_entry_index_after_a_bad_entry() {
    let errs = load_err(
        "model_list:\n\
         - {model_name: a, litellm_params: {model: x, timeout: abc}}\n\
         - {model_name: b, litellm_params: {model: y, api_base: localhost}, model_info: {id: 7}}\n\
         - {model_name: c, litellm_params: {model: z}, model_info: {id: '7'}}\n",
    );
    let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "model_list[0].litellm_params.timeout",
            "model_list[1].litellm_params.api_base",
            "model_list[2].model_info.id",
        ]
    );
}

#[test]
fn semantic_errors() {
    let errs = load_err(
        "model_list:\n\
         - model_name: a\n  litellm_params: {model: openai/a, timeout: -1, weight: .nan}\n  model_info: {id: x1}\n\
         - model_name: ''\n  litellm_params: {model: openai/b, api_base: ftp://host}\n  model_info: {id: x1}\n\
         - model_name: c\n  litellm_params: {model: openai/c, stream_timeout: '-0.5'}\n\
         litellm_settings:\n  request_timeout: -3\n  cooldown_time: NaN\n\
         router_settings:\n  model_group_alias: {ok: a, ok2: {model: a, hidden: true}, bad: 3}\n",
    );
    let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
    for k in [
        "model_list[0].litellm_params.timeout",
        "model_list[0].litellm_params.weight",
        "model_list[1].model_name",
        "model_list[1].litellm_params.api_base",
        "model_list[1].model_info.id",
        "model_list[2].litellm_params.stream_timeout",
        "litellm_settings.request_timeout",
        "litellm_settings.cooldown_time",
        "router_settings.model_group_alias.bad",
    ] {
        assert!(keys.contains(&k), "{k} missing from {keys:?}");
    }
    assert_eq!(errs.len(), 9, "{errs:?}");
    let dup = errs
        .iter()
        .find(|e| e.key == "model_list[1].model_info.id")
        .expect("dup");
    assert!(dup.reason.contains("model_list[0]"), "{}", dup.reason);
}

#[test]
fn values_that_switch_a_limit_off_are_refused() {
    let errs = load_err(
        "model_list:\n\
         - model_name: a\n  litellm_params: {model: openai/a, timeout: 0, stream_timeout: 0}\n\
         litellm_settings:\n  request_timeout: 0\n  default_in_memory_ttl: 0\n  budget_duration: 0s\n  cache_params: {ttl: 0}\n\
         router_settings:\n  timeout: 0\n  stream_timeout: 0.0\n\
         general_settings:\n  max_request_size_mb: 0\n  max_response_size_mb: 0\n",
    );
    let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
    for k in [
        "model_list[0].litellm_params.timeout",
        "model_list[0].litellm_params.stream_timeout",
        "litellm_settings.request_timeout",
        "litellm_settings.default_in_memory_ttl",
        "litellm_settings.budget_duration",
        "litellm_settings.cache_params.ttl",
        "router_settings.timeout",
        "router_settings.stream_timeout",
        "general_settings.max_request_size_mb",
        "general_settings.max_response_size_mb",
    ] {
        assert!(keys.contains(&k), "{k} missing from {keys:?}");
    }
    assert!(errs.iter().all(|e| e.reason.contains("0")), "{errs:?}");
    // `0d` is no time either; a real period, a zero budget and zero cooldown are fine.
    let errs = load_err("litellm_settings:\n  budget_duration: 0d\n  request_timeout: 0\n");
    assert!(
        errs.iter()
            .any(|e| e.key == "litellm_settings.budget_duration" && e.reason.contains("`0d`")),
        "{errs:?}"
    );
    let ok = load_ok(
        "litellm_settings:\n  budget_duration: 30d\n  max_budget: 0\n  cooldown_time: 0\n",
        &[],
    );
    assert_eq!(
        ok.config.litellm_settings.budget_duration.as_deref(),
        Some("30d")
    );
}

#[test]
fn invalid_yaml_reports_line() {
    let errs = load_err("model_list:\n  - model_name: a\n    litellm_params: [unclosed\n");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].key, "");
    assert!(errs[0].reason.contains("line"), "{}", errs[0].reason);
    let errs = load_err("model_list:\n  - model_name: a\n bad indent: x\n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].reason.contains("line 3"), "{}", errs[0].reason);
    assert!(errs[0].to_string().starts_with("test.yaml: invalid YAML"));
}

#[test]
fn top_level_must_be_a_mapping() {
    let errs = load_err("- a\n- b\n");
    assert_eq!(errs.len(), 1);
    let errs = load_err("model_list: {a: 1}\nrouter_settings: [1]\n");
    let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["model_list", "router_settings"]);
}

#[test]
fn unset_env_var_warns_and_is_absent() {
    let loaded = load_ok(
        "model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/a\n      api_key: os.environ/MISSING_KEY\n\
         general_settings:\n  master_key: os.environ/MASTER\n",
        &[("MASTER", "sk-master-secret-value")],
    );
    let lp = &loaded.config.model_list[0].litellm_params;
    assert!(lp.api_key.is_none());
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    let w = &loaded.warnings[0];
    assert!(
        w.starts_with("model_list[0].litellm_params.api_key:"),
        "{w}"
    );
    assert!(w.contains("MISSING_KEY"), "{w}");
    let mk = loaded
        .config
        .general_settings
        .master_key
        .as_ref()
        .expect("mk");
    assert_eq!(mk.expose(), "sk-master-secret-value");
    assert!(loaded
        .warnings
        .iter()
        .all(|w| !w.contains("sk-master-secret-value")));
}

#[test]
fn environment_variables_section_takes_precedence() {
    let text = "environment_variables:\n  OPENAI_API_KEY: from-section\n  REDIS_PORT: 6380\n  FLAG: True\n\
                model_list:\n  - model_name: a\n    litellm_params:\n      model: openai/a\n      api_key: os.environ/OPENAI_API_KEY\n\
                router_settings:\n  redis_port: os.environ/REDIS_PORT\n  redis_host: os.environ/REDIS_HOST\n  enable_tag_filtering: os.environ/FLAG\n";
    let loaded = load_ok(
        text,
        &[
            ("OPENAI_API_KEY", "from-process"),
            ("REDIS_HOST", "redis.local"),
        ],
    );
    let c = &loaded.config;
    assert_eq!(
        c.model_list[0]
            .litellm_params
            .api_key
            .as_ref()
            .map(Secret::expose),
        Some("from-section")
    );
    assert_eq!(
        c.environment_variables
            .get("REDIS_PORT")
            .map(String::as_str),
        Some("6380")
    );
    assert_eq!(
        c.environment_variables.get("FLAG").map(String::as_str),
        Some("true")
    );
    assert_eq!(c.router_settings.redis_port, Some(6380));
    assert_eq!(c.router_settings.redis_host.as_deref(), Some("redis.local"));
    assert_eq!(c.router_settings.enable_tag_filtering, Some(true));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    // Environment variable values are masked in Debug output too.
    assert!(!format!("{c:?}").contains("from-section"));
}

#[test]
fn invalid_routing_strategy_is_an_error() {
    let errs = load_err("router_settings:\n  routing_strategy: fastest-please\n");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].key, "router_settings.routing_strategy");
    for s in ROUTING_STRATEGIES {
        assert!(errs[0].reason.contains(s), "{}", errs[0].reason);
    }
    for s in ROUTING_STRATEGIES {
        let loaded = load_ok(&format!("router_settings:\n  routing_strategy: {s}\n"), &[]);
        assert_eq!(
            loaded.config.router_settings.routing_strategy.as_deref(),
            Some(*s)
        );
    }
}

#[test]
fn master_key_never_in_debug() {
    let loaded = load_ok(
        "general_settings:\n  master_key: sk-super-secret-master\n  database_url: postgres://u:dbpass@h/db\n  \
         pass_through_endpoints: [{path: /x, headers: {Authorization: bearer-pt-secret}}]\n\
         litellm_settings:\n  cache: true\n  cache_params: {type: redis, password: redis-pw-secret, port: '6379', ssl: true}\n\
         router_settings:\n  redis_password: router-redis-secret\n",
        &[],
    );
    let debug = format!("{:?}", loaded.config);
    for secret in [
        "sk-super-secret-master",
        "dbpass",
        "bearer-pt-secret",
        "redis-pw-secret",
        "router-redis-secret",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked: {debug}");
    }
    let cp = loaded
        .config
        .litellm_settings
        .cache_params
        .as_ref()
        .expect("cache_params");
    assert_eq!(cp.type_.as_deref(), Some("redis"));
    assert_eq!(cp.port, Some(6379));
    assert_eq!(
        cp.password.as_ref().map(Secret::expose),
        Some("redis-pw-secret")
    );
    assert_eq!(cp.other.get("ssl"), Some(&Value::Bool(true)));
}

#[test]
fn lenient_scalars() {
    let loaded = load_ok(
        "litellm_settings:\n  drop_params: 'True'\n  telemetry: 'false'\n  num_retries: '3'\n  set_verbose: False\n\
         model_list:\n  - model_name: 42\n    litellm_params: {model: openai/a, rpm: '100', timeout: 2.5, tags: [a, b], api_version: 2024-02-01}\n",
        &[],
    );
    let c = &loaded.config;
    assert_eq!(c.litellm_settings.drop_params, Some(true));
    assert_eq!(c.litellm_settings.telemetry, Some(false));
    assert_eq!(c.litellm_settings.set_verbose, Some(false));
    assert_eq!(c.litellm_settings.num_retries, Some(3));
    let lp = &c.model_list[0].litellm_params;
    assert_eq!(lp.rpm, Some(100));
    assert_eq!(lp.timeout, Some(2.5));
    assert_eq!(lp.tags, ["a", "b"]);
    assert_eq!(lp.api_version.as_deref(), Some("2024-02-01"));

    let errs = load_err("litellm_settings:\n  drop_params: perhaps\n");
    assert_eq!(errs[0].key, "litellm_settings.drop_params");
    let errs = load_err("litellm_settings:\n  cache_params: {port: 70000}\n");
    assert_eq!(errs[0].key, "litellm_settings.cache_params.port");
    let errs = load_err("litellm_settings:\n  fallbacks: [{gpt-4: [a, 3]}]\n");
    assert_eq!(
        errs[0].key, "litellm_settings.fallbacks[0].gpt-4[1]",
        "{errs:?}"
    );
}

#[test]
fn drop_params_keys_per_deployment() {
    let loaded = load_ok(
        "model_list:\n  - model_name: a\n    litellm_params:\n      model: anthropic/claude\n      drop_params: true\n      additional_drop_params: [\"logit_bias\", \"tools[*].input_examples\"]\n",
        &[],
    );
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let other = &loaded.config.model_list[0].litellm_params.other;
    assert_eq!(
        other["additional_drop_params"],
        serde_json::json!(["logit_bias", "tools[*].input_examples"])
    );
    assert_eq!(other["drop_params"], Value::Bool(true));
    let errs = load_err(
        "model_list:\n  - model_name: a\n    litellm_params:\n      model: anthropic/claude\n      additional_drop_params: logit_bias\n      drop_params: maybe\n",
    );
    let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
    assert!(
        keys.contains(&"model_list[0].litellm_params.additional_drop_params"),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"model_list[0].litellm_params.drop_params"),
        "{keys:?}"
    );
}

#[test]
fn resolved_values_are_masked_in_errors() {
    let errs = match load(
        "model_list:\n  - model_name: a\n    litellm_params: {model: openai/a, api_base: os.environ/BASE, rpm: os.environ/RPM}\n",
        &[("BASE", "not-a-url-secretish"), ("RPM", "secret-rpm-value")],
    ) {
        Err(e) => e.0,
        Ok(_) => panic!("expected errors"),
    };
    let text = ConfigErrors(errs).to_string();
    assert!(text.contains("model_list[0].litellm_params.rpm"), "{text}");
    assert!(!text.contains("not-a-url-secretish"), "{text}");
    assert!(!text.contains("secret-rpm-value"), "{text}");
}

#[test]
fn hostile_inputs_do_not_panic() {
    let deep = format!("a: {}{}\n", "[".repeat(5000), "]".repeat(5000));
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n\
                e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n\
                g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n";
    let inputs = [
        deep.as_str(),
        bomb,
        "\u{0}\u{1}binary",
        "? [complex, key]\n: value\n",
        "model_list: !custom [ {model_name: !x a, litellm_params: {model: b}} ]\n",
        "model_list:\n  - [a, b]\n  - 3\n  - \n",
        "general_settings: {master_key: [1]}\nrouter_settings: {redis_port: '99999999999'}\n",
        "litellm_settings: {cache_params: [1, 2]}\nenvironment_variables: [a]\n",
        "---\na: 1\n---\nb: 2\n",
        "model_list:\n  - model_name: a\n    litellm_params: {model: b, timeout: .inf, weight: -.inf}\n",
        "router_settings: {model_group_alias: {a: {hidden: true}}}\n",
        "model_list: [{model_name: a, litellm_params: {model: b}, model_info: {id: [1]}}]\n",
        "model_list: [{model_name: a, litellm_params: {model: os.environ/}}]\n",
    ];
    for text in inputs {
        // Any outcome but a panic is fine; errors must carry the origin.
        if let Err(e) = load(text, &[]) {
            assert!(!e.0.is_empty());
            assert!(e.0.iter().all(|e| e.file == "test.yaml"));
        }
    }
    assert_eq!(
        load("model_list:\n  - [a, b]\n", &[])
            .expect_err("list entry")
            .0[0]
            .key,
        "model_list[0]"
    );
    let errs = load_err("model_list:\n  - model_name: a\n    litellm_params: {model: b, timeout: .inf, weight: .nan}\n");
    assert_eq!(errs.len(), 2, "{errs:?}");
    let loaded = load_ok(
        "model_list: !custom [ {model_name: !x a, litellm_params: {model: b}} ]\n",
        &[],
    );
    assert_eq!(loaded.config.model_list[0].model_name, "a");
}

#[test]
fn yaml_merge_keys_and_odd_keys() {
    let loaded = load_ok(
        "base: &base {model: openai/a, api_base: 'http://h'}\n\
         model_list:\n  - model_name: a\n    litellm_params:\n      <<: *base\n      rpm: 5\n\
         router_settings:\n  retry_policy: {AuthenticationErrorRetries: 0}\n  model_group_alias: {1: a}\n",
        &[],
    );
    let lp = &loaded.config.model_list[0].litellm_params;
    assert_eq!(lp.model, "openai/a");
    assert_eq!(lp.rpm, Some(5));
    assert!(loaded.warnings.iter().any(|w| w.starts_with("base:")));
    let alias = loaded
        .config
        .router_settings
        .model_group_alias
        .as_ref()
        .expect("alias");
    assert!(alias.contains_key("1"));
}

#[test]
fn unreadable_file_keeps_its_io_error_as_source() {
    let errs = Config::from_path(std::path::Path::new("/nonexistent/llmgate/config.yaml"))
        .expect_err("no such file");
    let e = &errs.0[0];
    assert!(e.reason.starts_with("cannot read the config file"), "{e}");
    let source = std::error::Error::source(e).expect("the io error");
    assert!(source.downcast_ref::<std::io::Error>().is_some());
    // Equality ignores the source (the reason says it).
    assert_eq!(
        e.clone(),
        ConfigError::new(e.file.clone(), e.key.clone(), e.reason.clone())
    );
}

#[test]
fn invalid_yaml_keeps_its_parse_error_as_source() {
    let errs = Config::from_yaml_str("model_list: [", "t.yaml").expect_err("invalid YAML");
    assert!(std::error::Error::source(&errs.0[0]).is_some(), "{}", errs);
}

#[cfg(feature = "otel")]
#[test]
fn otel_callback_loads_and_others_stay_refused() {
    let ok = load_ok("litellm_settings:\n  callbacks: [\"otel\"]\n", &[]);
    assert!(ok.warnings.is_empty(), "{:?}", ok.warnings);
    assert!(crate::telemetry::wanted(&ok.config));
    let errs = match load("litellm_settings:\n  callbacks: [otel, langfuse]\n", &[]) {
        Ok(_) => panic!("a refused callback loaded"),
        Err(e) => e.0,
    };
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].key, "litellm_settings.callbacks");
}
