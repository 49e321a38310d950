//! Rate limits: how often one key (a user and an IP, an email) may do something.
//!
//! Both limiters run the same algorithm, GCRA: a key may make `burst` requests at once, then
//! one every `period / burst`. The database limiter keeps one row a key, so every node sharing
//! the database shares the limit; the memory limiter (governor) serves a single node. Both take
//! their time from a [`Clock`], so tests move time instead of sleeping.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::Clock;
use crate::store::{Store, StoreError};

/// How many requests a key may make in a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests allowed at once, and in each period.
    pub burst: NonZeroU32,
    pub period: Duration,
}

impl Quota {
    pub fn per_minute(burst: NonZeroU32) -> Self {
        Self {
            burst,
            period: Duration::from_secs(60),
        }
    }

    /// The time one request "costs": a spent request is back after this long.
    pub fn interval(&self) -> Duration {
        self.period / self.burst.get()
    }

    /// How far ahead of now a key's schedule may run before it is refused.
    fn tolerance(&self) -> Duration {
        self.interval() * (self.burst.get() - 1)
    }
}

/// The answer to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Refused; the next request will be allowed after this long.
    Limited {
        retry_after: Duration,
    },
}

#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// The limit's name, for metrics and logs.
    fn name(&self) -> &'static str;

    /// Counts one request for `key`, unless it is over the limit.
    async fn check(&self, key: &str) -> Result<Decision, StoreError>;

    /// Forgets keys that are back to a full allowance (run now and then).
    async fn forget_idle(&self) -> Result<(), StoreError>;
}

/// A limit kept in the database: shared by every node.
pub struct DatabaseLimiter {
    name: &'static str,
    quota: Quota,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl DatabaseLimiter {
    /// `name` keeps this limit's keys apart from other limits' in the shared table.
    pub fn new(
        name: &'static str,
        quota: Quota,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            name,
            quota,
            store,
            clock,
        }
    }
}

#[async_trait]
impl RateLimiter for DatabaseLimiter {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn check(&self, key: &str) -> Result<Decision, StoreError> {
        let wait = self
            .store
            .rate_limit_take(
                &format!("{}:{key}", self.name),
                self.clock.now(),
                millis(self.quota.interval()),
                millis(self.quota.tolerance()),
            )
            .await?;
        Ok(match wait {
            None => Decision::Allowed,
            Some(ms) => Decision::Limited {
                retry_after: Duration::from_millis(u64::try_from(ms.max(1)).unwrap_or(1)),
            },
        })
    }

    async fn forget_idle(&self) -> Result<(), StoreError> {
        self.store
            .rate_limit_forget_before(self.clock.now())
            .await
            .map(|_| ())
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// governor's view of a [`Clock`]: time since the epoch.
#[derive(Clone)]
struct GovernorClock(Arc<dyn Clock>);

impl governor::clock::Clock for GovernorClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.0.now().as_millis()).unwrap_or(0))
    }
}

type KeyedGovernor = governor::RateLimiter<
    String,
    governor::state::keyed::DashMapStateStore<String>,
    GovernorClock,
    governor::middleware::NoOpMiddleware<Duration>,
>;

/// A limit kept in this process (governor): for a single node.
pub struct MemoryLimiter {
    name: &'static str,
    limiter: KeyedGovernor,
    clock: GovernorClock,
}

impl MemoryLimiter {
    pub fn new(name: &'static str, quota: Quota, clock: Arc<dyn Clock>) -> Self {
        let clock = GovernorClock(clock);
        let quota = governor::Quota::with_period(quota.interval())
            .expect("a quota's interval is above zero")
            .allow_burst(quota.burst);
        Self {
            name,
            limiter: governor::RateLimiter::dashmap_with_clock(quota, clock.clone()),
            clock,
        }
    }
}

#[async_trait]
impl RateLimiter for MemoryLimiter {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn check(&self, key: &str) -> Result<Decision, StoreError> {
        use governor::clock::Clock as _;
        Ok(match self.limiter.check_key(&key.to_owned()) {
            Ok(()) => Decision::Allowed,
            Err(not_until) => Decision::Limited {
                retry_after: not_until.wait_time_from(self.clock.now()),
            },
        })
    }

    async fn forget_idle(&self) -> Result<(), StoreError> {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        Ok(())
    }
}

/// The address a request came from, as limits count it. Behind `trusted_proxies` proxies of
/// the site's own (a load balancer, say), the socket's peer is the nearest proxy; the client is
/// the address the outermost trusted proxy appended to `X-Forwarded-For`. Entries further left
/// were written by the client and prove nothing, so they are never used. Without a trusted
/// proxy, or when the header is missing or short (a request that bypassed the proxies), the
/// peer is the client.
pub fn client_address(peer: IpAddr, forwarded_for: &[&str], trusted_proxies: u8) -> IpAddr {
    if trusted_proxies == 0 {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for
        .iter()
        .flat_map(|line| line.split(','))
        .map(str::trim)
        .filter(|hop| !hop.is_empty())
        .collect();
    hops.len()
        .checked_sub(usize::from(trusted_proxies))
        .and_then(|i| hops[i].parse().ok())
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_what_the_outermost_trusted_proxy_saw() {
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // No proxy trusted: the header is anyone's to write.
        assert_eq!(client_address(peer, &["203.0.113.9"], 0), peer);
        // One load balancer: the last entry is the client it saw; a forged entry before it
        // changes nothing.
        assert_eq!(
            client_address(peer, &["1.1.1.1, 203.0.113.9"], 1),
            ip("203.0.113.9")
        );
        // Two proxies, the header over two lines.
        assert_eq!(
            client_address(peer, &["6.6.6.6, 203.0.113.9", "10.0.0.7"], 2),
            ip("203.0.113.9")
        );
        assert_eq!(client_address(peer, &["2001:db8::1"], 1), ip("2001:db8::1"));
        // Bypassed the proxy, or garbage: the peer.
        assert_eq!(client_address(peer, &[], 1), peer);
        assert_eq!(client_address(peer, &["203.0.113.9"], 2), peer);
        assert_eq!(client_address(peer, &["not an address"], 1), peer);
    }
    use crate::clock::ManualClock;
    use crate::domain::Timestamp;

    #[tokio::test]
    async fn the_memory_limiter_follows_the_same_schedule() {
        let clock = ManualClock::starting_at(Timestamp::from_millis(1_800_000_000_000));
        let limiter = MemoryLimiter::new(
            "test",
            Quota::per_minute(NonZeroU32::new(5).unwrap()),
            Arc::new(clock.clone()),
        );
        for _ in 0..5 {
            assert_eq!(limiter.check("k").await.unwrap(), Decision::Allowed);
        }
        assert_eq!(
            limiter.check("k").await.unwrap(),
            Decision::Limited {
                retry_after: Duration::from_secs(12)
            }
        );
        assert_eq!(limiter.check("other").await.unwrap(), Decision::Allowed);
        clock.advance(Duration::from_secs(12));
        assert_eq!(limiter.check("k").await.unwrap(), Decision::Allowed);
        assert!(matches!(
            limiter.check("k").await.unwrap(),
            Decision::Limited { .. }
        ));
    }
}
