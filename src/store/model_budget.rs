//! Model-specific budgets and limits of a key: LiteLLM's `model_max_budget`
//! (`{"gpt-4o": {"max_budget": 10, "budget_duration": "1d", "tpm_limit": 1000, "rpm_limit": 10}}`,
//! also with LiteLLM's older names `budget_limit` and `time_period`) and the key metadata's
//! `model_rpm_limit` / `model_tpm_limit` maps.
//!
//! The spend of a key on a model is kept in the key's `model_spend` (LiteLLM's column,
//! `{"gpt-4o": 1.25}`), added by the spend writer's batches (off the request path) for the
//! models the key has a budget for. Each model's period end is kept in its `model_max_budget`
//! entry (`budget_reset_at`, Unix ms: a field LiteLLM's `BudgetConfig` ignores); the first spend
//! after it starts the next period (LiteLLM's window starts at a spend, too).

use serde_json::{Map, Value};

use super::parse_duration;

/// One model's budget and limits on a key, and its spend, as loaded with the key.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct ModelBudget {
    /// The model (group) name as the `model_max_budget` entry names it.
    pub model: String,
    /// Spend cap in USD for this model (`max_budget`, LiteLLM's older `budget_limit`).
    pub max_budget: Option<f64>,
    /// Budget period (`budget_duration`, LiteLLM's older `time_period`).
    pub budget_duration: Option<String>,
    /// When the model's period ends (Unix ms).
    pub budget_reset_at: Option<i64>,
    /// Spend stored for the model (`model_spend`).
    pub spend: f64,
    /// Requests per minute on this model (`model_rpm_limit` in the key's metadata, else the
    /// entry's `rpm_limit`).
    pub rpm_limit: Option<i64>,
    /// Tokens per minute on this model (`model_tpm_limit`, else `tpm_limit`).
    pub tpm_limit: Option<i64>,
}

fn num(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        // LiteLLM's CRUD routes accept `budget_limit` as a string and convert it.
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.is_finite())
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn text<'a>(e: &'a Map<String, Value>, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|n| e.get(*n).and_then(Value::as_str))
}

/// Why a `model_max_budget` value is not one LiteLLM accepts (its `BudgetConfig`): the 400's
/// message. Every entry must be an object with, optionally, a number `max_budget` (or
/// `budget_limit`) ≥ 0, a `budget_duration` (or `time_period`) that is a duration of some time,
/// and integer `tpm_limit` / `rpm_limit` ≥ 0.
///
/// # Errors
/// The first entry that is not valid, named.
pub fn validate(v: &Value) -> Result<(), String> {
    let Some(map) = v.as_object() else {
        return Err("model_max_budget must be an object of model → budget".to_owned());
    };
    for (model, entry) in map {
        if model.is_empty() {
            return Err("a model name is empty".to_owned());
        }
        let Some(e) = entry.as_object() else {
            return Err(format!("{model}: the budget must be an object"));
        };
        for name in ["max_budget", "budget_limit"] {
            if let Some(x) = e.get(name).filter(|x| !x.is_null()) {
                match num(Some(x)) {
                    Some(b) if b.is_finite() && b >= 0.0 => {}
                    _ => return Err(format!("{model}: {name} must be a number ≥ 0")),
                }
            }
        }
        for name in ["budget_duration", "time_period"] {
            if let Some(x) = e.get(name).filter(|x| !x.is_null()) {
                match x.as_str().and_then(parse_duration) {
                    Some(d) if !d.is_zero() => {}
                    _ => {
                        return Err(format!(
                            "{model}: {name} must be a duration of some time, e.g. 1d, 30d"
                        ))
                    }
                }
            }
        }
        for name in ["tpm_limit", "rpm_limit"] {
            if let Some(x) = e.get(name).filter(|x| !x.is_null()) {
                if int(Some(x)).is_none_or(|n| n < 0) {
                    return Err(format!("{model}: {name} must be an integer ≥ 0"));
                }
            }
        }
    }
    Ok(())
}

