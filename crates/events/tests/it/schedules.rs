//! Schedule expressions: parsing (and its errors) and next fire times as a table.

use chrono::{DateTime, NaiveDateTime};
use voxbridge_events::Schedule;

fn ms(utc: &str) -> i64 {
    NaiveDateTime::parse_from_str(utc, "%Y-%m-%d %H:%M").expect(utc).and_utc().timestamp_millis()
}

fn show(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%d %H:%M %a").to_string()).unwrap_or_default()
}

/// Fire times after `from`, `n` of them, as readable UTC.
fn fires(expression: &str, from: &str, n: usize) -> Vec<String> {
    let schedule = Schedule::parse(expression).unwrap_or_else(|e| panic!("{expression}: {e}"));
    let anchor = ms(from);
    let mut at = anchor;
    let mut out = Vec::new();
    for _ in 0..n {
        match schedule.next_after(at, anchor) {
            Some(next) => {
                assert!(next > at, "{expression}: time moves forward");
                out.push(show(next));
                at = next;
            }
            None => break,
        }
    }
    out
}

#[test]
fn rates() {
    assert_eq!(
        fires("rate(5 minutes)", "2024-01-01 00:00", 3),
        ["2024-01-01 00:05 Mon", "2024-01-01 00:10 Mon", "2024-01-01 00:15 Mon"]
    );
    assert_eq!(
        fires("rate(1 hour)", "2024-01-01 10:30", 2),
        ["2024-01-01 11:30 Mon", "2024-01-01 12:30 Mon"]
    );
    assert_eq!(fires("rate(1 day)", "2024-02-28 08:00", 2), ["2024-02-29 08:00 Thu", "2024-03-01 08:00 Fri"]);
    // From an arbitrary point, the grid stays anchored at the rule's creation.
    let s = Schedule::parse("rate(5 minutes)").expect("parse");
    assert_eq!(s.next_after(ms("2024-01-01 00:07"), ms("2024-01-01 00:00")), Some(ms("2024-01-01 00:10")));
    assert_eq!(s.next_after(ms("2024-01-01 00:10"), ms("2024-01-01 00:00")), Some(ms("2024-01-01 00:15")));
    assert_eq!(s.next_after(ms("2023-12-31 00:00"), ms("2024-01-01 00:00")), Some(ms("2024-01-01 00:05")));
    assert_eq!(Schedule::parse("rate(2 days)"), Ok(Schedule::Rate { every_ms: 2 * 86_400_000 }));
}

#[test]
fn crons() {
    let table: Vec<(&str, &str, Vec<&str>)> = vec![
        ("cron(0 12 * * ? *)", "2024-01-01 12:00", vec!["2024-01-02 12:00 Tue", "2024-01-03 12:00 Wed"]),
        (
            "cron(0 17 ? * MON-FRI *)",
            "2024-01-05 18:00",
            vec!["2024-01-08 17:00 Mon", "2024-01-09 17:00 Tue"],
        ),
        ("cron(0/15 * * * ? *)", "2024-01-01 00:07", vec!["2024-01-01 00:15 Mon", "2024-01-01 00:30 Mon"]),
        ("cron(5,35 14 * * ? *)", "2024-01-01 14:05", vec!["2024-01-01 14:35 Mon", "2024-01-02 14:05 Tue"]),
        ("cron(0 9 L * ? *)", "2024-01-15 00:00", vec!["2024-01-31 09:00 Wed", "2024-02-29 09:00 Thu"]),
        // Last weekday: 2024-03-31 is a Sunday, so Friday the 29th.
        ("cron(0 9 LW * ? *)", "2024-03-01 00:00", vec!["2024-03-29 09:00 Fri", "2024-04-30 09:00 Tue"]),
        // Nearest weekday to the 15th: 2024-06-15 is a Saturday -> Friday 14th.
        ("cron(0 9 15W * ? *)", "2024-06-01 00:00", vec!["2024-06-14 09:00 Fri", "2024-07-15 09:00 Mon"]),
        // Nearest weekday to the 1st when it is a Saturday stays in the month: Monday the 3rd.
        ("cron(0 9 1W * ? *)", "2024-05-31 00:00", vec!["2024-06-03 09:00 Mon", "2024-07-01 09:00 Mon"]),
        // Second Tuesday, last Friday.
        ("cron(0 10 ? * 3#2 *)", "2024-01-01 00:00", vec!["2024-01-09 10:00 Tue", "2024-02-13 10:00 Tue"]),
        ("cron(0 10 ? * 6L *)", "2024-01-01 00:00", vec!["2024-01-26 10:00 Fri", "2024-02-23 10:00 Fri"]),
        (
            "cron(30 8 1 JAN,JUL ? 2025-2026)",
            "2024-06-01 00:00",
            vec![
                "2025-01-01 08:30 Wed",
                "2025-07-01 08:30 Tue",
                "2026-01-01 08:30 Thu",
                "2026-07-01 08:30 Wed",
            ],
        ),
        ("cron(0 0 29 2 ? *)", "2024-03-01 00:00", vec!["2028-02-29 00:00 Tue"]),
        ("cron(0 0 31 * ? 2199)", "2199-12-30 00:00", vec!["2199-12-31 00:00 Tue"]),
        ("cron(0 0 ? * SUN *)", "2024-01-01 00:00", vec!["2024-01-07 00:00 Sun"]),
    ];
    for (expression, from, expected) in table {
        assert_eq!(
            fires(expression, from, expected.len() + 1)[..expected.len()],
            expected[..],
            "{expression}"
        );
    }
    // No fire after the last year.
    let s = Schedule::parse("cron(0 0 1 1 ? 2000)").expect("parse");
    assert_eq!(s.next_after(ms("2024-01-01 00:00"), 0), None);
    assert_eq!(fires("cron(0 0 31 * ? 2199)", "2199-12-31 00:00", 3), Vec::<String>::new());
}

#[test]
fn invalid_expressions() {
    for (expression, reason) in [
        ("every 5 minutes", "neither"),
        ("rate(5)", "value unit"),
        ("rate(0 minutes)", "positive"),
        ("rate(-1 minutes)", "positive"),
        ("rate(1 minutes)", "singular"),
        ("rate(5 minute)", "singular"),
        ("rate(5 weeks)", "unit"),
        ("cron(0 12 * * *)", "6 fields"),
        ("cron(0 12 * * * *)", "must be ?"),
        ("cron(0 12 ? * ? *)", "both be ?"),
        ("cron(60 12 * * ? *)", "minutes"),
        ("cron(0 24 * * ? *)", "hours"),
        ("cron(0 12 32 * ? *)", "day-of-month"),
        ("cron(0 12 * 13 ? *)", "month"),
        ("cron(0 12 ? * 8 *)", "day-of-week"),
        ("cron(0 12 * * ? 1969)", "year"),
        ("cron(0 12 * * ? 2200)", "year"),
        ("cron(0/0 12 * * ? *)", "step"),
        ("cron(30-10 12 * * ? *)", "backwards"),
        ("cron(0 12 ? * 2#6 *)", "1-5"),
        ("cron(0 12 ? * MON-FRIL *)", "day-of-week"),
        ("cron(0 12 40W * ? *)", "1-31"),
    ] {
        let e = Schedule::parse(expression).expect_err(expression);
        assert!(e.to_string().contains(reason), "{expression}: {e} should say {reason:?}");
    }
}
