//! `[log]`: the tracing filter, the output format and the access line.

use super::raw::RawLog;
use super::report::Report;

/// `[log]`: what cachegate writes to stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A tracing filter such as `info` or `warn,cachegate=debug`; `RUST_LOG` wins over it.
    /// `None` means `info`.
    pub level: Option<String>,
    /// One line per request at `info`, under the target `cachegate::access`; default true.
    pub access: bool,
    /// How lines are written; default text.
    pub format: LogFormat,
}

/// `[log] format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines, `key=value` fields.
    #[default]
    Text,
    /// One JSON object a line, the fields under `fields`.
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: None,
            access: true,
            format: LogFormat::Text,
        }
    }
}

pub(super) fn compile_log(report: &mut Report<'_>, raw: Option<RawLog>) -> Option<LogConfig> {
    let raw = raw?;
    let level = match raw.level {
        None => Some(None),
        Some(level) => {
            let span = level.span();
            let level = level.into_inner();
            let result = if level.trim().is_empty() {
                Err("must not be empty; leave it out for the default".to_string())
            } else {
                Ok(Some(level))
            };
            report.check(span, "log.level", result)
        }
    };
    let format = match raw.format {
        None => Some(LogFormat::Text),
        Some(format) => {
            let span = format.span();
            let result = match format.get_ref().as_str() {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                other => Err(format!(
                    "\"{other}\" is not a log format; expected \"text\" or \"json\""
                )),
            };
            report.check(span, "log.format", result)
        }
    };
    Some(LogConfig {
        level: level?,
        access: raw.access.unwrap_or(true),
        format: format?,
    })
}
