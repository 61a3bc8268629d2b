//! Who may watch: the users file, signed session cookies and links, and the failed-login limit (no HTTP here).

pub mod cookie;
pub mod keys;
pub mod limit;
pub mod link;
pub mod users;

pub use keys::{Secret, SecretError};
pub use users::{Accounts, UsersError};

/// Seconds since the Unix epoch: the clock cookies and links expire by.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
