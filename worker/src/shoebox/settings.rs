//! The `[shoebox]` section of `yagi.conf`.
//!
//! Keys, as yagi's shoebox handler and the original roll managers read them:
//!
//! | key | meaning | default |
//! | --- | --- | --- |
//! | `working_directory` | where the file being written lives | `.` |
//! | `destination_folder` | where finished files go | `.` |
//! | `filename_template` | see [`super::template`] | `events_%Y_%m_%d_%X_%f.dat` |
//! | `roll_size_mb` | roll once the file holds this many MiB | `1000` |
//! | `roll_minutes` | roll a non-empty file this many minutes after it was opened | `60` |
//! | `roll_manager` | `shoebox.roll_manager:WritingJSONRollManager` (the binary `WritingRollManager` is accepted, but JSON Lines are written) | JSON |
//! | `roll_checker` | accepted; the JSON roll manager of the original ignored it, and so do we | — |
//! | `callback` | accepted and ignored: finished files are always moved to `destination_folder` | — |
//! | `wrap_payload_with_region`, `wrap_region`, `wrap_cell` | archive `{"region", "cell", "notification"}` instead of the bare notification | `False`, `n/a`, `n/a` |
//! | `compress` | gzip finished files (`.gz` appended); our addition | `true` |
//! | `roll_size_bytes` | a size limit in bytes, overriding `roll_size_mb`; our addition | — |
//! | `redact_fields` | comma-separated keys whose values are replaced by `"<redacted>"`, at any depth, before a notification is archived (an empty value: none); our addition | `_context_auth_token, auth_token, _context_password, password, admin_password, adminPass` |

use super::template::FilenameTemplate;
use super::ShoeboxError;
use std::collections::BTreeMap;
use std::path::PathBuf;

const DEFAULT_TEMPLATE: &str = "events_%Y_%m_%d_%X_%f.dat";
const JSON_ROLL_MANAGER: &str = "shoebox.roll_manager:WritingJSONRollManager";
const BINARY_ROLL_MANAGER: &str = "shoebox.roll_manager:WritingRollManager";
const ROLL_CHECKERS: [&str; 3] = ["TimeRollChecker", "SizeRollChecker", "NeverRollChecker"];

/// Credentials OpenStack services put in notifications: the caller's token in the
/// oslo context, and passwords some payloads carry. Archives outlive tokens' lifetime
/// but not their danger, and are served over HTTP: they are not written.
pub const DEFAULT_REDACT_FIELDS: [&str; 6] = [
    "_context_auth_token",
    "auth_token",
    "_context_password",
    "password",
    "admin_password",
    "adminPass",
];

/// Where and how the archiver writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShoeboxSettings {
    /// The directory holding the file being written (one archiver per directory).
    pub working_directory: PathBuf,
    /// The directory finished files are moved to.
    pub destination_folder: PathBuf,
    /// The file name template (strftime, `[[TIMESTAMP]]`, `[[CRC]]`).
    pub filename_template: String,
    /// Roll when the file reaches this many MiB (`None`: no size limit).
    pub roll_size_mb: Option<u64>,
    /// Roll a non-empty file this many minutes after it was opened (`None`: never by age).
    pub roll_minutes: Option<u64>,
    /// Gzip finished files and append `.gz`.
    pub compress: bool,
    /// A size limit in bytes that takes precedence over `roll_size_mb`.
    pub roll_size_bytes: Option<u64>,
    /// Archive `{"region": .., "cell": .., "notification": ..}` instead of the notification.
    pub wrap_payload_with_region: bool,
    /// The `region` of wrapped payloads.
    pub wrap_region: String,
    /// The `cell` of wrapped payloads.
    pub wrap_cell: String,
    /// Keys whose values are replaced by `"<redacted>"` (at any depth) when archived.
    pub redact_fields: Vec<String>,
    /// Keys that were accepted but have no effect here, worth a log line.
    pub warnings: Vec<String>,
}

impl Default for ShoeboxSettings {
    fn default() -> Self {
        ShoeboxSettings {
            working_directory: PathBuf::from("."),
            destination_folder: PathBuf::from("."),
            filename_template: DEFAULT_TEMPLATE.to_string(),
            roll_size_mb: Some(1000),
            roll_minutes: Some(60),
            compress: true,
            roll_size_bytes: None,
            wrap_payload_with_region: false,
            wrap_region: "n/a".to_string(),
            wrap_cell: "n/a".to_string(),
            redact_fields: DEFAULT_REDACT_FIELDS
                .iter()
                .map(|k| k.to_string())
                .collect(),
            warnings: Vec::new(),
        }
    }
}

