//! `voxbridge stream list|put|tail`: the event bus's streams from the command line,
//! Kinesis-style (`PutRecord`, `GetRecords` from a starting position).
//!
//! They open the configured bus (`bus.url`: by default the data dir's `bus.db`, which the
//! running server shares safely, or the same NATS server). With `--url`, `put` and `tail`
//! go through a server's `/streams/v1` API instead, as the demo call center.

use std::io::{Read, Write};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use voxbridge_bus::{BusError, BusRecord, StartingPosition};

use crate::config::Config;

/// Records read per call while tailing.
const PAGE: usize = 500;
/// How often `--follow` looks for new records.
const FOLLOW_POLL: Duration = Duration::from_millis(250);

#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// List the streams with their record counts.
    List(ListArgs),
    /// Append one record (Kinesis PutRecord); prints its sequence number.
    Put(PutArgs),
    /// Print a stream's records, one JSON object per line, from a starting position.
    Tail(TailArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    /// The stream, e.g. `ctr` or `contact-events`.
    #[arg(long, value_name = "NAME")]
    stream: String,
    /// The partition key (the ContactId on the server's streams).
    #[arg(long, value_name = "KEY")]
    partition_key: String,
    /// Create the stream if it does not exist.
    #[arg(long)]
    create: bool,
    /// The record's data (usually JSON); `-` reads standard input.
    #[arg(value_name = "DATA")]
    content: String,
    /// Put through the server at this root URL (`/streams/v1`) instead of opening the bus.
    #[arg(long, value_name = "BASE")]
    url: Option<String>,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    #[arg(long, value_name = "NAME")]
    stream: String,
    /// Where to start: `trim-horizon` (the oldest record, the default), `latest` (only
    /// records put from now on: use with --follow), or a time (ISO-8601 or epoch
    /// milliseconds): the first record that arrived at or after it.
    #[arg(long, value_name = "POSITION", default_value = "trim-horizon")]
    from: String,
    /// Keep waiting for new records until interrupted.
    #[arg(long)]
    follow: bool,
    /// Stop after this many records.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Read through the server at this root URL (`/streams/v1`) instead of opening the bus.
    #[arg(long, value_name = "BASE")]
    url: Option<String>,
}

/// Parses `--from`.
pub fn starting_position(raw: &str) -> Result<StartingPosition> {
    let raw = raw.trim();
    match raw.to_ascii_lowercase().replace('_', "-").as_str() {
        "trim-horizon" => return Ok(StartingPosition::TrimHorizon),
        "latest" => return Ok(StartingPosition::Latest),
        _ => {}
    }
    if let Ok(ms) = raw.parse::<i64>() {
        return Ok(StartingPosition::AtTimestamp(ms));
    }
    match voxbridge_functions::ctr_sync::parse_time_ms(raw) {
        Some(ms) => Ok(StartingPosition::AtTimestamp(ms)),
        None => {
            bail!("--from {raw:?}: expected trim-horizon, latest, an ISO-8601 time or epoch milliseconds")
        }
    }
}

/// One record as `tail` prints it: the data as JSON when it is JSON, else as text, else
/// base64 (`DataBase64`).
pub fn render(r: &BusRecord) -> Value {
    let mut out = json!({
        "SequenceNumber": r.sequence_number.to_string(),
        "PartitionKey": r.partition_key,
        "ApproximateArrivalTimestamp": r.approximate_arrival_timestamp_ms,
    });
    match (serde_json::from_slice::<Value>(&r.data), std::str::from_utf8(&r.data)) {
        (Ok(v), _) => out["Data"] = v,
        (Err(_), Ok(s)) => out["Data"] = json!(s),
        (Err(_), Err(_)) => {
            out["DataBase64"] = json!(base64::engine::general_purpose::STANDARD.encode(&r.data))
        }
    }
    out
}

fn not_found_hint(e: BusError, stream: &str) -> anyhow::Error {
    match e {
        BusError::StreamNotFound(_) => anyhow::anyhow!(
            "the stream {stream} does not exist on this bus (`voxbridge stream list` shows the streams; \
             `stream put --create` makes one)"
        ),
        other => anyhow::Error::new(other),
    }
}

