//! The problem report: every problem of a file with its line and column, and the table reader
//! that keeps going after a bad key so that one pass reports them all.

use std::fmt;
use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::de::{DeValue, ValueDeserializer};
use toml::Spanned;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line and column, when the problem has a place in the file.
    pub position: Option<(usize, usize)>,
    /// Key path such as `route[2].ttl`; empty for syntax errors.
    pub key: String,
    pub message: String,
}

/// Every problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub(super) source: String,
    pub(super) problems: Vec<Problem>,
}

impl ConfigError {
    /// The file the problems are in.
    pub fn source_name(&self) -> &str {
        &self.source
    }

    /// The problems, in file order.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

impl fmt::Display for ConfigError {
    /// One problem a line: `<file>:<line>:<col>: <key path>: <what is wrong>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.source)?;
            if let Some((line, col)) = p.position {
                write!(f, ":{line}:{col}")?;
            }
            if !p.key.is_empty() {
                write!(f, ": {}", p.key)?;
            }
            write!(f, ": {}", p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Collects problems and turns byte spans into line and column.
pub(super) struct Report<'t> {
    pub(super) text: &'t str,
    pub(super) problems: Vec<Problem>,
}

impl Report<'_> {
    pub(super) fn at(
        &mut self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        let position = Some(self.position(span.start));
        self.problems.push(Problem {
            position,
            key: key.into(),
            message: message.into(),
        });
    }

    pub(super) fn nowhere(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            position: None,
            key: key.into(),
            message: message.into(),
        });
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub(super) fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    /// Line of a byte offset, for messages that point at a second place.
    pub(super) fn line(&self, offset: usize) -> usize {
        self.position(offset).0
    }

    /// Records the problem of a field check and keeps going with `None`.
    pub(super) fn check<T>(
        &mut self,
        span: Range<usize>,
        key: impl Into<String>,
        result: Result<T, String>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(message) => {
                self.at(span, key, message);
                None
            }
        }
    }

    /// Deserializes one table, reporting every unknown or mistyped key rather than the first.
    ///
    /// After each serde error the offending key is dropped and deserialization runs again, so
    /// one bad key does not hide the next. Returns `None` when the table cannot be built at all.
    pub(super) fn table<T: DeserializeOwned>(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        key: &str,
    ) -> Option<T> {
        let mut value = value.clone();
        if !value.get_ref().is_table() {
            self.at(value.span(), key, "expected a table");
            return None;
        }
        let mut removed: Vec<String> = Vec::new();
        loop {
            let error = match T::deserialize(ValueDeserializer::from(value.clone())) {
                Ok(parsed) => return Some(parsed),
                Err(error) => error,
            };
            let span = error.span().unwrap_or_else(|| value.span());
            // serde names Rust types; users write TOML.
            let message = error
                .message()
                .trim()
                .replace("expected i64", "expected an integer")
                .replace("expected a boolean", "expected true or false");
            if let Some(name) = backticked(&message, "missing field `") {
                // A key dropped for a bad value is reported already; its absence is no news.
                if !removed.iter().any(|r| r == name) {
                    self.at(
                        value.span(),
                        format!("{key}.{name}"),
                        "missing required key",
                    );
                }
                return None;
            }
            let DeValue::Table(table) = value.get_mut() else {
                self.at(span, key, message);
                return None;
            };
            let culprit = table.iter().find_map(|(k, v)| {
                let hit = |s: Range<usize>| s.contains(&span.start) || s == span;
                (hit(k.span()) || hit(v.span())).then(|| k.get_ref().to_string())
            });
            let Some(name) = culprit else {
                self.at(span, key, message);
                return None;
            };
            let message = match backticked(&message, "unknown field `") {
                Some(_) => match message.split_once(", ") {
                    Some((_, expected)) => format!("unknown key; {expected}"),
                    None => "unknown key".to_string(),
                },
                None => message,
            };
            self.at(span, format!("{key}.{name}"), message);
            table.remove(name.as_str());
            removed.push(name);
        }
    }
}

/// The name in "prefix`name`..." messages from serde.
pub(super) fn backticked<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    message.strip_prefix(prefix)?.split('`').next()
}
