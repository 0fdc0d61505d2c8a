//! The pipeline handler contract and running one pipeline over a stream's events.
//!
//! A pipeline is a list of handlers. Running it gives the stream's events to the first
//! handler's `handle_events`, its result to the next, and so on; each may filter the
//! list or add events to it. When every handler succeeded, `commit` is called on all
//! of them (the place for side effects); when one failed, `rollback` is called on all
//! of them instead and the run fails. Commit and rollback errors are logged and
//! counted, never fatal, except a commit that fails *retryably* (a broker away, a
//! timeout): then the commits stop there and the caller runs the stream again later,
//! so a notification to publish is never dropped. Before the first commit the run
//! asks its [`CommitGate`] whether it still owns the stream, and every handler call
//! can be bounded in time. The events in the final list whose `message_id` was not
//! among the input's are the run's new events, which the caller stores.
//!
//! Handlers are made fresh for every run by their [`HandlerFactory`], which validated
//! the handler's parameters once, at start-up.

use crate::event::Event;
use crate::store::{Stream, StreamId};
use crate::winchester::debug::DebugManager;
use async_trait::async_trait;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// Shared scratchpad of one pipeline run (the original's `env` dict).
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineEnv {
    pub stream_id: StreamId,
    pub stream_name: String,
    /// Lists of notifications by key (e.g. "usage_notifications"), for handlers later
    /// in the pipeline (notabene publishes the ones under its `env_keys`).
    pub notifications: BTreeMap<String, Vec<serde_json::Value>>,
}

impl PipelineEnv {
    pub fn new(stream_id: StreamId, stream_name: impl Into<String>) -> Self {
        PipelineEnv {
            stream_id,
            stream_name: stream_name.into(),
            notifications: BTreeMap::new(),
        }
    }
}

/// A handler's failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    pub message: String,
    /// The failure passes by itself (a broker away, a timeout): a commit that fails
    /// this way sends the stream back to retry instead of dropping its side effects.
    pub retryable: bool,
}

impl HandlerError {
    pub fn new(message: impl Into<String>) -> Self {
        HandlerError {
            message: message.into(),
            retryable: false,
        }
    }

    /// A failure worth running the pipeline again for, later.
    pub fn retryable(message: impl Into<String>) -> Self {
        HandlerError {
            message: message.into(),
            retryable: true,
        }
    }
}

/// Asked right before the first side effect (the commits) whether the run still owns
/// its stream. A pipeline worker answers from its claim: a run whose claim was lost
/// (its lease ran out and another worker took the stream) must not commit.
#[async_trait]
pub trait CommitGate: Send + Sync {
    /// `Ok(())` to commit; `Err(reason)` to roll back instead.
    async fn may_commit(&self) -> Result<(), String>;
}

/// How one run is bounded and guarded.
#[derive(Default, Clone, Copy)]
pub struct RunOptions<'a> {
    /// Upper bound on each handler call (`handle_events`, `commit`, `rollback`): a
    /// handler that takes longer fails (a retryable failure in `commit`).
    pub handler_timeout: Option<std::time::Duration>,
    pub gate: Option<&'a dyn CommitGate>,
}

/// One step of a pipeline, made afresh for every stream.
#[async_trait]
pub trait Handler: Send {
    /// May filter or extend the list; no side effects here (a pipeline can be retried).
    async fn handle_events(
        &mut self,
        events: Vec<Event>,
        env: &mut PipelineEnv,
    ) -> Result<Vec<Event>, HandlerError>;

    /// Side effects. Errors are logged and counted, never fail the stream.
    async fn commit(&mut self, env: &PipelineEnv) -> Result<(), HandlerError>;

    /// Called instead of `commit` when a handler of the pipeline failed. Errors are
    /// logged and counted.
    async fn rollback(&mut self) -> Result<(), HandlerError>;
}

/// Validated at start-up from the handler's params; makes a fresh handler per stream
/// (as the original instantiated one per stream).
pub trait HandlerFactory: Send + Sync {
    fn name(&self) -> &str;
    fn create(&self) -> Box<dyn Handler>;
}