/// `voxbridge stream …`
pub fn run(command: &StreamCommand, config: &Config) -> Result<()> {
    match command {
        StreamCommand::Put(a) if a.url.is_some() => {
            return crate::runtime()?.block_on(remote::put(a, config))
        }
        StreamCommand::Tail(a) if a.url.is_some() => {
            return crate::runtime()?.block_on(remote::tail(a, config))
        }
        _ => {}
    }
    crate::runtime()?.block_on(async {
        let bus = crate::pipelines::open_bus(config).await?;
        let result = match command {
            StreamCommand::List(a) => list(bus.as_ref(), a).await,
            StreamCommand::Put(a) => put(bus.as_ref(), a).await,
            StreamCommand::Tail(a) => tail(bus.as_ref(), a).await,
        };
        bus.close().await;
        result
    })
}

async fn list(bus: &dyn voxbridge_bus::Bus, a: &ListArgs) -> Result<()> {
    let mut rows = Vec::new();
    for name in bus.list_streams().await? {
        let info = bus.describe_stream(&name).await?;
        rows.push(json!({
            "StreamName": name,
            "RecordCount": info.record_count,
            "FirstSequenceNumber": info.first_sequence.map(|s| s.to_string()),
            "LastSequenceNumber": info.last_sequence.map(|s| s.to_string()),
        }));
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for r in &rows {
            println!("{:<24} {:>10} records", r["StreamName"].as_str().unwrap_or(""), r["RecordCount"]);
        }
    }
    Ok(())
}

async fn put(bus: &dyn voxbridge_bus::Bus, a: &PutArgs) -> Result<()> {
    let data = if a.content == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).context("cannot read standard input")?;
        buf
    } else {
        a.content.as_bytes().to_vec()
    };
    if a.create {
        bus.create_stream(&a.stream).await?;
    }
    let seq = bus.put(&a.stream, &a.partition_key, data).await.map_err(|e| not_found_hint(e, &a.stream))?;
    println!("{}", json!({"SequenceNumber": seq.to_string(), "ShardId": "shardId-000000000000"}));
    Ok(())
}

async fn tail(bus: &dyn voxbridge_bus::Bus, a: &TailArgs) -> Result<()> {
    let mut from = starting_position(&a.from)?;
    if from == StartingPosition::Latest {
        // Resolved now, so --follow shows what is put from this moment on.
        let info = bus.describe_stream(&a.stream).await.map_err(|e| not_found_hint(e, &a.stream))?;
        from = match info.last_sequence {
            Some(s) => StartingPosition::AfterSequence(s),
            None => StartingPosition::TrimHorizon,
        };
        if !a.follow {
            return Ok(());
        }
    }
    let mut printed = 0usize;
    let mut stdout = std::io::stdout();
    loop {
        let want = a.limit.map_or(PAGE, |l| l.saturating_sub(printed).min(PAGE));
        if want == 0 {
            return Ok(());
        }
        let records = bus.read(&a.stream, from, want).await.map_err(|e| not_found_hint(e, &a.stream))?;
        for r in &records {
            writeln!(stdout, "{}", render(r)).context("cannot write standard output")?;
            printed += 1;
        }
        stdout.flush().ok();
        if let Some(last) = records.last() {
            from = StartingPosition::AfterSequence(last.sequence_number);
        }
        if records.len() < want {
            if !a.follow {
                return Ok(());
            }
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok(()),
                () = tokio::time::sleep(FOLLOW_POLL) => {}
            }
        }
    }
}

/// `put` and `tail` over a server's streams API.
mod remote {
    use super::*;
    use crate::datadir::DataDir;

    struct Api {
        client: reqwest::Client,
        base: String,
        data: DataDir,
        setup: crate::datadir::SetupFile,
        audience: String,
    }

    impl Api {
        fn new(url: &str, config: &Config) -> Result<Api> {
            let data = DataDir::new(&config.data_dir);
            let setup = data.read_setup()?;
            let base = url.trim_end_matches('/').to_string();
            Ok(Api {
                client: crate::calls::client(&base, &data)?,
                base,
                data,
                setup,
                audience: config.audience.clone(),
            })
        }

        /// Sends with a fresh token; the answer's JSON, or the server's message as the error.
        async fn send(&self, req: reqwest::RequestBuilder, url: &str) -> Result<Value> {
            let call_center = voxbridge_core::setup::DEMO_CALL_CENTER;
            let token =
                crate::token::mint(&self.data, &self.setup, call_center, None, &self.audience, 60, true)?;
            let resp = req.bearer_auth(token).send().await.with_context(|| {
                format!("cannot reach {url}; is `voxbridge serve` running there? (set --url)")
            })?;
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            if !status.is_success() {
                let message = value.get("message").and_then(Value::as_str).map(str::to_string);
                bail!("{url} answered {status}: {}", message.unwrap_or_else(|| value.to_string()));
            }
            Ok(value)
        }

