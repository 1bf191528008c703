//! `voxbridge serve`: open the store, provision it, and serve the API over HTTP and,
//! when configured, HTTPS until Ctrl-C or SIGTERM.
//!
//! Each listener prints `listening on SCHEME://ADDR` with the address actually bound, so a
//! test or script that asks for port 0 learns the port from standard output.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use axum_server::tls_rustls::RustlsConfig;
use tokio::sync::watch;
use tokio::task::JoinSet;
use voxbridge_store::Store;

use crate::config::{reachable, Config};
use crate::datadir::DataDir;
use crate::keys;
use crate::provision::{self, Provisioned};

/// How long open connections (event streams, slow clients) get to finish after a stop
/// signal before the process exits anyway.
const DRAIN: Duration = Duration::from_secs(10);

/// Opens the configured store with an error that says what to check.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>> {
    if config.database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create the data directory {}", config.data_dir.display()))?;
    }
    voxbridge_store::open(&config.database_url).await.with_context(|| {
        format!(
            "cannot open the store at {}; check --database-url / VOXBRIDGE_DATABASE_URL and that the \
             database is reachable",
            config.database_url_redacted()
        )
    })
}

/// Opens and provisions the store; shared by `serve` and `setup`.
pub async fn prepare(config: &Config) -> Result<(Arc<dyn Store>, Provisioned)> {
    let data = DataDir::new(&config.data_dir);
    let store = open_store(config).await?;
    let provisioned = provision::provision(&*store, config, &data).await?;
    Ok((store, provisioned))
}

