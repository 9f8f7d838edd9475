//! One function version's execution environments: warm instances are reused, new ones start
//! on demand up to the concurrency limit (beyond it an invocation is throttled, as Lambda
//! throttles), an instance that times out is killed, one that exits is replaced on the next
//! invocation, and idle ones are stopped by [`FunctionPool::stop_idle`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use time::OffsetDateTime;
use tokio::sync::oneshot;

use super::instance::{Event, Instance, Started};
use super::{
    FunctionLogs, FunctionSpec, Interpreters, Invocation, InvokeError, LogLine, Outcome,
    INIT_LIMIT, MAX_PAYLOAD_BYTES,
};

/// How long an invocation waits for a runtime that just answered to ask for more work before
/// a new instance is started for it.
const RETURN_GRACE: Duration = Duration::from_millis(100);

pub struct FunctionPool {
    spec: Arc<FunctionSpec>,
    interpreters: Arc<Interpreters>,
    logs: Arc<dyn FunctionLogs>,
    instances: Mutex<Vec<Arc<Instance>>>,
    /// Instances being started, counted against the concurrency limit.
    starting: AtomicU64,
    next_instance: AtomicU64,
}

impl FunctionPool {
    pub fn new(
        spec: FunctionSpec,
        interpreters: Arc<Interpreters>,
        logs: Arc<dyn FunctionLogs>,
    ) -> Self {
        Self {
            spec: Arc::new(spec),
            interpreters,
            logs,
            instances: Mutex::new(Vec::new()),
            starting: AtomicU64::new(0),
            next_instance: AtomicU64::new(1),
        }
    }

    pub fn spec(&self) -> &FunctionSpec {
        &self.spec
    }

