//! Static checks of a parsed flow, reported as [`Diagnostic`]s naming the action.
//!
//! Errors are what Amazon Connect would refuse to publish (unknown types, dangling branches,
//! missing required parameters or branches, invalid identifiers, more than 250 actions,
//! conditions a type does not take, a `StartAction` that names nothing). Warnings are
//! suspicious but runnable: a Lambda ARN the host does not know, unreachable actions.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde_json::Value;

use crate::model::{Action, ActionKind, Flow, Operator};
use crate::params::{scalar, truthy, InputValidation, Params};
use crate::path::is_reference;

/// Amazon Connect's limit on actions per flow.
pub const MAX_ACTIONS: usize = 250;
pub const MAX_IDENTIFIER_LEN: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The Identifier of the action concerned; `None` for flow-level findings.
    pub action: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match &self.action {
            Some(a) => write!(f, "{sev}: action {a:?}: {}", self.message),
            None => write!(f, "{sev}: {}", self.message),
        }
    }
}

/// Whether any diagnostic is an error.
pub fn has_errors(diagnostics: &[Diagnostic]) -> bool {
    diagnostics.iter().any(|d| d.severity == Severity::Error)
}

/// Checks `flow`. `known_functions` holds the Lambda function ARNs or names the host can run;
/// a static `LambdaFunctionARN` matching none of them is a warning.
pub fn validate(flow: &Flow, known_functions: &HashSet<String>) -> Vec<Diagnostic> {
    let mut v = Validator { out: Vec::new() };
    if flow.actions.len() > MAX_ACTIONS {
        v.flow_error(format!(
            "the flow has {} actions; at most {MAX_ACTIONS} are allowed",
            flow.actions.len()
        ));
    }
    if flow.actions.is_empty() {
        v.flow_error("the flow has no actions".into());
    }
    if flow.position(&flow.start_action).is_none() {
        v.flow_error(format!("StartAction {:?} does not name an action of this flow", flow.start_action));
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for a in &flow.actions {
        *seen.entry(a.identifier.as_str()).or_default() += 1;
    }
    for a in &flow.actions {
        if seen.get(a.identifier.as_str()).copied().unwrap_or(0) > 1 {
            v.error(a, "the Identifier is used by more than one action".into());
        }
        v.identifier(a);
        v.transitions(flow, a);
        v.parameters(a, known_functions);
        v.conditions(a);
    }
    v.reachability(flow);
    // Dedupe repeated findings of duplicated identifiers, keep document order otherwise.
    let mut unique = HashSet::new();
    v.out.retain(|d| unique.insert((d.action.clone(), d.message.clone())));
    v.out
}

struct Validator {
    out: Vec<Diagnostic>,
}

const FORBIDDEN_CHARS: &[char] = &['%', ':', '(', '\\', '/', ')', '=', '$', ',', ';', '[', ']', '{', '}'];
const FORBIDDEN_NAMES: &[&str] =
    &["__proto__", "constructor", "toString", "valueOf", "hasOwnProperty", "isPrototypeOf", "prototype"];

const EVENT_HOOKS: &[&str] = &[
    "AgentHold",
    "AgentWhisper",
    "CustomerHold",
    "CustomerQueue",
    "CustomerRemaining",
    "CustomerWhisper",
    "DefaultAgentUI",
    "DisconnectAgentUI",
    "PauseContact",
    "ResumeContact",
];

const METRIC_TYPES: &[&str] = &[
    "NumberOfAgentsAvailable",
    "NumberOfAgentsStaffed",
    "NumberOfAgentsOnline",
    "OldestContactInQueueAgeSeconds",
    "NumberOfContactsInQueue",
];

impl Validator {
    fn flow_error(&mut self, message: String) {
        self.out.push(Diagnostic { severity: Severity::Error, action: None, message });
    }

    fn error(&mut self, a: &Action, message: String) {
        self.out.push(Diagnostic { severity: Severity::Error, action: Some(a.identifier.clone()), message });
    }

    fn warning(&mut self, a: &Action, message: String) {
        self.out.push(Diagnostic {
            severity: Severity::Warning,
            action: Some(a.identifier.clone()),
            message,
        });
    }

    fn identifier(&mut self, a: &Action) {
        let id = &a.identifier;
        if id.is_empty() {
            self.error(a, "the Identifier is empty".into());
        } else if id.chars().count() > MAX_IDENTIFIER_LEN {
            self.error(a, format!("the Identifier is longer than {MAX_IDENTIFIER_LEN} characters"));
        }
        if let Some(c) = id.chars().find(|c| FORBIDDEN_CHARS.contains(c)) {
            self.error(a, format!("the Identifier contains the forbidden character {c:?}"));
        }
        if FORBIDDEN_NAMES.contains(&id.as_str()) {
            self.error(a, format!("{id:?} is a reserved name and cannot be an Identifier"));
        }
    }

    fn transitions(&mut self, flow: &Flow, a: &Action) {
        let t = &a.transitions;
        let exists = |id: &str| flow.position(id).is_some();
        if let Some(next) = &t.next_action {
            if !exists(next) {
                self.error(a, format!("NextAction {next:?} does not name an action of this flow"));
            }
        }
        for e in t.errors() {
            if !exists(&e.next_action) {
                self.error(
                    a,
                    format!(
                        "the {} branch goes to {:?}, which is not an action of this flow",
                        e.error_type, e.next_action
                    ),
                );
            }
            if !allowed_errors(&a.kind).contains(&e.error_type.as_str())
                && !matches!(a.kind, ActionKind::Unknown(_))
            {
                self.error(a, format!("{} does not raise the error {:?}", a.kind, e.error_type));
            }
        }
        for c in t.conditions() {
            if !exists(&c.next_action) {
                self.error(
                    a,
                    format!(
                        "the condition branch {} {:?} goes to {:?}, which is not an action of this flow",
                        c.condition.operator.as_str(),
                        c.condition.operands,
                        c.next_action
                    ),
                );
            }
        }
        if a.kind.is_terminal() {
            if t.targets().next().is_some() {
                self.warning(a, format!("{} ends the flow; its transitions are never taken", a.kind));
            }
        } else if t.next_action.is_none()
            && !matches!(
                a.kind,
                ActionKind::Loop
                    | ActionKind::CheckHoursOfOperation
                    | ActionKind::DistributeByPercentage
                    | ActionKind::Unknown(_)
            )
        {
            self.error(a, "the success branch (NextAction) is not connected".into());
        }
        match &a.kind {
            ActionKind::Unknown(t) => self.error(a, format!("unknown action type {t:?}")),
            ActionKind::Loop => self.require_conditions(a, &["ContinueLooping", "DoneLooping"]),
            ActionKind::CheckHoursOfOperation => self.require_conditions(a, &["True", "False"]),
            ActionKind::Compare => {
                if t.conditions().is_empty() {
                    self.error(a, "Compare needs at least one condition".into());
                }
                if t.error_target("NoMatchingCondition").is_none() {
                    self.error(a, "the NoMatchingCondition branch is not connected".into());
                }
            }
            ActionKind::CheckMetricData if t.conditions().is_empty() => {
                self.error(a, "CheckMetricData needs at least one condition".into());
            }
            ActionKind::DistributeByPercentage if t.error_target("NoMatchingCondition").is_none() => {
                self.error(a, "the NoMatchingCondition (default) branch is not connected".into());
            }
            _ => {}
        }
    }

    fn require_conditions(&mut self, a: &Action, operands: &[&str]) {
        for want in operands {
            let found = a.transitions.conditions().iter().any(|c| {
                c.condition.operator == Operator::Equals && c.condition.operands.iter().any(|o| o == want)
            });
            if !found {
                self.error(a, format!("the condition branch Equals {want:?} is missing"));
            }
        }
    }

    fn conditions(&mut self, a: &Action) {
        for c in a.transitions.conditions() {
            let op = &c.condition.operator;
            if let Operator::Unknown(name) = op {
                self.error(a, format!("unknown condition operator {name:?}"));
                continue;
            }
            if c.condition.operands.len() != 1 {
                self.error(
                    a,
                    format!(
                        "condition {} takes exactly one operand, not {}",
                        op.as_str(),
                        c.condition.operands.len()
                    ),
                );
            }
            let operand = c.condition.operands.first().map(String::as_str).unwrap_or("");
            let problem = match &a.kind {
                ActionKind::Compare => (op.is_numeric() && crate::model::parse_number(operand).is_none())
                    .then(|| format!("{} needs a numeric operand, not {operand:?}", op.as_str())),
                ActionKind::GetParticipantInput => {
                    let store = matches!(&a.params, Params::Input(p) if truthy(p.store_input.as_deref()));
                    if store {
                        Some("conditions are not allowed when StoreInput is True".into())
                    } else if *op != Operator::Equals {
                        Some(format!("only Equals conditions are allowed, not {}", op.as_str()))
                    } else if !(operand.len() == 1
                        && operand.chars().all(|c| c.is_ascii_digit() || c == '*' || c == '#'))
                    {
                        Some(format!("the operand must be one keypad key (0-9, * or #), not {operand:?}"))
                    } else {
                        None
                    }
                }
                ActionKind::CheckMetricData => {
                    let metric = a.param_str("MetricType").unwrap_or("");
                    if !op.is_numeric() {
                        Some(format!("metric conditions must be numeric comparisons, not {}", op.as_str()))
                    } else if metric.starts_with("NumberOfAgents")
                        && !(*op == Operator::NumberGreaterThan && operand == "0")
                    {
                        Some(format!("{metric} only allows the condition NumberGreaterThan \"0\""))
                    } else if crate::model::parse_number(operand).is_none() {
                        Some(format!("{} needs a numeric operand, not {operand:?}", op.as_str()))
                    } else {
                        None
                    }
                }
                ActionKind::Loop => equals_one_of(op, operand, &["ContinueLooping", "DoneLooping"]),
                ActionKind::CheckHoursOfOperation => equals_one_of(op, operand, &["True", "False"]),
                ActionKind::MessageParticipantIteratively => {
                    equals_one_of(op, operand, &["MessagesInterrupted"])
                }
                ActionKind::CheckVoiceId => (*op != Operator::Equals)
                    .then(|| format!("only Equals conditions are allowed, not {}", op.as_str())),
                ActionKind::DistributeByPercentage => (*op != Operator::NumberLessThan
                    || crate::model::parse_number(operand).is_none())
                .then(|| "conditions must be NumberLessThan a percentage".to_string()),
                ActionKind::Unknown(_) => None,
                kind => Some(format!("{kind} does not take conditions")),
            };
            if let Some(p) = problem {
                self.error(a, p);
            }
        }
    }

    fn parameters(&mut self, a: &Action, known_functions: &HashSet<String>) {
        let p = a.parameters.as_ref();
        let has = |k: &str| p.and_then(|p| p.get(k)).is_some();
        let missing = |k: &str| format!("the required parameter {k} is missing");
        match (&a.kind, &a.params) {
            (ActionKind::UpdateContactAttributes, _) => {
                match p.and_then(|p| p.get("Attributes")) {
                    Some(Value::Object(m)) => {
                        if m.is_empty() {
                            self.error(a, "Attributes is empty".into());
                        }
                        for (k, v) in m {
                            if k.is_empty()
                                || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                            {
                                self.error(
                                    a,
                                    format!(
                                        "attribute key {k:?} may only contain letters, digits, '-' and '_'"
                                    ),
                                );
                            }
                            if scalar(Some(v)).is_none() {
                                self.error(a, format!("attribute {k:?} must have a text value"));
                            }
                        }
                    }
                    Some(_) => self.error(a, "Attributes must be an object".into()),
                    None => self.error(a, missing("Attributes")),
                }
                self.one_of_values(a, "TargetContact", &["Current", "Related"]);
            }
            (ActionKind::InvokeLambdaFunction, Params::Lambda(l)) => {
                match &l.function_arn {
                    None => self.error(a, missing("LambdaFunctionARN")),
                    Some(arn) if !is_reference(arn) && !function_known(arn, known_functions) => {
                        self.warning(a, format!("the Lambda function {arn:?} is not a known function"))
                    }
                    Some(_) => {}
                }
                let asynchronous = l.invocation_type.as_deref() == Some("ASYNCHRONOUS");
                self.one_of_values(a, "InvocationType", &["SYNCHRONOUS", "ASYNCHRONOUS"]);
                let max = if asynchronous { 60 } else { 8 };
                self.int_range(a, "InvocationTimeLimitSeconds", l.time_limit_seconds.as_deref(), 1, max);
                if let Some(rt) = &l.response_type {
                    if rt != "STRING_MAP" && rt != "JSON" {
                        self.error(
                            a,
                            format!("ResponseValidation.ResponseType must be STRING_MAP or JSON, not {rt:?}"),
                        );
                    }
                }
            }
            (ActionKind::MessageParticipant, Params::Message(None)) if !has("Media") => {
                self.error(a, "a prompt is required: one of Text, SSML or PromptId".into());
            }
            (ActionKind::GetParticipantInput, Params::Input(i)) => {
                if i.prompt.is_none() && !has("Media") {
                    self.error(a, "a prompt is required: one of Text, SSML or PromptId".into());
                }
                self.int_range(a, "InputTimeLimitSeconds", i.time_limit_seconds.as_deref(), 1, 179);
                self.one_of_values(a, "StoreInput", &["True", "False", "true", "false"]);
                let store = truthy(i.store_input.as_deref());
                match (&i.validation, store) {
                    (None, true) => {
                        self.error(a, "InputValidation is required when StoreInput is True".into())
                    }
                    (Some(_), false) => {
                        self.error(a, "InputValidation is only allowed when StoreInput is True".into())
                    }
                    (Some(InputValidation::Custom { maximum_length }), true) => {
                        self.int_range(a, "CustomValidation.MaximumLength", maximum_length.as_deref(), 1, 20)
                    }
                    (Some(InputValidation::Phone { number_format, .. }), true) => {
                        if !matches!(number_format.as_deref(), Some("Local" | "E164")) {
                            self.error(a, "PhoneNumberValidation.NumberFormat must be Local or E164".into());
                        }
                    }
                    (None, false) => {}
                }
                if let Some(t) = &i.termination_sequence {
                    if t.len() > 5 || !t.chars().all(|c| c.is_ascii_digit() || c == '*' || c == '#') {
                        self.error(
                            a,
                            format!("InputTerminationSequence {t:?} must be up to 5 keys of 0-9, * and #"),
                        );
                    }
                }
                self.int_range(a, "InterdigitTimeLimitSeconds", i.interdigit_seconds.as_deref(), 1, 20);
            }
            (ActionKind::MessageParticipantIteratively, Params::Messages { prompts, interrupt_seconds }) => {
                if prompts.is_empty() {
                    self.error(a, "Messages needs at least one prompt".into());
                }
                self.int_range(a, "InterruptFrequencySeconds", interrupt_seconds.as_deref(), 1, 3600);
            }
            (ActionKind::CreateCallbackContact, Params::Callback(c)) => {
                self.int_range(a, "InitialCallDelaySeconds", c.initial_delay_seconds.as_deref(), 1, 259_200);
                self.int_range(a, "RetryDelaySeconds", c.retry_delay_seconds.as_deref(), 1, 259_200);
                self.int_range(a, "MaximumConnectionAttempts", c.maximum_attempts.as_deref(), 1, 100);
                if c.queue_id.is_some() && c.agent_id.is_some() {
                    self.error(a, "QueueId and AgentId cannot both be set".into());
                }
            }
            (ActionKind::Compare, _) => self.required(a, "ComparisonValue"),
            (ActionKind::CheckMetricData, _) => match a.param_str("MetricType") {
                None => self.error(a, missing("MetricType")),
                Some(m) if !METRIC_TYPES.contains(&m) => self.error(a, format!("unknown MetricType {m:?}")),
                Some(_) => {}
            },
            (ActionKind::TransferToFlow, _) => self.required(a, "ContactFlowId"),
            (ActionKind::UpdateContactTargetQueue, _) => match (has("QueueId"), has("AgentId")) {
                (false, false) => self.error(a, "one of QueueId or AgentId is required".into()),
                (true, true) => self.error(a, "QueueId and AgentId cannot both be set".into()),
                _ => {}
            },
            (ActionKind::UpdateContactCallbackNumber, _) => self.required(a, "CallbackNumber"),
            (ActionKind::UpdateFlowLoggingBehavior, _) => {
                self.required(a, "FlowLoggingBehavior");
                self.one_of_values(a, "FlowLoggingBehavior", &["Enabled", "Disabled"]);
            }
            (ActionKind::UpdateContactRecordingBehavior, _)
                if !has("RecordingBehavior") && !has("AnalyticsBehavior") =>
            {
                self.error(a, missing("RecordingBehavior"));
            }
            (ActionKind::UpdateContactMediaStreamingBehavior, _) => {
                self.required(a, "MediaStreamingState");
                self.one_of_values(a, "MediaStreamingState", &["Enabled", "Disabled"]);
            }
            (ActionKind::Loop, _) => match scalar(p.and_then(|p| p.get("LoopCount"))) {
                None => self.error(a, missing("LoopCount")),
                Some(n) if !is_reference(&n) => self.int_range(a, "LoopCount", Some(&n), 0, 100),
                Some(_) => {}
            },
            (ActionKind::UpdateContactEventHooks, _) => match p.and_then(|p| p.get("EventHooks")) {
                Some(Value::Object(m)) if m.len() == 1 => {
                    for k in m.keys() {
                        if !EVENT_HOOKS.contains(&k.as_str()) {
                            self.error(a, format!("unknown event hook {k:?}"));
                        }
                    }
                }
                Some(Value::Object(_)) => self.error(a, "EventHooks must have exactly one entry".into()),
                _ => self.error(a, missing("EventHooks")),
            },
            (ActionKind::UpdateContactTextToSpeechVoice, _) => self.required(a, "TextToSpeechVoice"),
            (ActionKind::UpdateContactRoutingCriteria, _) => self.required(a, "RoutingCriteria"),
            (ActionKind::TransferParticipantToThirdParty, _) => {
                self.required(a, "ThirdPartyPhoneNumber");
                let t = scalar(p.and_then(|p| p.get("ThirdPartyConnectionTimeLimitSeconds")));
                self.int_range(a, "ThirdPartyConnectionTimeLimitSeconds", t.as_deref(), 1, 600);
            }
            (ActionKind::UpdateContactData, _) => {
                self.one_of_values(a, "TargetContact", &["Current", "Related"])
            }
            _ => {}
        }
    }

    fn required(&mut self, a: &Action, key: &str) {
        match a.param(key) {
            None | Some(Value::Null) => self.error(a, format!("the required parameter {key} is missing")),
            Some(Value::String(s)) if s.is_empty() => self.error(a, format!("the parameter {key} is empty")),
            _ => {}
        }
    }

    fn one_of_values(&mut self, a: &Action, key: &str, allowed: &[&str]) {
        if let Some(v) = scalar(a.param(key)) {
            if !allowed.contains(&v.as_str()) {
                self.error(a, format!("{key} must be one of {allowed:?}, not {v:?}"));
            }
        }
    }

    /// A static integer parameter within `[min, max]` (absent is fine; references are not checked).
    fn int_range(&mut self, a: &Action, key: &str, value: Option<&str>, min: i64, max: i64) {
        let Some(v) = value else { return };
        if is_reference(v) {
            return;
        }
        match v.trim().parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => {}
            _ => self.error(a, format!("{key} must be a whole number from {min} to {max}, not {v:?}")),
        }
    }

    fn reachability(&mut self, flow: &Flow) {
        let Some(start) = flow.position(&flow.start_action) else { return };
        let mut seen = vec![false; flow.actions.len()];
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            for t in flow.actions[i].transitions.targets() {
                if let Some(j) = flow.position(t) {
                    if !seen[j] {
                        stack.push(j);
                    }
                }
            }
        }
        for (i, a) in flow.actions.iter().enumerate() {
            if !seen[i] {
                self.warning(a, "the action cannot be reached from StartAction".into());
            }
        }
    }
}

