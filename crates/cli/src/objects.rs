//! The object store (S3's role): CTR backups and other blobs under `objects.url`, and
//! `voxbridge objects list|put|get|tag`. Two backends behind one [`ObjectStore`]:
//!
//! - a local directory (the default, `<data>/objects/`, or `file:///PATH`), through the
//!   `object_store` crate's file system backend;
//! - any S3-compatible bucket (`s3://BUCKET[/PREFIX]`: AWS, MinIO, Garage, Ceph…), through
//!   its Amazon S3 backend, configured by `objects.endpoint`, `objects.region`,
//!   `objects.allow_http` and the standard AWS credentials ([`crate::config::S3Objects`]).
//!   Requests use path-style addressing (`ENDPOINT/BUCKET/KEY`), which every S3-compatible
//!   service accepts; keys are stored under PREFIX.
//!
//! Every put emits an `Object Created` event in the S3 EventBridge shape
//! ([`object_created_event`]) on the bus's `object-events` stream when the store was
//! opened [`Objects::with_events`] (the server and `voxbridge objects put` do), so rules can
//! react to new objects. The event names the real bucket on S3, and [`BUCKET`] for a
//! directory.
//!
//! Object tags (S3's `PutObjectTagging`) are JSON maps in one SQLite table on local disk,
//! whatever the backend: `.tags/tags.db` under a directory store's root (the `.tags/` prefix
//! is reserved and never listed), and `<data>/object-tags/BUCKET[/PREFIX]/tags.db` for a
//! bucket, one file per bucket and prefix so a store moved to another bucket does not
//! inherit tags that describe other objects. A table rather than S3's own tagging because
//! the CTR sync tags whole batches of backups at once and merges tags into existing sets:
//! one local transaction instead of a read and a write request per object (the
//! `object_store` crate can set tags only with a put, and not every S3-compatible service
//! keeps them). A table rather than a file per object because a second file per CTR doubled
//! the file creations. Replacing an object keeps its tags, which is what the CTR sync relies
//! on to remember what it applied; deleting one drops them. The tags of a bucket therefore
//! belong to the data directory that wrote them: servers sharing a bucket each keep their
//! own. Tag files of older versions (`.tags/<key>.json`) are moved into the table when a
//! directory store first uses its tags.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, PutPayload};
use serde_json::{json, Value};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::OnceCell;

use crate::config::{Config, S3Objects};

/// The reserved prefix of tag sets.
const TAGS_PREFIX: &str = ".tags";
/// The tag table's file, under [`TAGS_PREFIX`] (or a bucket's tag directory).
const TAGS_DB: &str = "tags.db";
/// The directory of buckets' tag tables under the data directory.
const S3_TAGS_DIR: &str = "object-tags";

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// ISO-8601 UTC.
    pub last_modified: String,
    /// The same as epoch ms.
    pub modified_ms: i64,
}

/// The object store of a data dir. Cheap to clone.
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    /// Where the objects are, for messages: a directory or `s3://BUCKET[/PREFIX]`.
    location: String,
    /// The bucket name of object events.
    bucket: String,
    /// A directory store's root, whose `.tags/` may hold tag files of older versions.
    local_root: Option<PathBuf>,
    /// The tag table's file.
    tags_file: PathBuf,
    /// Where `Object Created` events go, if anywhere.
    events: Option<Arc<dyn voxbridge_bus::Bus>>,
    /// The tag table, opened on first use (opening needs the async runtime).
    tags_db: Arc<OnceCell<SqlitePool>>,
}

impl std::fmt::Debug for Objects {
    // The store itself is not printed: an S3 client's debug output holds its credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objects")
            .field("location", &self.location)
            .field("tags_file", &self.tags_file)
            .field("events", &self.events.is_some())
            .finish()
    }
}

/// The bucket name object events give a directory store.
pub const BUCKET: &str = "voxbridge";

