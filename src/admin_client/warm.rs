//! `cachegate warm`: reading warm lists, sending them in batches, and reporting progress.

use super::client::{warm_batch, AdminClient, AdminError};
use crate::admin_api::{WarmReport, WarmRequest, WarmTarget, Warmed};
use std::fmt;
use std::io::Write;
use std::path::Path;

/// Where a warm run stands, reported after each batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmProgress {
    /// Paths stored so far.
    pub done: u64,
    /// Paths that failed so far.
    pub failed: u64,
    /// Paths in the whole run.
    pub total: usize,
}

impl fmt::Display for WarmProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "warmed {}/{} ({} failed)",
            self.done, self.total, self.failed
        )
    }
}

/// Warms everything `plan` lists (its paths, then its route's captures) in requests of at most
/// `batch` items, calling `progress` after each one, and returns the sum of the answers,
/// counted from their results. A failed batch request stops the run: the server is unwell, or
/// refused the request (no host to warm for, a bad route), and sending the rest would only
/// repeat the error.
pub async fn warm(
    client: &AdminClient,
    plan: &WarmRequest,
    batch: usize,
    mut progress: impl FnMut(WarmProgress),
) -> Result<WarmReport, AdminError> {
    let batch = batch.max(1);
    let total = plan.paths.len() + plan.captures.len();
    let base = WarmRequest {
        paths: Vec::new(),
        route: None,
        captures: Vec::new(),
        ..plan.clone()
    };
    let path_batches = plan.paths.chunks(batch).map(|chunk| WarmRequest {
        paths: chunk.to_vec(),
        ..base.clone()
    });
    let capture_batches = plan.captures.chunks(batch).map(|chunk| WarmRequest {
        route: plan.route.clone(),
        captures: chunk.to_vec(),
        ..base.clone()
    });
    let mut sum = WarmReport::default();
    for req in path_batches.chain(capture_batches) {
        // The per-path results are the ground truth for the counts, whatever the answer's own
        // totals say.
        let answer = WarmReport::of(warm_batch(client, &req).await?.value.results);
        sum.done += answer.done;
        sum.failed += answer.failed;
        sum.results.extend(answer.results);
        progress(WarmProgress {
            done: sum.done,
            failed: sum.failed,
            total,
        });
    }
    Ok(sum)
}

/// The items of a warm list: one path or `http(s)` URL per line, blank lines and `#` comments
/// skipped, fragments dropped. A URL is kept whole: the server warms it under its own host.
pub fn parse_warm_list(text: &str) -> Result<Vec<String>, AdminError> {
    let mut items = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let item = line.split('#').next().unwrap_or(line);
        WarmTarget::parse(item)
            .map_err(|why| AdminError::Input(format!("line {}: {why}", index + 1)))?;
        items.push(item.to_string());
    }
    Ok(items)
}

/// Reads a warm list from a file, or standard input for `-`.
pub fn read_warm_list(path: &Path) -> Result<Vec<String>, AdminError> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
            .map_err(|err| AdminError::Input(format!("cannot read standard input: {err}")))?
    } else {
        std::fs::read_to_string(path)
            .map_err(|err| AdminError::Input(format!("cannot read {}: {err}", path.display())))?
    };
    let paths = parse_warm_list(&text)
        .map_err(|err| AdminError::Input(format!("{}: {err}", path.display())))?;
    if paths.is_empty() {
        return Err(AdminError::Input(format!(
            "{} lists no paths to warm",
            path.display()
        )));
    }
    Ok(paths)
}

/// The failed paths, one per line with the reason.
pub fn render_warm_failures(results: &[Warmed]) -> String {
    let mut out = String::new();
    for result in results.iter().filter(|r| r.failed()) {
        let reason = match (&result.error, result.status) {
            (Some(error), 0) => error.clone(),
            (Some(error), status) => format!("{status}: {error}"),
            (None, status) => format!("status {status}"),
        };
        out.push_str(&format!("failed {}: {reason}\n", result.path));
    }
    out
}

/// The progress line on standard error: rewritten in place on a terminal, one line per update
/// otherwise (so logs and CI output stay readable).
pub struct ProgressLine<W: Write> {
    out: W,
    in_place: bool,
    dirty: bool,
}

impl<W: Write> ProgressLine<W> {
    pub fn new(out: W, in_place: bool) -> Self {
        ProgressLine {
            out,
            in_place,
            dirty: false,
        }
    }

    /// Shows `progress`, replacing the previous line on a terminal.
    pub fn update(&mut self, progress: &WarmProgress) {
        // Progress is a courtesy: a closed stderr must not fail the warm run itself.
        let _ = if self.in_place {
            self.dirty = true;
            write!(self.out, "\r\x1b[2K{progress}")
        } else {
            writeln!(self.out, "{progress}")
        };
        let _ = self.out.flush();
    }

    /// Ends an in-place line so what follows starts on a fresh line.
    pub fn finish(&mut self) {
        if self.dirty {
            let _ = writeln!(self.out);
            let _ = self.out.flush();
            self.dirty = false;
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}
