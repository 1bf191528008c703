//! Literal values: string escapes, date and date-time literals, and the relative date
//! literals (`TODAY`, `LAST_N_DAYS:30`, …) with the ranges they stand for.
//!
//! A relative literal is a half-open range of days in the caller's time zone; it is resolved
//! against `now` only at evaluation time, so a parsed query stays valid across midnight.

use crate::lexer::Tok;
use chrono::{DateTime, Datelike, Days, FixedOffset, Months, NaiveDate, TimeZone};

/// Decodes the body of a single-quoted SOQL string. The escapes are the platform's:
/// `\n \r \t \b \f \" \' \\ \uXXXX`, plus `\%` and `\_`, which are kept escaped so LIKE can
/// tell a literal `%` from a wildcard (`=` unescapes them again, see `like::unescape_like`).
/// On error returns the byte offset of the backslash and the message.
pub(crate) fn unescape_string(raw: &str) -> Result<String, (usize, String)> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.char_indices();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some((_, e)) = chars.next() else {
            return Err((i, "unterminated string literal".to_string()));
        };
        match e {
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            '"' | '\'' => out.push(e),
            '\\' => out.push_str("\\\\"),
            '%' | '_' => {
                out.push('\\');
                out.push(e);
            }
            'u' => {
                let hex: String = chars.by_ref().take(4).map(|(_, h)| h).collect();
                let ch = (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .and_then(char::from_u32)
                    .ok_or_else(|| (i, format!("Invalid unicode escape '\\u{hex}' in string literal")))?;
                if ch == '\\' {
                    out.push_str("\\\\");
                } else {
                    out.push(ch);
                }
            }
            other => {
                return Err((
                    i,
                    format!(
                        "Invalid string literal '{raw}'. Illegal character sequence '\\{other}' in string literal."
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// Parses `2024-01-31` into a date token and `2024-01-31T10:00:00Z`,
/// `2024-01-31T10:00:00.123+02:00` or `…+0200` into a date-time token. A date-time needs
/// an offset or `Z`, as on the platform.
pub(crate) fn parse_date_time(raw: &str) -> Option<Tok> {
    if raw.len() == 10 {
        return NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok().map(Tok::Date);
    }
    let normalized;
    let s = if let Some(body) = raw.strip_suffix('Z') {
        normalized = format!("{body}+00:00");
        normalized.as_str()
    } else {
        raw
    };
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%z"] {
        if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
            return Some(Tok::DateTime(dt));
        }
    }
    None
}

/// The relative date literals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelativeDate {
    Yesterday,
    Today,
    Tomorrow,
    LastWeek,
    ThisWeek,
    NextWeek,
    LastMonth,
    ThisMonth,
    NextMonth,
    LastQuarter,
    ThisQuarter,
    NextQuarter,
    LastYear,
    ThisYear,
    NextYear,
    Last90Days,
    Next90Days,
    LastNDays(u32),
    NextNDays(u32),
    NDaysAgo(u32),
    LastNWeeks(u32),
    NextNWeeks(u32),
    NWeeksAgo(u32),
    LastNMonths(u32),
    NextNMonths(u32),
    NMonthsAgo(u32),
    LastNYears(u32),
    NextNYears(u32),
}

/// Whether `name` is a relative literal, and if so whether it takes `:n`.
pub(crate) fn relative_kind(name: &str) -> Option<bool> {
    const PLAIN: [&str; 17] = [
        "YESTERDAY",
        "TODAY",
        "TOMORROW",
        "LAST_WEEK",
        "THIS_WEEK",
        "NEXT_WEEK",
        "LAST_MONTH",
        "THIS_MONTH",
        "NEXT_MONTH",
        "LAST_QUARTER",
        "THIS_QUARTER",
        "NEXT_QUARTER",
        "LAST_YEAR",
        "THIS_YEAR",
        "NEXT_YEAR",
        "LAST_90_DAYS",
        "NEXT_90_DAYS",
    ];
    const WITH_N: [&str; 11] = [
        "LAST_N_DAYS",
        "NEXT_N_DAYS",
        "N_DAYS_AGO",
        "LAST_N_WEEKS",
        "NEXT_N_WEEKS",
        "N_WEEKS_AGO",
        "LAST_N_MONTHS",
        "NEXT_N_MONTHS",
        "N_MONTHS_AGO",
        "LAST_N_YEARS",
        "NEXT_N_YEARS",
    ];
    let upper = name.to_ascii_uppercase();
    if PLAIN.contains(&upper.as_str()) {
        Some(false)
    } else if WITH_N.contains(&upper.as_str()) {
        Some(true)
    } else {
        None
    }
}

impl RelativeDate {
    /// Builds the literal from its name (any case) and, for the `_N_` forms, `n`.
    pub(crate) fn from_parts(name: &str, n: Option<u32>) -> Option<RelativeDate> {
        use RelativeDate::*;
        Some(match (name.to_ascii_uppercase().as_str(), n) {
            ("YESTERDAY", None) => Yesterday,
            ("TODAY", None) => Today,
            ("TOMORROW", None) => Tomorrow,
            ("LAST_WEEK", None) => LastWeek,
            ("THIS_WEEK", None) => ThisWeek,
            ("NEXT_WEEK", None) => NextWeek,
            ("LAST_MONTH", None) => LastMonth,
            ("THIS_MONTH", None) => ThisMonth,
            ("NEXT_MONTH", None) => NextMonth,
            ("LAST_QUARTER", None) => LastQuarter,
            ("THIS_QUARTER", None) => ThisQuarter,
            ("NEXT_QUARTER", None) => NextQuarter,
            ("LAST_YEAR", None) => LastYear,
            ("THIS_YEAR", None) => ThisYear,
            ("NEXT_YEAR", None) => NextYear,
            ("LAST_90_DAYS", None) => Last90Days,
            ("NEXT_90_DAYS", None) => Next90Days,
            ("LAST_N_DAYS", Some(n)) => LastNDays(n),
            ("NEXT_N_DAYS", Some(n)) => NextNDays(n),
            ("N_DAYS_AGO", Some(n)) => NDaysAgo(n),
            ("LAST_N_WEEKS", Some(n)) => LastNWeeks(n),
            ("NEXT_N_WEEKS", Some(n)) => NextNWeeks(n),
            ("N_WEEKS_AGO", Some(n)) => NWeeksAgo(n),
            ("LAST_N_MONTHS", Some(n)) => LastNMonths(n),
            ("NEXT_N_MONTHS", Some(n)) => NextNMonths(n),
            ("N_MONTHS_AGO", Some(n)) => NMonthsAgo(n),
            ("LAST_N_YEARS", Some(n)) => LastNYears(n),
            ("NEXT_N_YEARS", Some(n)) => NextNYears(n),
            _ => return None,
        })
    }

    /// The half-open range of days `[start, end)` the literal covers when today is `today`.
    /// Weeks start on Sunday (the platform's default locale); quarters are calendar
    /// quarters. Ranges past chrono's calendar clamp to its ends instead of failing.
    pub fn days(self, today: NaiveDate) -> (NaiveDate, NaiveDate) {
        use RelativeDate::*;
        let add = |d: NaiveDate, n: i64| shift_days(d, n);
        let addm = |d: NaiveDate, n: i64| shift_months(d, n);
        let week = add(today, -i64::from(today.weekday().num_days_from_sunday()));
        let month = today.with_day(1).unwrap_or(today);
        let quarter = month.with_month0(month.month0() / 3 * 3).unwrap_or(month);
        let year = month.with_month(1).unwrap_or(month);
        let n = |k: u32| i64::from(k);
        match self {
            Yesterday => (add(today, -1), today),
            Today => (today, add(today, 1)),
            Tomorrow => (add(today, 1), add(today, 2)),
            LastWeek => (add(week, -7), week),
            ThisWeek => (week, add(week, 7)),
            NextWeek => (add(week, 7), add(week, 14)),
            LastMonth => (addm(month, -1), month),
            ThisMonth => (month, addm(month, 1)),
            NextMonth => (addm(month, 1), addm(month, 2)),
            LastQuarter => (addm(quarter, -3), quarter),
            ThisQuarter => (quarter, addm(quarter, 3)),
            NextQuarter => (addm(quarter, 3), addm(quarter, 6)),
            LastYear => (addm(year, -12), year),
            ThisYear => (year, addm(year, 12)),
            NextYear => (addm(year, 12), addm(year, 24)),
            // "Last N days" includes today; "next N days" starts tomorrow.
            Last90Days => (add(today, -90), add(today, 1)),
            Next90Days => (add(today, 1), add(today, 91)),
            LastNDays(k) => (add(today, -n(k)), add(today, 1)),
            NextNDays(k) => (add(today, 1), add(today, 1 + n(k))),
            NDaysAgo(k) => (add(today, -n(k)), add(today, 1 - n(k))),
            LastNWeeks(k) => (add(week, -7 * n(k)), week),
            NextNWeeks(k) => (add(week, 7), add(week, 7 + 7 * n(k))),
            NWeeksAgo(k) => (add(week, -7 * n(k)), add(week, 7 - 7 * n(k))),
            LastNMonths(k) => (addm(month, -n(k)), month),
            NextNMonths(k) => (addm(month, 1), addm(month, 1 + n(k))),
            NMonthsAgo(k) => (addm(month, -n(k)), addm(month, 1 - n(k))),
            LastNYears(k) => (addm(year, -12 * n(k)), year),
            NextNYears(k) => (addm(year, 12), addm(year, 12 + 12 * n(k))),
        }
    }
}

fn shift_days(d: NaiveDate, n: i64) -> NaiveDate {
    let r = if n >= 0 {
        d.checked_add_days(Days::new(n.unsigned_abs()))
    } else {
        d.checked_sub_days(Days::new(n.unsigned_abs()))
    };
    r.unwrap_or(if n >= 0 { NaiveDate::MAX } else { NaiveDate::MIN })
}

fn shift_months(d: NaiveDate, n: i64) -> NaiveDate {
    let m = u32::try_from(n.unsigned_abs()).ok().map(Months::new);
    let r = m.and_then(|m| if n >= 0 { d.checked_add_months(m) } else { d.checked_sub_months(m) });
    r.unwrap_or(if n >= 0 { NaiveDate::MAX } else { NaiveDate::MIN })
}

/// Epoch milliseconds of midnight starting `day` at `offset`.
pub(crate) fn day_start_ms(day: NaiveDate, offset: FixedOffset) -> i64 {
    let naive = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    match offset.from_local_datetime(&naive).single() {
        Some(dt) => dt.timestamp_millis(),
        None => naive.and_utc().timestamp_millis(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn string_escapes() {
        assert_eq!(unescape_string(r"it\'s").unwrap(), "it's");
        assert_eq!(unescape_string(r#"a\"b\n\t\u00e9"#).unwrap(), "a\"b\n\té");
        assert_eq!(unescape_string(r"50\%").unwrap(), r"50\%");
        assert_eq!(unescape_string(r"a\\b").unwrap(), r"a\\b");
        let (at, msg) = unescape_string(r"ab\$").unwrap_err();
        assert_eq!(at, 2);
        assert!(msg.contains(r"Illegal character sequence '\$'"), "{msg}");
        assert!(unescape_string(r"\u12").is_err());
        assert!(unescape_string("\\").is_err());
    }

    #[test]
    fn date_time_forms() {
        assert_eq!(parse_date_time("2024-01-31"), Some(Tok::Date(d(2024, 1, 31))));
        let ms = |s: &str| match parse_date_time(s) {
            Some(Tok::DateTime(dt)) => Some(dt.timestamp_millis()),
            _ => None,
        };
        assert_eq!(ms("2024-01-31T10:00:00Z"), Some(1_706_695_200_000));
        assert_eq!(ms("2024-01-31T10:00:00.250Z"), Some(1_706_695_200_250));
        assert_eq!(ms("2024-01-31T12:00:00+02:00"), Some(1_706_695_200_000));
        assert_eq!(ms("2024-01-31T05:00:00-0500"), Some(1_706_695_200_000));
        assert_eq!(ms("2024-01-31T10:00:00"), None);
        assert_eq!(parse_date_time("2024-02-30"), None);
    }

    #[test]
    fn relative_ranges() {
        let today = d(2024, 5, 15); // a Wednesday
        assert_eq!(RelativeDate::Today.days(today), (today, d(2024, 5, 16)));
        assert_eq!(RelativeDate::ThisWeek.days(today), (d(2024, 5, 12), d(2024, 5, 19)));
        assert_eq!(RelativeDate::LastWeek.days(today), (d(2024, 5, 5), d(2024, 5, 12)));
        assert_eq!(RelativeDate::LastMonth.days(today), (d(2024, 4, 1), d(2024, 5, 1)));
        assert_eq!(RelativeDate::ThisQuarter.days(today), (d(2024, 4, 1), d(2024, 7, 1)));
        assert_eq!(RelativeDate::LastNDays(7).days(today), (d(2024, 5, 8), d(2024, 5, 16)));
        assert_eq!(RelativeDate::NextNDays(1).days(today), (d(2024, 5, 16), d(2024, 5, 17)));
        assert_eq!(RelativeDate::Last90Days.days(today).0, d(2024, 2, 15));
        assert_eq!(RelativeDate::NDaysAgo(2).days(today), (d(2024, 5, 13), d(2024, 5, 14)));
        // Huge n clamps rather than panics.
        let _ = RelativeDate::LastNYears(u32::MAX).days(today);
        let _ = RelativeDate::NextNDays(u32::MAX).days(NaiveDate::MAX);
    }
}
