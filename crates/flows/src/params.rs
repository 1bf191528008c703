//! Typed views of the `Parameters` the interpreter reads, built once at parse time.
//!
//! Console exports write every scalar as a string (`"8"`, `"True"`), but hand-written flows and
//! a few exports use JSON numbers and booleans (`"ProficiencyLevel": 1`), so scalars of any
//! kind are read as text. Nothing here fails: a missing or ill-typed value becomes `None` and
//! the validator reports it; the raw JSON stays on the action either way.

use serde_json::Value;

use crate::model::ActionKind;

/// A prompt: exactly one of `Text`, `SSML` or `PromptId` (the language's order of preference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptSpec {
    Text(String),
    Ssml(String),
    PromptId(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputValidation {
    Phone { number_format: Option<String>, country_code: Option<String> },
    Custom { maximum_length: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LambdaParams {
    pub function_arn: Option<String>,
    pub time_limit_seconds: Option<String>,
    pub invocation_type: Option<String>,
    /// `LambdaInvocationAttributes`, in document order.
    pub attributes: Vec<(String, String)>,
    pub response_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InputParams {
    pub prompt: Option<PromptSpec>,
    pub store_input: Option<String>,
    pub time_limit_seconds: Option<String>,
    pub validation: Option<InputValidation>,
    pub termination_sequence: Option<String>,
    pub disable_cancel_key: Option<String>,
    pub interdigit_seconds: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallbackParams {
    pub queue_id: Option<String>,
    pub agent_id: Option<String>,
    pub initial_delay_seconds: Option<String>,
    pub maximum_attempts: Option<String>,
    pub retry_delay_seconds: Option<String>,
    pub contact_flow_id: Option<String>,
    pub caller_id: Option<String>,
}

/// The typed parameters of one action; `Other` for types read straight from the raw JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Params {
    Attributes { attributes: Vec<(String, String)>, target_contact: Option<String> },
    Lambda(LambdaParams),
    Input(InputParams),
    Message(Option<PromptSpec>),
    Messages { prompts: Vec<PromptSpec>, interrupt_seconds: Option<String> },
    Callback(CallbackParams),
    Other,
}

impl Params {
    pub fn from_raw(kind: &ActionKind, raw: Option<&Value>) -> Params {
        let empty = Value::Null;
        let p = raw.unwrap_or(&empty);
        match kind {
            ActionKind::UpdateContactAttributes => Params::Attributes {
                attributes: string_map(p.get("Attributes")),
                target_contact: scalar(p.get("TargetContact")),
            },
            ActionKind::InvokeLambdaFunction => Params::Lambda(LambdaParams {
                function_arn: scalar(p.get("LambdaFunctionARN")),
                time_limit_seconds: scalar(p.get("InvocationTimeLimitSeconds")),
                invocation_type: scalar(p.get("InvocationType")),
                attributes: string_map(p.get("LambdaInvocationAttributes")),
                response_type: scalar(p.get("ResponseValidation").and_then(|v| v.get("ResponseType"))),
            }),
            ActionKind::GetParticipantInput => {
                let validation = p.get("InputValidation").and_then(|v| {
                    if let Some(phone) = v.get("PhoneNumberValidation") {
                        Some(InputValidation::Phone {
                            number_format: scalar(phone.get("NumberFormat")),
                            country_code: scalar(phone.get("CountryCode")),
                        })
                    } else {
                        v.get("CustomValidation").map(|c| InputValidation::Custom {
                            maximum_length: scalar(c.get("MaximumLength")),
                        })
                    }
                });
                let dtmf = p.get("DTMFConfiguration");
                Params::Input(InputParams {
                    prompt: prompt(p),
                    store_input: scalar(p.get("StoreInput")),
                    // An older admin-guide variant spells the key `InputTimeoutSeconds`.
                    time_limit_seconds: scalar(p.get("InputTimeLimitSeconds"))
                        .or_else(|| scalar(p.get("InputTimeoutSeconds"))),
                    validation,
                    termination_sequence: scalar(dtmf.and_then(|d| d.get("InputTerminationSequence"))),
                    disable_cancel_key: scalar(dtmf.and_then(|d| d.get("DisableCancelKey"))),
                    interdigit_seconds: scalar(dtmf.and_then(|d| d.get("InterdigitTimeLimitSeconds"))),
                })
            }
            ActionKind::MessageParticipant => Params::Message(prompt(p)),
            ActionKind::MessageParticipantIteratively => Params::Messages {
                prompts: p
                    .get("Messages")
                    .and_then(Value::as_array)
                    .map(|list| list.iter().filter_map(prompt).collect())
                    .unwrap_or_default(),
                interrupt_seconds: scalar(p.get("InterruptFrequencySeconds")),
            },
            ActionKind::CreateCallbackContact => Params::Callback(CallbackParams {
                queue_id: scalar(p.get("QueueId")),
                agent_id: scalar(p.get("AgentId")),
                initial_delay_seconds: scalar(p.get("InitialCallDelaySeconds")),
                maximum_attempts: scalar(p.get("MaximumConnectionAttempts")),
                retry_delay_seconds: scalar(p.get("RetryDelaySeconds")),
                contact_flow_id: scalar(p.get("ContactFlowId")),
                caller_id: scalar(p.get("CallerId").and_then(|c| c.get("Number"))),
            }),
            _ => Params::Other,
        }
    }
}

/// A scalar as text: strings as-is, numbers and booleans rendered; objects, arrays and null are `None`.
pub fn scalar(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "True".into() } else { "False".into() }),
        _ => None,
    }
}

/// An object of scalars as ordered pairs; non-scalar values are skipped (the validator reports them).
fn string_map(v: Option<&Value>) -> Vec<(String, String)> {
    match v {
        Some(Value::Object(m)) => {
            m.iter().filter_map(|(k, v)| scalar(Some(v)).map(|s| (k.clone(), s))).collect()
        }
        _ => Vec::new(),
    }
}

fn prompt(p: &Value) -> Option<PromptSpec> {
    if let Some(t) = scalar(p.get("Text")) {
        Some(PromptSpec::Text(t))
    } else if let Some(s) = scalar(p.get("SSML")) {
        Some(PromptSpec::Ssml(s))
    } else {
        scalar(p.get("PromptId")).map(PromptSpec::PromptId)
    }
}

/// `"True"`/`"true"` (and JSON `true`, rendered the same) are true; everything else is false.
pub fn truthy(s: Option<&str>) -> bool {
    s.is_some_and(|s| s.eq_ignore_ascii_case("true"))
}
