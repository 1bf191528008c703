//! The function registry: binds the ARNs flows name to [`Function`]s, and runs invocations
//! with a time limit, reserved concurrency (throttling) and per-function metrics.
//!
//! An ARN resolves, in order, to: a function bound to exactly that string (an ARN, a
//! placeholder such as `%%INVOKE_TELEPHONY_FUNCTION_ARN%%`, a name); the same without the
//! ARN's alias or version qualifier; a registered function of that name; a registered
//! function whose name the ARN's function name ends with (so
//! `arn:aws:lambda:us-west-2:123:function:myOrg-InvokeTelephonyIntegrationApiFunction:active`
//! reaches the built-in `InvokeTelephonyIntegrationApiFunction`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{function_name, Function, FunctionError};

/// How a function runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionOptions {
    /// The function's own time limit (Lambda's configured timeout); the shorter of this and
    /// the invocation's limit applies.
    pub timeout: Option<Duration>,
    /// At most this many invocations at once; more are throttled. `None`: unlimited.
    pub reserved_concurrency: Option<u64>,
}

/// A snapshot of one function's counters (CloudWatch's `AWS/Lambda` metrics, since start).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionMetrics {
    pub name: String,
    /// Invocations that ran (throttled ones are not counted, as in Lambda).
    pub invocations: u64,
    /// Invocations that failed or timed out.
    pub errors: u64,
    pub throttles: u64,
    /// Sum and maximum of the durations of invocations that ran.
    pub duration_sum: Duration,
    pub duration_max: Duration,
    /// Invocations running now.
    pub concurrent_executions: u64,
    /// The most invocations that ran at once.
    pub max_concurrent_executions: u64,
}

#[derive(Default)]
struct Stats {
    running: AtomicU64,
    counters: Mutex<FunctionMetrics>,
}

struct Entry {
    function: Arc<dyn Function>,
    options: FunctionOptions,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Inner {
    /// By function name.
    functions: HashMap<String, Entry>,
    /// Exact ARN, placeholder or alias → function name.
    bindings: HashMap<String, String>,
}

/// The functions flows can invoke. Cheap to share (`Arc<Registry>`); bindings may change while
/// contacts run.
#[derive(Default)]
pub struct Registry {
    inner: RwLock<Inner>,
}

/// The answer to one invocation, with what the runtime observed.
#[derive(Debug, Clone, PartialEq)]
pub struct Invoked {
    /// The function the ARN resolved to, if any.
    pub function: Option<String>,
    pub result: Result<Value, FunctionError>,
    pub duration: Duration,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers `function` under its name, replacing a function of the same name (its
    /// metrics are kept).
    pub fn register(&self, function: Arc<dyn Function>, options: FunctionOptions) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let name = function.name().to_string();
        let stats = inner.functions.get(&name).map(|e| e.stats.clone()).unwrap_or_default();
        {
            let mut c = stats.counters.lock().unwrap_or_else(|e| e.into_inner());
            c.name = name.clone();
        }
        inner.functions.insert(name, Entry { function, options, stats });
    }

    /// Binds an ARN (or placeholder, or any string a flow uses) to the registered function
    /// `name`. Returns false if no function has that name.
    pub fn bind(&self, arn: impl Into<String>, name: &str) -> bool {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if !inner.functions.contains_key(name) {
            return false;
        }
        inner.bindings.insert(arn.into(), name.to_string());
        true
    }

    /// The name of the function `arn` resolves to.
    pub fn resolve(&self, arn: &str) -> Option<String> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        resolve(&inner, arn)
    }

    /// Whether a flow naming `arn` would reach a function (for validation).
    pub fn is_known(&self, arn: &str) -> bool {
        self.resolve(arn).is_some()
    }