impl ShoeboxSettings {
    /// Reads a `[shoebox]` section (keys as in the original, values raw strings).
    pub fn from_section(
        section: &BTreeMap<String, String>,
    ) -> Result<ShoeboxSettings, ShoeboxError> {
        let mut s = ShoeboxSettings::default();
        let get = |key: &str| section.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        if let Some(v) = get("working_directory") {
            s.working_directory = PathBuf::from(v);
        }
        if let Some(v) = get("destination_folder") {
            s.destination_folder = PathBuf::from(v);
        }
        if let Some(v) = get("filename_template") {
            s.filename_template = v.to_string();
        }
        FilenameTemplate::parse(&s.filename_template)
            .map_err(|reason| config("filename_template", reason))?;
        if let Some(v) = get("roll_size_mb") {
            s.roll_size_mb = Some(parse_u64("roll_size_mb", v)?);
        }
        if let Some(v) = get("roll_minutes") {
            s.roll_minutes = Some(parse_u64("roll_minutes", v)?);
        }
        if let Some(v) = get("roll_size_bytes") {
            s.roll_size_bytes = Some(parse_u64("roll_size_bytes", v)?);
        }
        if let Some(v) = get("compress") {
            s.compress = parse_bool("compress", v)?;
        }
        if let Some(v) = get("wrap_payload_with_region") {
            s.wrap_payload_with_region = parse_bool("wrap_payload_with_region", v)?;
        }
        if let Some(v) = section.get("wrap_region") {
            s.wrap_region = v.clone();
        }
        if let Some(v) = section.get("wrap_cell") {
            s.wrap_cell = v.clone();
        }
        if let Some(v) = section.get("redact_fields") {
            s.redact_fields = v
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect();
        }
        match get("roll_manager") {
            None | Some(JSON_ROLL_MANAGER) => {}
            Some(BINARY_ROLL_MANAGER) => s.warnings.push(format!(
                "[shoebox] roll_manager={BINARY_ROLL_MANAGER}: the binary archive format is \
                 not written; JSON Lines are written instead (stv3 replay reads both)"
            )),
            Some(other) => {
                return Err(config(
                    "roll_manager",
                    format!("unknown roll manager {other:?} (expected {JSON_ROLL_MANAGER})"),
                ))
            }
        }
        if let Some(v) = get("roll_checker") {
            let class = v.rsplit([':', '.']).next().unwrap_or(v);
            if !ROLL_CHECKERS.contains(&class) {
                return Err(config(
                    "roll_checker",
                    format!("unknown roll checker {v:?} (expected one of {ROLL_CHECKERS:?})"),
                ));
            }
            s.warnings.push(format!(
                "[shoebox] roll_checker={v} is ignored, as the original JSON roll manager \
                 did: files roll on roll_size_mb and roll_minutes"
            ));
        }
        if let Some(v) = get("callback") {
            s.warnings.push(format!(
                "[shoebox] callback={v} is ignored: finished files are moved to destination_folder"
            ));
        }
        Ok(s)
    }

    /// The size in bytes at which a file rolls, if any.
    pub fn roll_bytes(&self) -> Option<u64> {
        self.roll_size_bytes
            .or_else(|| self.roll_size_mb.map(|mb| mb.saturating_mul(1024 * 1024)))
    }
}

fn config(key: &str, reason: impl Into<String>) -> ShoeboxError {
    ShoeboxError::Config {
        key: key.to_string(),
        reason: reason.into(),
    }
}

fn parse_u64(key: &str, v: &str) -> Result<u64, ShoeboxError> {
    v.parse::<u64>()
        .map_err(|_| config(key, format!("expected a whole number, got {v:?}")))
}

fn parse_bool(key: &str, v: &str) -> Result<bool, ShoeboxError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(config(key, format!("expected True or False, got {v:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn redacted_fields_default_listed_or_none() {
        let d = ShoeboxSettings::from_section(&section(&[])).unwrap();
        assert!(d.redact_fields.contains(&"_context_auth_token".to_string()));
        let listed =
            ShoeboxSettings::from_section(&section(&[("redact_fields", " a , b,,")])).unwrap();
        assert_eq!(listed.redact_fields, ["a", "b"]);
        let none = ShoeboxSettings::from_section(&section(&[("redact_fields", "")])).unwrap();
        assert!(none.redact_fields.is_empty());
    }

    #[test]
    fn sandbox_section() {
        let s = ShoeboxSettings::from_section(&section(&[
            ("working_directory", "data/events"),
            ("destination_folder", "data/output"),
            (
                "filename_template",
                "%Y%m%d-[[TIMESTAMP]]-stv3-[[CRC]].json",
            ),
            (
                "roll_manager",
                "shoebox.roll_manager:WritingJSONRollManager",
            ),
            ("roll_size_mb", "20"),
        ]))
        .unwrap();
        assert_eq!(s.working_directory, PathBuf::from("data/events"));
        assert_eq!(s.destination_folder, PathBuf::from("data/output"));
        assert_eq!(s.roll_size_mb, Some(20));
        assert_eq!(s.roll_minutes, Some(60));
        assert_eq!(s.roll_bytes(), Some(20 * 1024 * 1024));
        assert!(s.compress);
        assert!(s.warnings.is_empty());
    }

    #[test]
    fn defaults_and_extras() {
        let s = ShoeboxSettings::from_section(&BTreeMap::new()).unwrap();
        assert_eq!(s, ShoeboxSettings::default());
        let s = ShoeboxSettings::from_section(&section(&[
            ("compress", "False"),
            ("roll_size_bytes", "100"),
            ("roll_checker", "shoebox.roll_checker:TimeRollChecker"),
            ("wrap_payload_with_region", "True"),
            ("wrap_region", "DFW"),
        ]))
        .unwrap();
        assert!(!s.compress);
        assert_eq!(s.roll_bytes(), Some(100));
        assert!(s.wrap_payload_with_region);
        assert_eq!(s.wrap_region, "DFW");
        assert_eq!(s.warnings.len(), 1);
    }

    #[test]
    fn bad_values_name_the_key() {
        for (k, v) in [
            ("roll_size_mb", "big"),
            ("compress", "maybe"),
            ("roll_manager", "x:Y"),
            ("roll_checker", "x:Y"),
            ("filename_template", "%Q"),
        ] {
            let err = ShoeboxSettings::from_section(&section(&[(k, v)])).unwrap_err();
            assert!(err.to_string().contains(k), "{err}");
        }
    }
}
