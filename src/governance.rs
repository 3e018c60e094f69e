//! The governance part of the gateway, built from the config by [`Gateway::build`](crate::gateway::Gateway::build):
//! the store, the key cache, the rate-limit counters, the spend writer and the management routes.
//!
//! Which database: `general_settings.database_url`, else the `DATABASE_URL` environment variable,
//! else SQLite in `llmgate.db` beside the config file (created on first start), else (no config
//! file) an in-memory SQLite database. [`BuildOptions::database_url`] overrides all of these.
//!
//! Which counters: Redis when `router_settings.redis_url` or `redis_host` is set, else in process.
//!
//! Prices: the built-in table, with `LLMGATE_MODEL_PRICES` (or [`BuildOptions::prices_file`]), a
//! file in LiteLLM's `model_prices_and_context_window.json` format, merged over it.
//!
//! The proxy-wide budget (`litellm_settings.max_budget` > 0, with `budget_duration`): its row is
//! created or updated at start, the spend writer keeps it current, and a task re-reads it every
//! key-cache ttl for other instances' spend ([`budget::ProxyBudget`](crate::budget::ProxyBudget)).

use std::{fmt, path::PathBuf, sync::Arc, time::Duration};

use crate::{
    auth::KeyCache,
    budget::ProxyBudget,
    config::Config,
    cost::PriceTable,
    rate_limit::Counters,
    spend::{SpendConfig, SpendStats, SpendWriter},
    store::{SchemaChoice, Store},
};

/// Options of [`Gateway::build`](crate::gateway::Gateway::build) beyond the config.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BuildOptions {
    /// The directory of the config file: the SQLite file goes there.
    pub config_dir: Option<PathBuf>,
    /// Overrides the database URL (`sqlite::memory:` for tests).
    pub database_url: Option<String>,
    /// Overrides the Redis URL for rate-limit counters.
    pub redis_url: Option<String>,
    /// How long a key lookup stays fresh (default 10 s).
    pub key_cache_ttl: Duration,
    /// Spend writer settings.
    pub spend: SpendConfig,
    /// A LiteLLM-format price file merged over the built-in table.
    pub prices_file: Option<PathBuf>,
    /// Where the per-request deadlines are armed (default: the calling runtime's timer).
    pub timer: crate::clock::Timer,
    /// The clock budgets, key expiries, rate-limit windows, cooldowns and spend timestamps are
    /// read on (default: [`Clock::system`](crate::clock::Clock::system)).
    pub clock: crate::clock::Clock,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            config_dir: None,
            database_url: None,
            redis_url: None,
            key_cache_ttl: Duration::from_secs(10),
            spend: SpendConfig::default(),
            prices_file: std::env::var_os("LLMGATE_MODEL_PRICES").map(PathBuf::from),
            timer: crate::clock::Timer::current(),
            clock: crate::clock::Clock::system(),
        }
    }
}

impl BuildOptions {
    /// Puts the SQLite file into `dir`.
    #[must_use]
    pub fn config_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config_dir = Some(dir.into());
        self
    }

    /// Uses this database.
    #[must_use]
    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.database_url = Some(url.into());
        self
    }

    /// Uses this Redis for rate-limit counters.
    #[must_use]
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.redis_url = Some(url.into());
        self
    }

    /// Sets the key cache ttl.
    #[must_use]
    pub fn key_cache_ttl(mut self, ttl: Duration) -> Self {
        self.key_cache_ttl = ttl;
        self
    }

    /// Sets the spend writer settings.
    #[must_use]
    pub fn spend(mut self, spend: SpendConfig) -> Self {
        self.spend = spend;
        self
    }

    /// Reads time on `clock` (a test passes [`Clock::manual`](crate::clock::Clock::manual) and
    /// steps it; the binary never does).
    #[must_use]
    pub fn clock(mut self, clock: crate::clock::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Merges this price file over the built-in table.
    #[must_use]
    pub fn prices_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.prices_file = Some(path.into());
        self
    }
}

