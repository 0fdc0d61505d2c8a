//! Archive file names: the original shoebox's `filename_template`.
//!
//! A template is a `strftime` pattern (rendered in UTC, Python's `%f` meaning six digits
//! of microseconds) that may also hold two tokens:
//!
//! - `[[TIMESTAMP]]`: the moment as decimal seconds since the epoch with six decimals
//!   (`1400000000.123456`), as the original wrote it;
//! - `[[CRC]]`: the SHA-256 (hex) of the finished file's uncompressed content, as the
//!   original's JSON roll manager computed it. It is only known when the file is
//!   finished, so the working file keeps the token literally and the finished file's name
//!   is the working name with the token replaced.
//!
//! As in the original, spaces, `/` and `:` produced by the rendering become `_`, so a
//! template never names a sub-directory.

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Utc};
use std::fmt::Write as _;

/// The literal token replaced by the content hash when a file is finished.
pub const CRC_TOKEN: &str = "[[CRC]]";
/// The literal token replaced by the decimal epoch time when a file is opened.
pub const TIMESTAMP_TOKEN: &str = "[[TIMESTAMP]]";

/// A checked `filename_template`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilenameTemplate {
    /// The template as configured.
    raw: String,
    /// The strftime pattern handed to chrono (`%f` translated to `%6f`).
    pattern: String,
}

impl FilenameTemplate {
    /// Checks a template: not empty, and every `%` directive known.
    pub fn parse(raw: &str) -> Result<FilenameTemplate, String> {
        if raw.trim().is_empty() {
            return Err("the filename template is empty".to_string());
        }
        let pattern = translate_python_directives(raw);
        if StrftimeItems::new(&pattern).any(|item| matches!(item, Item::Error)) {
            return Err(format!("invalid strftime directive in {raw:?}"));
        }
        Ok(FilenameTemplate {
            raw: raw.to_string(),
            pattern,
        })
    }

    /// The template as configured.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether finished names carry the content hash.
    pub fn has_crc(&self) -> bool {
        self.raw.contains(CRC_TOKEN)
    }

    /// The name of a file opened at `now`: strftime and `[[TIMESTAMP]]` resolved,
    /// `[[CRC]]` left in place for [`finished_name`].
    pub fn working_name(&self, now: DateTime<Utc>) -> Result<String, String> {
        let mut rendered = String::new();
        write!(
            rendered,
            "{}",
            now.format_with_items(StrftimeItems::new(&self.pattern))
        )
        .map_err(|_| format!("cannot render the filename template {:?}", self.raw))?;
        let name = sanitize(&rendered).replace(TIMESTAMP_TOKEN, &decimal_timestamp(now));
        if name.is_empty() || name == "." || name == ".." {
            return Err(format!(
                "the filename template {:?} renders an unusable name {name:?}",
                self.raw
            ));
        }
        Ok(name)
    }
}

/// The finished name of a working file whose content hashes to `crc`.
pub fn finished_name(working_name: &str, crc: &str) -> String {
    working_name.replace(CRC_TOKEN, crc)
}

/// `name` with `-n` inserted before its extension (`a.json` → `a-2.json`), used when a
/// finished name is already taken by different content.
pub fn numbered_name(name: &str, n: u32) -> String {
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{}-{n}{}", &name[..dot], &name[dot..]),
        _ => format!("{name}-{n}"),
    }
}

/// Seconds since the epoch with six decimals, the original's `dt_to_decimal`.
pub fn decimal_timestamp(t: DateTime<Utc>) -> String {
    format!(
        "{}.{:06}",
        t.timestamp(),
        t.timestamp_subsec_micros().min(999_999)
    )
}

/// The original replaced these characters so a rendered name stays one path component.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            ' ' | '/' | ':' | '\\' | '\0' => '_',
            c => c,
        })
        .collect()
}

/// Python's `%f` is microseconds (six digits); chrono's is nanoseconds.
fn translate_python_directives(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 4);
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('f') => out.push_str("%6f"),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2014, 5, 13, 7, 8, 9)
            .single()
            .map(|t| t + chrono::Duration::microseconds(123_456))
            .unwrap_or_default()
    }

    #[test]
    fn sandbox_template() {
        let t = FilenameTemplate::parse("%Y%m%d-[[TIMESTAMP]]-stv3-[[CRC]].json").unwrap();
        let name = t.working_name(at()).unwrap();
        assert_eq!(name, "20140513-1399964889.123456-stv3-[[CRC]].json");
        assert!(t.has_crc());
        assert_eq!(
            finished_name(&name, "abc"),
            "20140513-1399964889.123456-stv3-abc.json"
        );
    }

    #[test]
    fn yagi_default_template_uses_python_microseconds_and_sanitizes() {
        let t = FilenameTemplate::parse("events_%Y_%m_%d_%X_%f.dat").unwrap();
        assert_eq!(
            t.working_name(at()).unwrap(),
            "events_2014_05_13_07_08_09_123456.dat"
        );
        let t = FilenameTemplate::parse("a b/c%%f").unwrap();
        assert_eq!(t.working_name(at()).unwrap(), "a_b_c%f");
    }

    #[test]
    fn bad_templates_are_refused() {
        assert!(FilenameTemplate::parse("").is_err());
        assert!(FilenameTemplate::parse("x-%Q").is_err());
    }

    #[test]
    fn numbering() {
        assert_eq!(numbered_name("a.json", 2), "a-2.json");
        assert_eq!(numbered_name("noext", 1), "noext-1");
        assert_eq!(numbered_name(".hidden", 1), ".hidden-1");
    }
}
