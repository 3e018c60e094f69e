//! [`RedisCounters`]: the backend shared by many gateways, with [`MemoryCounters`] for when Redis
//! is down.
//!
//! One Lua script checks every bucket and takes its share atomically, in fixed one-minute windows
//! on the Redis clock, so `N` gateways together allow `rpm` calls, not `N × rpm`.

use std::{
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use super::{memory::MemoryCounters, policy::Bucket, Decision};
use crate::redis_guard::Breaker;

const ADMIT_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1])
local win = math.floor(now / 60)
local retry = 60 - (now % 60)
local n = tonumber(ARGV[1])
for i = 1, n do
  local b = KEYS[i]
  local rpm = tonumber(ARGV[2 + (i - 1) * 3])
  local tpm = tonumber(ARGV[3 + (i - 1) * 3])
  local par = tonumber(ARGV[4 + (i - 1) * 3])
  if par >= 0 then
    local c = tonumber(redis.call('GET', b .. ':par') or '0')
    if c + 1 > par then return {0, i, 3, 1} end
  end
  if tpm >= 0 then
    local c = tonumber(redis.call('GET', b .. ':tpm:' .. win) or '0')
    if c >= tpm then return {0, i, 2, retry} end
  end
  if rpm >= 0 then
    local c = tonumber(redis.call('GET', b .. ':rpm:' .. win) or '0')
    if c + 1 > rpm then return {0, i, 1, retry} end
  end
end
local out = {1, 0, 0, 0}
for i = 1, n do
  local b = KEYS[i]
  local rpm = tonumber(ARGV[2 + (i - 1) * 3])
  local tpm = tonumber(ARGV[3 + (i - 1) * 3])
  local par = tonumber(ARGV[4 + (i - 1) * 3])
  local rem_r = -1
  local rem_t = -1
  if rpm >= 0 then
    local k = b .. ':rpm:' .. win
    local c = redis.call('INCR', k)
    if c == 1 then redis.call('EXPIRE', k, 120) end
    rem_r = rpm - c
  end
  if tpm >= 0 then
    rem_t = tpm - tonumber(redis.call('GET', b .. ':tpm:' .. win) or '0')
  end
  if par >= 0 then
    redis.call('INCR', b .. ':par')
    redis.call('EXPIRE', b .. ':par', 3600)
  end
  table.insert(out, rem_r)
  table.insert(out, rem_t)
end
return out
";

const RELEASE_LUA: &str = r"
local t = redis.call('TIME')
local win = math.floor(tonumber(t[1]) / 60)
local tokens = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
for i = 1, n do
  local b = KEYS[i]
  local par = tonumber(ARGV[2 + (i - 1) * 2 + 1])
  local tpm = tonumber(ARGV[2 + (i - 1) * 2 + 2])
  if par >= 0 then
    local c = redis.call('DECR', b .. ':par')
    if c < 0 then redis.call('SET', b .. ':par', 0) end
  end
  if tpm >= 0 and tokens > 0 then
    local k = b .. ':tpm:' .. win
    redis.call('INCRBY', k, tokens)
    redis.call('EXPIRE', k, 120)
  end
end
return 1
";

/// Counters shared through Redis, with in-process counters for when Redis is down.
#[derive(Clone)]
pub struct RedisCounters {
    conn: redis::aio::ConnectionManager,
    prefix: Arc<str>,
    admit: Arc<redis::Script>,
    release: Arc<redis::Script>,
    errors: Arc<AtomicU64>,
    breaker: Breaker,
    local: Arc<MemoryCounters>,
}

impl fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCounters")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn lim(v: Option<u64>) -> i64 {
    v.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX))
}

impl RedisCounters {
    /// The in-process fallback counters on `clock`, afresh.
    pub(super) fn with_local_clock(mut self, clock: crate::clock::Clock) -> Self {
        self.local = Arc::new(MemoryCounters::with_clock(clock));
        self
    }

    /// The breaker guarding this Redis (for readiness).
    #[must_use]
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Counts the call in process (Redis is down).
    fn admit_locally(&self, scopes: &[Bucket]) -> Decision {
        let mut d = self.local.admit(scopes);
        d.local = true;
        d
    }

