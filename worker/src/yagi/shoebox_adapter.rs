//! The seam between the shoebox app and the shoebox archiver ([`crate::shoebox`]).

use super::apps::Archive;
use crate::shoebox::{Archiver, ShoeboxSettings};
use serde_json::Value;
use std::collections::BTreeMap;

impl Archive for Archiver {
    fn append(&mut self, notification: &Value) -> Result<(), String> {
        Archiver::append(self, notification).map_err(|e| e.to_string())
    }

    fn flush(&mut self) -> Result<(), String> {
        Archiver::flush(self).map_err(|e| e.to_string())
    }

    fn close(&mut self) {
        // Finishes the current file (moved to the destination folder).
        if let Err(e) = self.roll() {
            tracing::error!(error = %e, "shoebox: cannot finish the current archive");
        }
    }
}

/// Opens the archiver the `[shoebox]` keys of yagi.conf describe.
pub fn open(section: &BTreeMap<String, String>) -> Result<Box<dyn Archive>, String> {
    let settings = ShoeboxSettings::from_section(section).map_err(|e| e.to_string())?;
    let archiver = Archiver::open(settings).map_err(|e| e.to_string())?;
    Ok(Box::new(archiver))
}