/// Why a pipeline run failed (every handler was rolled back).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipelineError {
    #[error("error in pipeline {pipeline}: handler {handler} (#{position}) failed: {source}")]
    Handler {
        pipeline: String,
        handler: String,
        /// The handler's place in the pipeline, from 1.
        position: usize,
        source: HandlerError,
    },
    /// The commit gate said no: nothing was committed, every handler rolled back.
    #[error("pipeline {pipeline} did not commit: {reason}")]
    NotCommitted { pipeline: String, reason: String },
    /// A handler's commit failed in a way that passes: the handlers before it
    /// committed, it and the ones after it did not (they were rolled back). Run the
    /// whole pipeline again later; its side effects must tolerate that (deterministic
    /// ids), which is why only commits that failed *retryably* come here.
    #[error(
        "pipeline {pipeline}: commit of handler {handler} (#{position}) must be retried: {source}"
    )]
    Retry {
        pipeline: String,
        handler: String,
        position: usize,
        source: HandlerError,
    },
}

/// The outcome of a successful run.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineOutput {
    /// Events the handlers added (message_id not among the input's), in list order.
    pub new_events: Vec<Event>,
    pub env: PipelineEnv,
}

/// A named list of handler factories.
#[derive(Clone)]
pub struct Pipeline {
    name: String,
    factories: Vec<Arc<dyn HandlerFactory>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.factories.iter().map(|h| h.name()).collect();
        f.debug_struct("Pipeline")
            .field("name", &self.name)
            .field("handlers", &names)
            .finish()
    }
}

