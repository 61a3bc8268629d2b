//! Where a stream's viewers are: sessions named in their URLs, or positions inferred from requests.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Time as the stream's state machine sees it: since an epoch its owner picked.
pub type Time = Duration;

/// A viewer that asked for nothing for this long is forgotten.
pub const VIEWER_TIMEOUT: Duration = Duration::from_secs(30);
/// Viewers tracked per stream (each kind); beyond this the least recently seen is forgotten.
const MAX_VIEWERS: usize = 256;

/// A viewer session, carried as `?s=<16 hex digits>` in the segment URIs of its playlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(u64);

impl SessionId {
    /// A fresh id nobody can guess from the ones before it.
    fn new() -> SessionId {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        SessionId(std::collections::hash_map::RandomState::new().hash_one(n))
    }

    /// Parses the URL form; anything else is no session.
    pub fn parse(text: &str) -> Option<SessionId> {
        if text.len() != 16 {
            return None;
        }
        u64::from_str_radix(text, 16).ok().map(SessionId)
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

#[derive(Debug, Clone, Copy)]
struct Cursor {
    position: u64,
    seen: Time,
}

/// One viewer, for status pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    pub session: Option<SessionId>,
    pub position: u64,
    pub idle: Duration,
}

/// Playback positions. A session's position is the segment it asked for last. Requests without a
/// session are matched to a nearby anonymous position (a request just past it, within `step`, is
/// that viewer moving on); anything else is a new viewer or a seek, and the old position fades
/// out after [`VIEWER_TIMEOUT`].
#[derive(Debug, Default)]
pub struct Viewers {
    sessions: HashMap<SessionId, Cursor>,
    /// Which session a client (address and user agent, hashed) joined, so that a player that
    /// reloads its playlist by the original URL stays one viewer.
    clients: HashMap<u64, SessionId>,
    anonymous: Vec<Cursor>,
}

impl Viewers {
    /// A playlist request: rejoins `asked` if it is known, else the session this client had, else
    /// starts a new session at `position`.
    pub fn join(
        &mut self,
        asked: Option<SessionId>,
        client: u64,
        position: u64,
        now: Time,
    ) -> SessionId {
        self.forget_idle(now);
        let known = asked
            .filter(|id| self.sessions.contains_key(id))
            .or_else(|| self.clients.get(&client).copied())
            .filter(|id| self.sessions.contains_key(id));
        let id = match known {
            Some(id) => id,
            None => {
                if self.sessions.len() >= MAX_VIEWERS
                    && let Some(oldest) = self.sessions.iter().min_by_key(|(_, c)| c.seen)
                {
                    let oldest = *oldest.0;
                    self.sessions.remove(&oldest);
                }
                let id = SessionId::new();
                self.sessions.insert(
                    id,
                    Cursor {
                        position,
                        seen: now,
                    },
                );
                id
            }
        };
        if let Some(cursor) = self.sessions.get_mut(&id) {
            cursor.seen = now;
        }
        self.clients.insert(client, id);
        id
    }

    /// Whether a playlist request from `asked` or `client` rejoins a session seen within the
    /// timeout (a player reloading its playlist mid-watch) rather than starting one.
    pub fn knows(&self, asked: Option<SessionId>, client: u64, now: Time) -> bool {
        let live = |id: &SessionId| {
            self.sessions
                .get(id)
                .is_some_and(|c| now.saturating_sub(c.seen) < VIEWER_TIMEOUT)
        };
        asked.is_some_and(|id| live(&id)) || self.clients.get(&client).is_some_and(live)
    }

