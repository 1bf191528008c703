//! A scripted host: runs a contact through one or more flows, answering the interpreter's
//! commands from a script (function responses, keys pressed, queue outcomes, …), and renders
//! what happened as text for snapshots.

use std::collections::VecDeque;
use std::fmt::Write as _;

use serde_json::Value;
use voxbridge_flows::{
    AudioStream, Command, ContactState, Environment, Event, Flow, FunctionResult, HoursOfOperation,
    Interpreter, LogKind, OpenRange, Prompt, QueueInfo, QueueMetrics, QueueOutcome,
};

pub const BASIC_QUEUE_ID: &str = "d56943a9-7293-4220-a60d-99500d362f12";

/// The demo contact center: the sample flows' basic queue, a callback queue and an agent.
pub fn environment() -> Environment {
    let instance = "arn:aws:connect:us-west-2:000000000000:instance/voxbridge";
    Environment {
        instance_arn: instance.into(),
        queues: vec![
            QueueInfo {
                id: BASIC_QUEUE_ID.into(),
                arn: format!("{instance}/queue/{BASIC_QUEUE_ID}"),
                name: "BasicQueue".into(),
                outbound_caller_id: Some("+15550100000".into()),
                hours_of_operation_id: Some("business-hours".into()),
                metrics: QueueMetrics {
                    agents_online: 2,
                    agents_available: 1,
                    agents_staffed: 2,
                    ..Default::default()
                },
            },
            QueueInfo {
                id: "queue-omni".into(),
                arn: format!("{instance}/queue/queue-omni"),
                name: "OmniQueue".into(),
                outbound_caller_id: None,
                hours_of_operation_id: Some("business-hours".into()),
                metrics: QueueMetrics::default(),
            },
        ],
        agents: vec![voxbridge_flows::AgentInfo {
            id: "agent-1".into(),
            arn: format!("{instance}/agent/agent-1"),
            username: "rep1".into(),
            first_name: "Rita".into(),
            last_name: "Rep".into(),
            metrics: QueueMetrics {
                agents_online: 1,
                agents_available: 1,
                agents_staffed: 1,
                ..Default::default()
            },
        }],
        hours: vec![HoursOfOperation {
            id: "business-hours".into(),
            arn: format!("{instance}/operating-hours/business-hours"),
            utc_offset_minutes: -7 * 60,
            // Monday to Friday, 08:00-18:00 local.
            open: (1..=5).map(|day| OpenRange { day, start_minute: 8 * 60, end_minute: 18 * 60 }).collect(),
            override_open: None,
        }],
        ..Environment::default()
    }
}

/// Wednesday 2025-01-15 17:00 UTC = 10:00 in the demo hours' time zone (open).
pub const OPEN_TIME_MS: i64 = 1_736_960_400_000;

pub fn contact() -> ContactState {
    ContactState::inbound("c0ffee00-0000-4000-8000-000000000001", "+14155550123", "+18005550100")
}

