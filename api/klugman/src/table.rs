//! A table printer that lays out text exactly as Python's prettytable 0.7 did with
//! its defaults (the version the original klugman ran with).
//!
//! Hand-written rather than built on comfy-table or prettytable-rs because neither
//! centres like prettytable: when a cell's spare width is odd, prettytable puts the
//! extra space on the right for odd-length text and on the left for even-length text
//! (mimicking `str.center`), while comfy-table always puts it on the left and
//! prettytable-rs always on the right. Byte-identical output needs that rule, and the
//! rest (borders, padding 1, multi-line cells aligned to the top) is a few lines.

use unicode_width::UnicodeWidthStr;

/// A table with a header row; every cell centred.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        Table {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are blank and extra cells are ignored.
    pub fn add_row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let mut row: Vec<String> = cells.into_iter().map(Into::into).collect();
        row.resize(self.headers.len(), String::new());
        self.rows.push(row);
    }

    /// The table text, without a final newline (as `get_string()` returned it).
    pub fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|c| {
                std::iter::once(&self.headers[c])
                    .chain(self.rows.iter().map(|r| &r[c]))
                    .flat_map(|cell| cell.split('\n'))
                    .map(UnicodeWidthStr::width)
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let rule = {
            let mut s = String::from("+");
            for w in &widths {
                s.push_str(&"-".repeat(w + 2));
                s.push('+');
            }
            s
        };
        let mut lines = vec![rule.clone()];
        lines.extend(render_row(&self.headers, &widths));
        lines.push(rule.clone());
        for row in &self.rows {
            lines.extend(render_row(row, &widths));
        }
        lines.push(rule);
        lines.join("\n")
    }
}

/// One logical row as one or more text lines (cells with newlines grow the row,
/// shorter cells are padded below).
fn render_row(cells: &[String], widths: &[usize]) -> Vec<String> {
    let split: Vec<Vec<&str>> = cells.iter().map(|c| c.split('\n').collect()).collect();
    let height = split.iter().map(Vec::len).max().unwrap_or(1);
    (0..height)
        .map(|line| {
            let mut s = String::from("|");
            for (cell, width) in split.iter().zip(widths) {
                let text = cell.get(line).copied().unwrap_or("");
                s.push(' ');
                s.push_str(&center(text, *width));
                s.push_str(" |");
            }
            s
        })
        .collect()
}

/// Centres `text` in `width` cells the way prettytable's `_justify` did.
fn center(text: &str, width: usize) -> String {
    let len = text.width();
    let excess = width.saturating_sub(len);
    let (left, right) = if excess % 2 == 1 {
        if len % 2 == 1 {
            (excess / 2, excess / 2 + 1)
        } else {
            (excess / 2 + 1, excess / 2)
        }
    } else {
        (excess / 2, excess / 2)
    };
    format!("{}{}{}", " ".repeat(left), text, " ".repeat(right))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_table_matches_prettytable() {
        let mut t = Table::new(["Property", "Value"]);
        t.add_row(["count", "44216"]);
        assert_eq!(
            t.render(),
            "+----------+-------+\n\
             | Property | Value |\n\
             +----------+-------+\n\
             |  count   | 44216 |\n\
             +----------+-------+"
        );
    }

    #[test]
    fn odd_excess_goes_by_text_parity() {
        assert_eq!(center("Stream", 7), " Stream");
        assert_eq!(center("count", 8), " count  ");
        assert_eq!(center("id", 16), "       id       ");
    }

    #[test]
    fn empty_table_prints_header_only() {
        let t = Table::new(["Property", "Value"]);
        assert_eq!(
            t.render(),
            "+----------+-------+\n| Property | Value |\n+----------+-------+\n+----------+-------+"
        );
    }

    #[test]
    fn wide_characters_count_double() {
        let mut t = Table::new(["Property", "Value"]);
        t.add_row(["wide", "日本語"]);
        assert!(t.render().contains("|   wide   | 日本語 |"));
    }
}
