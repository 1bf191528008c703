//! The typed flow model: a [`Flow`] is a list of [`Action`]s with their [`Transitions`].
//!
//! The model keeps everything the console wrote: `Metadata` verbatim, each action's raw
//! `Parameters`, whether `Errors`/`Conditions` were absent or empty, and any key we do not
//! know, so [`Flow::to_json`] gives back the document that was parsed (same JSON value).

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::params::Params;

/// The only flow-language version Amazon Connect supports.
pub const FLOW_VERSION: &str = "2019-10-30";

/// A parsed flow (`Version: "2019-10-30"`).
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub version: String,
    pub start_action: String,
    pub actions: Vec<Action>,
    /// `Metadata` exactly as exported (positions, friendly names, …); never interpreted.
    pub metadata: Value,
    /// Top-level keys other than the four the language defines, kept for round-tripping.
    pub extra: Map<String, Value>,
    /// Identifier -> index of its first action; built by [`Flow::new`].
    index: HashMap<String, usize>,
}

impl Flow {
    pub fn new(
        version: String,
        start_action: String,
        actions: Vec<Action>,
        metadata: Value,
        extra: Map<String, Value>,
    ) -> Flow {
        let mut index = HashMap::with_capacity(actions.len());
        for (i, a) in actions.iter().enumerate() {
            index.entry(a.identifier.clone()).or_insert(i);
        }
        Flow { version, start_action, actions, metadata, extra, index }
    }

    /// The index of the action with this identifier (the first one if duplicated).
    pub fn position(&self, identifier: &str) -> Option<usize> {
        self.index.get(identifier).copied()
    }

    pub fn action(&self, identifier: &str) -> Option<&Action> {
        self.position(identifier).and_then(|i| self.actions.get(i))
    }

    /// The flow as the console writes it: `Version`, `StartAction`, `Metadata`, `Actions`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("Version".into(), Value::String(self.version.clone()));
        m.insert("StartAction".into(), Value::String(self.start_action.clone()));
        if !self.metadata.is_null() {
            m.insert("Metadata".into(), self.metadata.clone());
        }
        m.insert("Actions".into(), Value::Array(self.actions.iter().map(Action::to_json).collect()));
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }

    /// Compact JSON text of [`Flow::to_json`].
    pub fn to_json_string(&self) -> String {
        self.to_json().to_string()
    }
}

/// One block of the flow.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub identifier: String,
    pub kind: ActionKind,
    /// `Parameters` as exported; `None` when the key is absent (some exports omit it).
    pub parameters: Option<Value>,
    /// The typed view of `parameters` for the types the interpreter reads.
    pub params: Params,
    pub transitions: Transitions,
    /// Action keys other than the four the language defines.
    pub extra: Map<String, Value>,
}

impl Action {
    /// A parameter that is a JSON string.
    pub fn param_str(&self, key: &str) -> Option<&str> {
        self.parameters.as_ref()?.get(key)?.as_str()
    }

    pub fn param(&self, key: &str) -> Option<&Value> {
        self.parameters.as_ref()?.get(key)
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("Identifier".into(), Value::String(self.identifier.clone()));
        m.insert("Type".into(), Value::String(self.kind.as_str().to_owned()));
        if let Some(p) = &self.parameters {
            m.insert("Parameters".into(), p.clone());
        }
        m.insert("Transitions".into(), self.transitions.to_json());
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

/// Where an action goes next.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transitions {
    pub next_action: Option<String>,
    /// `None` when the export has no `Errors` key (distinct from `[]`, kept for round-trips).
    pub errors: Option<Vec<ErrorBranch>>,
    pub conditions: Option<Vec<ConditionBranch>>,
    pub extra: Map<String, Value>,
}

impl Transitions {
    pub fn errors(&self) -> &[ErrorBranch] {
        self.errors.as_deref().unwrap_or(&[])
    }

    pub fn conditions(&self) -> &[ConditionBranch] {
        self.conditions.as_deref().unwrap_or(&[])
    }

    /// The target of the error branch with this `ErrorType`, if any.
    pub fn error_target(&self, error_type: &str) -> Option<&str> {
        self.errors().iter().find(|e| e.error_type == error_type).map(|e| e.next_action.as_str())
    }

