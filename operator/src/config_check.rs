//! Validates a region's configuration files with the worker's own parsers, so an
//! invalid file is caught before anything rolls. Pure: takes the texts (the reconciler
//! resolves ConfigMap references), returns the first failing file and why, or the
//! warnings (what the original ignored, paths that may not mean what they seem),
//! which the reconciler shows in `ConfigValid` without refusing anything.

#[cfg(feature = "config-check")]
use worker::{
    distiller::Distiller, winchester::definition::load_triggers_with_warnings,
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

/// Parses every given file (needs the `config-check` feature); the triggers are
/// checked against the given pipelines (a trigger naming a pipeline that does not
/// exist is an error then). Returns the warnings, one line each
/// (`file:line: context: message`).
#[cfg(feature = "config-check")]
pub fn check(files: &ConfigFiles) -> Result<Vec<String>, ConfigProblem> {
    let mut warnings = Vec::new();
    if let Some(text) = &files.event_definitions {
        let (_, w) = Distiller::load(text, EVENT_DEFINITIONS_FILE).map_err(|e| ConfigProblem {
            file: EVENT_DEFINITIONS_FILE,
            reason: e.to_string(),
        })?;
        warnings.extend(w.iter().map(ToString::to_string));
    }
    let pipelines = match &files.pipelines {
        Some(text) => {
            let (p, w) = load_pipelines(text, PIPELINES_FILE, None).map_err(|e| ConfigProblem {
                file: PIPELINES_FILE,
                reason: e.to_string(),
            })?;
            warnings.extend(w.iter().map(ToString::to_string));
            Some(p)
        }
        None => None,
    };
    if let Some(text) = &files.triggers {
        let (_, w) =
            load_triggers_with_warnings(text, TRIGGERS_FILE, pipelines.as_ref()).map_err(|e| {
                ConfigProblem {
                    file: TRIGGERS_FILE,
                    reason: e.to_string(),
                }
            })?;
        warnings.extend(w.iter().map(ToString::to_string));
    }
    Ok(warnings)
}

/// The `ConfigValid` message: that the files parse, and their warnings (the first
/// few, whole; then how many more), kept well under the API's limits.
pub fn valid_message(warnings: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut msg = String::from("the event definitions, triggers and pipelines parse");
    if warnings.is_empty() {
        return msg;
    }
    msg.push_str(&format!(
        "; {} warning{} (what the original ignored, or paths that may not mean what they \
         seem; stv3 check-config --strict refuses them):",
        warnings.len(),
        if warnings.len() == 1 { "" } else { "s" }
    ));
    for w in warnings.iter().take(SHOWN) {
        msg.push('\n');
        msg.push_str(&w.chars().take(400).collect::<String>());
    }
    if warnings.len() > SHOWN {
        msg.push_str(&format!("\n… and {} more", warnings.len() - SHOWN));
    }
    msg
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
        assert_eq!(check(&shipped()).unwrap(), Vec::<String>::new());
        check(&ConfigFiles::default()).unwrap();
    }

    #[test]
    fn what_the_original_ignored_loads_with_warnings() {
        let files = ConfigFiles {
            event_definitions: Some(
                "- event_type: '*'\n  traits:\n    a: {fields: 'payload..a', colour: red}\n".into(),
            ),
            ..shipped()
        };
        let warnings = check(&files).unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings
                .iter()
                .all(|w| w.starts_with("event_definitions.yaml:3: ")),
            "{warnings:?}"
        );
        let msg = valid_message(&warnings);
        assert!(msg.contains("2 warnings"), "{msg}");
        assert!(msg.contains("unknown trait key 'colour'"), "{msg}");
        let many: Vec<String> = (0..9).map(|i| format!("w{i}")).collect();
        assert!(valid_message(&many).ends_with("… and 4 more"));
        assert_eq!(
            valid_message(&[]),
            "the event definitions, triggers and pipelines parse"
        );
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