/// The S3 EventBridge `Object Created` event of a put in `bucket` (`sequence` orders puts
/// of a key).
pub fn object_created_event(bucket: &str, key: &str, size: u64, etag: &str, sequence: i64) -> Value {
    let now = chrono::Utc::now();
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": crate::rules::ACCOUNT,
        "time": now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "region": crate::rules::REGION,
        "resources": [format!("arn:aws:s3:::{bucket}")],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": s3_encode(key), "size": size, "etag": etag, "sequencer": format!("{sequence:016X}")},
            "request-id": uuid::Uuid::new_v4().simple().to_string(),
            "requester": crate::rules::ACCOUNT,
            "source-ip-address": "127.0.0.1",
            "reason": "PutObject",
        },
    })
}

/// A key as S3 events carry it: URL-encoded, `/` kept, a space as `+`.
fn s3_encode(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b' ' => out.push('+'),
            b if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/' | b':') => {
                out.push(b as char)
            }
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Objects {
    /// The configured store: the S3 bucket of `objects.url = "s3://…"`, else the directory.
    pub fn from_config(config: &Config) -> Result<Objects> {
        match &config.objects_s3 {
            Some(s3) => Objects::open_s3(s3, &config.data_dir),
            None => Objects::open(&config.objects_dir),
        }
    }

    /// Opens (and creates) the store rooted at `dir`.
    pub fn open(dir: &Path) -> Result<Objects> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the object store directory {}", dir.display()))?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .with_context(|| format!("cannot open the object store at {}", dir.display()))?;
        Ok(Objects {
            store: Arc::new(store),
            location: dir.display().to_string(),
            bucket: BUCKET.to_string(),
            local_root: Some(dir.to_path_buf()),
            tags_file: dir.join(TAGS_PREFIX).join(TAGS_DB),
            events: None,
            tags_db: Arc::new(OnceCell::new()),
        })
    }

    /// The store of an S3-compatible bucket, with its tags under `data_dir`. Nothing is
    /// requested yet: [`Objects::check`] does.
    pub fn open_s3(s3: &S3Objects, data_dir: &Path) -> Result<Objects> {
        // With static credentials everything comes from the configuration; without, the
        // builder reads AWS's credential chain (web identity, container, instance metadata)
        // from the process environment.
        let mut builder = match (&s3.access_key_id, &s3.secret_access_key) {
            (Some(id), Some(secret)) => {
                let b = AmazonS3Builder::new().with_access_key_id(id).with_secret_access_key(secret);
                match &s3.session_token {
                    Some(token) => b.with_token(token),
                    None => b,
                }
            }
            _ => AmazonS3Builder::from_env(),
        }
        .with_bucket_name(&s3.bucket)
        .with_region(&s3.region)
        .with_allow_http(s3.allow_http)
        .with_virtual_hosted_style_request(false)
        // Bounded, so a server that is down fails a command in seconds rather than minutes.
        .with_retry(object_store::RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(20),
            ..Default::default()
        });
        if let Some(endpoint) = &s3.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let url = s3.url();
        // The builder's errors name settings, never their values.
        let client =
            builder.build().map_err(flat).with_context(|| format!("cannot set up the object store {url}"))?;
        let store: Arc<dyn ObjectStore> = match &s3.prefix {
            Some(p) => Arc::new(PrefixStore::new(client, p.as_str())),
            None => Arc::new(client),
        };
        let mut tags_dir = data_dir.join(S3_TAGS_DIR).join(&s3.bucket);
        if let Some(p) = &s3.prefix {
            tags_dir.extend(p.split('/'));
        }
        Ok(Objects {
            store,
            location: match &s3.endpoint {
                Some(e) => format!("{url} at {e}"),
                None => url,
            },
            bucket: s3.bucket.clone(),
            local_root: None,
            tags_file: tags_dir.join(TAGS_DB),
            events: None,
            tags_db: Arc::new(OnceCell::new()),
        })
    }

    /// Checks that the store answers (for a bucket: that it exists and the credentials
    /// may list it), so a server with a wrong setting fails at start rather than at its
    /// first backup.
    pub async fn check(&self) -> Result<()> {
        self.store
            .list_with_delimiter(None)
            .await
            .map(|_| ())
            .map_err(flat)
            .with_context(|| format!("cannot list the object store {}", self.location))
    }

    /// The tag table, created (and older tag files moved into it) on first use.
    async fn tags_db(&self) -> Result<&SqlitePool> {
        self.tags_db
            .get_or_try_init(|| async {
                let file = &self.tags_file;
                if let Some(dir) = file.parent() {
                    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
                }
                let options = SqliteConnectOptions::from_str("sqlite://")?
                    .filename(file)
                    .create_if_missing(true)
                    // WAL without a sync per commit: a lost tag at worst lets an older CTR
                    // through once, which the sync tolerates (see pipelines).
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10));
                let pool = SqlitePoolOptions::new()
                    .max_connections(4)
                    .connect_with(options)
                    .await
                    .with_context(|| format!("cannot open the object tags at {}", file.display()))?;
                sqlx::query(
                    "CREATE TABLE IF NOT EXISTS object_tags (key TEXT PRIMARY KEY, tags TEXT NOT NULL) WITHOUT ROWID",
                )
                .execute(&pool)
                .await
                .context("cannot create the object tag table")?;
                if let Some(root) = &self.local_root {
                    import_tag_files(&pool, &root.join(TAGS_PREFIX)).await?;
                }
                Ok(pool)
            })
            .await
    }

    /// The same store, emitting an `Object Created` event on `object-events` per put.
    pub fn with_events(mut self, bus: Arc<dyn voxbridge_bus::Bus>) -> Objects {
        self.events = Some(bus);
        self
    }

    /// Where the objects are: a directory, or `s3://BUCKET[/PREFIX]` and the endpoint.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Stores `data` under `key`, replacing any object there, then emits its event. A lost
    /// event is logged only: the object is stored either way.
    pub async fn put(&self, key: &str, data: Vec<u8>) -> Result<()> {
        self.put_many(vec![(key.to_string(), data)]).await
    }

    /// Deletes the object and its tags; whether there was one.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let path = object_key(key)?;
        // S3 deletes a missing key without complaint, so a bucket asks first.
        let missing = match self.local_root {
            Some(_) => false,
            None => matches!(self.store.head(&path).await, Err(object_store::Error::NotFound { .. })),
        };
        let existed = match self.store.delete(&path).await {
            Ok(()) if missing => false,
            Ok(()) => true,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(e) => return Err(flat(e)).with_context(|| format!("cannot delete the object {key}")),
        };
        sqlx::query("DELETE FROM object_tags WHERE key = ?1")
            .bind(key)
            .execute(self.tags_db().await?)
            .await
            .with_context(|| format!("cannot delete the tags of {key}"))?;
        Ok(existed)
    }

    /// The object's bytes, `None` when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let path = object_key(key)?;
        self.get_path(&path).await.map_err(flat).with_context(|| format!("cannot read the object {key}"))
    }

    async fn get_path(&self, path: &ObjectPath) -> object_store::Result<Option<Vec<u8>>> {
        match self.store.get(path).await {
            Ok(r) => Ok(Some(r.bytes().await?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Objects whose key starts with `prefix` (a whole path segment prefix such as `ctr`),
    /// sorted by key.
    pub async fn list(&self, prefix: Option<&str>) -> Result<Vec<ObjectInfo>> {
        let prefix = match prefix.map(|p| p.trim_matches('/')).filter(|p| !p.is_empty()) {
            Some(p) => Some(object_key(p)?),
            None => None,
        };
        let metas: Vec<object_store::ObjectMeta> = self
            .store
            .list(prefix.as_ref())
            .try_collect()
            .await
            .map_err(flat)
            .with_context(|| format!("cannot list {}", self.location))?;
        let mut out: Vec<ObjectInfo> = metas
            .into_iter()
            .filter(|m| m.location.parts().next().is_some_and(|p| p.as_ref() != TAGS_PREFIX))
            .map(|m| ObjectInfo {
                key: m.location.to_string(),
                size: m.size,
                last_modified: m.last_modified.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                modified_ms: m.last_modified.timestamp_millis(),
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// The object's tags (empty when it has none).
    pub async fn tags(&self, key: &str) -> Result<BTreeMap<String, String>> {
        let mut tags = self.tags_many(&[key.to_string()]).await?;
        Ok(tags.pop().unwrap_or_default())
    }

    /// Replaces the object's tag set (S3 semantics). The object must exist.
    pub async fn set_tags(&self, key: &str, tags: &BTreeMap<String, String>) -> Result<()> {
        if self.get(key).await?.is_none() {
            bail!("there is no object {key} to tag");
        }
        sqlx::query("INSERT OR REPLACE INTO object_tags (key, tags) VALUES (?1, ?2)")
            .bind(key)
            .bind(serde_json::to_string(tags)?)
            .execute(self.tags_db().await?)
            .await
            .with_context(|| format!("cannot tag {key}"))?;
        Ok(())
    }
}

/// Objects read or written at once by the batch operations.
const BATCH_PARALLELISM: usize = 16;
/// Objects a directory store writes at once: creating files in one directory takes the
/// directory's lock, so more writers only wait (spinning) for each other.
const LOCAL_WRITE_PARALLELISM: usize = 1;

/// Batch operations: what the CTR sync does for a whole batch of contacts, with the objects
/// read and written concurrently, the tags in one transaction and the events in one bus put.
impl Objects {
    /// The objects' bytes, in the order of `keys` (`None` where there is none).
    pub async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        // Owned keys: a future borrowing the slice through the closure is not `Send` for the
        // consumer tasks that await it.
        futures::stream::iter(keys.to_vec())
            .map(|k| async move { self.get(&k).await })
            .buffered(BATCH_PARALLELISM)
            .try_collect()
            .await
    }

    /// Stores every object, replacing any there, then emits their events in one bus put. A
    /// lost event is logged only: the objects are stored either way.
    pub async fn put_many(&self, objects: Vec<(String, Vec<u8>)>) -> Result<()> {
        let stored: Vec<(String, u64, String)> = futures::stream::iter(objects)
            .map(|(key, data)| async move {
                let path = object_key(&key)?;
                let size = data.len() as u64;
                let result = self
                    .store
                    .put(&path, PutPayload::from(data))
                    .await
                    .map_err(flat)
                    .with_context(|| format!("cannot store the object {key}"))?;
                let etag = result.e_tag.unwrap_or_default().trim_matches('"').to_string();
                anyhow::Ok((key, size, etag))
            })
            .buffer_unordered(if self.local_root.is_some() {
                LOCAL_WRITE_PARALLELISM
            } else {
                BATCH_PARALLELISM
            })
            .try_collect()
            .await?;
        if let Some(bus) = &self.events {
            let base = chrono::Utc::now().timestamp_micros();
            let records = stored
                .iter()
                .zip(0..)
                .map(|((key, size, etag), i)| {
                    let event = object_created_event(&self.bucket, key, *size, etag, base + i);
                    voxbridge_bus::PutRecord::new(key.clone(), event.to_string().into_bytes())
                })
                .collect();
            if let Err(e) = bus.put_batch(crate::rules::OBJECT_EVENTS_STREAM, records).await {
                tracing::warn!(
                    objects = stored.len(),
                    "the Object Created events were not put on the bus: {e}"
                );
            }
        }
        Ok(())
    }

    /// The tags of each object, in the order of `keys`.
    pub async fn tags_many(&self, keys: &[String]) -> Result<Vec<BTreeMap<String, String>>> {
        for key in keys {
            object_key(key)?;
        }
        // One statement for the whole batch: the keys go in as a JSON array.
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT key, tags FROM object_tags WHERE key IN (SELECT value FROM json_each(?1))",
        )
        .bind(serde_json::to_string(keys)?)
        .fetch_all(self.tags_db().await?)
        .await
        .context("cannot read object tags")?;
        let mut found: std::collections::HashMap<String, String> = rows.into_iter().collect();
        keys.iter()
            .map(|key| match found.remove(key) {
                None => Ok(BTreeMap::new()),
                Some(text) => serde_json::from_str(&text)
                    .with_context(|| format!("the tags of {key} are not a JSON map of strings")),
            })
            .collect()
    }

    /// Adds or changes some tags of objects the caller has just stored, keeping the others,
    /// in one statement; the objects are not read again (the CTR sync's hot path).
    pub async fn merge_tags_many(&self, items: &[(String, Vec<(&str, String)>)]) -> Result<()> {
        // `{key: {tag: value}}`, later changes of a key over earlier ones.
        let mut patches: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
        for (key, tags) in items {
            object_key(key)?;
            patches.entry(key).or_default().extend(tags.iter().map(|(k, v)| (*k, v.as_str())));
        }
        if patches.is_empty() {
            return Ok(());
        }
        // `WHERE true` tells SQLite's parser the ON CONFLICT belongs to the INSERT.
        sqlx::query(
            "INSERT INTO object_tags (key, tags) SELECT key, json(value) FROM json_each(?1) WHERE true \
             ON CONFLICT (key) DO UPDATE SET tags = json_patch(object_tags.tags, excluded.tags)",
        )
        .bind(serde_json::to_string(&patches)?)
        .execute(self.tags_db().await?)
        .await
        .context("cannot tag objects")?;
        Ok(())
    }
}

/// Moves the tag files of older versions (`.tags/<key>.json`) into the table. Another
/// process doing the same at once is harmless: a set already there is kept.
async fn import_tag_files(pool: &SqlitePool, dir: &Path) -> Result<()> {
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(path);
                continue;
            }
            let Ok(rel) = path.strip_prefix(dir) else { continue };
            let rel = rel.to_string_lossy().replace('\\', "/");
            let Some(key) = rel.strip_suffix(".json") else { continue };
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            if object_key(key).is_err() || serde_json::from_str::<BTreeMap<String, String>>(&text).is_err() {
                tracing::warn!(file = %path.display(), "not an object's tag set; left alone");
                continue;
            }
            sqlx::query("INSERT OR IGNORE INTO object_tags (key, tags) VALUES (?1, ?2)")
                .bind(key)
                .bind(&text)
                .execute(pool)
                .await
                .with_context(|| format!("cannot import the tags in {}", path.display()))?;
            let _ = std::fs::remove_file(&path);
        }
    }
    Ok(())
}

/// An `object_store` error as one message: its text already holds its sources' (an S3
/// error would otherwise print the failed request three times over).
fn flat(e: object_store::Error) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// Checks a key: `/`-separated parts, none empty, `.` or `..`, no control characters, not
/// under the reserved `.tags/`.
fn object_key(key: &str) -> Result<ObjectPath> {
    let valid_parts = !key.is_empty()
        && key.split('/').all(|p| !p.is_empty() && p != "." && p != ".." && !p.chars().any(char::is_control));
    if !valid_parts {
        bail!("{key:?} is not an object key (parts separated by /, none empty, `.` or `..`)");
    }
    if key.split('/').next() == Some(TAGS_PREFIX) {
        bail!("keys under {TAGS_PREFIX}/ are reserved for object tags");
    }
    ObjectPath::parse(key).with_context(|| format!("{key:?} is not an object key"))
}

#[derive(Debug, Subcommand)]
pub enum ObjectsCommand {
    /// List objects (key, size, last modified), optionally under a prefix such as `ctr`.
    List(ListArgs),
    /// Store an object: the DATA argument, `-` for standard input, or `--file FILE`.
    Put(PutArgs),
    /// Print an object's bytes (or write them to `--out FILE`).
    Get(GetArgs),
    /// Show an object's tags, or replace them with KEY=VALUE pairs (`--clear` removes all).
    Tag(TagArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only keys under this prefix (whole path parts: `ctr` lists `ctr/…`).
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    /// The object key, e.g. `ctr/<ContactId>.json`.
    #[arg(value_name = "KEY")]
    key: String,
    /// The content; `-` reads standard input.
    #[arg(value_name = "DATA", required_unless_present = "file", conflicts_with = "file")]
    content: Option<String>,
    /// Read the content from this file.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    #[arg(value_name = "KEY")]
    key: String,
    /// Write the bytes to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    #[arg(value_name = "KEY")]
    key: String,
    /// New tag set as KEY=VALUE pairs; it replaces the old one. Without pairs, print the tags.
    #[arg(value_name = "TAG=VALUE")]
    tags: Vec<String>,
    /// Remove every tag.
    #[arg(long, conflicts_with = "tags")]
    clear: bool,
}

/// `voxbridge objects …` on the configured object store.
pub fn run(command: &ObjectsCommand, config: &Config) -> Result<()> {
    let mut objects = Objects::from_config(config)?;
    crate::runtime()?.block_on(async {
        // A put tells the server's rules about the new object through the bus.
        let bus = match command {
            ObjectsCommand::Put(_) => match crate::pipelines::open_bus(config).await {
                Ok(bus) => Some(bus),
                Err(e) => {
                    eprintln!("warning: no Object Created event will be emitted: {e:#}");
                    None
                }
            },
            _ => None,
        };
        if let Some(bus) = &bus {
            objects = objects.with_events(bus.clone());
        }
        let result = run_command(command, &objects).await;
        if let Some(bus) = bus {
            bus.close().await;
        }
        result
    })
}

async fn run_command(command: &ObjectsCommand, objects: &Objects) -> Result<()> {
    {
        match command {
            ObjectsCommand::List(a) => {
                let list = objects.list(a.prefix.as_deref()).await?;
                if a.json {
                    let rows: Vec<Value> = list
                        .iter()
                        .map(|o| json!({"Key": o.key, "Size": o.size, "LastModified": o.last_modified}))
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    for o in &list {
                        println!("{}  {:>10}  {}", o.last_modified, o.size, o.key);
                    }
                }
            }
            ObjectsCommand::Put(a) => {
                let data = match (&a.file, a.content.as_deref()) {
                    (Some(f), _) => {
                        std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?
                    }
                    (None, Some("-")) => {
                        let mut buf = Vec::new();
                        std::io::stdin().read_to_end(&mut buf).context("cannot read standard input")?;
                        buf
                    }
                    (None, Some(d)) => d.as_bytes().to_vec(),
                    (None, None) => bail!("give the content as DATA, `-` or --file FILE"),
                };
                let size = data.len();
                objects.put(&a.key, data).await?;
                println!("stored {} ({size} bytes) in {}", a.key, objects.location());
            }
            ObjectsCommand::Get(a) => {
                let Some(data) = objects.get(&a.key).await? else {
                    bail!("there is no object {} in {}", a.key, objects.location());
                };
                match &a.out {
                    Some(f) => {
                        std::fs::write(f, &data).with_context(|| format!("cannot write {}", f.display()))?
                    }
                    None => std::io::stdout().write_all(&data).context("cannot write standard output")?,
                }
            }
            ObjectsCommand::Tag(a) => {
                if a.tags.is_empty() && !a.clear {
                    let tags = objects.tags(&a.key).await?;
                    if objects.get(&a.key).await?.is_none() {
                        bail!("there is no object {} in {}", a.key, objects.location());
                    }
                    println!("{}", serde_json::to_string_pretty(&tags)?);
                    return Ok(());
                }
                let mut tags = BTreeMap::new();
                for pair in &a.tags {
                    let Some((k, v)) = pair.split_once('=').filter(|(k, _)| !k.is_empty()) else {
                        bail!("{pair:?} is not a tag; write KEY=VALUE");
                    };
                    tags.insert(k.to_string(), v.to_string());
                }
                objects.set_tags(&a.key, &tags).await?;
                println!("tagged {} with {} tag(s)", a.key, tags.len());
            }
        }
        Ok(())
    }
}

/// moto's server, for the S3 tests here and in the CLI's integration tests.
#[cfg(test)]
#[path = "../tests/it/s3_server.rs"]
mod s3_server;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(object_key("ctr/abc.json").is_ok());
        for bad in ["", "/x", "a//b", "a/../b", ".tags/x", "a\nb"] {
            assert!(object_key(bad).is_err(), "{bad:?}");
        }
    }

    /// What every backend does the same: puts, gets, lists, tags kept across a replace,
    /// the batch calls, deletes.
    async fn conformance(objects: &Objects) {
        objects.put("ctr/a.json", b"{}".to_vec()).await.unwrap();
        objects.put("other", b"x".to_vec()).await.unwrap();
        objects.merge_tags_many(&[("ctr/a.json".into(), vec![("k", "v".into())])]).await.unwrap();
        let keys: Vec<String> = objects.list(None).await.unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(keys, ["ctr/a.json", "other"]);
        let listed = objects.list(Some("ctr")).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].size, 2);
        assert!(
            (listed[0].modified_ms - chrono::Utc::now().timestamp_millis()).abs() < 600_000,
            "{listed:?}"
        );
        // Replacing the object keeps its tags.
        objects.put("ctr/a.json", b"{\"a\":1}".to_vec()).await.unwrap();
        assert_eq!(objects.tags("ctr/a.json").await.unwrap().get("k").map(String::as_str), Some("v"));
        assert_eq!(objects.get("ctr/a.json").await.unwrap().as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(objects.get("missing").await.unwrap(), None);
        assert!(objects.set_tags("missing", &BTreeMap::new()).await.is_err());
        objects
            .merge_tags_many(&[("ctr/a.json".into(), vec![("k", "w".into()), ("n", "1".into())])])
            .await
            .unwrap();
        let tags = objects.tags("ctr/a.json").await.unwrap();
        assert_eq!(serde_json::to_value(&tags).unwrap(), json!({"k": "w", "n": "1"}));

        // The batch calls, in the order of their keys.
        let batch: Vec<(String, Vec<u8>)> =
            (0..20).map(|i| (format!("batch/{i:02}.json"), vec![b'x'; i])).collect();
        objects.put_many(batch).await.unwrap();
        let keys: Vec<String> = ["batch/03.json", "missing", "batch/19.json"].map(String::from).to_vec();
        let got = objects.get_many(&keys).await.unwrap();
        assert_eq!(got, [Some(vec![b'x'; 3]), None, Some(vec![b'x'; 19])]);
        objects
            .merge_tags_many(&[
                ("batch/03.json".into(), vec![("sync", "applied".into())]),
                ("batch/19.json".into(), vec![("sync", "stale".into())]),
            ])
            .await
            .unwrap();
        let tags = objects.tags_many(&keys).await.unwrap();
        let shown: Vec<Value> = tags.iter().map(|t| serde_json::to_value(t).unwrap()).collect();
        assert_eq!(shown, [json!({"sync": "applied"}), json!({}), json!({"sync": "stale"})]);
        // One object twice in a batch: the later change of a tag wins.
        objects
            .merge_tags_many(&[
                ("batch/03.json".into(), vec![("a", "1".into()), ("sync", "again".into())]),
                ("batch/03.json".into(), vec![("a", "2".into())]),
            ])
            .await
            .unwrap();
        let tags = serde_json::to_value(objects.tags("batch/03.json").await.unwrap()).unwrap();
        assert_eq!(tags, json!({"a": "2", "sync": "again"}));
        assert_eq!(objects.list(Some("batch")).await.unwrap().len(), 20);

        assert!(objects.delete("ctr/a.json").await.unwrap());
        assert!(!objects.delete("ctr/a.json").await.unwrap(), "a second delete finds nothing");
        assert!(objects.tags("ctr/a.json").await.unwrap().is_empty(), "deleting drops the tags");
        assert_eq!(objects.list(None).await.unwrap().len(), 21, "the tag table is never listed");
    }

    #[tokio::test]
    async fn a_directory_store_conforms() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::open(dir.path()).unwrap();
        conformance(&objects).await;
        assert!(dir.path().join("ctr").is_dir() && dir.path().join(".tags/tags.db").is_file());
        assert_eq!(objects.bucket, BUCKET);
    }

    use super::s3_server;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_s3_bucket_conforms_with_its_tags_in_the_data_dir() {
        let Some(server) = s3_server::S3Server::start() else { return };
        server.create_bucket("vb-unit");
        let data = tempfile::tempdir().unwrap();
        let s3 = S3Objects {
            bucket: "vb-unit".into(),
            prefix: Some("site/one".into()),
            endpoint: Some(server.endpoint.clone()),
            region: "us-east-1".into(),
            access_key_id: Some(s3_server::ACCESS_KEY_ID.into()),
            secret_access_key: Some(s3_server::SECRET_ACCESS_KEY.into()),
            session_token: None,
            allow_http: true,
        };
        let objects = Objects::open_s3(&s3, data.path()).unwrap();
        objects.check().await.unwrap();
        conformance(&objects).await;
        assert_eq!(objects.bucket, "vb-unit");
        assert!(data.path().join("object-tags/vb-unit/site/one/tags.db").is_file());
        assert!(!format!("{objects:?}").contains(s3_server::SECRET_ACCESS_KEY));

        // The prefix holds the keys: a store without it sees them under the prefix, and
        // none of its own tags.
        let whole = Objects::open_s3(&S3Objects { prefix: None, ..s3.clone() }, data.path()).unwrap();
        let keys: Vec<String> = whole.list(Some("site")).await.unwrap().into_iter().map(|o| o.key).collect();
        assert!(keys.contains(&"site/one/other".to_string()), "{keys:?}");
        assert!(whole.tags("site/one/batch/03.json").await.unwrap().is_empty());

        // Lifecycle expiry deletes from the bucket, tags and all (the clock moved two days on).
        let rules = [crate::rules::Expiration { prefix: "batch".into(), days: 1 }];
        let later = chrono::Utc::now().timestamp_millis() + 2 * 86_400_000;
        assert_eq!(crate::rules::expire_once(&objects, &rules, later).await.unwrap(), 20);
        assert!(objects.list(Some("batch")).await.unwrap().is_empty());
        assert!(objects.tags("batch/03.json").await.unwrap().is_empty());
        assert_eq!(objects.list(None).await.unwrap().len(), 1);

        // A missing bucket fails the start-up check and says which one.
        let missing =
            Objects::open_s3(&S3Objects { bucket: "vb-missing".into(), ..s3 }, data.path()).unwrap();
        let e = format!("{:#}", missing.check().await.unwrap_err());
        assert!(e.contains("s3://vb-missing/site/one") && !e.contains(s3_server::SECRET_ACCESS_KEY), "{e}");
    }

    #[tokio::test]
    async fn tag_files_of_older_versions_are_imported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".tags/ctr")).unwrap();
        std::fs::write(dir.path().join(".tags/ctr/a.json.json"), r#"{"sync-status":"applied"}"#).unwrap();
        std::fs::write(dir.path().join(".tags/ctr/junk.json"), "not json").unwrap();
        let objects = Objects::open(dir.path()).unwrap();
        let tags = objects.tags("ctr/a.json").await.unwrap();
        assert_eq!(tags.get("sync-status").map(String::as_str), Some("applied"));
        assert!(!dir.path().join(".tags/ctr/a.json.json").exists());
        assert!(dir.path().join(".tags/ctr/junk.json").exists(), "what is no tag set stays");
    }
}