/// `model_max_budget` as stored: LiteLLM's `BudgetConfig` field names (`max_budget`,
/// `budget_duration`, `tpm_limit`, `rpm_limit`), each model's period started at `now` (its
/// `budget_reset_at`), or kept from `previous` when the model's period did not change.
/// `v` must have passed [`validate`].
#[must_use]
pub fn normalize(v: &Value, previous: &Map<String, Value>, now: i64) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(map) = v.as_object() else {
        return out;
    };
    for (model, entry) in map {
        let Some(e) = entry.as_object() else { continue };
        let mut n = Map::new();
        let max = num(e.get("max_budget")).or_else(|| num(e.get("budget_limit")));
        let duration = text(e, &["budget_duration", "time_period"]).map(str::to_owned);
        n.insert("max_budget".into(), max.map_or(Value::Null, Value::from));
        n.insert(
            "budget_duration".into(),
            duration.clone().map_or(Value::Null, Value::String),
        );
        for name in ["tpm_limit", "rpm_limit"] {
            n.insert(
                name.into(),
                int(e.get(name)).map_or(Value::Null, Value::from),
            );
        }
        let kept = previous
            .get(model)
            .and_then(Value::as_object)
            .filter(|p| p.get("budget_duration").and_then(Value::as_str) == duration.as_deref())
            .and_then(|p| p.get("budget_reset_at").and_then(Value::as_i64));
        let reset = kept.or_else(|| super::next_reset(duration.as_deref(), now));
        if let Some(r) = reset {
            n.insert("budget_reset_at".into(), Value::from(r));
        }
        out.insert(model.clone(), Value::Object(n));
    }
    out
}

/// The model budgets of a key from its stored `model_max_budget`, `model_spend` and
/// `metadata` (its `model_rpm_limit` / `model_tpm_limit` maps, which LiteLLM reads first).
#[must_use]
pub fn from_key(
    model_max_budget: &Map<String, Value>,
    model_spend: &Map<String, Value>,
    metadata: &Map<String, Value>,
) -> Vec<ModelBudget> {
    let rpm_md = metadata.get("model_rpm_limit").and_then(Value::as_object);
    let tpm_md = metadata.get("model_tpm_limit").and_then(Value::as_object);
    let mut out: Vec<ModelBudget> = model_max_budget
        .iter()
        .filter_map(|(model, entry)| {
            let e = entry.as_object()?;
            Some(ModelBudget {
                model: model.clone(),
                max_budget: num(e.get("max_budget")).or_else(|| num(e.get("budget_limit"))),
                budget_duration: text(e, &["budget_duration", "time_period"]).map(str::to_owned),
                budget_reset_at: e.get("budget_reset_at").and_then(Value::as_i64),
                spend: num(model_spend.get(model)).unwrap_or(0.0),
                rpm_limit: match rpm_md {
                    Some(m) => int(m.get(model)),
                    None => int(e.get("rpm_limit")),
                },
                tpm_limit: match tpm_md {
                    Some(m) => int(m.get(model)),
                    None => int(e.get("tpm_limit")),
                },
            })
        })
        .collect();
    // Models limited only through the metadata maps.
    for (map, rpm) in [(rpm_md, true), (tpm_md, false)] {
        for (model, v) in map.into_iter().flatten() {
            let Some(n) = int(Some(v)) else { continue };
            let entry = match out.iter_mut().position(|b| &b.model == model) {
                Some(i) => &mut out[i],
                None => {
                    out.push(ModelBudget {
                        model: model.clone(),
                        ..ModelBudget::default()
                    });
                    let last = out.len() - 1;
                    &mut out[last]
                }
            };
            if rpm {
                entry.rpm_limit = Some(n);
            } else {
                entry.tpm_limit = Some(n);
            }
        }
    }
    out
}

/// The budget that applies to a call of `model`: the entry naming it, else the entry naming
/// it without its provider prefix (`openai/gpt-4o` → `gpt-4o`), as LiteLLM looks it up.
#[must_use]
pub fn find<'a>(budgets: &'a [ModelBudget], model: &str) -> Option<&'a ModelBudget> {
    budgets.iter().find(|b| b.model == model).or_else(|| {
        let bare = model.rsplit('/').next().unwrap_or(model);
        budgets.iter().find(|b| b.model == bare)
    })
}