    fn instances(&self) -> MutexGuard<'_, Vec<Arc<Instance>>> {
        self.instances
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Lambda's synchronous `Invoke` of this version with `payload`.
    pub async fn invoke(&self, payload: Bytes) -> Result<Invocation, InvokeError> {
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(InvokeError::PayloadTooLarge { len: payload.len() });
        }
        let request_id = request_id();
        let timeout = self.spec.config.timeout.duration();
        let began = Instant::now();
        let event = || Event {
            request_id: request_id.clone(),
            deadline_ms: (OffsetDateTime::now_utc() + timeout).unix_timestamp_nanos() / 1_000_000,
            invoked_arn: self.spec.invoked_arn.clone(),
            trace_id: trace_id(),
            payload: payload.clone(),
        };
        let (instance, reply) = loop {
            if let Some(claimed) = self.claim_warm(event()) {
                break claimed;
            }
            // A runtime that just answered is back on `/next` in moments: reuse it rather
            // than start a cold one beside it.
            if let Some(returning) = self.returning() {
                if returning.parked_within(RETURN_GRACE).await {
                    continue;
                }
            }
            let instance = match self.start_instance().await? {
                Ok(instance) => instance,
                Err(failure) => return Ok(self.finished(&request_id, failure, began)),
            };
            match instance.started(INIT_LIMIT).await {
                Started::Ready => {
                    if let Some(reply) = instance.claim(event()) {
                        break (instance, reply);
                    }
                }
                Started::Failed(failure) => {
                    // The environment is gone; the next invocation starts a fresh one.
                    self.remove(&instance);
                    return Ok(self.finished(&request_id, failure, began));
                }
            }
        };
        self.log(
            &instance,
            &request_id,
            format!(
                "START RequestId: {request_id} Version: {}",
                self.spec.version
            ),
        );
        let outcome = match tokio::time::timeout(timeout, reply).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Outcome::failure(
                "Runtime.ExitError",
                &request_id,
                "Runtime exited without providing a reason",
            ),
            Err(_) => {
                self.remove(&instance);
                Outcome::failure(
                    "Sandbox.Timedout",
                    &request_id,
                    &format!("Task timed out after {:.2} seconds", timeout.as_secs_f64()),
                )
            }
        };
        let invocation = self.finished(&request_id, outcome, began);
        self.log(
            &instance,
            &request_id,
            format!("END RequestId: {request_id}"),
        );
        self.log(
            &instance,
            &request_id,
            format!(
                "REPORT RequestId: {request_id}\tDuration: {:.2} ms\tMemory Size: {} MB",
                invocation.duration.as_secs_f64() * 1000.0,
                self.spec.config.memory.get()
            ),
        );
        Ok(invocation)
    }

    fn finished(&self, request_id: &str, outcome: Outcome, began: Instant) -> Invocation {
        Invocation {
            request_id: request_id.to_owned(),
            executed_version: self.spec.version.clone(),
            outcome,
            duration: began.elapsed(),
        }
    }

    /// An idle warm instance, handed `event`. Instances whose process ended are dropped here.
    fn claim_warm(&self, event: Event) -> Option<(Arc<Instance>, oneshot::Receiver<Outcome>)> {
        let mut instances = self.instances();
        instances.retain(|instance| !instance.has_exited());
        let idle = instances
            .iter()
            .find(|instance| instance.idle_for().is_some())?
            .clone();
        drop(instances);
        let reply = idle.claim(event)?;
        Some((idle, reply))
    }

    fn returning(&self) -> Option<Arc<Instance>> {
        self.instances()
            .iter()
            .find(|instance| instance.is_returning())
            .cloned()
    }

    /// A new instance, if the concurrency limit leaves room for one.
    async fn start_instance(&self) -> Result<Result<Arc<Instance>, Outcome>, InvokeError> {
        let limit = self.spec.config.concurrency.get();
        {
            let running = self.instances().len() as u64;
            let starting = self.starting.fetch_add(1, Ordering::SeqCst);
            if running + starting >= u64::from(limit) {
                self.starting.fetch_sub(1, Ordering::SeqCst);
                return Err(InvokeError::Throttled {
                    function: self.spec.function_name.clone(),
                    limit,
                });
            }
        }
        let id = self.next_instance.fetch_add(1, Ordering::SeqCst);
        let started = Instance::start(id, &self.spec, &self.interpreters, self.logs.clone()).await;
        // Counted from its spawn, not from its first `/next`: an instance still in its init
        // holds a place under the concurrency limit.
        let started = started.map(|started| {
            started.map(|instance| {
                let instance = Arc::new(instance);
                self.instances().push(instance.clone());
                instance
            })
        });
        self.starting.fetch_sub(1, Ordering::SeqCst);
        started
    }

    fn remove(&self, instance: &Arc<Instance>) {
        self.instances()
            .retain(|other| !Arc::ptr_eq(other, instance));
    }

    /// Stops instances that waited for work longer than `idle_for`; returns how many.
    pub fn stop_idle(&self, idle_for: Duration) -> usize {
        let mut instances = self.instances();
        let before = instances.len();
        instances.retain(|instance| {
            !instance.has_exited() && instance.idle_for().is_none_or(|idle| idle < idle_for)
        });
        before - instances.len()
    }

    /// Stops every instance (their processes are killed as the last reference goes).
    pub fn stop_all(&self) {
        self.instances().clear();
    }

    /// Instances running now, idle or busy.
    pub fn running(&self) -> usize {
        self.instances().len()
    }

    fn log(&self, instance: &Instance, request_id: &str, line: String) {
        self.logs.write(LogLine {
            function_name: self.spec.function_name.clone(),
            version: self.spec.version.clone(),
            instance: instance.id,
            request_id: Some(request_id.to_owned()),
            at: OffsetDateTime::now_utc(),
            line,
        });
    }
}

/// A request id shaped as Lambda's (a random UUID).
fn request_id() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-4{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[13..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// An X-Ray trace header for one invocation (not sampled: nothing collects traces here).
fn trace_id() -> String {
    let random: [u8; 20] = rand::rng().random();
    let random = hex::encode(random);
    format!(
        "Root=1-{:08x}-{};Parent={};Sampled=0",
        OffsetDateTime::now_utc().unix_timestamp(),
        &random[..24],
        &random[24..40]
    )
}
