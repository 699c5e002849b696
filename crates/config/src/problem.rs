//! What a refused description reports: one [`Problem`] per thing that is wrong, each placed at
//! a line and column of the description, gathered into a [`Refusal`].
//!
//! Validation never stops at the first problem. Every check reports through [`Report::at`],
//! which returns a [`Reported`] token; a value that failed a check is carried on as
//! `Err(Reported)`, so a plan can only be assembled from values that passed, and a failure
//! that reported nothing cannot be expressed.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One thing wrong with a system description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The description file, as it was given to [`crate::load`] or [`crate::parse`].
    pub file: PathBuf,
    /// 1-based line of the offending key or value.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// Dotted path of the key, e.g. `partition[1] ("linux").memory_mib`; empty when the
    /// problem concerns the whole file (syntax errors, unreadable file).
    pub key: String,
    /// What is wrong, in sentence case, without a trailing full stop.
    pub message: String,
}

impl fmt::Display for Problem {
    /// `FILE:LINE:COL: KEY: MESSAGE`, or `FILE:LINE:COL: MESSAGE` when the key is empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// A refused system description: every problem found, in file order.
#[derive(Debug)]
pub struct Refusal {
    /// Never empty when produced by this crate.
    pub problems: Vec<Problem>,
}

impl fmt::Display for Refusal {
    /// One problem per line, without a trailing newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Refusal {}

/// Proof that a problem has been reported for a value that is therefore unusable.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reported(());

/// Maps byte offsets of a text to 1-based lines and columns.
#[derive(Debug)]
pub(crate) struct LineIndex<'t> {
    text: &'t str,
    /// Byte offset at which each line starts.
    starts: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    pub(crate) fn new(text: &'t str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, starts }
    }

    /// Line and column (both 1-based, column in characters) of byte `offset`.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&start| start <= offset).max(1);
        let start = self.starts[line - 1];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line, column + 1)
    }

    /// 1-based line of byte `offset`.
    pub(crate) fn line(&self, offset: usize) -> usize {
        self.position(offset).0
    }
}

/// Collects the problems of one description.
#[derive(Debug)]
pub(crate) struct Report<'t> {
    file: PathBuf,
    lines: LineIndex<'t>,
    problems: Vec<Problem>,
}

impl<'t> Report<'t> {
    pub(crate) fn new(file: &Path, text: &'t str) -> Self {
        Report {
            file: file.to_path_buf(),
            lines: LineIndex::new(text),
            problems: Vec::new(),
        }
    }

    /// Records a problem located at the start of `span`.
    pub(crate) fn at(
        &mut self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Reported {
        let (line, column) = self.lines.position(span.start);
        self.problems.push(Problem {
            file: self.file.clone(),
            line,
            column,
            key: key.into(),
            message: message.into(),
        });
        Reported(())
    }

    /// 1-based line of byte `offset`, for messages that refer to another place in the file.
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        self.lines.line(offset)
    }

    /// The plan if nothing was reported, otherwise every problem sorted by position.
    ///
    /// `result` is `Err` only if something was reported, so the refusal is never empty.
    pub(crate) fn finish<T>(self, result: Result<T, Reported>) -> Result<T, Refusal> {
        match result {
            Ok(value) if self.problems.is_empty() => Ok(value),
            _ => Err(self.into_refusal()),
        }
    }

    /// Every problem reported so far, sorted by position (stable, so problems at the same
    /// place keep the order they were found in).
    pub(crate) fn into_refusal(self) -> Refusal {
        let mut problems = self.problems;
        problems.sort_by_key(|p| (p.line, p.column));
        Refusal { problems }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_of_first_byte_is_line_one_column_one() {
        let lines = LineIndex::new("a = 1\nb = 2\n");

        let position = lines.position(0);

        assert_eq!(position, (1, 1));
    }

    #[test]
    fn position_after_newline_is_start_of_next_line() {
        let lines = LineIndex::new("a = 1\nb = 2\n");

        let position = lines.position(10);

        assert_eq!(position, (2, 5));
    }

    #[test]
    fn column_counts_characters_not_bytes() {
        let lines = LineIndex::new("s = \"é\" x");

        let position = lines.position("s = \"é\" ".len());

        assert_eq!(position, (1, 9));
    }

    #[test]
    fn offset_past_the_end_maps_to_end_of_last_line() {
        let lines = LineIndex::new("a = 1\nb");

        let position = lines.position(100);

        assert_eq!(position, (2, 2));
    }

    #[test]
    fn refusal_display_prints_one_problem_per_line_with_key() {
        let mut report = Report::new(Path::new("sys.toml"), "a = 1\nb = 2\n");
        report.at(6..7, "b", "second");
        report.at(0..1, "a", "first");

        let refusal = report.into_refusal();

        assert_eq!(
            refusal.to_string(),
            "sys.toml:1:1: a: first\nsys.toml:2:1: b: second"
        );
    }

    #[test]
    fn problem_without_key_displays_without_key_part() {
        let mut report = Report::new(Path::new("sys.toml"), "a = ");
        report.at(4..4, "", "invalid value");

        let refusal = report.into_refusal();

        assert_eq!(refusal.to_string(), "sys.toml:1:5: invalid value");
    }
}