/// Adds `v` spent on `model` at `now` to a key's stored `model_spend`, in the entry of
/// `model_max_budget` that applies (see [`find`]); starts the model's next period first when
/// its period ended (the spend then starts from `v`). Returns the entry charged: a model
/// without a budget entry is not tracked (`None`).
pub fn add_spend(
    model_max_budget: &mut Map<String, Value>,
    model_spend: &mut Map<String, Value>,
    model: &str,
    v: f64,
    now: i64,
) -> Option<String> {
    let name = if model_max_budget.contains_key(model) {
        model.to_owned()
    } else {
        let bare = model.rsplit('/').next().unwrap_or(model);
        if !model_max_budget.contains_key(bare) {
            return None;
        }
        bare.to_owned()
    };
    let entry = model_max_budget
        .get_mut(&name)
        .and_then(Value::as_object_mut)?;
    let duration = text(entry, &["budget_duration", "time_period"]).map(str::to_owned);
    // A period ended, or an entry with a period that has not started one (as LiteLLM writes
    // them): this spend starts the next one.
    let ended = match entry.get("budget_reset_at").and_then(Value::as_i64) {
        Some(r) => r <= now,
        None => duration.is_some(),
    };
    let current = if ended {
        match super::next_reset(duration.as_deref(), now) {
            Some(r) => entry.insert("budget_reset_at".into(), Value::from(r)),
            None => entry.remove("budget_reset_at"),
        };
        0.0
    } else {
        num(model_spend.get(&name)).unwrap_or(0.0)
    };
    model_spend.insert(name.clone(), Value::from(current + v));
    Some(name)
}