    /// Every target this action may go to, in document order.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        self.next_action
            .as_deref()
            .into_iter()
            .chain(self.errors().iter().map(|e| e.next_action.as_str()))
            .chain(self.conditions().iter().map(|c| c.next_action.as_str()))
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if let Some(n) = &self.next_action {
            m.insert("NextAction".into(), Value::String(n.clone()));
        }
        if let Some(errors) = &self.errors {
            let list = errors
                .iter()
                .map(|e| {
                    let mut o = Map::new();
                    o.insert("NextAction".into(), Value::String(e.next_action.clone()));
                    o.insert("ErrorType".into(), Value::String(e.error_type.clone()));
                    Value::Object(o)
                })
                .collect();
            m.insert("Errors".into(), Value::Array(list));
        }
        if let Some(conditions) = &self.conditions {
            let list = conditions
                .iter()
                .map(|c| {
                    let mut cond = Map::new();
                    cond.insert("Operator".into(), Value::String(c.condition.operator.as_str().to_owned()));
                    cond.insert(
                        "Operands".into(),
                        Value::Array(c.condition.operands.iter().cloned().map(Value::String).collect()),
                    );
                    let mut o = Map::new();
                    o.insert("NextAction".into(), Value::String(c.next_action.clone()));
                    o.insert("Condition".into(), Value::Object(cond));
                    Value::Object(o)
                })
                .collect();
            m.insert("Conditions".into(), Value::Array(list));
        }
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ErrorBranch {
    pub next_action: String,
    /// `NoMatchingError`, `NoMatchingCondition`, `InputTimeLimitExceeded`, … kept as text so
    /// unknown error types survive a round-trip; the validator checks them.
    pub error_type: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConditionBranch {
    pub next_action: String,
    pub condition: Condition,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub operator: Operator,
    pub operands: Vec<String>,
}

impl Condition {
    /// Whether `value` satisfies this condition (first operand; the language allows one).
    pub fn matches(&self, value: &str) -> bool {
        match self.operands.first() {
            Some(operand) => self.operator.eval(value, operand),
            None => false,
        }
    }
}

/// Comparison operators of the flow language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    Equals,
    TextStartsWith,
    TextEndsWith,
    TextContains,
    NumberGreaterThan,
    NumberGreaterOrEqualTo,
    NumberLessThan,
    NumberLessOrEqualTo,
    Unknown(String),
}

impl Operator {
    pub fn parse(s: &str) -> Operator {
        match s {
            "Equals" => Operator::Equals,
            "TextStartsWith" => Operator::TextStartsWith,
            "TextEndsWith" => Operator::TextEndsWith,
            "TextContains" => Operator::TextContains,
            "NumberGreaterThan" => Operator::NumberGreaterThan,
            "NumberGreaterOrEqualTo" => Operator::NumberGreaterOrEqualTo,
            "NumberLessThan" => Operator::NumberLessThan,
            "NumberLessOrEqualTo" => Operator::NumberLessOrEqualTo,
            other => Operator::Unknown(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Operator::Equals => "Equals",
            Operator::TextStartsWith => "TextStartsWith",
            Operator::TextEndsWith => "TextEndsWith",
            Operator::TextContains => "TextContains",
            Operator::NumberGreaterThan => "NumberGreaterThan",
            Operator::NumberGreaterOrEqualTo => "NumberGreaterOrEqualTo",
            Operator::NumberLessThan => "NumberLessThan",
            Operator::NumberLessOrEqualTo => "NumberLessOrEqualTo",
            Operator::Unknown(s) => s,
        }
    }

    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            Operator::NumberGreaterThan
                | Operator::NumberGreaterOrEqualTo
                | Operator::NumberLessThan
                | Operator::NumberLessOrEqualTo
        )
    }

    /// Evaluates `value <op> operand`. Text operators are case-sensitive; `Equals` is exact
    /// text equality; the `Number*` operators are false when either side is not a number.
    pub fn eval(&self, value: &str, operand: &str) -> bool {
        match self {
            Operator::Equals => value == operand,
            Operator::TextStartsWith => value.starts_with(operand),
            Operator::TextEndsWith => value.ends_with(operand),
            Operator::TextContains => value.contains(operand),
            Operator::NumberGreaterThan => num_cmp(value, operand, |a, b| a > b),
            Operator::NumberGreaterOrEqualTo => num_cmp(value, operand, |a, b| a >= b),
            Operator::NumberLessThan => num_cmp(value, operand, |a, b| a < b),
            Operator::NumberLessOrEqualTo => num_cmp(value, operand, |a, b| a <= b),
            Operator::Unknown(_) => false,
        }
    }
}

fn num_cmp(a: &str, b: &str, f: impl Fn(f64, f64) -> bool) -> bool {
    match (parse_number(a), parse_number(b)) {
        (Some(a), Some(b)) => f(a, b),
        _ => false,
    }
}

/// A finite decimal number, surrounding whitespace allowed; `NaN`, `inf` and friends are not numbers.
pub fn parse_number(s: &str) -> Option<f64> {
    let s = s.trim();
    let ok = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        && s.bytes().any(|b| b.is_ascii_digit());
    if !ok {
        return None;
    }
    s.parse::<f64>().ok().filter(|n| n.is_finite())
}

macro_rules! action_kinds {
    ($($name:ident),* $(,)?) => {
        /// The action `Type`. Types this crate does not know are kept as `Unknown`.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum ActionKind {
            $($name,)*
            Unknown(String),
        }

        impl ActionKind {
            /// Every known type, in declaration order.
            pub const KNOWN: &'static [ActionKind] = &[$(ActionKind::$name,)*];

            pub fn parse(s: &str) -> ActionKind {
                match s {
                    $(stringify!($name) => ActionKind::$name,)*
                    other => ActionKind::Unknown(other.to_owned()),
                }
            }

            pub fn as_str(&self) -> &str {
                match self {
                    $(ActionKind::$name => stringify!($name),)*
                    ActionKind::Unknown(s) => s,
                }
            }
        }
    };
}

action_kinds!(
    UpdateContactAttributes,
    MessageParticipant,
    MessageParticipantIteratively,
    DisconnectParticipant,
    InvokeLambdaFunction,
    UpdateContactTargetQueue,
    UpdateFlowLoggingBehavior,
    TransferContactToQueue,
    GetParticipantInput,
    UpdateContactRecordingBehavior,
    Loop,
    Compare,
    TransferToFlow,
    UpdateContactMediaStreamingBehavior,
    EndFlowExecution,
    CheckMetricData,
    UpdateContactRoutingCriteria,
    UpdateContactEventHooks,
    UpdateContactData,
    UpdateContactTextToSpeechVoice,
    CheckHoursOfOperation,
    CreateCallbackContact,
    UpdateContactCallbackNumber,
    TransferParticipantToThirdParty,
    StartVoiceIdStream,
    CheckVoiceId,
    CompleteOutboundCall,
    TransferContactToAgent,
    DistributeByPercentage,
);

impl ActionKind {
    /// Types that end the flow and have `Transitions: {}`.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            ActionKind::DisconnectParticipant
                | ActionKind::EndFlowExecution
                | ActionKind::TransferContactToAgent
        )
    }
}

impl std::fmt::Display for ActionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
