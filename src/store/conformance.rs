//! One behavioural test suite, run against every store: the SQL [`Store`] (SQLite in memory) and
//! the [`InMemoryStore`]. Each check goes through the traits the layers use ([`KeyStore`],
//! [`SpendSink`], [`KeyInfo::load`]); a [`Fixture`] puts rows in place and reads what only
//! management reads.

use std::time::Duration;

use super::{
    hash_key, BudgetState, InMemoryStore, KeyRow, KeyStore, Limits, NewKey, SpendRow, SpendSink,
    Store, StoreError, TeamRow, UserRow, PROXY_BUDGET_ID,
};
use crate::{auth::KeyInfo, clock::Clock, error::ErrorKind, secret::Secret};

/// What the suite needs beyond the traits: creating rows, and reading the stored ones.
trait Fixture: KeyStore + SpendSink + Sized {
    /// A store on a manual clock (see [`Fixture::time`]).
    async fn make() -> Self;
    /// The store's clock.
    fn time(&self) -> &Clock;
    async fn new_key(&self, new: NewKey) -> Result<(Secret, KeyRow), StoreError>;
    async fn put_key(&self, row: &KeyRow);
    async fn new_team(&self, row: &TeamRow);
    async fn new_user(&self, row: &UserRow);
    async fn log_count(&self) -> i64;
}

impl Fixture for Store {
    async fn make() -> Self {
        Self::connect("sqlite::memory:")
            .await
            .unwrap()
            .with_clock(Clock::manual())
    }
    fn time(&self) -> &Clock {
        self.clock()
    }
    async fn new_key(&self, new: NewKey) -> Result<(Secret, KeyRow), StoreError> {
        self.create_key(new).await
    }
    async fn put_key(&self, row: &KeyRow) {
        assert!(self.update_key(row).await.unwrap());
    }
    async fn new_team(&self, row: &TeamRow) {
        self.create_team(row).await.unwrap();
    }
    async fn new_user(&self, row: &UserRow) {
        self.create_user(row).await.unwrap();
    }
    async fn log_count(&self) -> i64 {
        self.spend_log_count().await.unwrap()
    }
}

impl Fixture for InMemoryStore {
    async fn make() -> Self {
        Self::new().with_clock(Clock::manual())
    }
    fn time(&self) -> &Clock {
        self.clock()
    }
    async fn new_key(&self, new: NewKey) -> Result<(Secret, KeyRow), StoreError> {
        self.create_key(new)
    }
    async fn put_key(&self, row: &KeyRow) {
        assert!(self.update_key(row));
    }
    async fn new_team(&self, row: &TeamRow) {
        self.create_team(row).unwrap();
    }
    async fn new_user(&self, row: &UserRow) {
        self.create_user(row).unwrap();
    }
    async fn log_count(&self) -> i64 {
        self.spend_log_count()
    }
}

