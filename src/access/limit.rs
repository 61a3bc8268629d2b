//! Failed logins per address: past a number in a minute, further attempts are refused until the minute is over.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at once; beyond it the oldest window is forgotten (bounded memory under a
/// flood from many addresses).
const MAX_TRACKED: usize = 65_536;

/// Counts failed logins by address. An IPv6 address counts as its /64, which one host usually
/// holds whole.
#[derive(Debug)]
pub struct Limiter {
    per_window: u32,
    windows: HashMap<IpAddr, Window>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

impl Limiter {
    /// At most `per_window` failures a minute from one address.
    pub fn new(per_window: u32) -> Limiter {
        Limiter {
            per_window: per_window.max(1),
            windows: HashMap::new(),
        }
    }

    /// `Err(wait)` if `address` used up its failures: it may try again after `wait`.
    pub fn check(&mut self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let key = key(address);
        match self.windows.get(&key) {
            Some(w) if now.duration_since(w.started) >= WINDOW => {
                self.windows.remove(&key);
                Ok(())
            }
            Some(w) if w.failures >= self.per_window => {
                Err(WINDOW.saturating_sub(now.duration_since(w.started)))
            }
            _ => Ok(()),
        }
    }

    /// Notes a failed login from `address`.
    pub fn failed(&mut self, address: IpAddr, now: Instant) {
        let key = key(address);
        if !self.windows.contains_key(&key) && self.windows.len() >= MAX_TRACKED {
            self.windows
                .retain(|_, w| now.duration_since(w.started) < WINDOW);
            if self.windows.len() >= MAX_TRACKED
                && let Some(oldest) = self
                    .windows
                    .iter()
                    .min_by_key(|(_, w)| w.started)
                    .map(|(k, _)| *k)
            {
                self.windows.remove(&oldest);
            }
        }
        let window = self.windows.entry(key).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now.duration_since(window.started) >= WINDOW {
            *window = Window {
                started: now,
                failures: 0,
            };
        }
        window.failures = window.failures.saturating_add(1);
    }
}

fn key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::V6(octets.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eleventh_failure_in_a_minute_waits() {
        let start = Instant::now();
        let mut limiter = Limiter::new(10);
        let me: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        for i in 0..10 {
            assert_eq!(limiter.check(me, start), Ok(()), "{i}");
            limiter.failed(me, start + Duration::from_secs(i));
        }
        let at = start + Duration::from_secs(15);
        assert_eq!(limiter.check(me, at), Err(Duration::from_secs(45)));
        assert_eq!(limiter.check(other, at), Ok(()));
        assert_eq!(limiter.check(me, start + WINDOW), Ok(()));
        // A fresh window after the wait.
        limiter.failed(me, start + WINDOW);
        assert_eq!(limiter.check(me, start + WINDOW), Ok(()));
    }

    #[test]
    fn one_ipv6_host_is_its_slash_64() {
        let start = Instant::now();
        let mut limiter = Limiter::new(2);
        limiter.failed("2001:db8::1".parse().unwrap(), start);
        limiter.failed("2001:db8::ffff:2".parse().unwrap(), start);
        assert!(
            limiter
                .check("2001:db8::3".parse().unwrap(), start)
                .is_err()
        );
        assert!(
            limiter
                .check("2001:db8:0:1::3".parse().unwrap(), start)
                .is_ok()
        );
        limiter.failed("::ffff:192.0.2.1".parse().unwrap(), start);
        limiter.failed("192.0.2.1".parse().unwrap(), start);
        assert!(limiter.check("192.0.2.1".parse().unwrap(), start).is_err());
    }

    #[test]
    fn memory_stays_bounded() {
        let start = Instant::now();
        let mut limiter = Limiter::new(1);
        for i in 0..(MAX_TRACKED as u32 + 10) {
            limiter.failed(
                IpAddr::V4(i.into()),
                start + Duration::from_millis(u64::from(i)),
            );
        }
        assert!(limiter.windows.len() <= MAX_TRACKED);
    }
}