/// Why the gateway could not be built: the config key and the reason.
#[derive(Debug)]
pub struct BuildError {
    /// The config key (or option) at fault.
    pub key: String,
    /// Why.
    pub reason: String,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

impl std::error::Error for BuildError {}

/// The running governance services. See the [module docs](self).
#[derive(Debug)]
pub struct Governance {
    /// The SQL store, when governance runs over one ([`start`]; `None` for
    /// [`Governance::with_stores`]).
    pub store: Option<Store>,
    /// Key lookups.
    pub keys: KeyCache,
    /// Rate-limit counters.
    pub counters: Counters,
    /// The spend writer (flush it, or shut it down after `serve` returns).
    pub spend: SpendWriter,
    /// A redacted description of the database (`sqlite:/path/llmgate.db`, `postgres://host/db`).
    pub database: String,
    /// The proxy-wide budget (`litellm_settings.max_budget` > 0).
    pub proxy_budget: Option<Arc<ProxyBudget>>,
    /// The task that re-reads the proxy budget row.
    proxy_refresh: Option<tokio::task::JoinHandle<()>>,
}

impl Governance {
    /// Governance over any key store and spend sink, without a config or a database: virtual
    /// keys, their limits and budgets come from `keys` (an [`InMemoryStore`](crate::store::InMemoryStore),
    /// say), spend goes to `spend_to`, and written spend is added to the cached keys as
    /// [`start`] does. Starts the spend writer, so it must be called inside a tokio runtime.
    /// The management API needs the SQL store: over another store it answers 503.
    ///
    /// ```
    /// use std::time::Duration;
    /// use llmgate::{governance::Governance, rate_limit::Counters, spend::SpendConfig, store::InMemoryStore};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let store = InMemoryStore::new();
    /// let gov = Governance::with_stores(
    ///     store.clone(),
    ///     store,
    ///     Counters::memory(),
    ///     Duration::from_secs(10),
    ///     SpendConfig::default(),
    /// );
    /// let gateway = llmgate::gateway::Gateway::builder()
    ///     .master_key(Some(llmgate::secret::Secret::new("sk-master")))
    ///     .governance(gov);
    /// # let _ = gateway; }
    /// ```
    pub fn with_stores(
        keys: impl crate::store::KeyStore,
        spend_to: impl crate::store::SpendSink,
        counters: Counters,
        key_cache_ttl: Duration,
        spend: SpendConfig,
    ) -> Self {
        Self::with_stores_on(
            crate::clock::Clock::system(),
            keys,
            spend_to,
            counters,
            key_cache_ttl,
            spend,
        )
    }

    /// [`Governance::with_stores`] judging key expiry and budget periods on `clock` (give the
    /// stores, the counters and the [`GatewayBuilder`](crate::gateway::GatewayBuilder) the same
    /// handle: `InMemoryStore::with_clock`, `Counters::with_clock`, `GatewayBuilder::clock`).
    pub fn with_stores_on(
        clock: crate::clock::Clock,
        keys: impl crate::store::KeyStore,
        spend_to: impl crate::store::SpendSink,
        counters: Counters,
        key_cache_ttl: Duration,
        spend: SpendConfig,
    ) -> Self {
        let keys = KeyCache::new(keys, key_cache_ttl).with_clock(clock);
        let hook = keys.clone();
        let on_commit: crate::spend::OnCommit = Arc::new(move |totals| {
            hook.add_spend(totals, std::time::Instant::now());
        });
        Self {
            store: None,
            spend: SpendWriter::spawn_with(spend_to, spend, Some(on_commit)),
            keys,
            counters,
            database: "none (a key store and spend sink given in code)".into(),
            proxy_budget: None,
            proxy_refresh: None,
        }
    }