        fn records_url(&self, stream: &str) -> String {
            let name: String = stream
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{}/streams/v1/{name}/records", self.base)
        }
    }

    pub async fn put(a: &PutArgs, config: &Config) -> Result<()> {
        if a.create {
            bail!("--create works on the bus itself, not over --url; create the stream on the server's host");
        }
        let api = Api::new(a.url.as_deref().unwrap_or_default(), config)?;
        let data = if a.content == "-" {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).context("cannot read standard input")?;
            buf
        } else {
            a.content.as_bytes().to_vec()
        };
        let url = api.records_url(&a.stream);
        let body = json!({"partitionKey": a.partition_key,
            "data": base64::engine::general_purpose::STANDARD.encode(&data)});
        let answer = api.send(api.client.post(&url).json(&body), &url).await?;
        println!("{}", json!({"SequenceNumber": answer["sequenceNumber"], "ShardId": answer["shardId"]}));
        Ok(())
    }

    pub async fn tail(a: &TailArgs, config: &Config) -> Result<()> {
        let api = Api::new(a.url.as_deref().unwrap_or_default(), config)?;
        let url = api.records_url(&a.stream);
        let mut query: Vec<(&str, String)> = match starting_position(&a.from)? {
            StartingPosition::TrimHorizon => vec![("from", "TRIM_HORIZON".into())],
            StartingPosition::Latest => vec![("from", "LATEST".into())],
            StartingPosition::AtTimestamp(ms) => {
                vec![("from", "AT_TIMESTAMP".into()), ("timestamp", ms.to_string())]
            }
            StartingPosition::AfterSequence(s) => vec![("after", s.to_string())],
        };
        let mut printed = 0usize;
        let mut stdout = std::io::stdout();
        loop {
            // The API returns at most 1000 records per read.
            let want = a.limit.map_or(1000, |l| l.saturating_sub(printed).min(1000));
            if want == 0 {
                return Ok(());
            }
            let mut q = query.clone();
            q.push(("limit", want.to_string()));
            let answer = api.send(api.client.get(&url).query(&q), &url).await?;
            let records = answer["records"].as_array().cloned().unwrap_or_default();
            for r in &records {
                writeln!(stdout, "{}", render(&record(r)?)).context("cannot write standard output")?;
                printed += 1;
            }
            stdout.flush().ok();
            if let Some(next) = answer["nextAfter"].as_str() {
                query = vec![("after", next.to_string())];
            }
            if records.len() < want {
                if !a.follow {
                    return Ok(());
                }
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                    () = tokio::time::sleep(FOLLOW_POLL) => {}
                }
            }
        }
    }

    /// A record of the API's answer as the bus's record, for [`render`].
    fn record(r: &Value) -> Result<BusRecord> {
        let seq = r["sequenceNumber"].as_str().unwrap_or_default();
        Ok(BusRecord {
            sequence_number: voxbridge_bus::SequenceNumber::parse(seq)
                .map_err(|e| anyhow::anyhow!("the server sent a bad record: {e}"))?,
            partition_key: r["partitionKey"].as_str().unwrap_or_default().to_string(),
            data: base64::engine::general_purpose::STANDARD
                .decode(r["data"].as_str().unwrap_or_default())
                .context("the server sent a record whose data is not base64")?,
            approximate_arrival_timestamp_ms: r["approximateArrivalTimestamp"].as_i64().unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions() {
        assert_eq!(starting_position("trim-horizon").unwrap(), StartingPosition::TrimHorizon);
        assert_eq!(starting_position("TRIM_HORIZON").unwrap(), StartingPosition::TrimHorizon);
        assert_eq!(starting_position("latest").unwrap(), StartingPosition::Latest);
        assert_eq!(starting_position("1000").unwrap(), StartingPosition::AtTimestamp(1000));
        assert_eq!(
            starting_position("2020-08-07T06:09:41Z").unwrap(),
            StartingPosition::AtTimestamp(1_596_780_581_000)
        );
        assert!(starting_position("yesterday").is_err());
    }
}