/// Adds `v` spent to the loaded budget `b` at `now`, as [`add_spend`] adds it to the stored one
/// (the key cache keeps its entries exact with it).
pub fn add_loaded_spend(b: &mut ModelBudget, v: f64, now: i64) {
    let ended = match b.budget_reset_at {
        Some(r) => r <= now,
        None => b.budget_duration.is_some(),
    };
    if ended {
        b.spend = v;
        b.budget_reset_at = super::next_reset(b.budget_duration.as_deref(), now);
    } else {
        b.spend += v;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn litellms_shapes_are_accepted_and_bad_ones_named() {
        assert!(validate(&json!({})).is_ok());
        assert!(validate(&json!({"gpt-4o": {"max_budget": 1.5, "budget_duration": "1d", "tpm_limit": 10, "rpm_limit": 2}})).is_ok());
        assert!(
            validate(&json!({"gpt-4o": {"budget_limit": "0.0005", "time_period": "30d"}})).is_ok()
        );
        for (bad, says) in [
            (json!([]), "object"),
            (json!({"m": 1}), "m: the budget"),
            (json!({"m": {"max_budget": -1}}), "max_budget"),
            (json!({"m": {"max_budget": "x"}}), "max_budget"),
            (json!({"m": {"budget_duration": "0d"}}), "budget_duration"),
            (json!({"m": {"time_period": "soon"}}), "time_period"),
            (json!({"m": {"rpm_limit": 1.5}}), "rpm_limit"),
            (json!({"m": {"tpm_limit": -3}}), "tpm_limit"),
        ] {
            let e = validate(&bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn stored_entries_use_litellms_names_and_keep_an_unchanged_period() {
        let now = 1_000;
        let n = normalize(
            &json!({"gpt-4o": {"budget_limit": "2", "time_period": "1s"}}),
            &Map::new(),
            now,
        );
        assert_eq!(
            Value::Object(n.clone()),
            json!({"gpt-4o": {"max_budget": 2.0, "budget_duration": "1s", "tpm_limit": null, "rpm_limit": null, "budget_reset_at": 2000}})
        );
        // The same period: its end is kept; another period: a new end.
        let again = normalize(
            &json!({"gpt-4o": {"max_budget": 3, "budget_duration": "1s"}}),
            &n,
            5_000,
        );
        assert_eq!(again["gpt-4o"]["budget_reset_at"], 2000);
        let other = normalize(
            &json!({"gpt-4o": {"max_budget": 3, "budget_duration": "2s"}}),
            &n,
            5_000,
        );
        assert_eq!(other["gpt-4o"]["budget_reset_at"], 7000);
    }

    #[test]
    fn spend_is_added_per_model_and_restarts_with_the_period() {
        let mut mmb = map(
            json!({"gpt-4o": {"max_budget": 1.0, "budget_duration": "1s", "budget_reset_at": 2000}}),
        );
        let mut spend = Map::new();
        assert_eq!(
            add_spend(&mut mmb, &mut spend, "gpt-4o", 0.25, 1500).as_deref(),
            Some("gpt-4o")
        );
        // `openai/gpt-4o` is counted in the `gpt-4o` entry; another model is not tracked.
        assert_eq!(
            add_spend(&mut mmb, &mut spend, "openai/gpt-4o", 0.5, 1600).as_deref(),
            Some("gpt-4o")
        );
        assert_eq!(add_spend(&mut mmb, &mut spend, "claude", 9.0, 1600), None);
        assert_eq!(Value::Object(spend.clone()), json!({"gpt-4o": 0.75}));
        // The period ended: the spend starts again from this call's, and a new period begins.
        assert!(add_spend(&mut mmb, &mut spend, "gpt-4o", 0.1, 2500).is_some());
        assert_eq!(spend["gpt-4o"], 0.1);
        assert_eq!(mmb["gpt-4o"]["budget_reset_at"], 3500);
        // The loaded copy (the key cache's) follows the same rule.
        let mut b = ModelBudget {
            budget_duration: Some("1s".into()),
            budget_reset_at: Some(2000),
            spend: 0.5,
            ..ModelBudget::default()
        };
        add_loaded_spend(&mut b, 0.25, 1500);
        assert_eq!((b.spend, b.budget_reset_at), (0.75, Some(2000)));
        add_loaded_spend(&mut b, 0.1, 2500);
        assert_eq!((b.spend, b.budget_reset_at), (0.1, Some(3500)));
        // An entry LiteLLM wrote (a period, no `budget_reset_at`): the first spend starts it.
        let mut mmb = map(json!({"g": {"budget_limit": 1.0, "time_period": "1s"}}));
        let mut spend = map(json!({"g": 5.0}));
        assert!(add_spend(&mut mmb, &mut spend, "g", 0.5, 100).is_some());
        assert_eq!(
            (spend["g"].as_f64(), mmb["g"]["budget_reset_at"].as_i64()),
            (Some(0.5), Some(1100))
        );
        // No period at all: the spend only grows.
        let mut mmb = map(json!({"g": {"max_budget": 1.0}}));
        assert!(add_spend(&mut mmb, &mut spend, "g", 0.25, 200).is_some());
        assert_eq!(spend["g"].as_f64(), Some(0.75));
        assert!(mmb["g"].get("budget_reset_at").is_none());
    }

    #[test]
    fn budgets_and_metadata_limits_are_read_as_litellm_reads_them() {
        let b = from_key(
            &map(
                json!({"gpt-4o": {"max_budget": 1.0, "rpm_limit": 5, "tpm_limit": 100, "budget_reset_at": 9}}),
            ),
            &map(json!({"gpt-4o": 0.5})),
            &map(json!({"model_rpm_limit": {"gpt-4o": 2, "other": 7}})),
        );
        let g = find(&b, "gpt-4o").unwrap();
        assert_eq!(g.max_budget, Some(1.0));
        assert_eq!(g.spend, 0.5);
        assert_eq!(g.budget_reset_at, Some(9));
        // The metadata map wins for rpm (LiteLLM reads it first); tpm from the entry.
        assert_eq!((g.rpm_limit, g.tpm_limit), (Some(2), Some(100)));
        let o = find(&b, "other").unwrap();
        assert_eq!((o.max_budget, o.rpm_limit), (None, Some(7)));
        assert_eq!(find(&b, "azure/gpt-4o").unwrap().model, "gpt-4o");
        assert!(find(&b, "gpt-4o-mini").is_none());
    }
}
