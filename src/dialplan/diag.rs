//! Diagnostics for dialplan authors: every problem names the file, line,
//! column and the offending text, printed the way rustc prints its errors.
//!
//! Spans are byte offsets into the source text (what the TOML parser gives);
//! this file turns them into 1-based line and character columns. It knows
//! nothing about nodes or calls.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How bad a problem is: errors stop a plan from loading, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One source file with an index of its line starts.
#[derive(Debug)]
pub struct SourceFile {
    /// The path as the author should see it (relative when it was given so).
    pub path: PathBuf,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: String) -> Arc<SourceFile> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Arc::new(SourceFile {
            path: path.into(),
            text,
            line_starts,
        })
    }

    /// 1-based line and character column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let col = self.text[start..floor_char(&self.text, offset)]
            .chars()
            .count()
            + 1;
        (line + 1, col)
    }

    /// The text of a 1-based line, without its newline.
    pub fn line_text(&self, line: usize) -> &str {
        let start = self
            .line_starts
            .get(line - 1)
            .copied()
            .unwrap_or(self.text.len());
        let end = self
            .line_starts
            .get(line)
            .map(|e| e - 1)
            .unwrap_or(self.text.len());
        self.text[start..end.max(start)].trim_end_matches('\r')
    }

    /// A diagnostic pointing at `span` in this file.
    pub fn diag(
        &self,
        severity: Severity,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Diagnostic {
        let (line, col) = self.line_col(span.start);
        let snippet = self.line_text(line).to_string();
        let start = floor_char(&self.text, span.start.min(self.text.len()));
        let end = floor_char(&self.text, span.end.min(self.text.len())).max(start);
        // The offending text stops at the end of its first line: carets
        // under one line read better than a span across many.
        let text: String = self.text[start..end]
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        Diagnostic {
            severity,
            file: self.path.clone(),
            line,
            col,
            snippet,
            text,
            message: message.into(),
        }
    }

    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        self.diag(Severity::Error, span, message)
    }

    pub fn warning(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        self.diag(Severity::Warning, span, message)
    }
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// One problem found in a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    /// 1-based; 0 when the problem is about the file as a whole.
    pub line: usize,
    /// 1-based, in characters.
    pub col: usize,
    /// The whole source line, to print under the location.
    pub snippet: String,
    /// The offending text (underlined with carets).
    pub text: String,
    pub message: String,
}

impl Diagnostic {
    /// A problem that belongs to a file (or directory) but to no line in it.
    pub fn whole_file(severity: Severity, file: &Path, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity,
            file: file.to_path_buf(),
            line: 0,
            col: 0,
            snippet: String::new(),
            text: String::new(),
            message: message.into(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        writeln!(f, "{kind}: {}", self.message)?;
        if self.line == 0 {
            return write!(f, " --> {}", self.file.display());
        }
        let num = self.line.to_string();
        let pad = " ".repeat(num.len());
        writeln!(
            f,
            "{pad}--> {}:{}:{}",
            self.file.display(),
            self.line,
            self.col
        )?;
        writeln!(f, "{pad} |")?;
        writeln!(f, "{num} | {}", self.snippet)?;
        let carets = self.text.chars().count().max(1);
        write!(
            f,
            "{pad} | {}{}",
            " ".repeat(self.col - 1),
            "^".repeat(carets)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostic_prints_like_rustc() {
        let src = SourceFile::new(
            "dialplans/mexitel.toml",
            "a = 1\nnext = \"pasaportes\"\n".into(),
        );
        let start = src.text.find("\"pas").unwrap();
        let d = src.error(start..start + 12, "unknown node \"pasaportes\"");
        assert_eq!((d.line, d.col), (2, 8));
        assert_eq!(
            d.to_string(),
            "error: unknown node \"pasaportes\"\n --> dialplans/mexitel.toml:2:8\n  |\n2 | next = \"pasaportes\"\n  |        ^^^^^^^^^^^^"
        );
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let src = SourceFile::new("x.toml", "# año\nnombre = \"canción\" # ñ\n".into());
        let start = src.text.find("\"can").unwrap();
        let (line, col) = src.line_col(start);
        assert_eq!((line, col), (2, 10));
        let d = src.error(start..start + "\"canción\"".len(), "m");
        assert_eq!(d.text, "\"canción\"");
    }
}
