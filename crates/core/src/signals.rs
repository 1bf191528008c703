//! Conversation intelligence signals: real-time events (categories and sentiment pushed to
//! the rep console while the call runs) and post-call events (sentiment stored after the
//! conversation closed).

use crate::error::{ApiError, ErrorCode};

/// Which endpoint a signal came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Realtime,
    PostCall,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Realtime => "Realtime",
            Phase::PostCall => "PostCall",
        }
    }
}

/// One event as received, before validation. Numbers may arrive as strings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawEvent {
    pub kind: Option<String>,
    pub value: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub score: Option<String>,
    pub participant: Option<String>,
}

/// A validated signal.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// `IntelligenceSignal__Category` or `IntelligenceSignal__Sentiment`.
    pub kind: &'static str,
    /// For sentiment, the score rounded to two decimals as text.
    pub value: String,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    pub score: Option<f64>,
    pub participant: Option<&'static str>,
}

pub const CATEGORY: &str = "IntelligenceSignal__Category";
pub const SENTIMENT: &str = "IntelligenceSignal__Sentiment";

/// Validates the events of one request. Events must be sorted by `startTime`.
pub fn validate(phase: Phase, events: &[RawEvent]) -> Result<Vec<Signal>, ApiError> {
    if events.is_empty() {
        return Err(ApiError::required("events"));
    }
    let mut out = Vec::with_capacity(events.len());
    let mut last_start = i64::MIN;
    for (i, e) in events.iter().enumerate() {
        let at = |f: &str| format!("events[{i}].{f}");
        let kind = match e.kind.as_deref() {
            None | Some("") => return Err(ApiError::required(&at("type"))),
            Some(CATEGORY) if phase == Phase::Realtime => CATEGORY,
            Some(SENTIMENT) => SENTIMENT,
            Some(other) => {
                let allowed = if phase == Phase::Realtime {
                    "IntelligenceSignal__Category or IntelligenceSignal__Sentiment"
                } else {
                    "IntelligenceSignal__Sentiment"
                };
                return Err(ApiError::invalid(&at("type"), format!("must be {allowed}, got `{other}`")));
            }
        };
        let value = e
            .value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::required(&at("value")))?;
        let start_ms = e.start_ms.ok_or_else(|| ApiError::required(&at("startTime")))?;
        if start_ms < last_start {
            return Err(ApiError::invalid("events", "must be sorted by startTime in ascending order"));
        }
        last_start = start_ms;
        let end_ms = match (phase, e.end_ms) {
            (Phase::PostCall, None) => return Err(ApiError::required(&at("endTime"))),
            (_, Some(end)) if end < start_ms => {
                return Err(ApiError::invalid(&at("endTime"), "is before startTime"))
            }
            (_, end) => end,
        };
        let value = if kind == SENTIMENT {
            let v: f64 = value.parse().ok().filter(|v: &f64| v.is_finite()).ok_or_else(|| {
                ApiError::invalid(&at("value"), format!("must be a number for sentiment, got `{value}`"))
            })?;
            if !(-1000.0..=1000.0).contains(&v) {
                return Err(ApiError::invalid(
                    &at("value"),
                    format!("must be between -1000 and 1000, got {v}"),
                ));
            }
            format_two_decimals(v)
        } else {
            value.to_string()
        };
        let score = match e.score.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => {
                let v: f64 =
                    s.parse().ok().filter(|v: &f64| v.is_finite()).ok_or_else(|| {
                        ApiError::invalid(&at("score"), format!("must be a number, got `{s}`"))
                    })?;
                if !(0.0..=1000.0).contains(&v) {
                    return Err(ApiError::invalid(
                        &at("score"),
                        format!("must be between 0 and 1000, got {v}"),
                    ));
                }
                Some(v)
            }
        };
        let participant = match e.participant.as_deref() {
            Some("AGENT") => Some("AGENT"),
            Some("CUSTOMER") => Some("CUSTOMER"),
            None | Some("") if kind == SENTIMENT || phase == Phase::PostCall => {
                return Err(ApiError::new(
                    ErrorCode::RequiredFieldMissing,
                    format!(
                        "required field `{}` is missing: sentiment needs AGENT or CUSTOMER",
                        at("participant")
                    ),
                ))
            }
            None | Some("") => None,
            Some(other) => {
                return Err(ApiError::invalid(
                    &at("participant"),
                    format!("must be AGENT or CUSTOMER, got `{other}`"),
                ))
            }
        };
        out.push(Signal { kind, value, start_ms, end_ms, score, participant });
    }
    Ok(out)
}

/// Rounds half away from zero ("rounded up") to two decimals and drops trailing zeros.
fn format_two_decimals(v: f64) -> String {
    let r = (v * 100.0).round() / 100.0;
    let s = format!("{r:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    if s == "-0" {
        "0".to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, value: &str, start: i64) -> RawEvent {
        RawEvent {
            kind: Some(kind.into()),
            value: Some(value.into()),
            start_ms: Some(start),
            ..Default::default()
        }
    }

    #[test]
    fn realtime_rules() {
        let ok =
            validate(Phase::Realtime, &[ev(CATEGORY, "CustomerAngry", 1), ev(CATEGORY, "x", 2)]).unwrap();
        assert_eq!(ok.len(), 2);
        assert!(validate(Phase::Realtime, &[ev(CATEGORY, "a", 2), ev(CATEGORY, "b", 1)]).is_err());
        let mut s = ev(SENTIMENT, "400.129", 1);
        assert!(validate(Phase::Realtime, &[s.clone()]).unwrap_err().message.contains("participant"));
        s.participant = Some("CUSTOMER".into());
        s.score = Some("10".into());
        assert_eq!(validate(Phase::Realtime, &[s.clone()]).unwrap()[0].value, "400.13");
        s.value = Some("1000.5".into());
        assert!(validate(Phase::Realtime, &[s.clone()]).is_err());
        s.value = Some("1".into());
        s.score = Some("1001".into());
        assert!(validate(Phase::Realtime, &[s]).is_err());
        assert!(validate(Phase::Realtime, &[]).is_err());
    }

    #[test]
    fn post_call_rules() {
        let mut s = ev(SENTIMENT, "-1000", 1);
        s.participant = Some("AGENT".into());
        assert!(validate(Phase::PostCall, &[s.clone()]).unwrap_err().message.contains("endTime"));
        s.end_ms = Some(5);
        assert_eq!(validate(Phase::PostCall, &[s]).unwrap()[0].value, "-1000");
        assert!(validate(Phase::PostCall, &[ev(CATEGORY, "x", 1)]).is_err());
    }
}
