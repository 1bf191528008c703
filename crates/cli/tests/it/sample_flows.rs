//! The sample flows a fresh data directory gets: `voxbridge serve` without `--flows` installs
//! them in `<data>/flows` and runs them, so a simulated call to the demo number reaches a
//! queue at once; `info --json` names the directory; `bench flows` runs them in-process.

use serde_json::Value;

use crate::ok;
use crate::serving::Server;

#[test]
fn a_fresh_serve_installs_the_sample_flows_and_a_simulated_call_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["serve", "--data", "data", "--http", "127.0.0.1:0"]);
    let installed = server.wait_for("Installed the sample flows in ");
    assert!(installed.ends_with("flows"), "{installed}");
    let url = format!("http://{}", server.wait_for("listening on http://"));
    let simulator = server.wait_for("  Call simulator: ");
    assert!(simulator.contains("+15550100100 -> Voxbridge Inbound Flow"), "{simulator}");
    assert!(dir.path().join("data/flows/flows.toml").is_file());

    let text = ok(
        dir.path(),
        &[
            "call",
            "simulate",
            "--data",
            "data",
            "--url",
            &url,
            "--to",
            "+15550100100",
            "--from",
            "+14155550123",
        ],
    );
    assert!(text.contains("flow       Voxbridge Omni-Channel Subflow"), "{text}");
    assert!(text.contains("Result: QUEUED in Support; VoiceCall 0LQ"), "{text}");

    // A recipe number: the caller picks a new case.
    let text = ok(
        dir.path(),
        &["call", "simulate", "--data", "data", "--url", &url, "--to", "+15550100102", "--input", "2"],
    );
    assert!(text.contains("sfdc-IVRType__c=NewCase"), "{text}");
    assert!(text.contains("Result: QUEUED"), "{text}");

    let info: Value = serde_json::from_str(&ok(dir.path(), &["info", "--json", "--data", "data"])).unwrap();
    let flows = &info["flows"];
    assert!(flows["dir"].as_str().unwrap().ends_with("data/flows"), "{flows}");
    assert_eq!(flows["source"], "default");
    assert_eq!(flows["exists"], true);
}

#[test]
fn a_user_edit_to_the_installed_flows_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &["setup", "--data", "data"]);
    let toml = dir.path().join("data/flows/flows.toml");
    let edited = format!("# my edit\n{}", std::fs::read_to_string(&toml).unwrap());
    std::fs::write(&toml, &edited).unwrap();
    let out = ok(dir.path(), &["setup", "--data", "data"]);
    assert!(!out.contains("Installed the sample flows"), "{out}");
    assert_eq!(std::fs::read_to_string(&toml).unwrap(), edited);
}

#[test]
fn bench_flows_runs_a_tiny_count_and_reports_against_the_targets() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(
        dir.path(),
        &["bench", "flows", "--contacts", "20", "--active", "20", "--concurrency", "4", "--json"],
    );
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["end_to_end"]["contacts"], 20);
    assert_eq!(report["end_to_end"]["failures"], 0, "{report}");
    assert!(report["end_to_end"]["contacts_per_sec"].as_f64().unwrap() > 0.0);
    assert!(report["end_to_end"]["actions_per_contact"].as_f64().unwrap() >= 10.0, "{report}");
    assert!(report["parse_baseline"]["parses_per_sec"].as_f64().unwrap() > 0.0);
    assert!(report["interpreter"]["us_per_action"].as_f64().unwrap() > 0.0);
    assert_eq!(report["verdicts"].as_array().unwrap().len(), 3, "{report}");

    let help = ok(dir.path(), &["bench", "flows", "--help"]);
    for option in ["--contacts", "--concurrency", "--active", "--json"] {
        assert!(help.contains(option), "{help}");
    }
}
