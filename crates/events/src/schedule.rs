//! Schedule expressions as EventBridge writes them: `rate(5 minutes)` and the 6-field
//! `cron(minutes hours day-of-month month day-of-week year)`, all in UTC, with pure
//! next-fire-time computation.
//!
//! Cron fields take `*`, values, ranges `a-b`, steps `*/n` and `a/n` and `a-b/n`, and lists;
//! months may be `JAN`–`DEC`, days of the week `SUN`–`SAT` (1 = Sunday). One of
//! day-of-month and day-of-week must be `?` and the other not. Day-of-month also takes `L`
//! (last day), `LW` (last weekday) and `nW` (weekday nearest day n, within the month);
//! day-of-week takes `nL` (last such day of the month) and `n#k` (k-th such day). Years run
//! 1970–2199. Rates take a positive whole number of `minute(s)`, `hour(s)` or `day(s)`,
//! singular for 1 and plural otherwise, as EventBridge insists.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Timelike};
use std::fmt;

const FIRST_YEAR: i32 = 1970;
const LAST_YEAR: i32 = 2199;

/// A parsed schedule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Every this many milliseconds.
    Rate {
        every_ms: i64,
    },
    Cron(Cron),
}

/// Why an expression is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleError(pub String);

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid schedule expression: {}", self.0)
    }
}

impl std::error::Error for ScheduleError {}

fn fail<T>(message: impl Into<String>) -> Result<T, ScheduleError> {
    Err(ScheduleError(message.into()))
}

/// A parsed `cron(...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days: Days,
    /// Index 1–12.
    months: Vec<bool>,
    /// Index 0 = 1970.
    years: Vec<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Days {
    /// Day-of-month rule (day-of-week is `?`).
    Month(MonthDay),
    /// Day-of-week rule (day-of-month is `?`).
    Week(WeekDay),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum MonthDay {
    /// Index 1–31.
    Set(Vec<bool>),
    Last,
    LastWeekday,
    NearestWeekday(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum WeekDay {
    /// Index 1–7, 1 = Sunday.
    Set(Vec<bool>),
    /// The last such weekday of the month.
    Last(u32),
    /// The k-th such weekday of the month.
    Nth(u32, u32),
}

impl Schedule {
    pub fn parse(expression: &str) -> Result<Schedule, ScheduleError> {
        let e = expression.trim();
        if let Some(body) = e.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
            return parse_rate(body);
        }
        if let Some(body) = e.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) {
            return Cron::parse(body).map(Schedule::Cron);
        }
        fail(format!("{e:?} is neither rate(value unit) nor cron(fields)"))
    }

    /// The first fire time strictly after `after_ms` (epoch ms). A rate fires at
    /// `anchor_ms + k·period` for k ≥ 1 (the anchor is when the rule was created); cron
    /// ignores the anchor. `None` when there is no later time (cron past 2199).
    pub fn next_after(&self, after_ms: i64, anchor_ms: i64) -> Option<i64> {
        match self {
            Schedule::Rate { every_ms } => {
                let period = i128::from(*every_ms);
                let (after, anchor) = (i128::from(after_ms), i128::from(anchor_ms));
                let k = if after < anchor + period { 1 } else { (after - anchor) / period + 1 };
                i64::try_from(anchor + k * period).ok()
            }
            Schedule::Cron(cron) => cron.next_after(after_ms),
        }
    }
}

fn parse_rate(body: &str) -> Result<Schedule, ScheduleError> {
    let mut parts = body.split_whitespace();
    let (Some(value), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return fail(format!("rate({body}) must be rate(value unit), like rate(5 minutes)"));
    };
    let n: i64 = match value.parse() {
        Ok(n) if n > 0 && value.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => return fail(format!("the rate value {value:?} must be a positive whole number")),
    };
    let (unit_ms, singular) = match unit {
        "minute" => (60_000, true),
        "minutes" => (60_000, false),
        "hour" => (3_600_000, true),
        "hours" => (3_600_000, false),
        "day" => (86_400_000, true),
        "days" => (86_400_000, false),
        _ => return fail(format!("the rate unit {unit:?} must be minute(s), hour(s) or day(s)")),
    };
    if singular != (n == 1) {
        return fail(format!("rate({body}): use the singular unit for 1 and the plural otherwise"));
    }
    let every_ms =
        n.checked_mul(unit_ms).ok_or_else(|| ScheduleError(format!("rate({body}) is too long")))?;
    Ok(Schedule::Rate { every_ms })
}

const MONTHS: [&str; 12] =
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Parses a `*`/value/range/step/list field into flags indexed by value.
fn parse_set(field: &str, what: &str, lo: u32, hi: u32, names: &[&str]) -> Result<Vec<bool>, ScheduleError> {
    let mut set = vec![false; hi as usize + 1];
    let value = |s: &str| -> Result<u32, ScheduleError> {
        let upper = s.to_ascii_uppercase();
        if let Some(i) = names.iter().position(|n| *n == upper) {
            return Ok(lo + i as u32);
        }
        match s.parse::<u32>() {
            Ok(v) if (lo..=hi).contains(&v) && s.bytes().all(|b| b.is_ascii_digit()) => Ok(v),
            _ => fail(format!("{what}: {s:?} is not a value in {lo}-{hi}")),
        }
    };
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => match s.parse::<u32>() {
                Ok(step) if step > 0 && s.bytes().all(|b| b.is_ascii_digit()) => (r, step),
                _ => return fail(format!("{what}: the step in {item:?} must be a positive whole number")),
            },
            None => (item, 1),
        };
        let (start, end) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return fail(format!("{what}: the range {range:?} runs backwards"));
            }
            (a, b)
        } else {
            let a = value(range)?;
            // `a/n` means from a to the end in steps of n.
            (a, if item.contains('/') { hi } else { a })
        };
        let mut v = start;
        while v <= end {
            set[v as usize] = true;
            v += step;
        }
    }
    Ok(set)
}