impl Pipeline {
    pub fn new(name: impl Into<String>, factories: Vec<Arc<dyn HandlerFactory>>) -> Self {
        Pipeline {
            name: name.into(),
            factories,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn handler_names(&self) -> Vec<&str> {
        self.factories.iter().map(|f| f.name()).collect()
    }

    /// Runs `handle_events` through every handler in order; if any fails, `rollback`
    /// on all and `Err`; else `commit` on all. Returns the new events (message_id not
    /// among the input ones), in order. Debug counters go to the stream's trigger.
    pub async fn run(
        &self,
        stream: &Stream,
        events: Vec<Event>,
        debug: &DebugManager,
    ) -> Result<PipelineOutput, PipelineError> {
        self.run_with(stream, events, debug, RunOptions::default())
            .await
    }

    /// [`Pipeline::run`] with each handler call bounded by `options.handler_timeout`
    /// and the commits guarded by `options.gate`. A commit that fails retryably stops
    /// the commits there (the rest roll back) and returns [`PipelineError::Retry`].
    pub async fn run_with(
        &self,
        stream: &Stream,
        events: Vec<Event>,
        debug: &DebugManager,
        options: RunOptions<'_>,
    ) -> Result<PipelineOutput, PipelineError> {
        let trigger = stream.name.as_str();
        let mut env = PipelineEnv::new(stream.id, stream.name.clone());
        let input_ids: HashSet<String> = events.iter().map(|e| e.message_id.clone()).collect();
        let mut handlers: Vec<Box<dyn Handler>> =
            self.factories.iter().map(|f| f.create()).collect();
        let limit = options.handler_timeout;

        let mut events = events;
        for (i, handler) in handlers.iter_mut().enumerate() {
            let handled = bounded(
                limit,
                "handle_events",
                handler.handle_events(events, &mut env),
            );
            match handled.await {
                Ok(out) => events = out,
                Err(source) => {
                    let err = PipelineError::Handler {
                        pipeline: self.name.clone(),
                        handler: self.handler_name(i),
                        position: i + 1,
                        source,
                    };
                    tracing::error!(
                        "Error processing pipeline {} for stream {}: {err}",
                        self.name,
                        stream.id
                    );
                    debug.bump(trigger, "Pipeline error", 1);
                    self.rollback(&mut handlers, 0, trigger, debug, limit).await;
                    return Err(err);
                }
            }
        }
        debug.bump(trigger, "Pre-commit successful", 1);

        let new_events: Vec<Event> = events
            .into_iter()
            .filter(|e| !input_ids.contains(&e.message_id))
            .collect();

        if let Some(gate) = options.gate {
            if let Err(reason) = gate.may_commit().await {
                tracing::warn!(
                    "Pipeline {} for stream {} not committed: {reason}",
                    self.name,
                    stream.id
                );
                debug.bump(trigger, "Commit refused", 1);
                self.rollback(&mut handlers, 0, trigger, debug, limit).await;
                return Err(PipelineError::NotCommitted {
                    pipeline: self.name.clone(),
                    reason,
                });
            }
        }

        for i in 0..handlers.len() {
            let committed = bounded(limit, "commit", handlers[i].commit(&env));
            match committed.await {
                Ok(()) => debug.bump(trigger, "Commit successful", 1),
                Err(e) if e.retryable => {
                    debug.bump(trigger, "Commit error", 1);
                    tracing::warn!(
                        "Commit of handler {} in pipeline {} (stream {}) failed, the stream will \
                         be retried: {e}",
                        self.handler_name(i),
                        self.name,
                        stream.id
                    );
                    self.rollback(&mut handlers, i, trigger, debug, limit).await;
                    return Err(PipelineError::Retry {
                        pipeline: self.name.clone(),
                        handler: self.handler_name(i),
                        position: i + 1,
                        source: e,
                    });
                }
                Err(e) => {
                    debug.bump(trigger, "Commit error", 1);
                    tracing::error!(
                        "Commit error on handler {} in pipeline {} (stream {}): {e}",
                        self.handler_name(i),
                        self.name,
                        stream.id
                    );
                }
            }
        }
        Ok(PipelineOutput { new_events, env })
    }

    async fn rollback(
        &self,
        handlers: &mut [Box<dyn Handler>],
        from: usize,
        trigger: &str,
        debug: &DebugManager,
        limit: Option<std::time::Duration>,
    ) {
        for (i, handler) in handlers.iter_mut().enumerate().skip(from) {
            match bounded(limit, "rollback", handler.rollback()).await {
                Ok(()) => debug.bump(trigger, "Rollback successful", 1),
                Err(e) => {
                    debug.bump(trigger, "Rollback error", 1);
                    tracing::error!(
                        "Rollback error on handler {} in pipeline {}: {e}",
                        self.handler_name(i),
                        self.name
                    );
                }
            }
        }
    }

    fn handler_name(&self, i: usize) -> String {
        self.factories
            .get(i)
            .map(|f| f.name().to_string())
            .unwrap_or_default()
    }
}

/// Runs one handler call under the pipeline's time limit; running out is a retryable
/// handler failure (the call may have been waiting on something that comes back).
async fn bounded<T>(
    limit: Option<std::time::Duration>,
    what: &str,
    call: impl std::future::Future<Output = Result<T, HandlerError>>,
) -> Result<T, HandlerError> {
    match limit {
        None => call.await,
        Some(limit) => match tokio::time::timeout(limit, call).await {
            Ok(result) => result,
            Err(_) => Err(HandlerError::retryable(format!(
                "{what} took longer than {}s",
                limit.as_secs_f64()
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::TraitValue;
    use crate::store::StreamState;
    use chrono::{TimeZone, Utc};
    use std::sync::Mutex;

    /// What the test handlers did, in order: "name:handle", "name:commit", …
    type Journal = Arc<Mutex<Vec<String>>>;

    #[derive(Clone, Copy, PartialEq)]
    enum Fail {
        Never,
        Handle,
        Commit,
        /// The commit fails in a way that passes (the broker away).
        CommitRetryable,
        /// The commit never returns.
        CommitHangs,
        Rollback,
    }

    struct TestFactory {
        name: String,
        journal: Journal,
        fail: Fail,
        /// Event types this handler appends (message_id = "<name>-<n>").
        adds: usize,
        /// Drop the input's first event.
        drop_first: bool,
    }

    struct TestHandler {
        name: String,
        journal: Journal,
        fail: Fail,
        adds: usize,
        drop_first: bool,
    }

    impl HandlerFactory for TestFactory {
        fn name(&self) -> &str {
            &self.name
        }
        fn create(&self) -> Box<dyn Handler> {
            Box::new(TestHandler {
                name: self.name.clone(),
                journal: self.journal.clone(),
                fail: self.fail,
                adds: self.adds,
                drop_first: self.drop_first,
            })
        }
    }

    impl TestHandler {
        fn note(&self, what: &str) {
            self.journal
                .lock()
                .unwrap()
                .push(format!("{}:{what}", self.name));
        }
    }

    #[async_trait]
    impl Handler for TestHandler {
        async fn handle_events(
            &mut self,
            mut events: Vec<Event>,
            env: &mut PipelineEnv,
        ) -> Result<Vec<Event>, HandlerError> {
            self.note(&format!("handle({})", events.len()));
            assert_eq!(env.stream_id, 42);
            assert_eq!(env.stream_name, "test_trigger");
            if self.fail == Fail::Handle {
                return Err(HandlerError::new("whoa!"));
            }
            env.notifications
                .entry("seen".to_string())
                .or_default()
                .push(serde_json::json!(self.name));
            if self.drop_first && !events.is_empty() {
                events.remove(0);
            }
            for n in 0..self.adds {
                events.push(event(&format!("{}-{n}", self.name), "new.event"));
            }
            Ok(events)
        }
        async fn commit(&mut self, env: &PipelineEnv) -> Result<(), HandlerError> {
            self.note("commit");
            assert!(env.notifications.contains_key("seen"));
            match self.fail {
                Fail::Commit => return Err(HandlerError::new("commit failed")),
                Fail::CommitRetryable => return Err(HandlerError::retryable("broker away")),
                Fail::CommitHangs => std::future::pending::<()>().await,
                _ => {}
            }
            Ok(())
        }
        async fn rollback(&mut self) -> Result<(), HandlerError> {
            self.note("rollback");
            if self.fail == Fail::Rollback {
                return Err(HandlerError::new("rollback failed"));
            }
            Ok(())
        }
    }

    fn event(id: &str, event_type: &str) -> Event {
        let mut traits = BTreeMap::new();
        traits.insert("instance_id".to_string(), TraitValue::Text("i-1".into()));
        Event {
            event_type: event_type.to_string(),
            message_id: id.to_string(),
            timestamp: Utc.with_ymd_and_hms(2015, 1, 1, 0, 0, 0).unwrap(),
            traits,
        }
    }

    fn stream() -> Stream {
        let t = Utc.with_ymd_and_hms(2015, 1, 1, 0, 0, 0).unwrap();
        Stream {
            id: 42,
            name: "test_trigger".to_string(),
            state: StreamState::Firing,
            state_serial_no: 1,
            first_event: t,
            last_event: t,
            expire_timestamp: None,
            fire_timestamp: Some(t),
            distinguishing_traits: Default::default(),
            fire_counts: vec![],
            event_count: 3,
            claim_until: None,
        }
    }

    fn factory(journal: &Journal, name: &str, fail: Fail, adds: usize) -> Arc<dyn HandlerFactory> {
        Arc::new(TestFactory {
            name: name.to_string(),
            journal: journal.clone(),
            fail,
            adds,
            drop_first: false,
        })
    }

    fn input() -> Vec<Event> {
        vec![
            event("t000-0001", "a"),
            event("t000-0002", "b"),
            event("t000-0003", "c"),
        ]
    }

    fn journal_of(j: &Journal) -> Vec<String> {
        j.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn handles_in_order_then_commits_all_and_returns_new_events() {
        let j: Journal = Default::default();
        let p = Pipeline::new(
            "test_pipeline",
            vec![
                factory(&j, "h1", Fail::Never, 0),
                factory(&j, "h2", Fail::Never, 1),
                factory(&j, "h3", Fail::Never, 2),
            ],
        );
        assert_eq!(p.handler_names(), vec!["h1", "h2", "h3"]);
        let debug = DebugManager::new([]);
        let out = p.run(&stream(), input(), &debug).await.unwrap();
        assert_eq!(
            journal_of(&j),
            vec![
                "h1:handle(3)",
                "h2:handle(3)",
                "h3:handle(4)",
                "h1:commit",
                "h2:commit",
                "h3:commit"
            ]
        );
        let ids: Vec<&str> = out
            .new_events
            .iter()
            .map(|e| e.message_id.as_str())
            .collect();
        assert_eq!(ids, vec!["h2-0", "h3-0", "h3-1"]);
        assert_eq!(out.env.stream_id, 42);
        assert_eq!(out.env.notifications["seen"].len(), 3);
        let counts = debug.take();
        let c = &counts["test_trigger"].counters;
        assert_eq!(c["Pre-commit successful"], 1);
        assert_eq!(c["Commit successful"], 3);
        assert!(!c.contains_key("Pipeline error"));
    }

    #[tokio::test]
    async fn filtered_events_are_not_new_and_unchanged_list_gives_none() {
        let j: Journal = Default::default();
        let dropper = Arc::new(TestFactory {
            name: "dropper".to_string(),
            journal: j.clone(),
            fail: Fail::Never,
            adds: 0,
            drop_first: true,
        });
        let p = Pipeline::new("p", vec![dropper, factory(&j, "h", Fail::Never, 0)]);
        let out = p
            .run(&stream(), input(), &DebugManager::new([]))
            .await
            .unwrap();
        assert!(out.new_events.is_empty());
        assert_eq!(journal_of(&j)[1], "h:handle(2)");
    }

    #[tokio::test]
    async fn a_failing_handler_rolls_back_every_handler_and_commits_none() {
        for failing in 0..3 {
            let j: Journal = Default::default();
            let fail = |i: usize| {
                if i == failing {
                    Fail::Handle
                } else {
                    Fail::Never
                }
            };
            let p = Pipeline::new(
                "test_pipeline",
                vec![
                    factory(&j, "h1", fail(0), 1),
                    factory(&j, "h2", fail(1), 1),
                    factory(&j, "h3", fail(2), 1),
                ],
            );
            let debug = DebugManager::new([]);
            let err = p.run(&stream(), input(), &debug).await.unwrap_err();
            let PipelineError::Handler {
                handler, position, ..
            } = &err
            else {
                panic!("not a handler failure: {err:?}");
            };
            assert_eq!(*position, failing + 1);
            assert_eq!(handler, &format!("h{}", failing + 1));
            assert!(err.to_string().contains("whoa!"), "{err}");
            let got = journal_of(&j);
            assert!(got.iter().all(|s| !s.ends_with(":commit")), "{got:?}");
            let handled = got.iter().filter(|s| s.contains(":handle")).count();
            assert_eq!(handled, failing + 1, "later handlers are not run");
            let rollbacks: Vec<&String> = got.iter().filter(|s| s.ends_with(":rollback")).collect();
            assert_eq!(rollbacks, vec!["h1:rollback", "h2:rollback", "h3:rollback"]);
            let counts = debug.take();
            let c = &counts["test_trigger"].counters;
            assert_eq!(c["Pipeline error"], 1);
            assert_eq!(c["Rollback successful"], 3);
            assert!(!c.contains_key("Pre-commit successful"));
            assert!(!c.contains_key("Commit successful"));
        }
    }

    #[tokio::test]
    async fn commit_and_rollback_errors_are_counted_not_fatal() {
        let j: Journal = Default::default();
        let p = Pipeline::new(
            "p",
            vec![
                factory(&j, "h1", Fail::Never, 0),
                factory(&j, "h2", Fail::Commit, 1),
                factory(&j, "h3", Fail::Never, 0),
            ],
        );
        let debug = DebugManager::new([]);
        let out = p.run(&stream(), input(), &debug).await.unwrap();
        assert_eq!(out.new_events.len(), 1);
        assert!(journal_of(&j).contains(&"h3:commit".to_string()));
        let counts = debug.take();
        let c = &counts["test_trigger"].counters;
        assert_eq!(c["Commit successful"], 2);
        assert_eq!(c["Commit error"], 1);

        let j: Journal = Default::default();
        let p = Pipeline::new(
            "p",
            vec![
                factory(&j, "h1", Fail::Rollback, 0),
                factory(&j, "h2", Fail::Handle, 0),
            ],
        );
        assert!(p.run(&stream(), input(), &debug).await.is_err());
        let counts = debug.take();
        let c = &counts["test_trigger"].counters;
        assert_eq!(c["Rollback error"], 1);
        assert_eq!(c["Rollback successful"], 1);
    }

    /// The worker spawns runs on a multi-threaded runtime.
    #[allow(dead_code)]
    fn run_future_is_send(p: &Pipeline, s: &Stream, d: &DebugManager) {
        fn is_send<T: Send>(_: &T) {}
        let f = p.run(s, vec![], d);
        is_send(&f);
    }

    #[tokio::test]
    async fn each_run_gets_fresh_handlers() {
        struct Counting(Arc<Mutex<u32>>);
        struct Noop;
        #[async_trait]
        impl Handler for Noop {
            async fn handle_events(
                &mut self,
                events: Vec<Event>,
                _env: &mut PipelineEnv,
            ) -> Result<Vec<Event>, HandlerError> {
                Ok(events)
            }
            async fn commit(&mut self, _env: &PipelineEnv) -> Result<(), HandlerError> {
                Ok(())
            }
            async fn rollback(&mut self) -> Result<(), HandlerError> {
                Ok(())
            }
        }
        impl HandlerFactory for Counting {
            fn name(&self) -> &str {
                "counting"
            }
            fn create(&self) -> Box<dyn Handler> {
                *self.0.lock().unwrap() += 1;
                Box::new(Noop)
            }
        }
        let made = Arc::new(Mutex::new(0));
        let p = Pipeline::new("p", vec![Arc::new(Counting(made.clone()))]);
        let debug = DebugManager::new([]);
        p.run(&stream(), input(), &debug).await.unwrap();
        p.run(&stream(), vec![], &debug).await.unwrap();
        assert_eq!(*made.lock().unwrap(), 2);
    }

    struct Gate(Result<(), String>);

    #[async_trait]
    impl CommitGate for Gate {
        async fn may_commit(&self) -> Result<(), String> {
            self.0.clone()
        }
    }

    #[tokio::test]
    async fn a_gate_that_says_no_rolls_everything_back() {
        let j: Journal = Default::default();
        let p = Pipeline::new(
            "gated",
            vec![
                factory(&j, "h1", Fail::Never, 1),
                factory(&j, "h2", Fail::Never, 0),
            ],
        );
        let gate = Gate(Err("claim lost".into()));
        let options = RunOptions {
            gate: Some(&gate),
            ..Default::default()
        };
        let debug = DebugManager::new([]);
        let err = p
            .run_with(&stream(), input(), &debug, options)
            .await
            .unwrap_err();
        assert!(matches!(err, PipelineError::NotCommitted { .. }), "{err:?}");
        assert!(err.to_string().contains("claim lost"), "{err}");
        let got = journal_of(&j);
        assert!(got.iter().all(|s| !s.ends_with(":commit")), "{got:?}");
        assert!(got.contains(&"h1:rollback".to_string()), "{got:?}");
        assert!(got.contains(&"h2:rollback".to_string()), "{got:?}");

        // A gate that says yes changes nothing.
        let j2: Journal = Default::default();
        let p = Pipeline::new("gated", vec![factory(&j2, "h1", Fail::Never, 1)]);
        let gate = Gate(Ok(()));
        let options = RunOptions {
            gate: Some(&gate),
            ..Default::default()
        };
        let out = p
            .run_with(&stream(), input(), &debug, options)
            .await
            .unwrap();
        assert_eq!(out.new_events.len(), 1);
        assert!(journal_of(&j2).contains(&"h1:commit".to_string()));
    }

    #[tokio::test]
    async fn a_retryable_commit_failure_stops_the_commits_there() {
        let j: Journal = Default::default();
        let p = Pipeline::new(
            "publish",
            vec![
                factory(&j, "h1", Fail::Never, 0),
                factory(&j, "h2", Fail::CommitRetryable, 0),
                factory(&j, "h3", Fail::Never, 0),
            ],
        );
        let debug = DebugManager::new([]);
        let err = p.run(&stream(), input(), &debug).await.unwrap_err();
        let PipelineError::Retry {
            handler, position, ..
        } = &err
        else {
            panic!("not a retry: {err:?}");
        };
        assert_eq!((handler.as_str(), *position), ("h2", 2));
        let got = journal_of(&j);
        let tail: Vec<&str> = got
            .iter()
            .filter(|s| !s.contains(":handle"))
            .map(String::as_str)
            .collect();
        // h1 committed; h2 failed, then it and h3 are rolled back, h3 never commits.
        assert_eq!(
            tail,
            vec!["h1:commit", "h2:commit", "h2:rollback", "h3:rollback"]
        );
    }

    #[tokio::test]
    async fn handler_calls_are_bounded_in_time() {
        let j: Journal = Default::default();
        let p = Pipeline::new("slow", vec![factory(&j, "h1", Fail::CommitHangs, 0)]);
        let debug = DebugManager::new([]);
        let options = RunOptions {
            handler_timeout: Some(std::time::Duration::from_millis(200)),
            ..Default::default()
        };
        let err = p
            .run_with(&stream(), input(), &debug, options)
            .await
            .unwrap_err();
        let PipelineError::Retry { source, .. } = &err else {
            panic!("a commit that times out is retried: {err:?}");
        };
        assert!(source.retryable);
        assert!(
            source.message.contains("commit took longer than 0.2s"),
            "{source}"
        );
    }
}
