//! Enrolment rate limits: token buckets per source address and per
//! challenge, so one client (or one leaked multi-use challenge) cannot spend
//! the RA's RSA operations and the CA's signatures faster than the operator
//! allows. Over the limit: HTTP 429 with Retry-After, before any
//! cryptography is done for the source, and before the request is decided
//! for the challenge.

use std::net::IpAddr;
use std::time::Instant;

use dashmap::DashMap;

/// Requests per second and burst, for one kind of key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

/// The configured limits (0 per second: unlimited).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnrolLimits {
    pub per_source: Rate,
    pub per_challenge: Rate,
}

impl Default for EnrolLimits {
    /// Generous for fleets behind one NAT, tight enough that a single source
    /// cannot keep a core busy with RSA decryptions.
    fn default() -> Self {
        EnrolLimits {
            per_source: Rate {
                per_second: 20.0,
                burst: 100.0,
            },
            per_challenge: Rate {
                per_second: 10.0,
                burst: 50.0,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Source(IpAddr),
    /// SHA-256 of the challenge (never the challenge itself).
    Challenge([u8; 32]),
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets. Idle ones are dropped once the map grows large.
#[derive(Debug, Default)]
pub struct Limiter {
    limits: EnrolLimits,
    buckets: DashMap<Key, Bucket>,
}

/// Seconds until a token is back, when refused.
pub type RetryAfter = u64;

const MAX_BUCKETS: usize = 100_000;

impl Limiter {
    pub fn new(limits: EnrolLimits) -> Self {
        Limiter {
            limits,
            buckets: DashMap::new(),
        }
    }

    /// An IPv6 source counts by its /64: one host can hold a whole /64.
    pub fn source(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        let ip = match ip {
            IpAddr::V6(v6) => {
                let mut o = v6.octets();
                o[8..].fill(0);
                IpAddr::V6(o.into())
            }
            v4 => v4,
        };
        self.take(Key::Source(ip), self.limits.per_source)
    }

    pub fn challenge(&self, challenge: &str) -> Result<(), RetryAfter> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, challenge.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.as_ref());
        self.take(Key::Challenge(key), self.limits.per_challenge)
    }

    fn take(&self, key: Key, rate: Rate) -> Result<(), RetryAfter> {
        if rate.per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        if self.buckets.len() > MAX_BUCKETS {
            // Full buckets carry no information: forget them (each judged
            // by the rate of its own kind).
            let limits = self.limits;
            self.buckets.retain(|k, b| {
                let r = match k {
                    Key::Source(_) => limits.per_source,
                    Key::Challenge(_) => limits.per_challenge,
                };
                r.per_second > 0.0 && b.tokens + now.duration_since(b.at).as_secs_f64() * r.per_second < r.burst
            });
        }
        let mut b = self.buckets.entry(key).or_insert(Bucket {
            tokens: rate.burst,
            at: now,
        });
        let refill = now.duration_since(b.at).as_secs_f64() * rate.per_second;
        b.tokens = (b.tokens + refill).min(rate.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / rate.per_second).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_gets_its_burst_then_waits() {
        let l = Limiter::new(EnrolLimits {
            per_source: Rate {
                per_second: 1.0,
                burst: 3.0,
            },
            ..EnrolLimits::default()
        });
        let ip: IpAddr = [192, 0, 2, 1].into();
        for _ in 0..3 {
            assert!(l.source(ip).is_ok());
        }
        assert_eq!(l.source(ip), Err(1));
        assert!(l.source([192, 0, 2, 2].into()).is_ok(), "per source");
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::2:3".parse().unwrap();
        for _ in 0..3 {
            assert!(l.source(a).is_ok());
        }
        assert!(l.source(b).is_err(), "one IPv6 /64, one source");
    }

    #[test]
    fn challenges_are_limited_apart_and_zero_is_unlimited() {
        let l = Limiter::new(EnrolLimits {
            per_source: Rate {
                per_second: 0.0,
                burst: 0.0,
            },
            per_challenge: Rate {
                per_second: 0.5,
                burst: 1.0,
            },
        });
        assert!(l.challenge("A").is_ok());
        assert_eq!(l.challenge("A"), Err(2));
        assert!(l.challenge("B").is_ok());
        for _ in 0..1000 {
            assert!(l.source([192, 0, 2, 1].into()).is_ok());
        }
    }
}
