//! Human versus `--json` output. In JSON mode stdout carries exactly one JSON document and
//! nothing else; progress and messages go to stderr, or nowhere.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

#[derive(Debug, Clone, Copy)]
pub struct Output {
    json: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    pub fn is_json(self) -> bool {
        self.json
    }

    /// The command's result: `value` as one JSON line, or the human rendering.
    pub fn result<T: Serialize>(self, value: &T, human: impl FnOnce() -> String) {
        if self.json {
            match serde_json::to_string(value) {
                Ok(line) => println!("{line}"),
                // Only non-string map keys fail to serialise; none of the API types have them.
                Err(err) => tracing::error!(error = %err, "cannot render the result as JSON"),
            }
        } else {
            let text = human();
            if !text.is_empty() {
                println!("{text}");
            }
        }
    }

    /// A human message on stderr (suppressed in JSON mode).
    pub fn note(self, message: impl AsRef<str>) {
        if !self.json {
            eprintln!("{}", message.as_ref());
        }
    }

    /// A byte-count progress bar on stderr, drawn only for people watching a terminal.
    pub fn bytes_bar(self, total: u64, label: &'static str) -> ProgressBar {
        if !self.draws_bars() {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:10} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label);
        bar
    }

    /// A spinner for a wait whose length is unknown.
    pub fn spinner(self, first: &'static str) -> Steps {
        let bar = if self.draws_bars() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed:.dim}") {
                bar.set_style(style);
            }
            bar.set_message(first);
            bar.enable_steady_tick(Duration::from_millis(100));
            Some(bar)
        } else {
            None
        };
        Steps { output: self, bar }
    }

    fn draws_bars(self) -> bool {
        !self.json && std::io::stderr().is_terminal()
    }
}

/// Shows which step a deployment is at and the lines it logs. On a terminal the step is a
/// spinner's message; otherwise each step is one plain line, so CI logs read well.
pub struct Steps {
    output: Output,
    bar: Option<ProgressBar>,
}

impl Steps {
    pub fn step(&self, message: String) {
        match &self.bar {
            Some(bar) => bar.set_message(message),
            None => self.output.note(message),
        }
    }

    pub fn line(&self, line: &str) {
        if self.output.json {
            return;
        }
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("  {line}")),
            None => eprintln!("  {line}"),
        }
    }

    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Left-aligned columns for list output.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let render = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut lines = vec![render(headers.to_vec())];
    lines.extend(
        rows.iter()
            .map(|row| render(row.iter().map(String::as_str).collect())),
    );
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_to_the_widest_cell() {
        let rows = vec![
            vec!["01jd".to_owned(), "live".to_owned(), String::new()],
            vec![
                "01jc".to_owned(),
                "failed".to_owned(),
                "BuildFailed".to_owned(),
            ],
        ];
        let text = table(&["ID", "STATUS", "ERROR"], &rows);
        assert_eq!(
            text,
            "ID    STATUS  ERROR\n01jd  live\n01jc  failed  BuildFailed"
        );
    }
}