impl Cron {
    /// Parses the inside of `cron(...)`.
    pub fn parse(body: &str) -> Result<Cron, ScheduleError> {
        let fields: Vec<&str> = body.split_whitespace().collect();
        let [minutes, hours, dom, month, dow, year] = fields.as_slice() else {
            return fail(format!(
                "cron({body}) needs 6 fields (minutes hours day-of-month month day-of-week year), found {}",
                fields.len()
            ));
        };
        let days = match (*dom == "?", *dow == "?") {
            (true, true) => return fail("day-of-month and day-of-week cannot both be ?"),
            (false, false) => {
                return fail(
                    "one of day-of-month and day-of-week must be ? (EventBridge cannot combine them)",
                )
            }
            (false, true) => Days::Month(parse_month_day(dom)?),
            (true, false) => Days::Week(parse_week_day(dow)?),
        };
        let years = parse_set(year, "year", FIRST_YEAR as u32, LAST_YEAR as u32, &[])?;
        Ok(Cron {
            minutes: parse_set(minutes, "minutes", 0, 59, &[])?,
            hours: parse_set(hours, "hours", 0, 23, &[])?,
            days,
            months: parse_set(month, "month", 1, 12, &MONTHS)?,
            years: years[FIRST_YEAR as usize..].to_vec(),
        })
    }

