//! Time source. The domain never reads the system clock directly so that
//! expiry and validity rules can be tested at any instant.

use time::OffsetDateTime;

/// Something that tells the current time, truncated to whole seconds
/// (certificates and CRLs carry second precision; keeping the domain at the
/// same precision means stored and encoded times always agree).
pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        truncate(OffsetDateTime::now_utc())
    }
}

/// A clock fixed at one instant, for tests.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub OffsetDateTime);

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        truncate(self.0)
    }
}

/// Drops sub-second precision.
pub fn truncate(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}
