//! Date-time parsing and formatting at the API's edges.
//!
//! Clients send date-times as ISO-8601 strings, with or without fractional seconds and
//! offset (`2019-07-02T17:32:28Z`, `2019-07-02T17:32:28.123+02:00`, `2019-07-02T17:32:28`
//! meaning UTC); transcript and signal times are epoch milliseconds. Records store UTC
//! ISO-8601 strings with milliseconds, the CRM platform's canonical form.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeZone, Utc};

/// Parses an ISO-8601 date-time into epoch milliseconds. A value without offset is UTC.
pub fn parse_iso_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_millis());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M"] {
        if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
            return Some(dt.timestamp_millis());
        }
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(n.and_utc().timestamp_millis());
        }
    }
    None
}

/// Formats epoch milliseconds as the stored form, `2019-07-02T17:32:28.000Z`. Out-of-range
/// values clamp to the representable range instead of failing.
pub fn format_ms(ms: i64) -> String {
    let dt = Utc.timestamp_millis_opt(ms).single().unwrap_or(if ms < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    });
    dt.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse_iso_ms("2019-07-02T17:32:28Z"), Some(1_562_088_748_000));
        assert_eq!(parse_iso_ms("2019-07-02T17:32:28.5Z"), Some(1_562_088_748_500));
        assert_eq!(parse_iso_ms("2019-07-02T17:32:28"), Some(1_562_088_748_000));
        assert_eq!(parse_iso_ms("2019-07-02T19:32:28+02:00"), Some(1_562_088_748_000));
        assert_eq!(parse_iso_ms("yesterday"), None);
        assert_eq!(format_ms(1_562_088_748_000), "2019-07-02T17:32:28.000Z");
        let _ = format_ms(i64::MAX);
        let _ = format_ms(i64::MIN);
    }
}
