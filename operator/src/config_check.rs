//! Validates a region's configuration files with the worker's own parsers, so an
//! invalid file is caught before anything rolls. Pure: takes the texts (the reconciler
//! resolves ConfigMap references), returns the first failing file and why.

#[cfg(feature = "config-check")]
use worker::{
    distiller::Distiller, winchester::definition::load_triggers,
    winchester::pipelines::load_pipelines,
};

/// The configuration files of a region, as text. `None` means the image's defaults,
/// which are not checked here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigFiles {
    /// `event_definitions.yaml`.
    pub event_definitions: Option<String>,
    /// `triggers.yaml`.
    pub triggers: Option<String>,
    /// `pipelines.yaml`.
    pub pipelines: Option<String>,
}

/// The file names the files have in the rendered config (and in messages).
pub const EVENT_DEFINITIONS_FILE: &str = "event_definitions.yaml";
/// See [`EVENT_DEFINITIONS_FILE`].
pub const TRIGGERS_FILE: &str = "triggers.yaml";
/// See [`EVENT_DEFINITIONS_FILE`].
pub const PIPELINES_FILE: &str = "pipelines.yaml";

/// Why a region's configuration was refused: the file, and the parser's reasons (one
/// per line, each `file:line: context: message`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct ConfigProblem {
    /// The file that failed.
    pub file: &'static str,
    /// What the parser said.
    pub reason: String,
}

/// Parses every given file (needs the `config-check` feature); the triggers are checked against the given pipelines (a
/// trigger naming a pipeline that does not exist is an error then).
#[cfg(feature = "config-check")]
pub fn check(files: &ConfigFiles) -> Result<(), ConfigProblem> {
    if let Some(text) = &files.event_definitions {
        Distiller::from_yaml(text, EVENT_DEFINITIONS_FILE).map_err(|e| ConfigProblem {
            file: EVENT_DEFINITIONS_FILE,
            reason: e.to_string(),
        })?;
    }
    let pipelines = match &files.pipelines {
        Some(text) => Some(
            load_pipelines(text, PIPELINES_FILE, None)
                .map_err(|e| ConfigProblem {
                    file: PIPELINES_FILE,
                    reason: e.to_string(),
                })?
                .0,
        ),
        None => None,
    };
    if let Some(text) = &files.triggers {
        load_triggers(text, TRIGGERS_FILE, pipelines.as_ref()).map_err(|e| ConfigProblem {
            file: TRIGGERS_FILE,
            reason: e.to_string(),
        })?;
    }
    Ok(())
}

#[cfg(all(test, feature = "config-check"))]
mod tests {
    use super::*;

    fn etc(name: &str) -> String {
        let path = format!("{}/../etc/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn shipped() -> ConfigFiles {
        ConfigFiles {
            event_definitions: Some(etc("event_definitions.yaml")),
            triggers: Some(etc("triggers.yaml")),
            pipelines: Some(etc("pipelines.yaml")),
        }
    }

    #[test]
    fn the_shipped_configuration_is_valid() {
        check(&shipped()).unwrap();
        check(&ConfigFiles::default()).unwrap();
    }

    #[test]
    fn a_broken_trigger_file_is_refused_with_its_name() {
        let files = ConfigFiles {
            triggers: Some("- name: [unclosed\n".into()),
            ..shipped()
        };
        let problem = check(&files).unwrap_err();
        assert_eq!(problem.file, TRIGGERS_FILE);
        assert!(problem.reason.contains("triggers.yaml"), "{problem}");
    }

    #[test]
    fn broken_event_definitions_are_refused() {
        let files = ConfigFiles {
            event_definitions: Some("{ not: [yaml".into()),
            ..shipped()
        };
        assert_eq!(check(&files).unwrap_err().file, EVENT_DEFINITIONS_FILE);
    }

    #[test]
    fn broken_pipelines_are_refused() {
        let files = ConfigFiles {
            pipelines: Some("{ not: [yaml".into()),
            ..shipped()
        };
        assert_eq!(check(&files).unwrap_err().file, PIPELINES_FILE);
    }
}
