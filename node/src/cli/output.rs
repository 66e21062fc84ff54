//! Output for people and scripts: plain-text tables with aligned columns, and JSON (one
//! compact document or line per answer) under `--json`.

use std::io::Write;

/// A table: a header row and rows of cells, printed with aligned columns.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names.
    pub fn new(header: &[&str]) -> Self {
        Self { header: header.iter().map(|name| (*name).to_owned()).collect(), rows: Vec::new() }
    }

    /// Adds a row (missing cells print empty).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text: columns two spaces apart, no trailing spaces.
    pub fn render(&self) -> String {
        let columns = self.header.len();
        let clean = |cell: &str| -> String {
            cell.chars().map(|c| if is_hidden_in_tables(c) { '?' } else { c }).collect()
        };
        let mut widths: Vec<usize> = self.header.iter().map(|name| name.chars().count()).collect();
        for row in &self.rows {
            for (column, cell) in row.iter().enumerate().take(columns) {
                widths[column] = widths[column].max(clean(cell).chars().count());
            }
        }
        let mut text = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (column, width) in widths.iter().enumerate() {
                let cell = clean(row.get(column).map_or("", String::as_str));
                line.push_str(&cell);
                if column + 1 < columns {
                    line.push_str(&" ".repeat(width - cell.chars().count() + 2));
                }
            }
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }
}

/// Whether a character is shown as `?` in a table cell: control characters (they would let a
/// cell rewrite the terminal), every format character of Unicode's category `Cf` (direction
/// marks, embeddings, overrides and isolates would let an adversary's handle reorder what the
/// analyst reads, and invisible ones hide in it), the line and paragraph separators, and the
/// invisible characters outside `Cf`: the Hangul fillers (U+115F, U+1160, U+3164, U+FFA0), the
/// combining grapheme joiner (U+034F), the Khmer inherent vowels (U+17B4, U+17B5), the
/// Mongolian free variation selectors (U+180B–U+180D, U+180F) and the variation selectors
/// (U+FE00–U+FE0F, U+E0100–U+E01EF), which show nothing and so could hide in a handle. The `Cf` list is
/// Unicode 15.1's; the canonical rules' own list of invisible characters is a different thing
/// (part of the token rules, which must not move with this one).
pub fn is_hidden_in_tables(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{0890}'..='\u{0891}'
                | '\u{08E2}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
                // Invisible, though not `Cf`.
                | '\u{034F}'
                | '\u{115F}'
                | '\u{17B4}'..='\u{17B5}'
                | '\u{180B}'..='\u{180D}'
                | '\u{180F}'
                | '\u{1160}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FFA0}'
                | '\u{E0100}'..='\u{E01EF}'
        )
}

/// Prints a table on stdout.
pub fn print_table(table: &Table) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(table.render().as_bytes());
    let _ = stdout.flush();
}

/// Prints one compact JSON document on its own line on stdout, flushed at once (a follower's
/// reader sees each line as it comes).
pub fn print_json_line(value: &serde_json::Value) {
    let mut stdout = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut stdout, value);
    let _ = stdout.write_all(b"\n");
    let _ = stdout.flush();
}

/// A JSON value as a table cell: strings bare, `null` empty, the rest as JSON.
pub fn cell(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Unix milliseconds as UTC time (`2027-01-15 08:00:00`), empty for `null`.
pub fn time_cell(value: &serde_json::Value) -> String {
    let Some(ms) = value.as_u64() else {
        return cell(value);
    };
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return ms.to_string();
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_their_columns_and_hide_control_characters() {
        let mut table = Table::new(&["ID", "STATE", "NOTE"]);
        table.row(vec!["7".into(), "open".into(), "x".into()]);
        table.row(vec!["1234".into(), "re\u{1b}[2Jopened".into()]);
        assert_eq!(
            table.render(),
            "ID    STATE         NOTE\n7     open          x\n1234  re?[2Jopened\n"
        );
    }

    #[test]
    fn tables_show_direction_and_other_format_characters_as_question_marks() {
        // A handle that would read "@gnp_tset" reversed by an override, with marks, isolates,
        // the Arabic letter mark, a zero-width joiner, a byte-order mark and a line separator.
        let handle =
            "@\u{202E}test_png\u{202C}\u{200F}x\u{2067}y\u{2069}\u{061C}z\u{200D}\u{FEFF}\u{2028}";
        let mut table = Table::new(&["ACCOUNT", "COMMUNITY"]);
        table.row(vec![handle.into(), "4".into()]);
        table.row(vec!["@plain".into(), "5".into()]);
        assert_eq!(
            table.render(),
            "ACCOUNT                COMMUNITY\n\
             @?test_png??x?y??z???  4\n\
             @plain                 5\n"
        );
        for c in
            ['\u{202A}', '\u{202B}', '\u{202D}', '\u{2066}', '\u{2068}', '\u{200E}', '\u{E0041}']
        {
            assert!(is_hidden_in_tables(c), "{:04X}", u32::from(c));
        }
        for c in ['a', 'é', 'ب', '中', ' ', '\u{05D0}'] {
            assert!(!is_hidden_in_tables(c), "{c}");
        }
    }

    #[test]
    fn invisible_characters_outside_cf_are_question_marks_too() {
        // Hangul fillers, the combining grapheme joiner and variation selectors, at both ends
        // of each range; their neighbours, which show, stay.
        let hidden = [
            '\u{115F}',
            '\u{1160}',
            '\u{3164}',
            '\u{FFA0}',
            '\u{034F}',
            '\u{FE00}',
            '\u{FE0F}',
            '\u{E0100}',
            '\u{E01EF}',
            '\u{17B4}',
            '\u{17B5}',
            '\u{180B}',
            '\u{180D}',
            '\u{180F}',
        ];
        for c in hidden {
            assert!(is_hidden_in_tables(c), "{:04X}", u32::from(c));
        }
        let shown = [
            '\u{1161}',
            '\u{3165}',
            '\u{FFA1}',
            '\u{034E}',
            '\u{FE10}',
            '\u{E01F0}',
            '\u{17B3}',
            '\u{17B6}',
            '\u{180A}',
            '\u{1810}',
        ];
        for c in shown {
            assert!(!is_hidden_in_tables(c), "{:04X}", u32::from(c));
        }
        let mut table = Table::new(&["ACCOUNT"]);
        table.row(vec!["@a\u{3164}b\u{FE0F}c\u{034F}d\u{E0100}e\u{115F}".into()]);
        assert_eq!(table.render(), "ACCOUNT\n@a?b?c?d?e?\n");
    }

    #[test]
    fn cells_and_times_read_json() {
        assert_eq!(cell(&json!(null)), "");
        assert_eq!(cell(&json!("DE")), "DE");
        assert_eq!(cell(&json!([7, 8])), "[7,8]");
        assert_eq!(time_cell(&json!(1_800_000_000_000u64)), "2027-01-15 08:00:00");
        assert_eq!(time_cell(&json!(null)), "");
    }
}
