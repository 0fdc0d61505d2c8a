//! The per-stream numbers the ingest path maintains, shared by both backends.

use chrono::{DateTime, Utc};

/// The mutable bookkeeping of one stream, as loaded (or freshly created) inside an
/// ingest transaction and handed to [`super::StreamRules::update`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamBookkeeping {
    /// None only for a stream being created, before its first event is folded in.
    pub first_event: Option<DateTime<Utc>>,
    pub last_event: Option<DateTime<Utc>>,
    pub expire_timestamp: Option<DateTime<Utc>>,
    pub fire_timestamp: Option<DateTime<Utc>>,
    /// Matching events per fire criterion.
    pub fire_counts: Vec<u32>,
    pub event_count: u64,
}

/// `fire_counts` as stored: decimal numbers joined by commas (`"1,0,3"`).
pub fn encode_counts(counts: &[u32]) -> String {
    let mut out = String::with_capacity(counts.len() * 2);
    for (i, c) in counts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&c.to_string());
    }
    out
}

/// Inverse of [`encode_counts`]; `None` for text that is not such a list.
pub fn decode_counts(text: &str) -> Option<Vec<u32>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',').map(|p| p.trim().parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_round_trip() {
        for c in [vec![], vec![0], vec![1, 0, 30]] {
            assert_eq!(decode_counts(&encode_counts(&c)), Some(c));
        }
        assert_eq!(decode_counts("1,x"), None);
    }
}
