//! Configuration problems: each names the file, the line when known, what it concerns
//! (a trigger, a pipeline, a setting) and the reason. Loaders collect every problem
//! they find instead of stopping at the first, so one run of `stv3 check-config`
//! shows them all.

use std::fmt;

/// One configuration problem (or warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file concerned, as it was found (or named).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What the problem concerns: `trigger 'name'`, `pipeline 'name'`, a setting; may
    /// be empty for a file-wide problem.
    pub context: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(
        file: impl Into<String>,
        line: Option<usize>,
        context: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: file.into(),
            line,
            context: context.into(),
            message: message.into(),
        }
    }
}

/// `file:line: context: message` (the line and context only when known).
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        if !self.context.is_empty() {
            write!(f, "{}: ", self.context)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found while loading a configuration set. `Display` lists one per
/// line. The warnings gathered up to the failure ride along (not displayed).
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    pub fn single(error: ConfigError) -> ConfigErrors {
        ConfigErrors {
            errors: vec![error],
            warnings: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.errors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Errors and warnings gathered about one file.
#[derive(Debug, Clone, Default)]
pub(crate) struct Diagnostics {
    pub file: String,
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
}

impl Diagnostics {
    pub fn new(file: &str) -> Diagnostics {
        Diagnostics {
            file: file.to_string(),
            ..Default::default()
        }
    }

    pub fn error(&mut self, line: Option<usize>, context: &str, message: impl Into<String>) {
        self.errors
            .push(ConfigError::new(&*self.file, line, context, message));
    }

    pub fn warn(&mut self, line: Option<usize>, context: &str, message: impl Into<String>) {
        self.warnings
            .push(ConfigError::new(&*self.file, line, context, message));
    }

    /// `Ok(value)` with the warnings when no error was found.
    pub fn finish<T>(self, value: T) -> Result<(T, Vec<ConfigError>), ConfigErrors> {
        if self.errors.is_empty() {
            Ok((value, self.warnings))
        } else {
            Err(ConfigErrors {
                errors: self.errors,
                warnings: self.warnings,
            })
        }
    }

    /// Moves another file's findings into these.
    pub fn absorb(&mut self, errors: Vec<ConfigError>, warnings: Vec<ConfigError>) {
        self.errors.extend(errors);
        self.warnings.extend(warnings);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_one_problem_per_line() {
        let errs = ConfigErrors {
            errors: vec![
                ConfigError::new("t.yaml", Some(3), "trigger 'a'", "bad"),
                ConfigError::new("w.yaml", None, "", "worse"),
            ],
            warnings: vec![ConfigError::new("x", None, "", "ignored")],
        };
        assert_eq!(
            errs.to_string(),
            "t.yaml:3: trigger 'a': bad\nw.yaml: worse"
        );
    }
}