pub async fn run(config: &Config) -> Result<()> {
    // Listening for stop signals from the start: a SIGTERM while the server starts up then
    // stops it gracefully once started, instead of killing it half-way.
    let (signal_tx, signal_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = signal_tx.send(());
    });
    if config.objects_s3.is_some() {
        // A wrong bucket, endpoint or credentials stops the server here, not at the first backup.
        crate::objects::Objects::from_config(config)?.check().await.context(
            "check `objects.url`, `objects.endpoint` and the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
        )?;
    }
    let data = DataDir::new(&config.data_dir);
    let (store, provisioned) = prepare(config).await?;
    if provisioned.created.is_some() {
        println!("Created the demo org {} in {}", provisioned.setup.org.id, data.root().display());
    } else if let Some(i) = &provisioned.integration {
        println!("Added the connected app `{}` and API user {} for the CRM REST API", i.app_name, i.username);
    }
    if let Some(dir) = &provisioned.flows_installed {
        println!("Installed the sample flows in {}", dir.display());
    }
    let bus = crate::pipelines::open_bus(config).await?;
    let (mut pipelines, sink) = crate::pipelines::start(bus.clone());
    let streams = voxbridge_server::streams::Streams {
        bus: bus.clone(),
        org_id: Some(provisioned.setup.org.id.clone()),
    };
    let mut app = voxbridge_server::router(store.clone(), config.settings()).layer(axum::Extension(streams));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut servers = JoinSet::new();

    let mut http_url = None;
    // The function registry the contact center and the rules share, with the URL its
    // built-in functions call.
    let mut functions = None;
    if let Some(addr) = config.http {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!(
                "cannot listen on {addr} for HTTP; is something else using it? choose another with --http"
            )
        })?;
        let local = listener.local_addr()?;
        println!("listening on http://{local}");
        http_url = Some(format!("http://{}", reachable(local)));
        let base = format!("http://{}", reachable(local));
        let registry = match crate::callsim::registry(config, &data, &provisioned.setup, &base) {
            Ok(r) => Arc::new(r),
            Err(e) => {
                tracing::warn!("the built-in functions are off: {e:#}");
                Arc::new(voxbridge_functions::Registry::new())
            }
        };
        app = crate::callsim::attach(
            app,
            config,
            &data,
            &provisioned.setup,
            registry.clone(),
            &base,
            sink.clone(),
        )?;
        functions = Some((registry, base));
        let app = app.clone().into_make_service_with_connect_info::<SocketAddr>();
        let mut stop = stop_rx.clone();
        servers.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
                .context("the HTTP server failed")
        });
    }

    let mut https_url = None;
    let mut tls_note = None;
    if let Some(addr) = config.https {
        // rustls is built without a default provider; pick ring once for the process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (cert, key, self_signed) = tls_files(config, &data)?;
        let tls = RustlsConfig::from_pem_file(&cert, &key).await.with_context(|| {
            format!(
                "cannot load the TLS certificate {} and key {}; they must be PEM files that belong together",
                cert.display(),
                key.display()
            )
        })?;
        let listener = std::net::TcpListener::bind(addr).with_context(|| {
            format!(
                "cannot listen on {addr} for HTTPS; is something else using it? choose another with --https"
            )
        })?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        println!("listening on https://{local}");
        https_url = Some(format!("https://{}", reachable(local)));
        tls_note = Some(if self_signed {
            format!("self-signed certificate {} (clients must trust it)", cert.display())
        } else {
            format!("certificate {}", cert.display())
        });
        let handle = axum_server::Handle::new();
        let mut stop = stop_rx.clone();
        let stopper = handle.clone();
        tokio::spawn(async move {
            let _ = stop.wait_for(|s| *s).await;
            stopper.graceful_shutdown(Some(DRAIN));
        });
        // The server crate cannot see TLS; tell it the scheme so a CRM login answers with an
        // https `instance_url` when no public URL is configured.
        let app = app
            .clone()
            .layer(axum::middleware::map_request(mark_https))
            .into_make_service_with_connect_info::<SocketAddr>();
        servers.spawn(async move {
            axum_server::from_tcp_rustls(listener, tls)
                .handle(handle)
                .serve(app)
                .await
                .context("the HTTPS server failed")
        });
    }

    let ctr_sync = start_ctr_sync(config, &data, &provisioned.setup, &mut pipelines, http_url.as_deref());
    let rules = crate::rules::start_in_serve(config, &data, &provisioned.setup, &mut pipelines, functions);
    let setup = &provisioned.setup;
    let main_url = config.public_url.clone().or(http_url.clone()).or(https_url.clone()).unwrap_or_default();
    println!();
    println!("Voxbridge {} serving org {} ({})", env!("CARGO_PKG_VERSION"), setup.org.id, setup.org.name);
    for url in [&http_url, &https_url].into_iter().flatten() {
        println!("  Telephony API:  {url}/telephony/v1");
    }
    if let Some(public) = &config.public_url {
        println!("  Public URL:     {public}/telephony/v1");
    }
    if let Some(note) = tls_note {
        println!("  TLS:            {note}");
    }
    println!("  CRM REST API:   {main_url}/services/data");
    println!("  OpenAPI:        {main_url}/openapi.json");
    println!("  Streams API:    {main_url}/streams/v1");
    println!("  Store:          {} ({})", store.backend(), config.database_url_redacted());
    println!("  Event bus:      {} ({})", bus.backend(), crate::config::redact_url(&config.bus_url));
    println!("  CTR sync:       {ctr_sync}");
    println!("  Rules:          {rules}");
    for number in &setup.phone_channels {
        println!(
            "  Phone number:   {} -> {}",
            number.phone_number,
            number.call_center.as_deref().unwrap_or("?")
        );
    }
    let call_center =
        setup.call_centers.iter().find(|c| c.private_key_file.is_some()).or(setup.call_centers.first());
    if let Some(cc) = call_center {
        println!(
            "  Get a token:    voxbridge token --call-center {}{}",
            cc.api_name,
            data_flag(&config.data_dir)
        );
    }
    if !setup.connected_apps.is_empty() {
        println!("  CRM login:      voxbridge token --crm{}", data_flag(&config.data_dir));
    }
    println!("  Setup details:  voxbridge info{}", data_flag(&config.data_dir));
    println!("Press Ctrl-C to stop.");

    let failed = tokio::select! {
        _ = signal_rx => None,
        Some(done) = servers.join_next() => Some(done),
    };
    let _ = stop_tx.send(true);
    if let Some(done) = failed {
        done.context("a server task panicked")??;
        bail!("a listener stopped unexpectedly");
    }
    tracing::info!("stopping: finishing open requests");
    let drained = tokio::time::timeout(DRAIN + Duration::from_secs(1), async {
        while let Some(done) = servers.join_next().await {
            if let Err(e) = done.context("a server task panicked").and_then(|r| r) {
                tracing::error!("{e:#}");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("some connections were still open after {}s; closing them", DRAIN.as_secs());
        servers.abort_all();
    }
    pipelines.shutdown().await;
    bus.close().await;
    store.close().await;
    println!("stopped");
    Ok(())
}

/// Starts the CTR sync against this server's CRM REST API (its public URL, else its HTTP
/// address) and says what runs, for the banner.
fn start_ctr_sync(
    config: &Config,
    data: &DataDir,
    setup: &crate::datadir::SetupFile,
    pipelines: &mut crate::pipelines::Pipelines,
    http_url: Option<&str>,
) -> String {
    let Some(base) = config.public_url.as_deref().or(http_url) else {
        tracing::warn!("the CTR sync is off: it needs the HTTP listener or `server.public_url`");
        return "off (needs the HTTP listener or server.public_url)".into();
    };
    let schedule = voxbridge_events::Schedule::parse(&config.ctr_resync_schedule).ok();
    match crate::pipelines::ctr_sync(config, data, setup, base) {
        Ok(sync) => {
            let sync = sync.with_object_events(pipelines.bus());
            let location = sync.objects().location().to_string();
            pipelines.start_sync(Arc::new(sync), schedule);
            format!(
                "{} on `{}`, backups in {}, resync {}",
                crate::pipelines::CTR_SYNC_GROUP,
                crate::pipelines::CTR_STREAM,
                location,
                config.ctr_resync_schedule
            )
        }
        Err(e) => {
            tracing::warn!("the CTR sync is off: {e:#}");
            format!("off ({e:#})")
        }
    }
}

/// Marks a request that arrived over the HTTPS listener, replacing whatever the client
/// claimed.
async fn mark_https(mut request: axum::extract::Request) -> axum::extract::Request {
    request.headers_mut().insert("x-forwarded-proto", axum::http::HeaderValue::from_static("https"));
    request
}

/// ` --data DIR` when the data dir is not the default, for commands printed to copy.
pub fn data_flag(dir: &Path) -> String {
    if dir == Path::new(crate::config::DEFAULT_DATA_DIR) {
        String::new()
    } else {
        format!(" --data {}", dir.display())
    }
}

/// The configured certificate and key, or the data dir's self-signed pair (made on first
/// use). The bool says whether it is self-signed.
fn tls_files(config: &Config, data: &DataDir) -> Result<(PathBuf, PathBuf, bool)> {
    if let Some(tls) = &config.tls {
        for (what, key, p) in [("certificate", "cert", &tls.cert), ("key", "key", &tls.key)] {
            if !p.is_file() {
                bail!(
                    "the TLS {what} {} does not exist; fix `tls.{key}` (or VOXBRIDGE_TLS_{}) ",
                    p.display(),
                    key.to_uppercase()
                );
            }
        }
        return Ok((tls.cert.clone(), tls.key.clone(), false));
    }
    let (cert, key) = (data.tls_cert(), data.tls_key());
    if cert.is_file() && key.is_file() {
        return Ok((cert, key, true));
    }
    std::fs::create_dir_all(data.tls_dir())
        .with_context(|| format!("cannot create {}", data.tls_dir().display()))?;
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    if let Some(addr) = config.https.filter(|a| !a.ip().is_unspecified() && !a.ip().is_loopback()) {
        names.push(addr.ip().to_string());
    }
    if let Some(host) = config.public_url.as_deref().and_then(url_host) {
        names.push(host);
    }
    names.dedup();
    let generated =
        rcgen::generate_simple_self_signed(names).context("generating a self-signed certificate failed")?;
    keys::write_private(&key, &generated.key_pair.serialize_pem(), true)?;
    keys::write_public(&cert, &generated.cert.pem(), true)?;
    tracing::info!(cert = %cert.display(), "generated a self-signed TLS certificate");
    Ok((cert, key, true))
}

/// The host of `scheme://host[:port]/...`, without brackets.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.rsplit_once(':').map(|(h, _)| h).unwrap_or(authority),
    };
    (!host.is_empty()).then(|| host.to_string())
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM (what container runtimes send).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_urls() {
        assert_eq!(url_host("https://voice.example.com").as_deref(), Some("voice.example.com"));
        assert_eq!(url_host("https://voice.example.com:8443/x").as_deref(), Some("voice.example.com"));
        assert_eq!(url_host("https://[2001:db8::1]:8443").as_deref(), Some("2001:db8::1"));
        assert_eq!(url_host("nonsense"), None);
    }
}
