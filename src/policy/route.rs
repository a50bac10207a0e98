//! Route rules: path patterns, tag templates and the route table.
//!
//! Everything here is already validated when it exists: config.rs parses the file and builds
//! these values, and the request path only ever asks [`RouteTable::find`] which rule applies.

use crate::policy::freshness::Rules;
use std::fmt;

use http::{HeaderName, Method};

use super::Captures;
use crate::notation::{format_duration, format_size};

#[cfg(test)]
mod tests;

/// Where the tenant of a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantSource {
    /// Entries are shared by every caller (no tenant in the key).
    None,
    /// A request header, e.g. `X-Org-Id` (stored lower-case as an `http::HeaderName`).
    Header(http::HeaderName),
    /// A capture of the route pattern, e.g. `{ path = "org" }` for `/orgs/{org}/...`.
    Path(String),
    /// A query parameter, e.g. `{ query = "org" }`.
    Query(String),
    /// The first label of the Host header (`{ host = "subdomain" }`): `acme.api.example.com` -> `acme`.
    Host,
}

impl fmt::Display for TenantSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TenantSource::None => f.write_str("none"),
            TenantSource::Header(name) => write!(f, "header {name}"),
            TenantSource::Path(name) => write!(f, "path {{{name}}}"),
            TenantSource::Query(name) => write!(f, "query {name}"),
            TenantSource::Host => f.write_str("host subdomain"),
        }
    }
}

/// Whose answer a route's response is, i.e. who may be served a stored copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The same for every caller.
    Public,
    /// The same for every caller of one tenant.
    Tenant,
    /// Private to one user (of one tenant).
    User,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Public => "public",
            Scope::Tenant => "tenant",
            Scope::User => "user",
        })
    }
}

/// What happens to a request without a credential on a `tenant` or `user` route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Anonymous {
    /// Answer 401 without asking the upstream (the default).
    Deny,
    /// Forward to the upstream, never from or into the cache.
    Pass,
}

impl fmt::Display for Anonymous {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Anonymous::Deny => "deny",
            Anonymous::Pass => "pass",
        })
    }
}

/// One `/`-separated piece of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Matches exactly this text; the empty literal only appears last and stands for a trailing slash.
    Literal(String),
    /// `{name}`: exactly one non-empty segment.
    Param(String),
    /// `{*name}`: everything after the previous `/`, possibly empty, possibly spanning `/`.
    Tail(String),
}

impl Segment {
    /// True when every segment text `other` accepts is also accepted by `self`.
    ///
    /// Only called for positions before any tail of `self`, so a tail in `other` means `other`
    /// reaches paths of other lengths that `self` cannot follow.
    fn covers(&self, other: &Segment) -> bool {
        match (self, other) {
            (_, Segment::Tail(_)) => matches!(self, Segment::Tail(_)),
            (Segment::Literal(a), Segment::Literal(b)) => a == b,
            (Segment::Literal(_), Segment::Param(_)) => false,
            (Segment::Param(_), Segment::Literal(b)) => !b.is_empty(),
            (Segment::Param(_), Segment::Param(_)) => true,
            (Segment::Tail(_), _) => true,
        }
    }
}

/// A parsed route path such as `/api/faculty/{id}/` or `/api/auth/{*rest}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    raw: String,
    segments: Vec<Segment>,
}

impl PathPattern {
    /// Parses a pattern; the error names the problem, e.g. `duplicate capture {id}`.
    pub fn parse(raw: &str) -> Result<PathPattern, String> {
        let Some(rest) = raw.strip_prefix('/') else {
            return Err("pattern must start with '/'".to_string());
        };
        let pieces: Vec<&str> = rest.split('/').collect();
        let mut segments = Vec::with_capacity(pieces.len());
        for (i, piece) in pieces.iter().enumerate() {
            let last = i + 1 == pieces.len();
            let segment = parse_segment(piece, last)?;
            if let Segment::Param(name) | Segment::Tail(name) = &segment {
                let seen = segments.iter().any(
                    |s: &Segment| matches!(s, Segment::Param(n) | Segment::Tail(n) if n == name),
                );
                if seen {
                    return Err(format!("duplicate capture {{{name}}}"));
                }
            }
            if matches!(segment, Segment::Tail(_)) && !last {
                return Err(format!("tail capture {piece} must be last"));
            }
            segments.push(segment);
        }
        Ok(PathPattern {
            raw: raw.to_string(),
            segments,
        })
    }

