//! Answers kept in memory for the build being served, so a repeated request
//! costs no query: keyed by ETag (build id + normalised request), dropped all
//! at once when a new build is published, oldest first when over budget.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use axum::body::Bytes;
use axum::http::{HeaderName, HeaderValue};

/// One cached answer: its body, content type and the headers particular to
/// it (`Link`, `X-Total-Count`…).
#[derive(Clone)]
pub(crate) struct Cached {
    pub content_type: &'static str,
    pub body: Bytes,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// The answers of one build, at most `budget` bytes of bodies.
pub(crate) struct Cache {
    budget: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    build: String,
    map: HashMap<String, Cached>,
    /// Insertion order, for evicting the oldest.
    order: VecDeque<String>,
    bytes: usize,
}

impl Cache {
    /// A cache holding at most `budget` bytes (0: none); one answer may take
    /// an eighth of it.
    pub fn new(budget: usize) -> Cache {
        Cache {
            budget,
            state: Mutex::new(State::default()),
        }
    }

    /// The answer for `etag` on `build`, when kept.
    pub fn get(&self, build: &str, etag: &str) -> Option<Cached> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.build != build {
            return None;
        }
        state.map.get(etag).cloned()
    }

    /// Keeps `answer` for `etag` on `build`; a new build drops every answer of
    /// the old one, and the oldest go while over budget.
    pub fn put(&self, build: &str, etag: String, answer: Cached) {
        let size = answer.body.len();
        if size > self.budget / 8 {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.build != build {
            *state = State {
                build: build.to_owned(),
                ..State::default()
            };
        }
        if state.map.contains_key(&etag) {
            return;
        }
        while state.bytes + size > self.budget {
            let Some(old) = state.order.pop_front() else {
                break;
            };
            if let Some(gone) = state.map.remove(&old) {
                state.bytes -= gone.body.len();
            }
        }
        state.bytes += size;
        state.order.push_back(etag.clone());
        state.map.insert(etag, answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(n: usize) -> Cached {
        Cached {
            content_type: "application/json",
            body: Bytes::from(vec![b'x'; n]),
            headers: Vec::new(),
        }
    }

    #[test]
    fn keeps_one_build_and_evicts_the_oldest_over_budget() {
        let cache = Cache::new(800);
        cache.put("b1", "a".into(), answer(100));
        cache.put("b1", "b".into(), answer(100));
        assert!(cache.get("b1", "a").is_some());
        assert!(cache.get("b2", "a").is_none(), "another build never hits");
        // Too big for one answer (> budget / 8): not kept.
        cache.put("b1", "big".into(), answer(101));
        assert!(cache.get("b1", "big").is_none());
        for k in 0..8 {
            cache.put("b1", format!("k{k}"), answer(100));
        }
        assert!(cache.get("b1", "a").is_none(), "the oldest went first");
        assert!(cache.get("b1", "b").is_none());
        assert!(cache.get("b1", "k7").is_some());
        let bytes = cache.state.lock().expect("lock").bytes;
        assert!(bytes <= 800, "{bytes}");
        // A new build drops the old one's answers.
        cache.put("b2", "a".into(), answer(10));
        assert!(cache.get("b1", "k7").is_none());
        assert_eq!(cache.get("b2", "a").expect("kept").body.len(), 10);
        assert_eq!(cache.state.lock().expect("lock").bytes, 10);
    }
}
