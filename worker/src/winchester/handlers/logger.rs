//! The `logger` handler: logs the events it receives and passes them on.

use crate::event::Event;
use crate::winchester::pipeline::{Handler, HandlerError, HandlerFactory, PipelineEnv};
use async_trait::async_trait;
use serde_json::{Map, Value};

/// Makes [`LoggerHandler`]s. Takes no parameters.
#[derive(Debug, Clone, Default)]
pub struct LoggerFactory;

impl LoggerFactory {
    pub fn new(params: &Map<String, Value>) -> Self {
        super::warn_unknown_params("logger", params, &[]);
        LoggerFactory
    }
}

impl HandlerFactory for LoggerFactory {
    fn name(&self) -> &str {
        "logger"
    }
    fn create(&self) -> Box<dyn Handler> {
        Box::new(LoggerHandler)
    }
}

/// Logs "Received N events" with each event's `event_type: message_id`.
#[derive(Debug, Clone, Default)]
pub struct LoggerHandler;

/// The log line for a list of events.
pub fn describe(events: &[Event]) -> String {
    let pairs: Vec<String> = events
        .iter()
        .map(|e| format!("{}: {}", e.event_type, e.message_id))
        .collect();
    format!("Received {} events: \n{}", events.len(), pairs.join(", "))
}

#[async_trait]
impl Handler for LoggerHandler {
    async fn handle_events(
        &mut self,
        events: Vec<Event>,
        env: &mut PipelineEnv,
    ) -> Result<Vec<Event>, HandlerError> {
        tracing::info!(stream_id = env.stream_id, "{}", describe(&events));
        Ok(events)
    }

    async fn commit(&mut self, _env: &PipelineEnv) -> Result<(), HandlerError> {
        Ok(())
    }

    async fn rollback(&mut self) -> Result<(), HandlerError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn event(id: &str, t: &str) -> Event {
        Event {
            event_type: t.to_string(),
            message_id: id.to_string(),
            timestamp: Utc.with_ymd_and_hms(2015, 1, 1, 0, 0, 0).unwrap(),
            traits: Default::default(),
        }
    }

    #[tokio::test]
    async fn passes_events_through_and_describes_them() {
        let events = vec![event("m1", "a.start"), event("m2", "a.end")];
        assert_eq!(
            describe(&events),
            "Received 2 events: \na.start: m1, a.end: m2"
        );
        let mut env = PipelineEnv::new(1, "t");
        let mut h = LoggerFactory::new(&Map::new()).create();
        let out = h.handle_events(events.clone(), &mut env).await.unwrap();
        assert_eq!(out, events);
        h.commit(&env).await.unwrap();
        h.rollback().await.unwrap();
    }
}