    /// The pattern as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Capture names in pattern order (`{*rest}` is named `rest`).
    pub fn capture_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(n) | Segment::Tail(n) => Some(n.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// True when the pattern has a capture of this name.
    pub fn has_capture(&self, name: &str) -> bool {
        self.capture_names().any(|n| n == name)
    }

    /// True for a pattern without captures, i.e. one fixed path such as a collection listing.
    pub fn is_list(&self) -> bool {
        self.capture_names().next().is_none()
    }

    /// Matches an already normalized path and returns its captures in pattern order.
    pub fn matches<'r, 'p>(&'r self, path: &'p str) -> Option<Captures<'r, 'p>> {
        let mut rest = path.strip_prefix('/')?;
        let mut captures = Captures::new();
        let count = self.segments.len();
        for (i, segment) in self.segments.iter().enumerate() {
            if let Segment::Tail(name) = segment {
                captures.push(name, rest);
                return Some(captures);
            }
            // The last pattern segment must consume the rest of the path; earlier ones stop at
            // the next `/`, which must exist because more segments follow.
            let piece = if i + 1 == count {
                if rest.contains('/') {
                    return None;
                }
                std::mem::take(&mut rest)
            } else {
                let (piece, after) = rest.split_once('/')?;
                rest = after;
                piece
            };
            match segment {
                Segment::Literal(text) if text == piece => {}
                Segment::Param(name) if !piece.is_empty() => captures.push(name, piece),
                _ => return None,
            }
        }
        Some(captures)
    }

    /// True when every path `other` matches is also matched by `self`.
    ///
    /// Used to refuse a route that an earlier route makes unreachable.
    pub fn covers(&self, other: &PathPattern) -> bool {
        for (i, mine) in self.segments.iter().enumerate() {
            if matches!(mine, Segment::Tail(_)) {
                // A tail accepts anything after its `/`, so `other` only has to reach this far.
                return other.segments.len() > i;
            }
            match other.segments.get(i) {
                Some(theirs) if mine.covers(theirs) => {}
                _ => return false,
            }
        }
        other.segments.len() == self.segments.len()
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

fn parse_segment(piece: &str, last: bool) -> Result<Segment, String> {
    if !piece.contains(['{', '}']) {
        if piece.is_empty() && !last {
            return Err("empty segment '//'".to_string());
        }
        return Ok(Segment::Literal(piece.to_string()));
    }
    let Some(inner) = piece.strip_prefix('{') else {
        return if piece.contains('{') {
            Err(format!(
                "capture must be a whole segment, not part of \"{piece}\""
            ))
        } else {
            Err("unmatched '}'".to_string())
        };
    };
    let Some(inner) = inner.strip_suffix('}') else {
        return if inner.contains('}') {
            Err(format!(
                "capture must be a whole segment, not part of \"{piece}\""
            ))
        } else {
            Err("unclosed '{'".to_string())
        };
    };
    if inner.contains(['{', '}']) {
        return Err(format!("nested braces in \"{piece}\""));
    }
    let (tail, name) = match inner.strip_prefix('*') {
        Some(name) => (true, name),
        None => (false, inner),
    };
    check_capture_name(name)?;
    Ok(if tail {
        Segment::Tail(name.to_string())
    } else {
        Segment::Param(name.to_string())
    })
}

fn check_capture_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = match chars.next() {
        Some(first) => {
            (first.is_ascii_alphabetic() || first == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        None => return Err("empty capture name '{}'".to_string()),
    };
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid capture name \"{name}\": use letters, digits and '_', not starting with a digit"
        ))
    }
}

/// One piece of a tag template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TagPart {
    Text(String),
    Capture(String),
}