    pub(super) async fn admit(&self, scopes: &[Bucket]) -> Decision {
        if self.breaker.skip() {
            return self.admit_locally(scopes);
        }
        let mut inv = self.admit.prepare_invoke();
        inv.arg(scopes.len());
        for s in scopes {
            inv.key(format!("{}:rl:{}", self.prefix, s.name));
            inv.arg(lim(s.rpm)).arg(lim(s.tpm)).arg(lim(s.parallel));
        }
        let mut conn = self.conn.clone();
        let out: Vec<i64> = match self
            .breaker
            .run(inv.invoke_async::<Vec<i64>>(&mut conn))
            .await
        {
            Ok(v) => v,
            Err(_) => {
                // The breaker logged the outage; count the call here meanwhile.
                self.errors.fetch_add(1, Ordering::Relaxed);
                return self.admit_locally(scopes);
            }
        };
        let mut d = Decision::default();
        let get = |i: usize| out.get(i).copied().unwrap_or(-1);
        if get(0) == 0 {
            let idx = usize::try_from(get(1) - 1).unwrap_or(0);
            let Some(s) = scopes.get(idx) else {
                return d;
            };
            let wait = Duration::from_secs(u64::try_from(get(3)).unwrap_or(1).max(1));
            d.refused = Some(match get(2) {
                1 => {
                    let l = s.rpm.unwrap_or(0);
                    d.note_requests(s.kind, l, 0);
                    (s.kind, "requests", l, wait)
                }
                2 => {
                    let l = s.tpm.unwrap_or(0);
                    d.note_tokens(s.kind, l, 0);
                    (s.kind, "tokens", l, wait)
                }
                _ => (s.kind, "parallel requests", s.parallel.unwrap_or(0), wait),
            });
            return d;
        }
        for (i, s) in scopes.iter().enumerate() {
            if let Some(l) = s.rpm {
                d.note_requests(s.kind, l, u64::try_from(get(4 + 2 * i)).unwrap_or(0));
            }
            if let Some(l) = s.tpm {
                d.note_tokens(s.kind, l, u64::try_from(get(5 + 2 * i)).unwrap_or(0));
            }
        }
        d
    }

    pub(super) fn release(&self, scopes: &[Bucket], tokens: u64, local: bool) {
        if local {
            self.local.release(scopes, tokens);
            return;
        }
        if !scopes
            .iter()
            .any(|s| s.parallel.is_some() || (s.tpm.is_some() && tokens > 0))
        {
            return;
        }
        let keys: Vec<String> = scopes
            .iter()
            .map(|s| format!("{}:rl:{}", self.prefix, s.name))
            .collect();
        let args: Vec<i64> = scopes
            .iter()
            .flat_map(|s| [lim(s.parallel), lim(s.tpm)])
            .collect();
        let script = self.release.clone();
        let mut conn = self.conn.clone();
        let errors = self.errors.clone();
        let breaker = self.breaker.clone();
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        tokio::spawn(async move {
            let mut inv = script.prepare_invoke();
            inv.arg(tokens).arg(keys.len());
            for k in &keys {
                inv.key(k);
            }
            for a in &args {
                inv.arg(*a);
            }
            // A slot that cannot be given back expires with its key (one hour); the breaker
            // logged the outage.
            if breaker
                .run(inv.invoke_async::<i64>(&mut conn))
                .await
                .is_err()
            {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}

impl RedisCounters {
    /// Connects; see [`Counters::redis`](super::Counters::redis).
    pub(super) async fn connect(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let deadline = crate::redis_guard::deadline_from_env();
        let client = redis::Client::open(url)?;
        let conn = redis::aio::ConnectionManager::new_with_config(
            client,
            crate::redis_guard::manager_config(deadline),
        )
        .await?;
        let admit = Arc::new(redis::Script::new(ADMIT_LUA));
        let release = Arc::new(redis::Script::new(RELEASE_LUA));
        let load = {
            let (conn, admit, release) = (conn.clone(), admit.clone(), release.clone());
            // Loads both scripts: at start, and when a Redis that came back may have lost them,
            // so the first calls after an outage need no extra round trip.
            move || {
                let (mut c, admit, release) = (conn.clone(), admit.clone(), release.clone());
                async move {
                    admit.load_async(&mut c).await.is_ok()
                        && release.load_async(&mut c).await.is_ok()
                }
            }
        };
        let mut probe = conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut probe).await?;
        admit.load_async(&mut probe).await?;
        release.load_async(&mut probe).await?;
        Ok(Self {
            breaker: Breaker::new("rate limits", deadline, load),
            conn,
            prefix: prefix.into(),
            admit,
            release,
            errors: Arc::default(),
            local: Arc::default(),
        })
    }
}
