//! The CTR retry job ("Retry CTR Sync for Voice Call Records"): find the VoiceCalls that
//! no CTR sync reached — `SELECT Id, VendorCallKey FROM VoiceCall WHERE
//! CustomerHoldDuration = null`, through the CRM REST API — and apply their CTR again from
//! the object-store backup `ctr/<VendorCallKey>.json`.
//!
//! `voxbridge ctr resync [--since …]` runs it once against a server; `voxbridge serve` runs
//! it on `ctr.resync_schedule`.

use std::fmt;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::config::Config;
use crate::datadir::DataDir;
use crate::pipelines::{backup_key, CtrSync, Outcome};

#[derive(Debug, Subcommand)]
pub enum CtrCommand {
    /// Re-sync VoiceCalls that have no CTR fields (CustomerHoldDuration is empty) from the
    /// CTR backups in the object store, through the CRM REST API of a running server.
    Resync(ResyncArgs),
}

#[derive(Debug, Args)]
pub struct ResyncArgs {
    /// Only VoiceCalls created since then: an ISO-8601 date-time (2026-01-31T00:00:00Z) or
    /// a duration back from now (90m, 24h, 7d).
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Server root URL [default: `server.public_url`, else the HTTP address, http://127.0.0.1:8080].
    #[arg(long, value_name = "BASE")]
    url: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// What a resync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResyncReport {
    /// VoiceCalls without CTR fields.
    pub found: usize,
    pub resynced: usize,
    /// No backup for the VoiceCall's vendor call key (an open call, or a CTR never received).
    pub no_backup: usize,
    /// The backup's CTR is one the sync skips (NoSync, voicemail, …).
    pub skipped: usize,
    pub failed: usize,
}

impl fmt::Display for ResyncReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} VoiceCall(s) without CTR fields: {} re-synced, {} without a backup, {} skipped, {} failed",
            self.found, self.resynced, self.no_backup, self.skipped, self.failed
        )
    }
}

/// The query of the guide's recipe, limited to VoiceCalls created at or after `since`.
pub fn resync_query(since: Option<&str>) -> String {
    let mut q = "SELECT Id, VendorCallKey FROM VoiceCall WHERE CustomerHoldDuration = null".to_string();
    if let Some(s) = since {
        q.push_str(&format!(" AND CreatedDate >= {s}"));
    }
    q
}

/// `--since` as an ISO-8601 UTC date-time.
pub fn parse_since(raw: &str, now_ms: i64) -> Result<String> {
    let raw = raw.trim();
    if let Some(ms) = voxbridge_functions::ctr_sync::parse_time_ms(raw) {
        return Ok(iso(ms));
    }
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (n, unit) = raw.split_at(split);
    let seconds: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    match n.parse::<i64>() {
        Ok(n) if seconds > 0 => {
            Ok(iso(now_ms.saturating_sub(n.saturating_mul(seconds).saturating_mul(1000))))
        }
        _ => bail!(
            "--since {raw:?}: expected a date-time like 2026-01-31T00:00:00Z or a duration like 90m, 24h, 7d"
        ),
    }
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Runs the retry job once.
pub async fn resync(sync: &CtrSync, since: Option<&str>) -> Result<ResyncReport> {
    let mut report = ResyncReport::default();
    let mut calls: Vec<(String, String)> = Vec::new();
    let mut resp = sync.crm().query(&resync_query(since)).await?;
    loop {
        if !resp.is_success() {
            bail!("the VoiceCall query failed ({}): {}", resp.status, resp.error_message());
        }
        for r in resp.body.get("records").and_then(Value::as_array).into_iter().flatten() {
            let id = r.get("Id").and_then(Value::as_str).unwrap_or_default();
            let key = r.get("VendorCallKey").and_then(Value::as_str).unwrap_or_default();
            calls.push((id.to_string(), key.to_string()));
        }
        match resp.body.get("nextRecordsUrl").and_then(Value::as_str) {
            Some(next) if resp.body.get("done") == Some(&Value::Bool(false)) => {
                resp = sync.crm().get(next).await?;
            }
            _ => break,
        }
    }
    report.found = calls.len();
    for (id, key) in calls {
        // A vendor call key that is no valid object key cannot have a backup.
        let backup =
            if key.is_empty() { None } else { sync.objects().get(&backup_key(&key)).await.ok().flatten() };
        let Some(bytes) = backup else {
            report.no_backup += 1;
            continue;
        };
        let ctr: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(voice_call = %id, "the CTR backup {} is not JSON: {e}", backup_key(&key));
                report.failed += 1;
                continue;
            }
        };
        match sync.apply(&ctr).await {
            Ok(Outcome::Applied { .. }) => report.resynced += 1,
            Ok(Outcome::Skipped(_) | Outcome::Stale) => report.skipped += 1,
            Err(e) => {
                tracing::warn!(voice_call = %id, "re-syncing the CTR failed: {e:#}");
                report.failed += 1;
            }
        }
    }
    Ok(report)
}

/// `voxbridge ctr …`
pub fn run(command: &CtrCommand, config: &Config) -> Result<()> {
    let CtrCommand::Resync(args) = command;
    let data = DataDir::new(&config.data_dir);
    let setup = data.read_setup()?;
    let base = args.url.clone().unwrap_or_else(|| config.base_url());
    let since =
        args.since.as_deref().map(|s| parse_since(s, chrono::Utc::now().timestamp_millis())).transpose()?;
    let sync = crate::pipelines::ctr_sync(config, &data, &setup, base.trim_end_matches('/'))?;
    let report = crate::runtime()?.block_on(resync(&sync, since.as_deref())).with_context(|| {
        format!("the CTR resync against {base} failed; is `voxbridge serve` running there? (set --url)")
    })?;
    if args.json {
        let json = serde_json::json!({
            "found": report.found,
            "resynced": report.resynced,
            "noBackup": report.no_backup,
            "skipped": report.skipped,
            "failed": report.failed,
        });
        println!("{json}");
    } else {
        println!("{report}");
    }
    if report.failed > 0 {
        bail!("{} VoiceCall(s) could not be re-synced; see the log", report.failed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_and_query() {
        let now = 1_767_225_600_000; // 2026-01-01T00:00:00Z
        assert_eq!(parse_since("24h", now).unwrap(), "2025-12-31T00:00:00Z");
        assert_eq!(parse_since("2026-01-31T10:00:00Z", now).unwrap(), "2026-01-31T10:00:00Z");
        assert!(parse_since("soon", now).is_err());
        assert!(parse_since("5y", now).is_err());
        assert_eq!(
            resync_query(Some("2026-01-31T10:00:00Z")),
            "SELECT Id, VendorCallKey FROM VoiceCall WHERE CustomerHoldDuration = null AND CreatedDate >= 2026-01-31T10:00:00Z"
        );
    }
}
