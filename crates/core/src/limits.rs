//! Per-org rate limits (seed chapter 9): calls started per second and transcript
//! utterances per second, counted in one-second windows. The concurrent-call limit is a
//! plain count kept by the caller.

/// A budget of `limit` units per wall-clock second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateWindow {
    limit: u64,
    second: i64,
    used: u64,
}

impl RateWindow {
    pub fn new(limit: u64) -> RateWindow {
        RateWindow { limit, second: i64::MIN, used: 0 }
    }

    /// Takes `n` units at `now_ms` if the current second still has them; all or nothing.
    pub fn try_take(&mut self, now_ms: i64, n: u64) -> bool {
        let second = now_ms.div_euclid(1000);
        if second != self.second {
            self.second = second;
            self.used = 0;
        }
        match self.used.checked_add(n) {
            Some(total) if total <= self.limit => {
                self.used = total;
                true
            }
            _ => false,
        }
    }

    /// Gives back units taken in this second (for a request refused after taking them).
    pub fn give_back(&mut self, now_ms: i64, n: u64) {
        if now_ms.div_euclid(1000) == self.second {
            self.used = self.used.saturating_sub(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_resets_each_second() {
        let mut w = RateWindow::new(3);
        assert!(w.try_take(1_000, 2));
        assert!(!w.try_take(1_500, 2));
        assert!(w.try_take(1_999, 1));
        assert!(!w.try_take(1_999, 1));
        assert!(w.try_take(2_000, 3));
        w.give_back(2_001, 1);
        assert!(w.try_take(2_002, 1));
        assert!(!w.try_take(2_003, u64::MAX));
    }
}
