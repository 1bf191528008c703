//! Hours of operation in IANA time zones (CheckHoursOfOperation with the queue's hours or the
//! block's), and the event hooks a queued contact runs: the customer queue flow (its prompt
//! loop interrupted by simulated time) and the agent whisper flow. Small flows, no server.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use voxbridge_contacts::{
    AgentConfig, CallerScript, ContactCenter, ContactResult, FlowLibrary, InboundCall, LibraryDefaults,
    QueueConfig, Step,
};
use voxbridge_functions::{ManualClock, Registry};

/// Wednesday 2025-01-15 17:00 UTC (12:00 in New York).
const WEDNESDAY_NOON_NY: i64 = 1_736_960_400_000;
const HOUR: i64 = 3_600_000;

pub fn action(id: &str, kind: &str, params: serde_json::Value, next: &str) -> serde_json::Value {
    json!({"Identifier": id, "Type": kind, "Parameters": params,
           "Transitions": {"NextAction": next, "Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingError"}]}})
}

pub fn write_flow(dir: &Path, name: &str, start: &str, actions: Vec<serde_json::Value>) {
    let flow = json!({"Version": "2019-10-30", "StartAction": start, "Actions": actions});
    std::fs::write(dir.join(format!("{name}.json")), flow.to_string()).unwrap();
}

/// `Hours check`: sets the working queue `queue` (or checks `hours` directly), says "open" or
/// "closed", queues when open. `Hooked`: sets the queue and whisper hooks, then queues.
fn library(dir: &Path) {
    let bye =
        json!({"Identifier": "bye", "Type": "DisconnectParticipant", "Parameters": {}, "Transitions": {}});
    let check = |hours: Option<&str>| {
        let params = hours.map_or(json!({}), |h| json!({"HoursOfOperationId": h}));
        json!({"Identifier": "check", "Type": "CheckHoursOfOperation", "Parameters": params,
               "Transitions": {"NextAction": "bye",
                  "Conditions": [
                      {"NextAction": "open", "Condition": {"Operator": "Equals", "Operands": ["True"]}},
                      {"NextAction": "closed", "Condition": {"Operator": "Equals", "Operands": ["False"]}}],
                  "Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingError"}]}})
    };
    let tail = |check| {
        vec![
            action("set", "UpdateContactTargetQueue", json!({"QueueId": "hq"}), "check"),
            check,
            action("open", "MessageParticipant", json!({"Text": "We are open."}), "queue"),
            action("queue", "TransferContactToQueue", json!({}), "bye"),
            action("closed", "MessageParticipant", json!({"Text": "We are closed."}), "bye"),
            bye.clone(),
        ]
    };
    write_flow(dir, "Queue hours", "set", tail(check(None)));
    write_flow(dir, "Block hours", "set", tail(check(Some("weekend-hours"))));
    write_flow(
        dir,
        "Hooked",
        "q",
        vec![
            action(
                "q",
                "UpdateContactEventHooks",
                json!({"EventHooks": {"CustomerQueue": "Queue music"}}),
                "w",
            ),
            action("w", "UpdateContactEventHooks", json!({"EventHooks": {"AgentWhisper": "Whisper"}}), "set"),
            action("set", "UpdateContactTargetQueue", json!({"QueueId": "aq"}), "queue"),
            action("queue", "TransferContactToQueue", json!({}), "bye"),
            bye.clone(),
        ],
    );
    write_flow(
        dir,
        "Queue music",
        "loop",
        vec![
            json!({"Identifier": "loop", "Type": "MessageParticipantIteratively",
                   "Parameters": {"Messages": [{"Text": "All agents are busy."}], "InterruptFrequencySeconds": "60"},
                   "Transitions": {"NextAction": "bye", "Conditions": [
                       {"NextAction": "sorry", "Condition": {"Operator": "Equals", "Operands": ["MessagesInterrupted"]}}],
                       "Errors": [{"NextAction": "bye", "ErrorType": "NoMatchingError"}]}}),
            action("sorry", "MessageParticipant", json!({"Text": "Thank you for waiting."}), "loop"),
            bye.clone(),
        ],
    );
    write_flow(
        dir,
        "Whisper",
        "say",
        vec![
            action(
                "say",
                "MessageParticipant",
                json!({"Text": "A caller from the always open queue."}),
                "end",
            ),
            json!({"Identifier": "end", "Type": "EndFlowExecution", "Parameters": {}, "Transitions": {}}),
            bye,
        ],
    );
    std::fs::write(
        dir.join("flows.toml"),
        r#"
[[numbers]]
number = "+15550100001"
flow = "Queue hours"

[[numbers]]
number = "+15550100002"
flow = "Block hours"

[[numbers]]
number = "+15550100003"
flow = "Hooked"

[[hours]]
name = "Business"
time_zone = "America/New_York"
monday = ["09:00-17:00"]
tuesday = ["09:00-17:00"]
wednesday = ["09:00-12:00", "13:00-17:00"]
thursday = ["09:00-17:00"]
friday = ["22:00-02:00"]

[[hours]]
name = "Weekend"
id = "weekend-hours"
time_zone = "Europe/Paris"
saturday = ["00:00-24:00"]
sunday = ["00:00-24:00"]

[[queues]]
name = "HoursQueue"
id = "hq"
hours = "Business"

[[queues]]
name = "AlwaysQueue"
id = "aq"

[[agents]]
username = "carol"
"#,
    )
    .unwrap();
}