    /// Records a request for segment `k`, by `session` if the URL named a known one.
    pub fn touch(&mut self, session: Option<SessionId>, k: u64, step: u64, now: Time) {
        self.forget_idle(now);
        if let Some(cursor) = session.and_then(|id| self.sessions.get_mut(&id)) {
            cursor.position = k;
            cursor.seen = now;
            return;
        }
        // A re-request of a recent segment (a retry) keeps the position; a request a little
        // ahead moves it.
        let near = self
            .anonymous
            .iter_mut()
            .filter(|c| k <= c.position.saturating_add(step) && c.position <= k.saturating_add(2))
            .min_by_key(|c| c.position.abs_diff(k));
        match near {
            Some(cursor) => {
                cursor.position = cursor.position.max(k);
                cursor.seen = now;
            }
            None => {
                if self.anonymous.len() >= MAX_VIEWERS
                    && let Some((index, _)) = self
                        .anonymous
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, c)| c.seen)
                {
                    self.anonymous.swap_remove(index);
                }
                self.anonymous.push(Cursor {
                    position: k,
                    seen: now,
                });
            }
        }
    }

    fn forget_idle(&mut self, now: Time) {
        let live = |c: &Cursor| now.saturating_sub(c.seen) < VIEWER_TIMEOUT;
        self.sessions.retain(|_, c| live(c));
        self.anonymous.retain(live);
        let sessions = &self.sessions;
        self.clients.retain(|_, id| sessions.contains_key(id));
    }

    fn cursors(&self, now: Time) -> impl Iterator<Item = (Option<SessionId>, &Cursor)> {
        self.sessions
            .iter()
            .map(|(id, c)| (Some(*id), c))
            .chain(self.anonymous.iter().map(|c| (None, c)))
            .filter(move |(_, c)| now.saturating_sub(c.seen) < VIEWER_TIMEOUT)
    }

    /// Current positions of viewers seen within the timeout.
    pub fn positions(&self, now: Time) -> Vec<u64> {
        self.cursors(now).map(|(_, c)| c.position).collect()
    }

    /// Every viewer seen within the timeout.
    pub fn list(&self, now: Time) -> Vec<Viewer> {
        self.cursors(now)
            .map(|(session, c)| Viewer {
                session,
                position: c.position,
                idle: now.saturating_sub(c.seen),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_requests_move_one_viewer_and_seeks_add_one() {
        let now = Time::from_secs(1000);
        let mut viewers = Viewers::default();
        for k in 0..10 {
            viewers.touch(None, k, 4, now);
        }
        assert_eq!(viewers.positions(now), [9]);
        viewers.touch(None, 8, 4, now);
        assert_eq!(viewers.positions(now), [9]);
        viewers.touch(None, 200, 4, now);
        let mut positions = viewers.positions(now);
        positions.sort();
        assert_eq!(positions, [9, 200]);
    }

    #[test]
    fn sessions_follow_their_viewer_wherever_it_seeks() {
        let now = Time::from_secs(1000);
        let mut viewers = Viewers::default();
        let a = viewers.join(None, 1, 0, now);
        let b = viewers.join(None, 2, 0, now);
        assert_ne!(a, b);
        // The same client reloading its playlist by the original URL stays the same viewer.
        assert_eq!(viewers.join(None, 1, 0, now), a);
        assert_eq!(viewers.join(Some(b), 3, 0, now), b);
        viewers.touch(Some(a), 150, 4, now);
        viewers.touch(Some(b), 3, 4, now);
        let mut positions = viewers.positions(now);
        positions.sort();
        assert_eq!(positions, [3, 150]);
        assert_eq!(SessionId::parse(&a.to_string()), Some(a));
        assert_eq!(SessionId::parse("xyz"), None);
    }

    #[test]
    fn idle_viewers_are_forgotten() {
        let start = Time::from_secs(1000);
        let mut viewers = Viewers::default();
        viewers.touch(None, 3, 4, start);
        let id = viewers.join(None, 9, 0, start);
        let later = start + VIEWER_TIMEOUT + Duration::from_secs(1);
        assert!(viewers.positions(later).is_empty());
        assert_ne!(viewers.join(Some(id), 9, 0, later), id);
        viewers.touch(None, 100, 4, later);
        assert_eq!(viewers.list(later).len(), 2);
    }
}
