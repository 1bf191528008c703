//! A small time-bounded cache for what the hot paths read on every request (a
//! conversation's state on each transcript, the org's field definitions on each create).
//!
//! This process invalidates an entry whenever it writes the underlying record, so its own
//! requests always see their own writes. The time bound covers writers elsewhere (another
//! Voxbridge process on the same PostgreSQL): their changes are seen within `ttl_ms`.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

pub(crate) struct TtlCache<K, V> {
    ttl_ms: i64,
    max_entries: usize,
    map: Mutex<HashMap<K, (V, i64)>>,
    /// Bumped by every `remove`: a reader that loaded a value from the store while a write
    /// was being invalidated must not cache what it read (it may predate the write).
    generation: AtomicU64,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub(crate) fn new(ttl_ms: i64, max_entries: usize) -> TtlCache<K, V> {
        TtlCache { ttl_ms, max_entries, map: Mutex::new(HashMap::new()), generation: AtomicU64::new(0) }
    }

    /// Take this before reading the store; pass it to `put`.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub(crate) fn get(&self, key: &K, now_ms: i64) -> Option<V> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).filter(|(_, at)| now_ms - at < self.ttl_ms).map(|(v, _)| v.clone())
    }

    /// Caches `value` unless something was invalidated since `generation` was taken.
    pub(crate) fn put(&self, key: K, value: V, now_ms: i64, generation: u64) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if map.len() >= self.max_entries {
            let ttl = self.ttl_ms;
            map.retain(|_, (_, at)| now_ms - *at < ttl);
            if map.len() >= self.max_entries {
                map.clear();
            }
        }
        map.insert(key, (value, now_ms));
    }

    pub(crate) fn remove(&self, key: &K) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_and_bounds() {
        let c = TtlCache::new(1000, 2);
        c.put("a", 1, 0, c.generation());
        assert_eq!(c.get(&"a", 999), Some(1));
        assert_eq!(c.get(&"a", 1000), None);
        c.put("b", 2, 0, c.generation());
        c.put("c", 3, 2000, c.generation());
        assert_eq!(c.get(&"b", 2000), None);
        c.remove(&"c");
        assert_eq!(c.get(&"c", 2000), None);
        // A value read before an invalidation is not cached.
        let before = c.generation();
        c.remove(&"x");
        c.put("d", 4, 2000, before);
        assert_eq!(c.get(&"d", 2000), None);
    }
}