fn equals_one_of(op: &Operator, operand: &str, allowed: &[&str]) -> Option<String> {
    (*op != Operator::Equals || !allowed.contains(&operand))
        .then(|| format!("conditions must be Equals one of {allowed:?}, not {} {operand:?}", op.as_str()))
}

/// Error types each action type may raise (`NoMatchingError` is the generic failure).
fn allowed_errors(kind: &ActionKind) -> &'static [&'static str] {
    match kind {
        ActionKind::GetParticipantInput => {
            &["NoMatchingError", "NoMatchingCondition", "InputTimeLimitExceeded", "InvalidPhoneNumber"]
        }
        ActionKind::Compare | ActionKind::DistributeByPercentage => &["NoMatchingCondition"],
        ActionKind::CheckMetricData => &["NoMatchingError", "NoMatchingCondition"],
        ActionKind::TransferContactToQueue => &["NoMatchingError", "QueueAtCapacity"],
        ActionKind::UpdateContactCallbackNumber => &["InvalidCallbackNumber", "CallbackNumberNotDialable"],
        ActionKind::DisconnectParticipant
        | ActionKind::EndFlowExecution
        | ActionKind::TransferContactToAgent
        | ActionKind::Loop
        | ActionKind::UpdateFlowLoggingBehavior
        | ActionKind::UpdateContactTextToSpeechVoice
        | ActionKind::UpdateContactRecordingBehavior
        | ActionKind::CompleteOutboundCall => &[],
        _ => &["NoMatchingError"],
    }
}

/// A function matches by full ARN, by ARN without its `:alias` qualifier, or by name.
pub fn function_known(arn: &str, known: &HashSet<String>) -> bool {
    if known.contains(arn) {
        return true;
    }
    // arn:aws:lambda:region:account:function:NAME[:QUALIFIER]
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() >= 7 && parts[5] == "function" {
        let unqualified = parts[..7].join(":");
        return known.contains(&unqualified) || known.contains(parts[6]);
    }
    false
}
