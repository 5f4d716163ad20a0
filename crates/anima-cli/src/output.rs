//! Human-readable tables, `--json`, and error text for the CLI.

use tonic_types::StatusExt;

/// Text from the server as it may reach a terminal: without escape
/// sequences or other control characters (but line breaks and tabs), so a
/// mail's subject or a member's text cannot move the cursor, rewrite what
/// was printed, retitle the window or talk to the terminal.
pub fn safe(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if text.chars().any(unsafe_char) {
        text.chars()
            .filter(|c| !unsafe_char(*c))
            .collect::<String>()
            .into()
    } else {
        text.into()
    }
}

/// Prints rows as an aligned table under a header (cells made [`safe`]).
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| safe(cell).replace(['\n', '\t'], " "))
                .collect()
        })
        .collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Prints a list: with `--json` an array of each item's `to_json`, else a
/// table of each item's `to_row` under `header`.
pub fn rows<T>(
    json: bool,
    items: &[T],
    header: &[&str],
    to_json: impl Fn(&T) -> serde_json::Value,
    to_row: impl Fn(&T) -> Vec<String>,
) {
    if json {
        self::json(&serde_json::Value::Array(
            items.iter().map(to_json).collect(),
        ));
    } else {
        table(header, &items.iter().map(to_row).collect::<Vec<_>>());
    }
}

/// A kind of row the CLI lists: its table header, its cells and its JSON.
pub trait Row {
    /// The table's header.
    const HEADER: &'static [&'static str];
    /// Its cells, under [`Row::HEADER`].
    fn cells(&self) -> Vec<String>;
    /// Its JSON object.
    fn to_json(&self) -> serde_json::Value;
}

/// `Row` for a wire type from its module's header and functions.
macro_rules! impl_row {
    ($type:ty, $header:expr, $to_json:path, $cells:path) => {
        impl $crate::output::Row for $type {
            const HEADER: &'static [&'static str] = $header;
            fn cells(&self) -> Vec<String> {
                $cells(self)
            }
            fn to_json(&self) -> serde_json::Value {
                $to_json(self)
            }
        }
    };
}
pub(crate) use impl_row;

/// Prints a list of [`Row`]s: with `--json` an array, else a table.
pub fn list<T: Row>(json: bool, items: &[T]) {
    rows(json, items, T::HEADER, T::to_json, T::cells);
}

/// Prints one [`Row`]: with `--json` its object, else a one-row table.
pub fn one<T: Row>(json: bool, item: &T) {
    if json {
        self::json(&item.to_json());
    } else {
        table(T::HEADER, &[item.cells()]);
    }
}

/// Prints a JSON value, pretty.
pub fn json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// Describes an error for a human: a gRPC status shows its message and the
/// stable reason code, so scripts can match the latter.
pub fn describe_error(err: &anyhow::Error) -> String {
    if let Some(status) = err.downcast_ref::<tonic::Status>() {
        let reason = status
            .get_error_details()
            .error_info()
            .map(|info| info.reason.clone())
            .unwrap_or_else(|| format!("{:?}", status.code()));
        return format!("{} ({reason})", safe(status.message()));
    }
    format!("{err:#}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 21: a mail's subject printed verbatim could drive the
    /// terminal (clear the screen, retitle the window, fake earlier lines).
    #[test]
    fn terminal_controls_never_reach_the_terminal() {
        let hostile = "Invoice\u{1b}]0;owned\u{7}\u{1b}[2J\rpaid\u{9b}31m\nsecond\tline";
        assert_eq!(safe(hostile), "Invoice]0;owned[2Jpaid31m\nsecond\tline");
        assert!(matches!(safe("plain"), std::borrow::Cow::Borrowed(_)));
    }
}
