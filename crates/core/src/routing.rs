//! Routing definitions (what the guide calls Omni-Channel flows) in their declarative form:
//! route to a queue, to an agent, or choose by one of the flow's input parameters.
//!
//! A definition is stored as JSON in the `Rule` field of a `FlowDefinitionView` record:
//!
//! ```json
//! {"type": "queue", "queue": "Support"}
//! {"type": "agent", "agent": "ada@demo.voxbridge.local"}
//! {"type": "byInput", "parameter": "Department",
//!  "cases": {"Billing": {"type": "queue", "queue": "Billing"}},
//!  "default": {"type": "queue", "queue": "Support"}}
//! ```
//!
//! Queues are named by developer name or id, agents by username or id.

use serde_json::Value;

use crate::record::Fields;

/// Where a routing decision sends the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Queue(String),
    Agent(String),
}

/// Evaluates a rule against the flow's input parameters. `Err` says why the rule could not
/// decide (malformed rule, no matching case and no default), so the fallback queue applies.
pub fn evaluate(rule: &Value, inputs: &Fields) -> Result<Target, String> {
    evaluate_depth(rule, inputs, 0)
}

fn evaluate_depth(rule: &Value, inputs: &Fields, depth: u32) -> Result<Target, String> {
    if depth > 16 {
        return Err("routing rule nests deeper than 16 levels".into());
    }
    let kind = rule.get("type").and_then(Value::as_str).ok_or("routing rule has no `type`")?;
    let text = |name: &str| {
        rule.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| format!("`{kind}` rule needs `{name}`"))
    };
    match kind {
        "queue" => Ok(Target::Queue(text("queue")?)),
        "agent" => Ok(Target::Agent(text("agent")?)),
        "byInput" => {
            let parameter = text("parameter")?;
            let given = inputs.get(&parameter).map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            let case = given.as_ref().and_then(|g| {
                rule.get("cases")?
                    .as_object()?
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(g))
                    .map(|(_, v)| v)
            });
            match case.or_else(|| rule.get("default")) {
                Some(next) => evaluate_depth(next, inputs, depth + 1),
                None => Err(format!(
                    "no case of routing rule matches input `{parameter}`={} and there is no default",
                    given.unwrap_or_else(|| "(absent)".into())
                )),
            }
        }
        other => Err(format!("unknown routing rule type `{other}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evaluates() {
        let rule = json!({"type":"byInput","parameter":"Department",
            "cases":{"Billing":{"type":"queue","queue":"Billing"}},
            "default":{"type":"agent","agent":"ada"}});
        let mut inputs = Fields::new();
        inputs.insert("Department".into(), json!("billing"));
        assert_eq!(evaluate(&rule, &inputs), Ok(Target::Queue("Billing".into())));
        assert_eq!(evaluate(&rule, &Fields::new()), Ok(Target::Agent("ada".into())));
        assert!(evaluate(&json!({"type":"queue"}), &inputs).is_err());
        assert!(evaluate(&json!(null), &inputs).is_err());
        let mut deep = json!({"type":"queue","queue":"q"});
        for _ in 0..40 {
            deep = json!({"type":"byInput","parameter":"x","default":deep});
        }
        assert!(evaluate(&deep, &inputs).is_err());
    }
}
