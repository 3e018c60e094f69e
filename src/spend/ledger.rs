//! [`Ledger`]: spend recorded in this process and not yet written, per key, team and user, and
//! in all. Budgets add it to the stored spend; the writer settles it once a batch is written.

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

use crate::store::SpendRow;

/// Spend not yet in the database, per key hash, team and user, and in all (the proxy-wide
/// budget): what budgets add to the stored totals.
#[derive(Debug, Default)]
pub struct Ledger {
    keys: DashMap<String, f64>,
    teams: DashMap<String, f64>,
    users: DashMap<String, f64>,
    /// Per key and model group (`token` NUL `model_group`): model-specific budgets.
    key_models: DashMap<String, f64>,
    /// All pending spend, as `f64` bits.
    total: AtomicU64,
}

/// Adds `v` to an `f64` held as bits (a compare-and-swap loop: no lock).
fn add_f64(cell: &AtomicU64, v: f64) {
    let _ = cell.fetch_update(Ordering::AcqRel, Ordering::Acquire, |bits| {
        let next = f64::from_bits(bits) + v;
        // Rounding may leave a trace below zero once everything is settled.
        Some(if next.abs() <= 1e-12 { 0.0 } else { next }.to_bits())
    });
}

fn add(map: &DashMap<String, f64>, id: &str, v: f64) {
    if let Some(mut e) = map.get_mut(id) {
        *e += v;
        return;
    }
    *map.entry(id.to_owned()).or_default() += v;
}

fn settle(map: &DashMap<String, f64>, id: &str, v: f64) {
    let remove = match map.get_mut(id) {
        Some(mut e) => {
            *e -= v;
            *e <= 1e-12
        }
        None => false,
    };
    if remove {
        map.remove_if(id, |_, v| *v <= 1e-12);
    }
}

fn key_model_id(token: &str, model: &str) -> String {
    format!("{token}\0{model}")
}

impl Ledger {
    /// Pending spend of a key (by hash).
    #[must_use]
    pub fn key(&self, token: &str) -> f64 {
        self.keys.get(token).map_or(0.0, |v| *v)
    }

    /// Pending spend of a team.
    #[must_use]
    pub fn team(&self, team_id: &str) -> f64 {
        self.teams.get(team_id).map_or(0.0, |v| *v)
    }

    /// Pending spend of a user.
    #[must_use]
    pub fn user(&self, user_id: &str) -> f64 {
        self.users.get(user_id).map_or(0.0, |v| *v)
    }

    /// Pending spend of a key (by hash) on one model group.
    #[must_use]
    pub fn key_model(&self, token: &str, model: &str) -> f64 {
        if self.key_models.is_empty() {
            return 0.0;
        }
        self.key_models
            .get(&key_model_id(token, model))
            .map_or(0.0, |v| *v)
    }

    /// All pending spend (what the proxy-wide budget adds to its stored spend).
    #[must_use]
    pub fn total(&self) -> f64 {
        f64::from_bits(self.total.load(Ordering::Acquire))
    }

    pub(crate) fn add_row(&self, row: &SpendRow) {
        if row.spend == 0.0 {
            return;
        }
        add_f64(&self.total, row.spend);
        if !row.api_key.is_empty() {
            add(&self.keys, &row.api_key, row.spend);
            add(
                &self.key_models,
                &key_model_id(&row.api_key, &row.model_group),
                row.spend,
            );
        }
        if let Some(t) = &row.team_id {
            add(&self.teams, t, row.spend);
        }
        if let Some(u) = &row.user_id {
            add(&self.users, u, row.spend);
        }
    }

    pub(super) fn settle_row(&self, row: &SpendRow) {
        if row.spend == 0.0 {
            return;
        }
        add_f64(&self.total, -row.spend);
        if !row.api_key.is_empty() {
            settle(&self.keys, &row.api_key, row.spend);
            settle(
                &self.key_models,
                &key_model_id(&row.api_key, &row.model_group),
                row.spend,
            );
        }
        if let Some(t) = &row.team_id {
            settle(&self.teams, t, row.spend);
        }
        if let Some(u) = &row.user_id {
            settle(&self.users, u, row.spend);
        }
    }
}
