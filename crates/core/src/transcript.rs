//! Transcript rules: who may speak, how participant ids are rewritten for privacy, and when
//! an utterance is stored.
//!
//! An utterance is stored only while its conversation can take it: its start lies between
//! the conversation's start and end, the call is not on hold and recording is not paused.
//! Anything else is refused with the reason, and nothing is stored.

use crate::error::{ApiError, ErrorCode};
use crate::ids::{KeyPrefix, SfId};

/// `senderType` of an utterance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderType {
    EndUser,
    ExternalUser,
    HumanAgent,
    Supervisor,
    VirtualAgent,
}

impl SenderType {
    pub fn parse(s: &str) -> Result<SenderType, ApiError> {
        match s {
            "END_USER" => Ok(SenderType::EndUser),
            "EXTERNAL_USER" => Ok(SenderType::ExternalUser),
            "HUMAN_AGENT" => Ok(SenderType::HumanAgent),
            "SUPERVISOR" => Ok(SenderType::Supervisor),
            "VIRTUAL_AGENT" => Ok(SenderType::VirtualAgent),
            other => Err(ApiError::invalid(
                "senderType",
                format!(
                    "must be one of END_USER, EXTERNAL_USER, HUMAN_AGENT, SUPERVISOR, VIRTUAL_AGENT, got `{other}`"
                ),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SenderType::EndUser => "END_USER",
            SenderType::ExternalUser => "EXTERNAL_USER",
            SenderType::HumanAgent => "HUMAN_AGENT",
            SenderType::Supervisor => "SUPERVISOR",
            SenderType::VirtualAgent => "VIRTUAL_AGENT",
        }
    }
}

/// The participant id stored for an utterance. End users, supervisors and virtual agents
/// are always recorded as `{vendorCallKey}{ROLE}` (whatever the client sent), so no
/// personal identifier reaches the transcript; reps must be a user id (`005…`).
pub fn stored_participant(
    sender: SenderType,
    participant_id: &str,
    conversation_key: &str,
) -> Result<String, ApiError> {
    match sender {
        SenderType::EndUser | SenderType::Supervisor | SenderType::VirtualAgent => {
            Ok(format!("{conversation_key}{}", sender.as_str()))
        }
        SenderType::HumanAgent => {
            SfId::parse_with(participant_id, KeyPrefix::User).map(|id| id.to_18()).map_err(|e| {
                ApiError::invalid(
                    "participantId",
                    format!("of a HUMAN_AGENT must be the rep's user id (005…): {e}"),
                )
            })
        }
        SenderType::ExternalUser => {
            if participant_id.trim().is_empty() {
                Err(ApiError::required("participantId"))
            } else {
                Ok(participant_id.to_string())
            }
        }
    }
}

/// The state of a conversation that decides whether an utterance is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gate {
    pub start_ms: i64,
    /// Set once the conversation is closed.
    pub end_ms: Option<i64>,
    pub on_hold: bool,
    pub recording_paused: bool,
}

/// Whether an utterance `[start_ms, end_ms]` may be stored now.
pub fn check_gate(gate: &Gate, start_ms: i64, end_ms: i64) -> Result<(), ApiError> {
    if end_ms < start_ms {
        return Err(ApiError::invalid("endTime", "is before startTime"));
    }
    // The conversation's start is known to the second; allow the rest of that second.
    if start_ms < gate.start_ms.saturating_sub(gate.start_ms.rem_euclid(1000)) {
        return Err(ApiError::new(
            ErrorCode::InvalidState,
            format!(
                "not stored: the utterance starts at {} before the conversation started at {}",
                crate::time::format_ms(start_ms),
                crate::time::format_ms(gate.start_ms)
            ),
        ));
    }
    if let Some(end) = gate.end_ms {
        if start_ms > end.saturating_add(999) {
            return Err(ApiError::new(
                ErrorCode::InvalidState,
                format!(
                    "not stored: the utterance starts at {} after the conversation ended at {}",
                    crate::time::format_ms(start_ms),
                    crate::time::format_ms(end)
                ),
            ));
        }
    }
    if gate.on_hold {
        return Err(ApiError::new(ErrorCode::InvalidState, "not stored: the call is on hold"));
    }
    if gate.recording_paused {
        return Err(ApiError::new(ErrorCode::InvalidState, "not stored: recording is paused"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privacy_rewrites() {
        let k = "5324881f";
        assert_eq!(stored_participant(SenderType::EndUser, "+14155550100", k).unwrap(), "5324881fEND_USER");
        assert_eq!(stored_participant(SenderType::Supervisor, "bob", k).unwrap(), "5324881fSUPERVISOR");
        assert_eq!(stored_participant(SenderType::VirtualAgent, "x", k).unwrap(), "5324881fVIRTUAL_AGENT");
        assert_eq!(stored_participant(SenderType::ExternalUser, "ext-1", k).unwrap(), "ext-1");
        assert_eq!(stored_participant(SenderType::HumanAgent, "005123456789abc", k).unwrap().len(), 18);
        assert!(stored_participant(SenderType::HumanAgent, "bob", k).is_err());
        assert!(SenderType::parse("VIRTUAL").is_err());
    }

    #[test]
    fn gates() {
        let g = Gate { start_ms: 10_000, end_ms: Some(20_000), on_hold: false, recording_paused: false };
        assert!(check_gate(&g, 10_500, 10_600).is_ok());
        assert!(check_gate(&g, 9_000, 9_500)
            .unwrap_err()
            .message
            .contains("before the conversation started"));
        assert!(check_gate(&g, 21_000, 21_000).unwrap_err().message.contains("after the conversation ended"));
        let held = Gate { on_hold: true, ..g };
        assert!(check_gate(&held, 10_500, 10_600).unwrap_err().message.contains("on hold"));
        let paused = Gate { recording_paused: true, ..g };
        assert!(check_gate(&paused, 10_500, 10_600).unwrap_err().message.contains("recording is paused"));
        assert!(check_gate(&g, i64::MIN, i64::MAX).is_err());
    }
}