    /// Writes queued spend rows (retrying for up to `timeout`) and stops the writer.
    pub async fn shutdown(self, timeout: Duration) -> SpendStats {
        if let Some(t) = &self.proxy_refresh {
            t.abort();
        }
        self.spend.shutdown(timeout).await
    }
}

/// The proxy-wide budget of `config`, when `litellm_settings.max_budget` is above 0 (LiteLLM's
/// default, 0, means none). A `budget_duration` that is not a duration fails the start.
fn proxy_budget(
    config: &Config,
    clock: &crate::clock::Clock,
) -> Result<Option<Arc<ProxyBudget>>, BuildError> {
    let ls = &config.litellm_settings;
    let Some(max) = ls.max_budget.filter(|m| *m > 0.0) else {
        return Ok(None);
    };
    let duration = ls.budget_duration.as_deref().filter(|d| !d.is_empty());
    if let Some(d) = duration {
        if crate::store::parse_duration(d).is_none() {
            return Err(BuildError {
                key: "litellm_settings.budget_duration".into(),
                reason: format!(
                    "`{d}` is not a duration (30s, 5m, 1h, 1d, 1w, 1mo); the proxy budget needs one to reset"
                ),
            });
        }
    }
    Ok(Some(Arc::new(
        ProxyBudget::new(max, duration).with_clock(clock.clone()),
    )))
}

/// Whether `config` asks for governance (keys, budgets, spend log): a `master_key`, a
/// `database_url` (in the config or the `DATABASE_URL` environment variable) or a proxy-wide
/// `litellm_settings.max_budget`. As in LiteLLM, a config with none of them runs without a
/// database: no virtual keys, no spend log, nothing written to disk. The binary builds the
/// database-free stack ([`Gateway::from_config`](crate::gateway::Gateway::from_config)) then.
#[must_use]
pub fn wanted(config: &Config) -> bool {
    let gs = &config.general_settings;
    gs.master_key.as_ref().is_some_and(|k| !k.is_empty())
        || gs.database_url.as_ref().is_some_and(|u| !u.is_empty())
        || std::env::var("DATABASE_URL").is_ok_and(|u| !u.is_empty())
        || config.litellm_settings.max_budget.is_some()
}

/// The database URL for `config` and `opts` (see the [module docs](self)).
#[must_use]
pub fn database_url(config: &Config, opts: &BuildOptions) -> String {
    if let Some(u) = &opts.database_url {
        return u.clone();
    }
    if let Some(u) = config
        .general_settings
        .database_url
        .as_ref()
        .filter(|s| !s.is_empty())
    {
        return u.expose().to_owned();
    }
    if let Ok(u) = std::env::var("DATABASE_URL") {
        if !u.is_empty() {
            return u;
        }
    }
    match &opts.config_dir {
        Some(dir) => format!("sqlite://{}?mode=rwc", dir.join("llmgate.db").display()),
        None => "sqlite::memory:".to_owned(),
    }
}

fn redact(url: &str) -> String {
    crate::secret::redact_url(url)
}

/// The Redis URL for the rate-limit counters: [`BuildOptions::redis_url`], else
/// `router_settings` ([`crate::config::redis_router_url`]).
#[must_use]
pub fn redis_url(config: &Config, opts: &BuildOptions) -> Option<String> {
    opts.redis_url
        .clone()
        .or_else(|| crate::config::redis_router_url(config))
}

/// The price table: built-in, with the price file merged over it.
pub fn price_table(opts: &BuildOptions) -> Result<PriceTable, BuildError> {
    let mut table = PriceTable::builtin();
    if let Some(path) = &opts.prices_file {
        let text = std::fs::read_to_string(path).map_err(|e| BuildError {
            key: "LLMGATE_MODEL_PRICES".into(),
            reason: format!("cannot read {}: {e}", path.display()),
        })?;
        let extra = PriceTable::from_json(&text).map_err(|e| BuildError {
            key: "LLMGATE_MODEL_PRICES".into(),
            reason: format!("{} is not a LiteLLM price file: {e}", path.display()),
        })?;
        table.merge(extra);
    }
    Ok(table)
}

/// Connects the store and Redis, starts the spend writer.
pub async fn start(config: &Config, opts: &BuildOptions) -> Result<Governance, BuildError> {
    let url = database_url(config, opts);
    let pool = config
        .general_settings
        .database_connection_pool_limit
        .unwrap_or(10);
    let schema_setting = config.general_settings.database_schema.as_deref();
    let choice =
        SchemaChoice::parse(schema_setting.unwrap_or("auto")).ok_or_else(|| BuildError {
            key: "general_settings.database_schema".into(),
            reason: format!(
                "`{}` is not a schema: expected `auto`, `llmgate` or `litellm`",
                schema_setting.unwrap_or_default()
            ),
        })?;
    let store = Store::connect_schema(&url, pool, choice)
        .await
        .map_err(|e| BuildError {
            key: if e.context().starts_with("database_schema") {
                "general_settings.database_schema".into()
            } else {
                "general_settings.database_url".into()
            },
            reason: e.to_string(),
        })?;
    let store = store.with_clock(opts.clock.clone());
    let keys = KeyCache::new(store.clone(), opts.key_cache_ttl).with_clock(opts.clock.clone());
    let counters = match redis_url(config, opts) {
        Some(u) => Counters::redis(&u, "llmgate")
            .await
            .map_err(|e| BuildError {
                key: "router_settings.redis_host".into(),
                reason: format!("cannot reach Redis at {}: {e}", redact(&u)),
            })?,
        None => Counters::memory(),
    }
    .with_clock(opts.clock.clone());
    let proxy = proxy_budget(config, &opts.clock)?;
    if let Some(p) = &proxy {
        let state = store
            .proxy_budget(p.max_budget(), p.budget_duration())
            .await
            .map_err(|e| BuildError {
                key: "litellm_settings.max_budget".into(),
                reason: e.to_string(),
            })?;
        p.observe(state);
    }
    let hook_keys = keys.clone();
    let hook_proxy = proxy.clone();
    let on_commit: crate::spend::OnCommit = Arc::new(move |totals| {
        hook_keys.add_spend(totals, std::time::Instant::now());
        if let (Some(p), Some(state)) = (&hook_proxy, totals.proxy_budget) {
            p.observe(state);
        }
    });
    let mut spend_config = opts.spend.clone();
    if let Some(secs) = config.general_settings.proxy_batch_write_at {
        spend_config = spend_config.linger(Duration::from_secs(secs));
    }
    if config.general_settings.disable_spend_logs == Some(true) {
        spend_config = spend_config.logs(false);
    }
    let spend = SpendWriter::spawn_with(store.clone(), spend_config, Some(on_commit));
    let proxy_refresh = proxy
        .as_ref()
        .map(|p| crate::budget::spawn_refresh(store.clone(), p, opts.key_cache_ttl));
    Ok(Governance {
        store: Some(store),
        keys,
        counters,
        spend,
        database: redact(&url),
        proxy_budget: proxy,
        proxy_refresh,
    })
}
