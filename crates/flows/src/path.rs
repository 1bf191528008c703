//! `$.` references: resolving one path against a contact, and interpolating every reference
//! inside prompt text, SSML and parameter values.
//!
//! A reference is `$.` followed by dot-separated segments of `[A-Za-z0-9_-]`; it ends at the
//! first other character, so `"Your case is $.External.CaseNumber."` and the concatenation
//! `"$.Attributes.a$.Attributes.b"` both do what they look like. A parameter value that is
//! exactly one reference is *dynamic* and may be missing ([`value`] returns `None`); inside
//! longer text a missing reference becomes the empty string, as Amazon Connect does.

use std::borrow::Cow;

use serde_json::Value;

use crate::state::{ContactState, Environment};

/// Resolves one path such as `$.Attributes.voiceCallId` or `$.Queue.Name`.
pub fn resolve<'a>(state: &'a ContactState, env: &'a Environment, path: &str) -> Option<Cow<'a, str>> {
    let rest = path.strip_prefix("$.")?;
    let (head, tail) = match rest.split_once('.') {
        Some((h, t)) => (h, Some(t)),
        None => (rest, None),
    };
    let b = |s: &'a str| Some(Cow::Borrowed(s));
    let opt = |s: &'a Option<String>| s.as_deref().map(Cow::Borrowed);
    match (head, tail) {
        ("Attributes", Some(key)) => state.attributes.get(key).map(|v| Cow::Borrowed(v.as_str())),
        ("External", Some(key)) => external(&state.external, key),
        ("StoredCustomerInput", None) => opt(&state.stored_customer_input),
        ("ContactId", None) => b(&state.contact_id),
        ("InitialContactId", None) => b(&state.initial_contact_id),
        ("PreviousContactId", None) => opt(&state.previous_contact_id),
        ("Channel", None) => b(&state.channel),
        ("InitiationMethod", None) => b(&state.initiation_method),
        ("InstanceARN", None) => b(&env.instance_arn),
        ("LanguageCode", None) => b(&state.language_code),
        ("TextToSpeechVoiceId", None) => b(&state.text_to_speech_voice),
        ("CustomerId", None) => opt(&state.customer_id),
        ("Name", None) => opt(&state.name),
        ("Description", None) => opt(&state.description),
        ("CustomerCallbackNumber", None) => opt(&state.callback_number),
        ("CustomerEndpoint", Some(f)) => endpoint(state.customer_endpoint.as_ref(), f),
        ("SystemEndpoint", Some(f)) => endpoint(state.system_endpoint.as_ref(), f),
        ("Queue", Some(f)) => {
            let q = state.queue.as_ref()?;
            match f {
                "Name" => b(&q.name),
                "ARN" => b(&q.arn),
                "OutboundCallerId.Address" => opt(&q.outbound_caller_id),
                _ => None,
            }
        }
        ("Agent", Some(f)) => {
            let a = state.agent.as_ref()?;
            match f {
                "UserName" => b(&a.username),
                "FirstName" => b(&a.first_name),
                "LastName" => b(&a.last_name),
                "ARN" => b(&a.arn),
                _ => None,
            }
        }
        ("MediaStreams", Some(f)) => {
            let s = state.customer_audio.as_ref()?;
            match f.strip_prefix("Customer.Audio.")? {
                "StreamARN" => b(&s.stream_arn),
                "StartTimestamp" => opt(&s.start_timestamp),
                "StopTimestamp" => opt(&s.stop_timestamp),
                "StartFragmentNumber" => opt(&s.start_fragment_number),
                _ => None,
            }
        }
        ("Metrics", Some(f)) => {
            let q = state.queue.as_ref()?;
            let m = match &q.agent_id {
                Some(agent) => &env.agent(agent)?.metrics,
                None => &env.queue(&q.id)?.metrics,
            };
            let n = match f {
                "Queue.Size" => m.contacts_in_queue,
                "Queue.OldestContactAge" => m.oldest_contact_age_ms / 1000,
                "Agents.Online.Count" => m.agents_online,
                "Agents.Available.Count" => m.agents_available,
                "Agents.Staffed.Count" => m.agents_staffed,
                _ => return None,
            };
            Some(Cow::Owned(n.to_string()))
        }
        ("LambdaInvocation", Some("InvocationId")) => opt(&state.lambda_invocation_id),
        _ => None,
    }
}

fn endpoint<'a>(e: Option<&'a crate::state::Endpoint>, field: &str) -> Option<Cow<'a, str>> {
    let e = e?;
    match field {
        "Address" => Some(Cow::Borrowed(&e.address)),
        "Type" => Some(Cow::Borrowed(&e.kind)),
        _ => None,
    }
}

/// `$.External.a.b`: walks nested JSON responses; scalars as text, structures as JSON text.
fn external<'a>(root: &'a Value, path: &str) -> Option<Cow<'a, str>> {
    let mut v = root;
    for seg in path.split('.') {
        v = match v {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Null => None,
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Owned(b.to_string())),
        other => Some(Cow::Owned(other.to_string())),
    }
}

/// The length of the reference starting at `s` (which begins with `$.`), or 0 if none.
fn reference_len(s: &str) -> usize {
    let bytes = s.as_bytes();
    if !s.starts_with("$.") {
        return 0;
    }
    let seg = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    let mut end = 0;
    let mut i = 2;
    loop {
        let start = i;
        while i < bytes.len() && seg(bytes[i]) {
            i += 1;
        }
        if i == start {
            break;
        }
        end = i;
        if i + 1 < bytes.len() && bytes[i] == b'.' && seg(bytes[i + 1]) {
            i += 1;
        } else {
            break;
        }
    }
    end
}

/// Whether `s` is exactly one `$.` reference (a dynamic parameter value).
pub fn is_reference(s: &str) -> bool {
    let n = reference_len(s);
    n > 0 && n == s.len()
}

/// Replaces every `$.` reference in `text`; missing values become empty. Borrows when there
/// is nothing to replace, so static prompts cost no allocation.
pub fn interpolate<'a>(state: &ContactState, env: &Environment, text: &'a str) -> Cow<'a, str> {
    if !text.contains("$.") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("$.") {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        let n = reference_len(tail);
        if n == 0 {
            out.push_str("$.");
            rest = &tail[2..];
            continue;
        }
        if let Some(v) = resolve(state, env, &tail[..n]) {
            out.push_str(&v);
        }
        rest = &tail[n..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// A parameter value: a lone reference resolves (and may be missing); anything else is
/// interpolated text.
pub fn value<'a>(state: &'a ContactState, env: &'a Environment, raw: &'a str) -> Option<Cow<'a, str>> {
    if is_reference(raw) {
        resolve(state, env, raw)
    } else {
        Some(interpolate(state, env, raw))
    }
}
