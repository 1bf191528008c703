//! The agent console in a real browser: tests/console/scenario.mjs drives headless Chromium
//! (Playwright's `playwright-core` from npm, Debian's `chromium`) against a real
//! `voxbridge serve` — a Voice Extension registered on the Voice Extension page, a call created
//! and routed through the Telephony API, accepted by one agent, transcribed, shown real-time
//! intelligence signals (sentiment and a category), related to a record, held (lines said on
//! hold never appear), resumed, flagged, transferred to a queue, taken by a second agent, ended
//! and wrapped up with `wrapupended` fired. Screenshots of every step go to
//! `target/console-screenshots/`.
//!
//! tests/console/callback.mjs drives a queued callback the same way: requested through the
//! Telephony API, offered as a callback (number, attempt 1 of 2), accepted (the outbound call
//! shows), no answer, the second attempt offered, voicemail, hang-up and wrap-up; its
//! screenshots are `cb-NN-step.png`.
//!
//! tests/console/toolkit-events.mjs checks the Toolkit API module alone in Node.js: every
//! WebSocket message mapped to its LWC and Aura events with the guide's payloads, and the
//! actions' argument checks.
//!
//! Needs Node.js, `npm ci` in crates/cli/tests/console and Chromium (`scripts/test` installs
//! them). Without them the test says so and passes, unless VOXBRIDGE_REQUIRE_BROWSER=1.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::serving::Server;
use crate::{ok, setup_and_info};

fn chromium() -> Option<PathBuf> {
    let from_env = std::env::var_os("CHROMIUM").map(PathBuf::from);
    from_env
        .into_iter()
        .chain(["/usr/bin/chromium", "/usr/bin/chromium-browser"].map(PathBuf::from))
        .find(|p| p.exists())
}

#[test]
fn toolkit_module_maps_console_events_to_the_guides_payloads() {
    let dir_js = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    let node_ok = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if !node_ok {
        assert!(std::env::var("VOXBRIDGE_REQUIRE_BROWSER").as_deref() != Ok("1"), "Node.js is required");
        eprintln!("skipped: Node.js missing (scripts/test installs it)");
        return;
    }
    let out =
        Command::new("node").arg("toolkit-events.mjs").current_dir(&dir_js).output().expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("\"passed\":true"),
        "the Toolkit API module test failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs one browser script against a fresh `voxbridge serve`; its steps, or `None` when the
/// browser tools are missing.
fn browser_scenario(script: &str) -> Option<(Vec<String>, PathBuf)> {
    let dir_js = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    let node_ok = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    let browser = chromium();
    if !node_ok || !dir_js.join("node_modules/playwright-core").exists() || browser.is_none() {
        assert!(
            std::env::var("VOXBRIDGE_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "Node.js, Chromium and the npm packages are required: run `npm ci` in {}",
            dir_js.display()
        );
        eprintln!(
            "skipped: Node.js, chromium or {}/node_modules missing (scripts/test installs them)",
            dir_js.display()
        );
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let info = setup_and_info(dir.path());
    let dialed = info["phone_channels"][0]["phone_number"].as_str().unwrap_or("+15550100100").to_string();
    let mut server = Server::start(dir.path(), &["serve", "--data", "data", "--http", "127.0.0.1:0"]);
    let base = server.wait_for("listening on ").trim().to_string();
    let crm = ok(dir.path(), &["token", "--crm", "--data", "data", "--url", &base]).trim().to_string();
    let jwt = ok(dir.path(), &["token", "--data", "data", "--no-jti", "--ttl", "600"]).trim().to_string();
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
    let out = Command::new("node")
        .arg(script)
        .current_dir(&dir_js)
        .env("VB_BASE", &base)
        .env("VB_CRM", &crm)
        .env("VB_JWT", &jwt)
        .env("VB_DIALED", &dialed)
        .env("VB_SHOTS", &shots)
        .env("CHROMIUM", browser.unwrap())
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stdout.lines().last().unwrap_or_default();
    let result: Value = serde_json::from_str(last).unwrap_or(Value::Null);
    assert!(
        out.status.success() && result["passed"] == true,
        "the browser scenario {script} failed (screenshots in {}):\n{stderr}\n{stdout}",
        shots.display()
    );
    let steps =
        result["steps"].as_array().unwrap().iter().filter_map(Value::as_str).map(str::to_string).collect();
    Some((steps, shots))
}

#[test]
fn console_call_from_offer_to_wrap_up_in_a_browser() {
    let Some((steps, shots)) = browser_scenario("scenario.mjs") else { return };
    assert_eq!(
        steps,
        [
            "voice-extension-page",
            "agent-a-logged-in",
            "offer",
            "accepted-extension-muted",
            "transcript",
            "intelligence-signals",
            "on-hold",
            "resumed",
            "supervisor-view",
            "agent-b-offer",
            "agent-b-on-call",
            "wrap-up",
            "wrap-up-ended"
        ]
    );
    for (i, step) in steps.iter().enumerate() {
        let file = shots.join(format!("{:02}-{step}.png", i + 1));
        assert!(file.exists(), "screenshot {} missing", file.display());
    }
}

#[test]
fn console_callback_from_request_to_voicemail_in_a_browser() {
    let Some((steps, shots)) = browser_scenario("callback.mjs") else { return };
    assert_eq!(
        steps,
        [
            "callback-offer",
            "callback-dialing",
            "callback-no-answer",
            "callback-second-attempt",
            "callback-voicemail",
            "callback-wrapped-up"
        ]
    );
    for (i, step) in steps.iter().enumerate() {
        let file = shots.join(format!("cb-{:02}-{step}.png", i + 1));
        assert!(file.exists(), "screenshot {} missing", file.display());
    }
}