/// What the host answers, consumed in order.
#[derive(Default)]
pub struct Script {
    pub functions: VecDeque<FunctionResult>,
    /// `None` is a first-digit timeout.
    pub digits: VecDeque<Option<&'static str>>,
    pub queue: VecDeque<QueueOutcome>,
    pub media: VecDeque<Result<(), &'static str>>,
    pub third_party: VecDeque<Result<(), &'static str>>,
    /// How many `TimerFired` to deliver before the caller hangs up.
    pub timers: usize,
    /// Flow ids (matched as ARN suffix) the host can load, with the flow to start.
    pub flows: Vec<(&'static str, Flow)>,
}

/// Runs `flow` to its end (or until the script runs dry) and renders the transcript.
pub fn run(flow: &Flow, env: &Environment, state: &mut ContactState, mut script: Script) -> String {
    let mut out = String::new();
    let mut current = flow.clone();
    let mut pending = VecDeque::from([Event::Start]);
    let mut now = OPEN_TIME_MS;
    let mut seen_log = state.log().len();
    let mut guard = 0;
    while let Some(event) = pending.pop_front() {
        guard += 1;
        assert!(guard < 200, "script did not finish");
        let commands = Interpreter::new(&current, env).step(state, now, event);
        for entry in &state.log()[seen_log..] {
            let who = entry.action.as_deref().map(short).unwrap_or_default();
            match entry.kind {
                LogKind::Event if entry.action.is_none() => {
                    writeln!(out, "@{:>3}s {}", (now - OPEN_TIME_MS) / 1000, entry.message)
                }
                LogKind::Event => writeln!(out, "    {who}: {}", entry.message),
                LogKind::Action => writeln!(out, "  {who} {}", entry.message),
                LogKind::Warning => writeln!(out, "  ! {who} {}", entry.message),
                LogKind::Error => writeln!(out, "  !! {who} {}", entry.message),
            }
            .unwrap();
        }
        seen_log = state.log().len();
        // Flow-log lines repeat the execution log; leave them out of transcripts.
        for c in commands.iter().filter(|c| !matches!(c, Command::Log(_))) {
            writeln!(out, "    => {}", command(c)).unwrap();
        }
        now += 1000;
        for c in commands {
            let answer = match c {
                Command::InvokeFunction(inv) if !inv.asynchronous => Some(Event::FunctionResult(
                    script
                        .functions
                        .pop_front()
                        .unwrap_or(FunctionResult::Error("no scripted response".into())),
                )),
                Command::CollectDigits(_) => Some(match script.digits.pop_front() {
                    Some(Some(d)) => Event::InputDigits(d.into()),
                    Some(None) | None => Event::InputTimeout,
                }),
                Command::TransferToQueue(_) => {
                    Some(Event::QueueResult(script.queue.pop_front().unwrap_or(QueueOutcome::Queued)))
                }
                Command::StartMediaStreaming { .. } => {
                    Some(Event::MediaStreamStarted(match script.media.pop_front().unwrap_or(Ok(())) {
                        Ok(()) => Ok(AudioStream {
                            stream_arn: "arn:aws:kinesisvideo:us-west-2:000000000000:stream/contact-1".into(),
                            start_fragment_number: Some(
                                "91343852333181432392682062622220590765191907586".into(),
                            ),
                            ..Default::default()
                        }),
                        Err(e) => Err(e.into()),
                    }))
                }
                Command::TransferToThirdParty { .. } => Some(Event::TransferResult(
                    script.third_party.pop_front().unwrap_or(Ok(())).map_err(String::from),
                )),
                Command::TransferToFlow { flow_id } => {
                    match script.flows.iter().position(|(id, _)| flow_id.ends_with(id)) {
                        Some(i) => {
                            let (_, next) = script.flows.remove(i);
                            writeln!(out, "-- now in flow {}", short(&flow_id)).unwrap();
                            current = next;
                            Some(Event::Start)
                        }
                        None => None,
                    }
                }
                Command::StartTimer { .. } if script.timers > 0 => {
                    script.timers -= 1;
                    Some(Event::TimerFired)
                }
                Command::StartTimer { .. } => Some(Event::Disconnected),
                _ => None,
            };
            pending.extend(answer);
        }
    }
    match state.ended() {
        Some(e) => writeln!(out, "end: {e:?}").unwrap(),
        None => writeln!(out, "end: still waiting (the script has no answer)").unwrap(),
    }
    out
}

/// UUID identifiers shortened to their first block; friendly names kept.
pub fn short(id: &str) -> String {
    let last = id.rsplit('/').next().unwrap_or(id);
    if last.len() == 36 && last.as_bytes().get(8) == Some(&b'-') {
        last[..8].to_string()
    } else {
        last.to_string()
    }
}

fn prompt(p: &Prompt) -> String {
    match p {
        Prompt::Text(t) => format!("text {t:?}"),
        Prompt::Ssml(s) => format!("ssml {s:?}"),
        Prompt::PromptId(p) => format!("prompt {}", short(p)),
    }
}

fn command(c: &Command) -> String {
    match c {
        Command::PlayPrompt(p) => format!("PlayPrompt {}", prompt(p)),
        Command::PlayPromptsLoop(ps) => {
            format!("PlayPromptsLoop [{}]", ps.iter().map(prompt).collect::<Vec<_>>().join(", "))
        }
        Command::InvokeFunction(inv) => {
            let name = inv.function_arn.split(':').nth(6).unwrap_or(&inv.function_arn);
            let params = &inv.event["Details"]["Parameters"];
            format!("InvokeFunction {name} {}s async={} {}", inv.timeout_seconds, inv.asynchronous, params)
        }
        Command::SetQueue(q) => format!("SetQueue {} ({})", q.name, short(&q.arn)),
        Command::TransferToQueue(q) => format!("TransferToQueue {}", q.name),
        Command::TransferToFlow { flow_id } => format!("TransferToFlow {}", short(flow_id)),
        Command::CreateCallback(cb) => format!(
            "CreateCallback {} queue={} delay={} attempts={} retry={}",
            cb.number, cb.queue.name, cb.initial_delay_seconds, cb.maximum_attempts, cb.retry_delay_seconds
        ),
        Command::SetRecording { recorded_participants, analytics } => {
            format!(
                "SetRecording {recorded_participants:?} analytics={}",
                analytics.as_ref().map_or(Value::Null, |a| a.clone())
            )
        }
        other => format!("{other:?}"),
    }
}
