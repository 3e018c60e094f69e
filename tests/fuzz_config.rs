//! Fuzzing the config loader (`Config::from_yaml_str_with_env`): any text, YAML with anchors,
//! aliases, merge keys and tags, and configs built from every key LiteLLM's config knows
//! (`config::keys`) with values of any shape, as written and with characters changed.
//!
//! Properties: no input panics or hangs; a document that is a YAML mapping either loads or fails
//! with errors that each name the key at fault (only whole-file problems, such as invalid YAML,
//! have no key).
//!
//! Cases per property: `PROPTEST_CASES` (256 when unset). A long run:
//! `PROPTEST_CASES=20000 cargo test --test fuzz_config` (see docs/reliability.md).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use llmgate::config::{keys, Config, ConfigErrors};
use proptest::prelude::*;
use serde_json::{json, Value};

/// The environment the loader sees: a few variables set, the rest unset.
fn env(name: &str) -> Option<String> {
    match name {
        "SET" => Some("sk-secret-value".to_owned()),
        "NUM" => Some("12".to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

/// Loads `text`; checks that it did not take long and that errors are well-formed.
fn load(text: &str, mapping: bool) -> Result<(), TestCaseError> {
    let started = Instant::now();
    let got = Config::from_yaml_str_with_env(text, "fuzz.yaml", &env);
    prop_assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    if let Err(ConfigErrors(errors)) = got {
        prop_assert!(!errors.is_empty());
        for e in &errors {
            prop_assert_eq!(&e.file, "fuzz.yaml");
            prop_assert!(!e.reason.is_empty(), "{}", e);
            if mapping {
                prop_assert!(!e.key.is_empty(), "an error that names no key: {}", e);
            }
            // A resolved secret never shows in an error.
            prop_assert!(!e.to_string().contains("sk-secret-value"), "{}", e);
        }
    }
    Ok(())
}

fn names(table: &'static [keys::KeySpec]) -> Vec<&'static str> {
    table.iter().map(|k| k.name).collect()
}

/// A key of `table`, now and then any other.
fn key_of(table: &'static [keys::KeySpec]) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(names(table)).prop_map(str::to_owned),
        1 => "[a-z_]{1,12}",
        1 => any::<String>(),
    ]
}

/// A config value of any shape, with `os.environ/` references among the strings.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e12_f64..1e12).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        proptest::sample::select(vec![
            "os.environ/SET",
            "os.environ/NUM",
            "os.environ/EMPTY",
            "os.environ/UNSET",
            "os.environ/",
            "true",
            "false",
            "null",
            "~",
            "0x1f",
            "1e400",
            "-0",
            "30s",
            "",
            "openai/gpt-4o",
            "anthropic/claude",
            "bedrock/x",
            "*",
            "redis",
            "local",
        ])
        .prop_map(Value::from),
        "[a-z0-9_./:-]{0,16}".prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn section(table: &'static [keys::KeySpec]) -> impl Strategy<Value = Value> {
    proptest::collection::btree_map(key_of(table), value(), 0..6)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn model_entry() -> impl Strategy<Value = Value> {
    (
        prop_oneof![value(), "[a-z-]{1,10}".prop_map(Value::from)],
        proptest::sample::select(vec![
            "openai/gpt-4o",
            "anthropic/claude-3",
            "gemini/g",
            "vertex_ai/g",
            "bedrock/b",
            "ollama/l",
            "ollama_chat/l",
            "azure/a",
            "mock/m",
            "nope/x",
            "gpt-4o",
            "",
        ]),
        section(keys::LITELLM_PARAMS),
        proptest::option::of(value()),
    )
        .prop_map(|(name, model, mut params, info)| {
            if params.get("model").is_none() {
                params["model"] = json!(model);
            }
            let mut entry = json!({"model_name": name, "litellm_params": params});
            if let Some(info) = info {
                entry["model_info"] = info;
            }
            entry
        })
}

/// A config document: LiteLLM's sections with their keys, values of any shape.
fn config() -> impl Strategy<Value = Value> {
    (
        proptest::option::of(prop_oneof![
            4 => proptest::collection::vec(model_entry(), 0..4).prop_map(Value::Array),
            1 => value(),
        ]),
        proptest::option::of(section(keys::LITELLM_SETTINGS)),
        proptest::option::of(section(keys::ROUTER_SETTINGS)),
        proptest::option::of(section(keys::GENERAL_SETTINGS)),
        proptest::option::of(prop_oneof![
            proptest::collection::btree_map("[A-Z_]{1,8}", value(), 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            value(),
        ]),
        proptest::collection::btree_map(key_of(keys::TOP_LEVEL), value(), 0..2),
    )
        .prop_map(|(models, litellm, router, general, envs, other)| {
            let mut doc = serde_json::Map::new();
            for (k, v) in other {
                // `include` reads files: only names that do not exist.
                if k != "include" {
                    doc.insert(k, v);
                }
            }
            for (k, v) in [
                ("model_list", models),
                ("litellm_settings", litellm),
                ("router_settings", router),
                ("general_settings", general),
                ("environment_variables", envs),
            ] {
                if let Some(v) = v {
                    doc.insert(k.to_owned(), v);
                }
            }
            Value::Object(doc)
        })
}

/// `text` with a few characters inserted, removed or replaced, by characters YAML reads as
/// structure.
fn mutate(text: &str, edits: &[(u8, usize, char)]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for &(op, at, c) in edits {
        let i = at % (chars.len() + 1);
        match op % 3 {
            0 => chars.insert(i, c),
            1 if i < chars.len() => {
                chars.remove(i);
            }
            _ if i < chars.len() => chars[i] = c,
            _ => {}
        }
    }
    chars.into_iter().collect()
}

fn yaml_char() -> impl Strategy<Value = char> {
    prop_oneof![
        proptest::sample::select(vec![
            ':', '-', ' ', '\n', '\t', '"', '\'', '&', '*', '!', '|', '>', '[', ']', '{', '}', ',',
            '#', '?', '%', '@', '`', '<', '\\', '0',
        ]),
        any::<char>(),
    ]
}

proptest! {
    /// Any text: loads or fails, never panics.
    #[test]
    fn any_text_loads_or_fails(text in prop_oneof![
        any::<String>(),
        "([a-z_]{0,8}: ?|- |  |&a |\\*a|<<: |!![a-z]{0,6} |\\{|\\}|\\[|\\]|, |\n|\"|'|[0-9.e+-]{0,6}|os.environ/[A-Z]{0,4}){0,40}",
    ]) {
        load(&text, false)?;
    }

    /// A config built from LiteLLM's keys: loads, or every error names its key.
    #[test]
    fn configs_load_or_name_the_key(doc in config()) {
        let text = serde_yaml_ng::to_string(&doc).unwrap();
        load(&text, true)?;
    }

    /// The same configs with characters changed: loads or fails, never panics; when the text is
    /// still a YAML mapping, every error names its key.
    #[test]
    fn mutated_configs_load_or_fail(
        doc in config(),
        edits in proptest::collection::vec((any::<u8>(), any::<usize>(), yaml_char()), 1..6),
    ) {
        let text = mutate(&serde_yaml_ng::to_string(&doc).unwrap(), &edits);
        let mapping = matches!(
            serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text)
                .ok()
                .and_then(|mut v| v.apply_merge().ok().map(|()| v)),
            Some(serde_yaml_ng::Value::Mapping(_))
        );
        load(&text, mapping)?;
    }
}

/// Aliases that expand exponentially ("a billion laughs") are refused quickly, not expanded.
#[test]
fn alias_bombs_are_refused_quickly() {
    let mut text = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let mut prev = 'a';
    for c in 'b'..='j' {
        text.push_str(&format!(
            "{c}: &{c} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
        prev = c;
    }
    text.push_str("model_list: *j\n");
    let started = Instant::now();
    let got = Config::from_yaml_str_with_env(&text, "bomb.yaml", &env);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(got.is_err());
}