/// A tag with optional capture references, e.g. `department` or `faculty:{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagTemplate {
    raw: String,
    parts: Vec<TagPart>,
}

impl TagTemplate {
    /// Parses a template whose `{name}` references must be captures of `pattern`.
    pub fn parse(raw: &str, pattern: &PathPattern) -> Result<TagTemplate, String> {
        if raw.is_empty() {
            return Err("tags must not be empty".to_string());
        }
        if raw.contains(|c: char| c.is_whitespace() || c == ',') {
            return Err(format!(
                "invalid tag template \"{raw}\": tags may not contain whitespace or commas"
            ));
        }
        let mut parts = Vec::new();
        let mut rest = raw;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                None => {
                    parts.push(TagPart::Text(rest.to_string()));
                    rest = "";
                }
                Some(at) if rest[at..].starts_with('}') => {
                    return Err(format!("unmatched '}}' in tag template \"{raw}\""));
                }
                Some(at) => {
                    if at > 0 {
                        parts.push(TagPart::Text(rest[..at].to_string()));
                    }
                    let after = &rest[at + 1..];
                    let Some(close) = after.find('}') else {
                        return Err(format!("unclosed '{{' in tag template \"{raw}\""));
                    };
                    let name = &after[..close];
                    if !pattern.has_capture(name) {
                        let known: Vec<&str> = pattern.capture_names().collect();
                        let known = if known.is_empty() {
                            "the pattern has no captures".to_string()
                        } else {
                            format!("the pattern captures: {}", known.join(", "))
                        };
                        return Err(format!(
                            "unknown capture {{{name}}} in tag template \"{raw}\"; {known}"
                        ));
                    }
                    parts.push(TagPart::Capture(name.to_string()));
                    rest = &after[close + 1..];
                }
            }
        }
        Ok(TagTemplate {
            raw: raw.to_string(),
            parts,
        })
    }

    /// The template as written (or as generated for resource defaults).
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Fills the capture references from a match of the route the template belongs to.
    pub fn render(&self, captures: &Captures<'_, '_>) -> String {
        let mut out = String::with_capacity(self.raw.len() + 16);
        for part in &self.parts {
            match part {
                TagPart::Text(text) => out.push_str(text),
                // Templates are checked against their own route's pattern, so the capture
                // is always present; an empty value is the harmless fallback.
                TagPart::Capture(name) => out.push_str(captures.get(name).unwrap_or("")),
            }
        }
        out
    }
}

impl fmt::Display for TagTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Checks a `resource` name: it becomes the prefix of generated tags, so keep it plain.
pub fn check_resource_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid resource name \"{name}\": use letters, digits, '_', '-' and '.'"
        ))
    }
}

/// The tags a resource implies for a route: `(entry tags, write invalidations)`.
///
/// A capture used as the tenant does not identify an object, so it is left out. A list route
/// (no other capture) stores `R` and `R:*` and a write there purges `R`; a detail route uses
/// its last other capture `{c}`, stores `R:{c}` and `R:*`, and a write purges `R:{c}` and `R`.
pub fn resource_tags(
    resource: &str,
    pattern: &PathPattern,
    tenant: &TenantSource,
) -> Result<(Vec<TagTemplate>, Vec<TagTemplate>), String> {
    check_resource_name(resource)?;
    let tenant_capture = match tenant {
        TenantSource::Path(name) => Some(name.as_str()),
        _ => None,
    };
    let object = pattern
        .capture_names()
        .filter(|n| Some(*n) != tenant_capture)
        .last();
    let make = |text: String| TagTemplate::parse(&text, pattern);
    let all = make(format!("{resource}:*"))?;
    let list = make(resource.to_string())?;
    Ok(match object {
        None => (vec![list.clone(), all], vec![list]),
        Some(c) => {
            let one = make(format!("{resource}:{{{c}}}"))?;
            (vec![one.clone(), all], vec![one, list])
        }
    })
}