    /// The first minute strictly after `after_ms` that matches.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let after = DateTime::from_timestamp_millis(after_ms)?.naive_utc();
        // Fires are on whole minutes; start at the next one.
        let mut t = after.with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
        // Every step below moves forward to the next candidate year, month, day, hour or
        // minute, so the loop ends; the bound is a second guard.
        for _ in 0..1_000_000 {
            let year = t.year();
            if year > LAST_YEAR {
                return None;
            }
            if year < FIRST_YEAR || !self.years.get((year - FIRST_YEAR) as usize).copied().unwrap_or(false) {
                t = NaiveDate::from_ymd_opt(year + 1, 1, 1)?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            if !self.months[t.month() as usize] {
                t = first_of_next_month(t)?;
                continue;
            }
            if !self.day_matches(t.date()) {
                t = t.date().succ_opt()?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            if !self.hours[t.hour() as usize] {
                t = t.with_minute(0)? + Duration::hours(1);
                continue;
            }
            if !self.minutes[t.minute() as usize] {
                t += Duration::minutes(1);
                continue;
            }
            return Some(t.and_utc().timestamp_millis());
        }
        None
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        let day = date.day();
        let last = days_in_month(date);
        match &self.days {
            Days::Month(MonthDay::Set(set)) => set[day as usize],
            Days::Month(MonthDay::Last) => day == last,
            Days::Month(MonthDay::LastWeekday) => {
                let last_date = date.with_day(last).unwrap_or(date);
                day == nearest_weekday(last_date, last, last)
            }
            Days::Month(MonthDay::NearestWeekday(n)) => {
                *n <= last && date.with_day(*n).is_some_and(|target| day == nearest_weekday(target, *n, last))
            }
            Days::Week(rule) => {
                let weekday = date.weekday().number_from_sunday();
                match rule {
                    WeekDay::Set(set) => set[weekday as usize],
                    WeekDay::Last(w) => weekday == *w && day + 7 > last,
                    WeekDay::Nth(w, k) => weekday == *w && (day - 1) / 7 + 1 == *k,
                }
            }
        }
    }
}

/// The weekday (Monday–Friday) nearest day `n` of `target`'s month, not leaving the month.
fn nearest_weekday(target: NaiveDate, n: u32, last: u32) -> u32 {
    match target.weekday().number_from_sunday() {
        // Saturday: the Friday before, or the Monday after if that Friday is last month.
        7 => {
            if n > 1 {
                n - 1
            } else {
                n + 2
            }
        }
        // Sunday: the Monday after, or the Friday before if that Monday is next month.
        1 => {
            if n < last {
                n + 1
            } else {
                n.saturating_sub(2)
            }
        }
        _ => n,
    }
}

fn first_of_next_month(t: NaiveDateTime) -> Option<NaiveDateTime> {
    let (y, m) = if t.month() == 12 { (t.year() + 1, 1) } else { (t.year(), t.month() + 1) };
    NaiveDate::from_ymd_opt(y, m, 1)?.and_hms_opt(0, 0, 0)
}

fn days_in_month(date: NaiveDate) -> u32 {
    let (y, m) = if date.month() == 12 { (date.year() + 1, 1) } else { (date.year(), date.month() + 1) };
    NaiveDate::from_ymd_opt(y, m, 1).and_then(|d| d.pred_opt()).map_or(28, |d| d.day())
}

fn parse_month_day(field: &str) -> Result<MonthDay, ScheduleError> {
    match field {
        "L" => return Ok(MonthDay::Last),
        "LW" => return Ok(MonthDay::LastWeekday),
        _ => {}
    }
    if let Some(n) = field.strip_suffix('W') {
        return match n.parse::<u32>() {
            Ok(n) if (1..=31).contains(&n) => Ok(MonthDay::NearestWeekday(n)),
            _ => fail(format!("day-of-month: {field:?} needs a day 1-31 before W")),
        };
    }
    parse_set(field, "day-of-month", 1, 31, &[]).map(MonthDay::Set)
}

fn parse_week_day(field: &str) -> Result<WeekDay, ScheduleError> {
    let weekday = |s: &str| -> Result<u32, ScheduleError> {
        let set = parse_set(s, "day-of-week", 1, 7, &WEEKDAYS)?;
        match set.iter().enumerate().filter(|(_, on)| **on).map(|(i, _)| i as u32).collect::<Vec<_>>()[..] {
            [one] => Ok(one),
            _ => fail(format!("day-of-week: {s:?} must be a single day here")),
        }
    };
    if let Some((day, k)) = field.split_once('#') {
        let k = match k.parse::<u32>() {
            Ok(k) if (1..=5).contains(&k) => k,
            _ => return fail(format!("day-of-week: in {field:?} the number after # must be 1-5")),
        };
        return Ok(WeekDay::Nth(weekday(day)?, k));
    }
    if let Some(day) = field.strip_suffix('L').filter(|d| !d.is_empty()) {
        return Ok(WeekDay::Last(weekday(day)?));
    }
    if field == "L" {
        // Quartz reads a bare L here as Saturday, the last day of the week.
        return Ok(WeekDay::Set((0..=7).map(|i| i == 7).collect()));
    }
    parse_set(field, "day-of-week", 1, 7, &WEEKDAYS).map(WeekDay::Set)
}