fn paid(request_id: &str, key: &KeyRow, spend: f64) -> SpendRow {
    SpendRow {
        request_id: request_id.to_owned(),
        api_key: key.token.clone(),
        team_id: key.team_id.clone(),
        user_id: key.user_id.clone(),
        spend,
        status: "success".into(),
        ..SpendRow::default()
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn team(id: &str) -> TeamRow {
    TeamRow {
        team_id: id.to_owned(),
        models: vec!["gpt-4o".into()],
        ..TeamRow::default()
    }
}

fn user(id: &str) -> UserRow {
    UserRow {
        user_id: id.to_owned(),
        user_role: Some("proxy_admin".into()),
        ..UserRow::default()
    }
}

/// A key is found by its hash with its team and user; an unknown hash is `None`; the same key
/// cannot be created twice.
async fn key_lookup<S: Fixture>() {
    let s = S::make().await;
    s.new_team(&team("t1")).await;
    s.new_user(&user("u1")).await;
    let (secret, row) = s
        .new_key(NewKey {
            key_alias: Some("alias".into()),
            models: vec!["m".into()],
            team_id: Some("t1".into()),
            user_id: Some("u1".into()),
            ..NewKey::default()
        })
        .await
        .unwrap();
    assert_eq!(row.token, hash_key(secret.expose()));
    let got = s.key_fresh(&row.token).await.unwrap().unwrap();
    assert_eq!(got.key_alias.as_deref(), Some("alias"));
    assert_eq!(got.models, ["m"]);
    assert!(s
        .key_fresh(&hash_key("sk-unknown"))
        .await
        .unwrap()
        .is_none());
    assert!(s.team("nope").await.unwrap().is_none());
    assert!(s.user("nope").await.unwrap().is_none());
    let info = KeyInfo::load(&s, &row.token).await.unwrap().unwrap();
    assert_eq!(&*info.token, row.token.as_str());
    assert_eq!(info.team_models, ["gpt-4o"]);
    assert!(info.is_admin, "a proxy_admin user's key is an admin");
    assert!(info.refusal(s.time().unix_ms()).is_none());
    assert!(s
        .new_key(NewKey {
            key: Some(secret),
            ..NewKey::default()
        })
        .await
        .is_err());
}

/// An expired key, a blocked key and a key of a blocked team are refused with 401.
async fn expiry_and_blocked<S: Fixture>() {
    let s = S::make().await;
    let (_, expired) = s
        .new_key(NewKey {
            duration: Some(Duration::ZERO),
            ..NewKey::default()
        })
        .await
        .unwrap();
    let (_, blocked) = s
        .new_key(NewKey {
            blocked: true,
            ..NewKey::default()
        })
        .await
        .unwrap();
    s.new_team(&TeamRow {
        blocked: true,
        ..team("blocked-team")
    })
    .await;
    let (_, of_blocked_team) = s
        .new_key(NewKey {
            team_id: Some("blocked-team".into()),
            ..NewKey::default()
        })
        .await
        .unwrap();
    let (_, fine) = s
        .new_key(NewKey {
            duration: Some(Duration::from_secs(3600)),
            ..NewKey::default()
        })
        .await
        .unwrap();
    for (row, why) in [
        (&expired, "Expired Key"),
        (&blocked, "blocked"),
        (&of_blocked_team, "blocked"),
    ] {
        let info = KeyInfo::load(&s, &row.token).await.unwrap().unwrap();
        let e = info.refusal(s.time().unix_ms()).expect("refused");
        assert_eq!(e.kind(), ErrorKind::Authentication);
        assert_eq!(e.status(), 401);
        assert!(e.message().contains(why), "{}", e.message());
    }
    let info = KeyInfo::load(&s, &fine.token).await.unwrap().unwrap();
    assert!(info.refusal(s.time().unix_ms()).is_none());
}

/// Spend rows add to the key, team, user and proxy totals; a reused call id is logged once and
/// paid every time; a retried batch counts only what it stores; totals without logs store none.
async fn spend_totals<S: Fixture>() {
    let s = S::make().await;
    s.new_team(&team("t1")).await;
    s.new_user(&user("u1")).await;
    let (_, key) = s
        .new_key(NewKey {
            team_id: Some("t1".into()),
            user_id: Some("u1".into()),
            ..NewKey::default()
        })
        .await
        .unwrap();
    let a = paid("a", &key, 0.5);
    let t = s.write_spend(&[a.clone(), a.clone()]).await.unwrap();
    assert!(close(t.keys[&key.token], 1.0));
    assert!(close(t.teams["t1"], 1.0));
    assert!(close(t.users["u1"], 1.0));
    assert!(close(t.proxy, 1.0));
    assert_eq!(t.proxy_budget, None, "no proxy budget row");
    assert_eq!(s.log_count().await, 1);
    // The retry of a batch that was stored adds nothing; a new row in it does.
    let b = paid("b", &key, 0.25);
    let t = s.rewrite_spend(&[a.clone(), b]).await.unwrap();
    assert!(close(t.keys[&key.token], 0.25));
    assert_eq!(s.log_count().await, 2);
    // Totals only.
    let t = s.add_spend(&[paid("c", &key, 0.125)]).await.unwrap();
    assert!(close(t.keys[&key.token], 0.125));
    assert_eq!(s.log_count().await, 2);
    // Free rows add nothing.
    let t = s.write_spend(&[paid("d", &key, 0.0)]).await.unwrap();
    assert!(t.keys.is_empty() && t.proxy == 0.0);
    let stored = s.key_fresh(&key.token).await.unwrap().unwrap();
    assert!(close(stored.spend, 1.375));
    assert!(close(s.team("t1").await.unwrap().unwrap().spend, 1.375));
    assert!(close(s.user("u1").await.unwrap().unwrap().spend, 1.375));
    let info = KeyInfo::load(&s, &key.token).await.unwrap().unwrap();
    assert!(close(info.key.spend, 1.375));
    assert!(close(info.team.as_ref().unwrap().spend, 1.375));
}

/// A period that has ended reads as a new one (spend 0, next end ahead), and a write into it
/// starts the new period with the written spend. A budget without a period never resets.
async fn budget_resets<S: Fixture>() {
    let s = S::make().await;
    let now = s.time().unix_ms();
    let daily = Limits {
        max_budget: Some(10.0),
        budget_duration: Some("1d".into()),
        ..Limits::default()
    };
    s.new_team(&TeamRow {
        spend: 7.0,
        limits: daily.clone(),
        budget_reset_at: Some(now - 1),
        ..team("t1")
    })
    .await;
    s.new_user(&UserRow {
        spend: 3.0,
        limits: daily.clone(),
        budget_reset_at: Some(now + 3_600_000),
        ..user("u1")
    })
    .await;
    let (_, key) = s
        .new_key(NewKey {
            limits: daily.clone(),
            team_id: Some("t1".into()),
            user_id: Some("u1".into()),
            ..NewKey::default()
        })
        .await
        .unwrap();
    let reset = key.budget_reset_at.expect("a period");
    assert!(reset > now && reset <= s.time().unix_ms() + 86_400_000);
    // The key's period ends with 5 spent.
    s.put_key(&KeyRow {
        spend: 5.0,
        budget_reset_at: Some(now - 1),
        ..key.clone()
    })
    .await;
    let fresh = s.key_fresh(&key.token).await.unwrap().unwrap();
    assert!(close(fresh.spend, 0.0));
    assert!(fresh.budget_reset_at.is_some_and(|r| r > now));
    let t = s.team("t1").await.unwrap().unwrap();
    assert!(close(t.spend, 0.0));
    assert!(t.budget_reset_at.is_some_and(|r| r > now));
    // Within its period the user keeps its spend.
    assert!(close(s.user("u1").await.unwrap().unwrap().spend, 3.0));
    // A write into an ended period starts the next one with the written spend.
    s.put_key(&KeyRow {
        spend: 5.0,
        budget_reset_at: Some(now - 1),
        ..key.clone()
    })
    .await;
    s.write_spend(&[paid("r1", &key, 0.5)]).await.unwrap();
    let k = s.key_fresh(&key.token).await.unwrap().unwrap();
    assert!(close(k.spend, 0.5), "{}", k.spend);
    assert!(k.budget_reset_at.is_some_and(|r| r > now));
    assert!(close(s.user("u1").await.unwrap().unwrap().spend, 3.5));
    // No duration: an ended `budget_reset_at` clears, and the spend is not reset again.
    let (_, forever) = s.new_key(NewKey::default()).await.unwrap();
    assert_eq!(forever.budget_reset_at, None);
    s.write_spend(&[paid("r2", &forever, 2.0)]).await.unwrap();
    let f = s.key_fresh(&forever.token).await.unwrap().unwrap();
    assert!(close(f.spend, 2.0));
}

/// The proxy-wide budget row: created at start, fed by every write, kept across a restart, its
/// period rolled over when it has ended.
async fn proxy_budget<S: Fixture>() {
    let s = S::make().await;
    assert_eq!(s.proxy_budget_state().await.unwrap(), None);
    let now = s.time().unix_ms();
    let start = s.proxy_budget(10.0, Some("1d")).await.unwrap();
    assert!(close(start.spend, 0.0));
    let end = start.reset_at.expect("a period");
    assert!(end > now);
    let (_, key) = s.new_key(NewKey::default()).await.unwrap();
    let t = s
        .write_spend(&[paid("a", &key, 1.5), paid("b", &key, 1.0)])
        .await
        .unwrap();
    assert_eq!(
        t.proxy_budget,
        Some(BudgetState {
            spend: 2.5,
            reset_at: Some(end)
        })
    );
    // A restart keeps the period and its spend.
    let again = s.proxy_budget(20.0, Some("1d")).await.unwrap();
    assert_eq!(
        again,
        BudgetState {
            spend: 2.5,
            reset_at: Some(end)
        }
    );
    assert_eq!(s.proxy_budget_state().await.unwrap(), Some(again));
    // The row is a user row, as in LiteLLM.
    let row = s.user(PROXY_BUDGET_ID).await.unwrap().unwrap();
    assert_eq!(row.limits.max_budget, Some(20.0));
    // Without a duration it never resets.
    let never = s.proxy_budget(20.0, None).await.unwrap();
    assert_eq!(
        never,
        BudgetState {
            spend: 2.5,
            reset_at: None
        }
    );
}

/// The store reads its own clock: moved past a period's end, the period rolls over (a key
/// lookup, a write); moved past a key's expiry, the key is refused.
async fn periods_follow_the_stores_clock<S: Fixture>() {
    let s = S::make().await;
    let hourly = Limits {
        max_budget: Some(10.0),
        budget_duration: Some("1h".into()),
        ..Limits::default()
    };
    let start = s.time().unix_ms();
    let (_, key) = s
        .new_key(NewKey {
            limits: hourly,
            duration: Some(Duration::from_secs(2 * 3600)),
            ..NewKey::default()
        })
        .await
        .unwrap();
    assert_eq!(key.budget_reset_at, Some(start + 3_600_000));
    s.write_spend(&[paid("p1", &key, 4.0)]).await.unwrap();
    // Just before the end: the spend stands.
    s.time().advance(Duration::from_millis(3_599_999));
    let k = s.key_fresh(&key.token).await.unwrap().unwrap();
    assert!(close(k.spend, 4.0), "{}", k.spend);
    assert_eq!(k.budget_reset_at, Some(start + 3_600_000));
    // At the end: a new period, from the clock's now.
    s.time().advance(Duration::from_millis(1));
    let k = s.key_fresh(&key.token).await.unwrap().unwrap();
    assert!(close(k.spend, 0.0), "{}", k.spend);
    assert_eq!(k.budget_reset_at, Some(start + 2 * 3_600_000));
    let info = KeyInfo::load(&s, &key.token).await.unwrap().unwrap();
    assert!(info.refusal(s.time().unix_ms()).is_none());
    // Past its expiry (2 h), the key is refused.
    s.time().advance(Duration::from_secs(3600));
    let info = KeyInfo::load(&s, &key.token).await.unwrap().unwrap();
    let e = info.refusal(s.time().unix_ms()).expect("expired");
    assert!(e.message().contains("Expired Key"), "{}", e.message());
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sql {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name::<super::Store>().await;
                }
            )*
        }
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name::<super::InMemoryStore>().await;
                }
            )*
        }
    };
}

suite!(
    key_lookup,
    expiry_and_blocked,
    spend_totals,
    budget_resets,
    proxy_budget,
    periods_follow_the_stores_clock
);
