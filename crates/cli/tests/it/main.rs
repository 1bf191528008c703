//! End-to-end tests of the `voxbridge` binary: each test runs the built binary in its own
//! temporary directory, with no `VOXBRIDGE_*` variables inherited from the caller.

mod call_simulate;
mod commands;
mod console;
mod crash;
mod crm_login;
mod js_client;
mod metadata;
mod objects_s3;
mod omni_agents;
mod pipelines;
mod pipelines_crash;
mod postgres;
mod python_client;
mod rules;
mod s3_server;
mod sample_flows;
mod serving;
mod streams_http;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_voxbridge");

/// A command for the binary, run in `dir`, with a clean `VOXBRIDGE_*` environment.
pub fn voxbridge(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("VOXBRIDGE_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Runs and returns the output whatever the status.
pub fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = voxbridge(dir, args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the voxbridge binary runs")
}

/// Runs, asserts success, returns standard output.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    succeeded(args, run(dir, args, &[]))
}

/// Asserts that the run of `args` succeeded; its standard output.
pub fn succeeded(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "voxbridge {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs, asserts failure, returns standard error.
pub fn fails(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = run(dir, args, env);
    assert!(
        !out.status.success(),
        "voxbridge {args:?} should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

/// `setup` in `dir/data`, then `info --json`.
pub fn setup_and_info(dir: &Path) -> Value {
    ok(dir, &["setup", "--data", "data"]);
    serde_json::from_str(&ok(dir, &["info", "--json", "--data", "data"])).expect("info --json is JSON")
}

/// Copies the Salesforce sample flows and the demo org's bindings for them
/// (`docs/examples/flows/flows.toml`) into `dir/flows`, for `serve --flows`.
pub fn sample_flows(dir: &Path) -> PathBuf {
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    for e in std::fs::read_dir(repo.join("crates/flows/tests/data/flows")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            std::fs::copy(&p, flows.join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::copy(repo.join("docs/examples/flows/flows.toml"), flows.join("flows.toml")).unwrap();
    flows
}

/// `voxbridge serve` in `dir` with its `voxbridge.toml`, the data dir `data`, a free port and
/// the sample flows.
pub fn serve_with_sample_flows(dir: &Path) -> serving::Server {
    let flows = sample_flows(dir);
    serving::Server::start(
        dir,
        &[
            "serve",
            "--config",
            "voxbridge.toml",
            "--data",
            "data",
            "--http",
            "127.0.0.1:0",
            "--flows",
            flows.to_str().unwrap(),
        ],
    )
}

/// Polls `check` every 100 ms for up to `limit`: bounded polling of a real server.
pub fn eventually_within<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// [`eventually_within`] 30 s.
pub fn eventually<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    eventually_within(what, Duration::from_secs(30), check)
}
