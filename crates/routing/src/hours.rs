//! Queue opening hours: weekly ranges in local time at a fixed UTC offset, evaluated against the
//! epoch milliseconds the host passes in (no clock, no time-zone database).

/// One open interval in a week, in local time. `day` 0 is Sunday (as in `voxbridge-flows`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenRange {
    pub day: u8,
    pub start_minute: u16,
    /// Exclusive; 1440 is midnight at the end of the day. An end before the start runs past
    /// midnight into the next day.
    pub end_minute: u16,
}

/// A queue's opening hours.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hours {
    /// Local time minus UTC, in minutes (the offset in force; the host updates it for DST).
    pub utc_offset_minutes: i32,
    pub open: Vec<OpenRange>,
}

impl Hours {
    /// Whether the queue is open at `now_ms` (epoch milliseconds, UTC).
    pub fn is_open(&self, now_ms: u64) -> bool {
        let local = i128::from(now_ms) / 60_000 + i128::from(self.utc_offset_minutes);
        let days = local.div_euclid(1440);
        let minute = local.rem_euclid(1440);
        // 1970-01-01 was a Thursday (day 4 with Sunday = 0).
        let day = (days + 4).rem_euclid(7);
        let yesterday = (day + 6) % 7;
        self.open.iter().any(|r| {
            let (d, start, end) = (i128::from(r.day), i128::from(r.start_minute), i128::from(r.end_minute));
            if start < end {
                d == day && start <= minute && minute < end
            } else {
                (d == day && minute >= start) || (d == yesterday && minute < end)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekdays_and_overnight() {
        // Monday 1970-01-05 10:00 UTC.
        let monday_10 = (4 * 1440 + 600) * 60_000;
        let nine_to_five = Hours {
            utc_offset_minutes: 0,
            open: vec![OpenRange { day: 1, start_minute: 540, end_minute: 1020 }],
        };
        assert!(nine_to_five.is_open(monday_10));
        assert!(!nine_to_five.is_open(monday_10 + 8 * 3_600_000));
        let shifted = Hours { utc_offset_minutes: -120, ..nine_to_five.clone() };
        assert!(!shifted.is_open(monday_10)); // 08:00 local
        let night = Hours {
            utc_offset_minutes: 0,
            open: vec![OpenRange { day: 0, start_minute: 1320, end_minute: 360 }],
        };
        assert!(night.is_open(monday_10 - 6 * 3_600_000)); // Monday 04:00, opened Sunday 22:00
        assert!(!night.is_open(monday_10));
    }
}
