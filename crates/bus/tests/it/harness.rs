//! Runs a test body against a fresh bus and cleans up afterwards, even if the body panics
//! (the panic is re-raised after cleanup).

use rand::Rng;
use std::future::Future;
use std::sync::Arc;
use voxbridge_bus::Bus;

pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// What a test gets: the bus, and a way to drop it and open the same one again.
pub struct Ctx {
    pub bus: Arc<dyn Bus>,
    url: String,
}

impl Ctx {
    /// Closes the bus and opens it again from its URL, as a restarted process would.
    pub async fn reopen(&mut self) {
        self.bus.close().await;
        self.bus = voxbridge_bus::open(&self.url).await.expect("reopen the bus");
    }
}

/// Runs `body` against an embedded bus in a temporary directory.
pub async fn on_embedded<F, Fut>(body: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("bus.db").display());
    let bus = voxbridge_bus::open(&url).await.expect("open the embedded bus");
    let outcome = tokio::spawn(body(Ctx { bus, url })).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Runs `body` against JetStream with a stream-name prefix of its own; deletes the
/// prefix's streams afterwards.
pub async fn on_nats<F, Fut>(body: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    if std::env::var("VOXBRIDGE_SKIP_NATS").is_ok_and(|v| v == "1") {
        eprintln!("VOXBRIDGE_SKIP_NATS=1: skipping a NATS test");
        return;
    }
    let base = std::env::var("VOXBRIDGE_TEST_NATS_URL").unwrap_or_else(|_| DEFAULT_NATS_URL.to_string());
    let suffix: String = {
        let mut rng = rand::thread_rng();
        (0..10).map(|_| (b'a' + rng.gen_range(0..26)) as char).collect()
    };
    let url = format!("{base}?prefix=vbtest_{suffix}_");
    let bus = match voxbridge_bus::open(&url).await {
        Ok(bus) => bus,
        Err(e) => panic!(
            "NATS at {base} is not usable: {e}. Start `nats-server -js`, point VOXBRIDGE_TEST_NATS_URL \
             at one that is, or set VOXBRIDGE_SKIP_NATS=1 to skip the NATS tests"
        ),
    };
    let outcome = tokio::spawn(body(Ctx { bus: bus.clone(), url })).await;
    for stream in bus.list_streams().await.unwrap_or_default() {
        let _ = bus.delete_stream(&stream).await;
    }
    bus.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
