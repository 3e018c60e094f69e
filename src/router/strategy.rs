//! Routing strategies: the last filter, choosing one deployment among the healthy candidates.

use std::{fmt, str::FromStr};

use super::Entry;

/// How the router chooses among a group's healthy deployments (`router_settings.routing_strategy`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub enum Strategy {
    /// `simple-shuffle` (default): random, weighted by `weight`, else `rpm`, else `tpm`.
    #[default]
    SimpleShuffle,
    /// `least-busy`: the fewest requests in flight.
    LeastBusy,
    /// `latency-based-routing`: the lowest recent latency per output token (time to first token
    /// for streams); deployments within `buffer` (a fraction) of the best are picked at random.
    LatencyBased {
        /// `routing_strategy_args.lowest_latency_buffer` (default 0).
        buffer: f64,
    },
    /// `usage-based-routing-v2`: the lowest tokens used this minute, among deployments under their
    /// `rpm` / `tpm` limits.
    UsageBased,
    /// `cost-based-routing`: the lowest price per token (input + output).
    CostBased,
}

impl Strategy {
    /// The config name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::SimpleShuffle => "simple-shuffle",
            Self::LeastBusy => "least-busy",
            Self::LatencyBased { .. } => "latency-based-routing",
            Self::UsageBased => "usage-based-routing-v2",
            Self::CostBased => "cost-based-routing",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown strategy name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownStrategy(pub String);

impl fmt::Display for UnknownStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown routing strategy `{}`", self.0)
    }
}

impl std::error::Error for UnknownStrategy {}

impl FromStr for Strategy {
    type Err = UnknownStrategy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "simple-shuffle" => Self::SimpleShuffle,
            "least-busy" => Self::LeastBusy,
            "latency-based-routing" => Self::LatencyBased { buffer: 0.0 },
            // v1 is LiteLLM's older, slower form of the same strategy.
            "usage-based-routing-v2" | "usage-based-routing" => Self::UsageBased,
            "cost-based-routing" => Self::CostBased,
            other => return Err(UnknownStrategy(other.to_owned())),
        })
    }
}

/// A random index among those of `items` whose `key` is smallest (ties broken at random).
fn argmin_random<T, K: PartialOrd + Copy>(items: &[T], key: impl Fn(&T) -> K) -> usize {
    let mut best: Option<K> = None;
    let mut chosen = 0;
    let mut ties = 0u32;
    for (i, item) in items.iter().enumerate() {
        let k = key(item);
        match best {
            Some(b) if k > b => {}
            Some(b) if k == b => {
                // Reservoir sampling among equals.
                ties += 1;
                if fastrand::u32(..=ties) == 0 {
                    chosen = i;
                }
            }
            _ => {
                best = Some(k);
                chosen = i;
                ties = 0;
            }
        }
    }
    chosen
}

/// Weighted random index; uniform when every weight is zero.
fn weighted(weights: impl Iterator<Item = f64> + Clone, n: usize) -> usize {
    let total: f64 = weights.clone().filter(|w| *w > 0.0 && w.is_finite()).sum();
    if total <= 0.0 {
        return fastrand::usize(..n);
    }
    let mut x = fastrand::f64() * total;
    let mut last = 0;
    for (i, w) in weights.enumerate() {
        if !(w > 0.0 && w.is_finite()) {
            continue;
        }
        last = i;
        if x < w {
            return i;
        }
        x -= w;
    }
    last
}

/// Picks one of `cands` (never empty). `shared`: usage and in-flight counts come from Redis.
pub(crate) fn pick(strategy: Strategy, cands: &[&Entry], shared: bool) -> usize {
    if cands.len() <= 1 {
        return 0;
    }
    match strategy {
        Strategy::SimpleShuffle => {
            let d = |e: &&Entry| e.deployment.clone();
            if cands.iter().any(|e| e.deployment.weight.is_some()) {
                weighted(
                    cands.iter().map(|e| d(e).weight.unwrap_or(0.0)),
                    cands.len(),
                )
            } else if cands.iter().any(|e| e.deployment.rpm.is_some()) {
                weighted(
                    cands.iter().map(|e| e.deployment.rpm.unwrap_or(0) as f64),
                    cands.len(),
                )
            } else if cands.iter().any(|e| e.deployment.tpm.is_some()) {
                weighted(
                    cands.iter().map(|e| e.deployment.tpm.unwrap_or(0) as f64),
                    cands.len(),
                )
            } else {
                fastrand::usize(..cands.len())
            }
        }
        Strategy::LeastBusy => argmin_random(cands, |e| e.state.busy(shared)),
        Strategy::LatencyBased { buffer } => {
            // No sample yet counts as 0: new deployments are tried first (LiteLLM does the same).
            let lat = |e: &&Entry| e.state.latency().unwrap_or(0.0);
            let best = cands.iter().map(lat).fold(f64::INFINITY, f64::min);
            if buffer > 0.0 {
                let limit = best * (1.0 + buffer);
                let within = cands.iter().filter(|e| lat(e) <= limit).count();
                let mut k = fastrand::usize(..within.max(1));
                for (i, e) in cands.iter().enumerate() {
                    if lat(e) <= limit {
                        if k == 0 {
                            return i;
                        }
                        k -= 1;
                    }
                }
            }
            argmin_random(cands, lat)
        }
        Strategy::UsageBased => {
            let minute = cands
                .first()
                .map_or(0, |e| e.state.health.clock().unix_minute());
            argmin_random(cands, |e| e.state.usage(shared, minute).1)
        }
        Strategy::CostBased => argmin_random(cands, |e| e.price()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in [
            Strategy::SimpleShuffle,
            Strategy::LeastBusy,
            Strategy::LatencyBased { buffer: 0.0 },
            Strategy::UsageBased,
            Strategy::CostBased,
        ] {
            assert_eq!(s.name().parse::<Strategy>().unwrap(), s);
        }
        assert!("fastest".parse::<Strategy>().is_err());
    }

    #[test]
    fn weighted_respects_zero_and_bounds() {
        for _ in 0..1000 {
            let i = weighted([0.0, 1.0, 0.0].into_iter(), 3);
            assert_eq!(i, 1);
            assert!(weighted([0.0, 0.0].into_iter(), 2) < 2);
        }
    }

    #[test]
    fn argmin_breaks_ties_randomly() {
        let items = [3, 1, 1, 2];
        let mut seen = [0; 4];
        for _ in 0..1000 {
            seen[argmin_random(&items, |x| *x)] += 1;
        }
        assert_eq!(seen[0] + seen[3], 0);
        assert!(seen[1] > 300 && seen[2] > 300, "{seen:?}");
    }
}