/// One validated `[[route]]` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Position in the config file, 0-based.
    pub index: usize,
    /// What the process counts this route's traffic and entries under: its position in the
    /// first config, and after a reload the number an earlier route of the same
    /// [`Route::identity`] had (a new identity gets a number never used before). Unlike
    /// `index`, it survives a reload that moves the route.
    pub id: usize,
    pub pattern: PathPattern,
    /// `None` matches every method.
    pub methods: Option<Vec<Method>>,
    /// False means pass-through: never stored, never served from the cache.
    pub cache: bool,
    /// The route's `ttl`, stale windows and negative caching.
    pub freshness: Rules,
    /// Compress textual answers the backend sent unencoded, once per fill, for the request's
    /// `Accept-Encoding` bucket (`policy::encoding::plan`).
    pub compress: bool,
    /// Already resolved: the route's own `tenant` or `[cache].tenant`.
    pub tenant: TenantSource,
    /// Extra request headers that select a stored entry.
    pub vary: Vec<HeaderName>,
    /// Most variants (responses selected by their `Vary`) one URI may hold.
    pub max_variants: usize,
    /// Bytes this route's entries may hold in the memory tier together; `None` for no bound
    /// beyond the tier's own. An insert over it evicts the route's own oldest entries first.
    pub max_memory: Option<u64>,
    pub resource: Option<String>,
    /// Tags a stored entry carries (resource defaults, then `tags`).
    pub entry_tags: Vec<TagTemplate>,
    /// Tags a successful write here purges (resource defaults, then `invalidates`).
    pub write_invalidates: Vec<TagTemplate>,
    /// Already resolved: the route's own `scope`, else `[cache].scope`, else `tenant` when the
    /// route has a tenant source and `public` when it has none.
    pub scope: Scope,
    /// True when `scope` was written (on the route or in `[cache]`), false when inferred.
    pub scope_declared: bool,
    /// What a request without a credential gets on a `tenant` or `user` route.
    pub anonymous: Anonymous,
    /// HTTP caching switches: honour-origin mode, request `Cache-Control`, digest `ETag`s.
    pub http: crate::policy::http_cache::Rules,
}

impl Route {
    /// What makes two routes of two config versions the same route: the path pattern and the
    /// methods it is limited to (in any order), e.g. `GET,HEAD /api/items/{id}/` or
    /// `/api/items/` for every method.
    pub fn identity(&self) -> String {
        match &self.methods {
            None => self.pattern.as_str().to_owned(),
            Some(methods) => {
                let mut names: Vec<&str> = methods.iter().map(Method::as_str).collect();
                names.sort_unstable();
                format!("{} {}", names.join(","), self.pattern.as_str())
            }
        }
    }

    /// True when the route applies to this method.
    pub fn allows(&self, method: &Method) -> bool {
        match &self.methods {
            None => true,
            Some(list) => list.contains(method),
        }
    }

    /// True when every request this route could take would be taken by `self` first.
    pub fn shadows(&self, later: &Route) -> bool {
        let methods = match (&self.methods, &later.methods) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(mine), Some(theirs)) => theirs.iter().all(|m| mine.contains(m)),
        };
        methods && self.pattern.covers(&later.pattern)
    }
}

/// A route chosen for a request, with the values its pattern captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'r, 'p> {
    pub route: &'r Route,
    pub captures: Captures<'r, 'p>,
}

/// All routes in file order; the first one that matches wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    pub routes: Vec<Route>,
}

impl RouteTable {
    /// Wraps routes that are already in file order.
    pub fn new(routes: Vec<Route>) -> RouteTable {
        RouteTable { routes }
    }

    /// The routes in file order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The first route, in file order, that allows `method` and matches `path`.
    pub fn find<'r, 'p>(&'r self, method: &Method, path: &'p str) -> Option<RouteMatch<'r, 'p>> {
        self.routes.iter().find_map(|route| {
            if !route.allows(method) {
                return None;
            }
            route
                .pattern
                .matches(path)
                .map(|captures| RouteMatch { route, captures })
        })
    }

