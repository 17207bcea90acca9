//! Assertion replay protection: every `(client_id, jti)` seen in an accepted client
//! assertion is remembered until that assertion could no longer be accepted anyway.
//!
//! The memory is per process. On several nodes an assertion could be replayed once against
//! each node within its (at most five-minute) life, so multi-node deployments route
//! `[base]/auth/token` to one node (access tokens themselves are accepted by every node
//! that shares the signing secret).

use std::collections::HashMap;
use std::sync::Mutex;

/// The `jti`s seen recently, with the time (Unix seconds) after which each may be forgotten.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    until: HashMap<(String, String), u64>,
    last_prune: u64,
}

impl ReplayGuard {
    /// Records `jti` of `client_id`, to be remembered until `forget_after`; `false` when it
    /// was already recorded and is still remembered (a replay).
    pub fn first_use(&self, client_id: &str, jti: &str, forget_after: u64, now: u64) -> bool {
        let mut seen = match self.seen.lock() {
            Ok(seen) => seen,
            Err(poisoned) => poisoned.into_inner(),
        };
        if now > seen.last_prune {
            seen.until.retain(|_, until| *until >= now);
            seen.last_prune = now;
        }
        let key = (client_id.to_string(), jti.to_string());
        match seen.until.get(&key) {
            Some(until) if *until >= now => false,
            _ => {
                seen.until.insert(key, forget_after);
                true
            }
        }
    }

    /// How many `jti`s are remembered.
    pub fn len(&self) -> usize {
        self.seen.lock().map_or(0, |s| s.until.len())
    }

    /// True when no `jti` is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_a_second_use_until_it_is_forgotten() {
        let guard = ReplayGuard::default();
        assert!(guard.first_use("a", "j1", 100, 10));
        assert!(!guard.first_use("a", "j1", 100, 20));
        assert!(guard.first_use("b", "j1", 100, 20), "jtis are per client");
        assert!(guard.first_use("a", "j2", 50, 20));
        assert_eq!(guard.len(), 3);
        assert!(
            guard.first_use("a", "j3", 200, 60),
            "j2 is pruned once past"
        );
        assert_eq!(guard.len(), 3);
        assert!(
            guard.first_use("a", "j1", 300, 101),
            "forgotten after its time"
        );
    }
}