    /// Invokes the function `arn` resolves to with `event`, within `timeout` (and the
    /// function's own limit).
    pub async fn invoke(&self, arn: &str, event: Value, timeout: Duration) -> Invoked {
        let found = {
            let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
            resolve(&inner, arn).and_then(|name| {
                inner
                    .functions
                    .get(&name)
                    .map(|e| (name, e.function.clone(), e.options.clone(), e.stats.clone()))
            })
        };
        let Some((name, function, options, stats)) = found else {
            return Invoked {
                function: None,
                result: Err(FunctionError::NotFound(arn.to_string())),
                duration: Duration::ZERO,
            };
        };
        let Some(_slot) = Slot::acquire(&stats, options.reserved_concurrency) else {
            lock(&stats).throttles += 1;
            return Invoked {
                function: Some(name.clone()),
                result: Err(FunctionError::Throttled(name)),
                duration: Duration::ZERO,
            };
        };
        let limit = options.timeout.map_or(timeout, |t| t.min(timeout));
        let started = Instant::now();
        let result = match tokio::time::timeout(limit, function.invoke(event)).await {
            Ok(r) => r,
            Err(_) => Err(FunctionError::Timeout(limit.as_millis() as u64)),
        };
        let duration = started.elapsed();
        {
            let mut c = lock(&stats);
            c.invocations += 1;
            if result.is_err() {
                c.errors += 1;
            }
            c.duration_sum += duration;
            c.duration_max = c.duration_max.max(duration);
        }
        Invoked { function: Some(name), result, duration }
    }

    /// Metrics of every registered function, sorted by name.
    pub fn metrics(&self) -> Vec<FunctionMetrics> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<FunctionMetrics> = inner.functions.values().map(|e| snapshot(&e.stats)).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Metrics of one function.
    pub fn metrics_of(&self, name: &str) -> Option<FunctionMetrics> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.functions.get(name).map(|e| snapshot(&e.stats))
    }

    /// Names of the registered functions, sorted.
    pub fn names(&self) -> Vec<String> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<String> = inner.functions.keys().cloned().collect();
        names.sort();
        names
    }
}

fn lock(stats: &Stats) -> std::sync::MutexGuard<'_, FunctionMetrics> {
    stats.counters.lock().unwrap_or_else(|e| e.into_inner())
}

fn snapshot(stats: &Stats) -> FunctionMetrics {
    let mut m = lock(stats).clone();
    m.concurrent_executions = stats.running.load(Ordering::SeqCst);
    m
}

fn resolve(inner: &Inner, arn: &str) -> Option<String> {
    if let Some(name) = inner.bindings.get(arn) {
        return Some(name.clone());
    }
    let unqualified = unqualified(arn);
    if let Some(name) = inner.bindings.get(unqualified) {
        return Some(name.clone());
    }
    let fname = function_name(arn).unwrap_or(arn);
    if inner.functions.contains_key(fname) {
        return Some(fname.to_string());
    }
    // The longest registered name the function name ends with, so that a more specific
    // name wins over a shorter one it contains.
    inner
        .functions
        .keys()
        .filter(|name| !name.is_empty() && fname.ends_with(name.as_str()))
        .max_by_key(|name| name.len())
        .cloned()
}

/// `arn` without a trailing alias or version (`…:function:NAME:active` → `…:function:NAME`).
fn unqualified(arn: &str) -> &str {
    if function_name(arn).is_some() && arn.split(':').count() > 7 {
        return arn.rsplit_once(':').map_or(arn, |(head, _)| head);
    }
    arn
}

/// One running invocation's share of the reserved concurrency.
struct Slot(Arc<Stats>);

impl Slot {
    fn acquire(stats: &Arc<Stats>, reserved: Option<u64>) -> Option<Slot> {
        let mut current = stats.running.load(Ordering::SeqCst);
        loop {
            if reserved.is_some_and(|max| current >= max) {
                return None;
            }
            match stats.running.compare_exchange(current, current + 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
        let mut c = lock(stats);
        c.max_concurrent_executions = c.max_concurrent_executions.max(current + 1);
        drop(c);
        Some(Slot(stats.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}