    /// Pairs `(shadowed, by)` of positions in the table where route `shadowed` can never match
    /// because the earlier route `by` covers its pattern and all its methods.
    pub fn shadowed(&self) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        for (j, later) in self.routes.iter().enumerate() {
            if let Some(i) = self.routes[..j].iter().position(|r| r.shadows(later)) {
                found.push((j, i));
            }
        }
        found
    }

    /// One warning per cached route whose tenant is read from the request as sent, which any
    /// client can set to another tenant's id: header, host, path or query alike. Without
    /// `[auth]` nothing verifies it, so [`crate::config::Config::trust_warnings`] reports these
    /// only when that section is absent. Routes declared `public` are shared on purpose.
    pub fn trust_warnings(&self) -> Vec<String> {
        self.routes
            .iter()
            .filter(|r| r.cache && r.tenant != TenantSource::None && r.scope != Scope::Public)
            .map(|r| {
                format!(
                    "route[{}] {}: tenant {} is trusted as sent by any client; add [auth] to verify callers",
                    r.index, r.pattern, r.tenant
                )
            })
            .collect()
    }
}

impl fmt::Display for RouteTable {
    /// The table `cachegate check` prints: one route a line, columns aligned.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEADER: [&str; 10] = [
            "#",
            "PATH",
            "METHODS",
            "CACHE",
            "SCOPE",
            "TENANT",
            "VARY",
            "RESOURCE",
            "TAGS",
            "WRITE PURGES",
        ];
        let join = |items: &mut dyn Iterator<Item = String>| {
            let text = items.collect::<Vec<_>>().join(" ");
            if text.is_empty() {
                "-".to_string()
            } else {
                text
            }
        };
        let rows: Vec<[String; 10]> = self
            .routes
            .iter()
            .map(|r| {
                [
                    r.index.to_string(),
                    r.pattern.to_string(),
                    match &r.methods {
                        None => "*".to_string(),
                        Some(list) => list
                            .iter()
                            .map(Method::as_str)
                            .collect::<Vec<_>>()
                            .join(","),
                    },
                    if r.cache {
                        // Honour-origin routes take their freshness from the origin's headers.
                        let mut cache = if r.http.honor_origin {
                            "origin".to_string()
                        } else {
                            format_duration(r.freshness.ttl)
                        };
                        // The stale windows and negative caching, when the route has them.
                        let f = &r.freshness;
                        for (name, window) in
                            [("swr", f.stale_while_revalidate), ("sie", f.stale_if_error)]
                        {
                            if !window.is_zero() {
                                cache.push_str(&format!(",{name}={}", format_duration(window)));
                            }
                        }
                        if let Some(negative) = &f.negative {
                            cache.push_str(&format!(",neg={}", format_duration(negative.ttl)));
                        }
                        if r.compress {
                            cache.push_str(",compress");
                        }
                        if let Some(bytes) = r.max_memory {
                            cache.push_str(&format!(",max={}", format_size(bytes)));
                        }
                        cache
                    } else {
                        "pass".to_string()
                    },
                    match (r.scope, r.anonymous) {
                        (Scope::Public, _) | (_, Anonymous::Deny) => r.scope.to_string(),
                        (scope, Anonymous::Pass) => format!("{scope},anon-pass"),
                    },
                    r.tenant.to_string(),
                    join(&mut r.vary.iter().map(|h| h.to_string())),
                    r.resource.clone().unwrap_or_else(|| "-".to_string()),
                    join(&mut r.entry_tags.iter().map(|t| t.to_string())),
                    join(&mut r.write_invalidates.iter().map(|t| t.to_string())),
                ]
            })
            .collect();
        let mut widths = HEADER.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut line = |cells: &[&str]| -> fmt::Result {
            let mut text = String::new();
            for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
                if i + 1 == cells.len() {
                    text.push_str(cell);
                } else {
                    text.push_str(&format!("{cell:<width$}  "));
                }
            }
            writeln!(f, "{}", text.trim_end())
        };
        line(&HEADER)?;
        for row in &rows {
            let cells: Vec<&str> = row.iter().map(String::as_str).collect();
            line(&cells)?;
        }
        Ok(())
    }
}