fn center(dir: &Path, now_ms: i64) -> ContactCenter {
    let lib = FlowLibrary::load_dir(dir).unwrap();
    ContactCenter::new(Arc::new(lib), Arc::new(Registry::new()), Arc::new(ManualClock::new(now_ms)))
}

async fn call(center: &ContactCenter, to: &str, script: &str) -> ContactResult {
    center
        .simulate(InboundCall {
            to: to.into(),
            from: "+14155550123".into(),
            input: CallerScript::parse(script).unwrap(),
            contact_id: None,
        })
        .await
        .unwrap()
}

fn prompts(r: &ContactResult) -> Vec<String> {
    r.steps
        .iter()
        .filter_map(|s| match &s.step {
            Step::Prompt { text, .. } => text.clone(),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn check_hours_uses_the_queue_hours_or_the_block_hours_in_their_time_zone() {
    let dir = tempfile::tempdir().unwrap();
    library(dir.path());
    // (number, UTC time, open?)
    let rows = [
        ("+15550100001", WEDNESDAY_NOON_NY - 30 * 60_000, true), // 11:30 EST
        ("+15550100001", WEDNESDAY_NOON_NY + 30 * 60_000, false), // lunch
        ("+15550100001", WEDNESDAY_NOON_NY + 4 * HOUR + 59 * 60_000, true), // 16:59
        ("+15550100001", WEDNESDAY_NOON_NY + 5 * HOUR, false),   // 17:00
        ("+15550100001", WEDNESDAY_NOON_NY - 3 * HOUR - 60_000, false), // 08:59
        // Friday 22:00 to Saturday 02:00 New York.
        ("+15550100001", WEDNESDAY_NOON_NY + 2 * 24 * HOUR + 11 * HOUR, true), // Fri 23:00
        ("+15550100001", WEDNESDAY_NOON_NY + 2 * 24 * HOUR + 13 * HOUR, true), // Sat 01:00
        ("+15550100001", WEDNESDAY_NOON_NY + 2 * 24 * HOUR + 15 * HOUR, false), // Sat 03:00
        // Daylight saving time: 13:30 UTC is 09:30 EDT on Monday 2025-07-14, 08:30 EST in January.
        ("+15550100001", 1_752_499_800_000, true),
        ("+15550100001", 1_752_499_800_000 - 181 * 24 * HOUR, false),
        // The block's own hours (Paris weekends), whatever the queue's.
        ("+15550100002", WEDNESDAY_NOON_NY, false),
        ("+15550100002", WEDNESDAY_NOON_NY + 2 * 24 * HOUR + 6 * HOUR, true), // Sat 00:00 Paris
        ("+15550100002", WEDNESDAY_NOON_NY + 2 * 24 * HOUR + 5 * HOUR, false), // Fri 23:00 Paris
    ];
    for (to, at, open) in rows {
        let r = call(&center(dir.path(), at), to, "").await;
        let expected = if open { "We are open." } else { "We are closed." };
        assert_eq!(prompts(&r), [expected], "{to} at {at}: {:#?}", r.steps);
        assert_eq!(r.disposition, if open { "QUEUED" } else { "DISCONNECTED" });
    }
}

#[tokio::test]
async fn a_queued_contact_runs_its_queue_flow_and_the_agent_hears_the_whisper() {
    let dir = tempfile::tempdir().unwrap();
    library(dir.path());
    let center = center(dir.path(), WEDNESDAY_NOON_NY);
    // 130 s in queue: the queue flow's 60 s timer fires twice.
    let r = call(&center, "+15550100003", "w130,agent:connect,w30,agent:disconnect").await;
    assert_eq!(
        prompts(&r),
        [
            "All agents are busy.",
            "Thank you for waiting.",
            "All agents are busy.",
            "Thank you for waiting.",
            "All agents are busy.",
            "A caller from the always open queue."
        ],
        "{:#?}",
        r.steps
    );
    let flows: Vec<&str> = r
        .steps
        .iter()
        .filter_map(|s| match &s.step {
            Step::Flow { flow, .. } => Some(flow.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(flows, ["Hooked", "Queue music", "Whisper"]);
    assert_eq!(r.ctr["Queue"]["Duration"], 130);
    assert_eq!(r.ctr["Agent"]["Username"], "carol");
    assert_eq!(r.ctr["Agent"]["AgentInteractionDuration"], 30);
    assert_eq!(r.ctr["DisconnectReason"], "AGENT_DISCONNECT");

    // A wait of 46 days does not fire the 60 s timer 66,000 times.
    let r = call(&center, "+15550100003", "w4000000").await;
    let stopped = "the queue flow's timer fired 2000 times; it stops";
    assert!(r.steps.iter().any(|s| matches!(&s.step, Step::Warning { message, .. } if message == stopped)));
    assert_eq!(r.ctr["Queue"]["Duration"], 4_000_000);
    assert_eq!(r.ctr["DisconnectReason"], "CUSTOMER_DISCONNECT");
}

#[test]
fn bad_hours_and_agents_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[[hours]]\nname = \"H\"\ntime_zone = \"Mars/Olympus\"\n", "not an IANA time zone"),
        ("[[hours]]\nname = \"H\"\nmonday = [\"9-17\"]\n", "not a range"),
        ("[[queues]]\nname = \"Q\"\nid = \"q\"\nhours = \"Nope\"\n", "no hours named \"Nope\""),
        ("[[agents]]\nusername = \"x\"\nqueues = [\"Nope\"]\n", "no queue \"Nope\""),
        ("[[quick_connects]]\nname = \"Q\"\ntype = \"phone\"\ntarget = \"12\"\n", "quick connect \"Q\""),
        ("[[quick_connects]]\nname = \"Q\"\ntype = \"fax\"\ntarget = \"+15550100100\"\n", "unknown variant"),
    ];
    for (toml, message) in cases {
        std::fs::write(dir.path().join("flows.toml"), toml).unwrap();
        let e = FlowLibrary::load_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains(message) && e.contains("flows.toml"), "{toml}: {e}");
    }
    std::fs::write(dir.path().join("flows.toml"), "[[queues]]\nname = \"Q\"\nid = \"q\"\n").unwrap();
    let lib = FlowLibrary::load_dir(dir.path()).unwrap();
    assert_eq!(lib.queue_hours(lib.queue("Q").unwrap()).unwrap().name, "24x7");

    // The deployment's own queues and agents are known to flows.toml, which may override them.
    std::fs::write(
        dir.path().join("flows.toml"),
        "[[queues]]\nname = \"Support\"\nid = \"s\"\ncapacity = 3\n\
         [[agents]]\nusername = \"zoe\"\nqueues = [\"Billing\"]\n\
         [[quick_connects]]\nname = \"To ada\"\ntype = \"agent\"\ntarget = \"ada\"\n",
    )
    .unwrap();
    let queue =
        |name: &str, id: &str| QueueConfig { name: name.into(), id: id.into(), ..QueueConfig::default() };
    let defaults = LibraryDefaults {
        queues: vec![queue("Support", "s"), queue("Billing", "b")],
        agents: vec![AgentConfig { username: "ada".into(), ..AgentConfig::default() }],
    };
    let lib = FlowLibrary::load_dir_with(dir.path(), defaults).unwrap();
    assert_eq!(lib.queue("s").unwrap().capacity, Some(3));
    assert_eq!(lib.agent("zoe").unwrap().queue_ids, ["b"]);
    assert_eq!(lib.quick_connect("To ada").unwrap().target, "ada");
    assert!(FlowLibrary::load_dir(dir.path()).unwrap_err().to_string().contains("no queue \"Billing\""));
}
