//! Purge requests: parsing and validating the JSON body shared by the webhook and the admin API.
//!
//! Two shapes are accepted. The native one names a tenant scope and any mix of tags, paths,
//! prefixes and `all`. The legacy one, `{"organization_id": "42", "resource_type": "rooms"}`, is
//! what the backends' existing cache managers already send. Everything is checked before anything
//! is purged, so a request is either applied whole or refused whole with a message saying why.

use std::collections::HashSet;

use crate::admin_api::{OrgId, PurgeBody as Wire};
use crate::policy::cache_key::normalize;
use crate::policy::tag::Tag;
use crate::policy::tenant::MAX_TENANT_LEN;

#[cfg(test)]
mod tests;

/// The most items accepted in each of `tags`, `paths` and `prefixes`.
pub const MAX_ITEMS: usize = 1000;

/// The longest tag accepted, in bytes.
pub const MAX_TAG_LEN: usize = 256;

/// The longest `nonce` accepted, in bytes.
pub const MAX_NONCE_LEN: usize = 128;

/// Echoed client values are cut to this many characters, so a 400 body stays small.
const ECHO_LEN: usize = 80;

/// Which tenants a purge touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantSel {
    /// The shared scope: entries of routes not keyed by tenant (public, `tenant = "none"`).
    Shared,
    /// One tenant, by id.
    One(String),
    /// Every tenant: `"tenant": "*"`.
    All,
}

/// A validated purge request, from the webhook or the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeRequest {
    /// The tenant scope every other field applies to.
    pub tenant: TenantSel,
    /// Store tags; `R:*` is the whole-resource tag of resource `R`.
    pub tags: Vec<String>,
    /// Normalized exact targets: `/p` purges every query variant of `/p`, `/p?q` only that one.
    pub paths: Vec<String>,
    /// Normalized path prefixes, without a query.
    pub prefixes: Vec<String>,
    /// Everything in the tenant scope.
    pub all: bool,
    /// Mark matching entries stale instead of deleting them.
    pub soft: bool,
    /// `"credential_cache": "all"`: forget every verified credential, so each caller is verified
    /// again on its next request (a role change for everybody).
    pub forget_credentials: bool,
    /// `"user": "<id>"`: forget that user's verified credentials and purge the user's entries of
    /// `scope = "user"` routes within the tenant scope (a logout).
    pub user: Option<String>,
}

/// Why a purge body was refused; `Display` is the message for the 400 body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPurge(pub String);

impl std::fmt::Display for BadPurge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadPurge {}

impl PurgeRequest {
    /// Parses and validates a JSON body. `resources` = the route resource names known to the config,
    /// used to validate `resource_type` (unknown -> error naming the known ones).
    pub fn from_json(body: &[u8], resources: &[&str]) -> Result<PurgeRequest, BadPurge> {
        // Syntax is checked on its own first: inside a field, a syntax error would otherwise come
        // back wrapped as a data error and lose its position.
        serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(json_error)?;
        // A derived struct also deserializes from a JSON array, by position; only an object names
        // its fields, so anything else is refused before it could be read that way.
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(BadPurge("the body must be a json object".to_owned()));
        }
        let wire: Wire = serde_json::from_slice(body).map_err(json_error)?;
        if let Some(nonce) = &wire.nonce {
            if nonce.len() > MAX_NONCE_LEN {
                return Err(BadPurge(format!(
                    "field \"nonce\": longer than {MAX_NONCE_LEN} bytes"
                )));
            }
        }
        let legacy = wire.organization_id.is_some() || wire.resource_type.is_some();
        let request = if legacy {
            from_legacy(wire, resources)?
        } else {
            from_native(wire)?
        };
        if request.is_empty() {
            return Err(BadPurge(
                "nothing to purge: give tags, paths, prefixes, \"all\": true, \"user\" or \"credential_cache\": \"all\"".to_owned(),
            ));
        }
        if request.all && request.tenant == TenantSel::Shared {
            // A body of just `{"all": true}` most likely means "everything", yet without a tenant
            // it would only reach the shared scope; asking for "*" removes the doubt.
            return Err(BadPurge(
                "\"all\": true needs a tenant: give \"tenant\": \"*\" for every tenant".to_owned(),
            ));
        }
        Ok(request)
    }

    /// Whether the request selects nothing to purge.
    pub fn is_empty(&self) -> bool {
        !self.all
            && self.tags.is_empty()
            && self.paths.is_empty()
            && self.prefixes.is_empty()
            && !self.forget_credentials
            && self.user.is_none()
    }

    /// A short description for people (the recent purges `/stats` lists):
    /// `tenant=42 tags=[rooms, course:7] soft`. Lists show their first few items, long values
    /// are cut.
    pub fn describe(&self) -> String {
        const SHOWN: usize = 3;
        const LEN: usize = 60;
        let mut parts = vec![match &self.tenant {
            TenantSel::Shared => "shared".to_owned(),
            TenantSel::One(id) => format!("tenant={}", cut(id, LEN)),
            TenantSel::All => "tenant=*".to_owned(),
        }];
        for (name, items) in [
            ("tags", &self.tags),
            ("paths", &self.paths),
            ("prefixes", &self.prefixes),
        ] {
            if items.is_empty() {
                continue;
            }
            let mut shown: Vec<String> = items.iter().take(SHOWN).map(|i| cut(i, LEN)).collect();
            if items.len() > SHOWN {
                shown.push(format!("+{} more", items.len() - SHOWN));
            }
            parts.push(format!("{name}=[{}]", shown.join(", ")));
        }
        if self.all {
            parts.push("all".to_owned());
        }
        if let Some(user) = &self.user {
            parts.push(format!("user={}", cut(user, LEN)));
        }
        if self.forget_credentials {
            parts.push("credential_cache=all".to_owned());
        }
        if self.soft {
            parts.push("soft".to_owned());
        }
        parts.join(" ")
    }
}

fn from_native(wire: Wire) -> Result<PurgeRequest, BadPurge> {
    let tenant = match wire.tenant.as_deref() {
        None => TenantSel::Shared,
        Some("*") => TenantSel::All,
        Some(id) => TenantSel::One(tenant_id("tenant", id)?),
    };
    let forget_credentials = match wire.credential_cache.as_deref() {
        None => false,
        Some("all") => true,
        Some(other) => {
            return Err(BadPurge(format!(
                "field \"credential_cache\": expected \"all\", not {}",
                echo(other)
            )))
        }
    };
    let user = match wire.user {
        None => None,
        Some(user) => Some(
            user_id(&user)
                .map_err(|why| BadPurge(format!("field \"user\": {} {why}", echo(&user))))?,
        ),
    };
    Ok(PurgeRequest {
        tenant,
        tags: list("tags", wire.tags, tag)?,
        paths: list("paths", wire.paths, path)?,
        prefixes: list("prefixes", wire.prefixes, prefix)?,
        all: wire.all.unwrap_or(false),
        soft: wire.soft.unwrap_or(false),
        forget_credentials,
        user,
    })
}

fn from_legacy(wire: Wire, resources: &[&str]) -> Result<PurgeRequest, BadPurge> {
    let native = [
        ("tenant", wire.tenant.is_some()),
        ("tags", wire.tags.is_some()),
        ("paths", wire.paths.is_some()),
        ("prefixes", wire.prefixes.is_some()),
        ("all", wire.all.is_some()),
        ("soft", wire.soft.is_some()),
        ("credential_cache", wire.credential_cache.is_some()),
        ("user", wire.user.is_some()),
    ];
    if let Some((name, _)) = native.iter().find(|(_, present)| *present) {
        return Err(BadPurge(format!(
            "field \"{name}\" cannot be mixed with \"organization_id\"/\"resource_type\": use one shape"
        )));
    }
    let Some(resource) = wire.resource_type else {
        return Err(BadPurge(
            "field \"organization_id\" needs \"resource_type\" (a resource name or \"all\")"
                .to_owned(),
        ));
    };
    // The legacy shape has no "*": purging every tenant is asked for in the native shape only.
    let tenant = match wire.organization_id {
        None => TenantSel::Shared,
        Some(OrgId::Text(id)) => TenantSel::One(tenant_id("organization_id", &id)?),
        Some(OrgId::Number(n)) => TenantSel::One(n.to_string()),
    };
    let mut request = PurgeRequest {
        tenant,
        tags: Vec::new(),
        paths: Vec::new(),
        prefixes: Vec::new(),
        all: false,
        soft: false,
        forget_credentials: false,
        user: None,
    };
    if resource == "all" {
        request.all = true;
    } else if resources.contains(&resource.as_str()) {
        request.tags.push(format!("{resource}:*"));
    } else {
        let mut known: Vec<String> = resources.iter().map(|r| format!("\"{r}\"")).collect();
        known.push("\"all\"".to_owned());
        return Err(BadPurge(format!(
            "field \"resource_type\": unknown resource {}, expected one of {}",
            echo(&resource),
            known.join(", ")
        )));
    }
    Ok(request)
}

/// Validates every item of an optional list, keeping the first occurrence of each result.
fn list(
    name: &str,
    items: Option<Vec<String>>,
    validate: fn(&str) -> Result<String, String>,
) -> Result<Vec<String>, BadPurge> {
    let items = items.unwrap_or_default();
    if items.len() > MAX_ITEMS {
        return Err(BadPurge(format!(
            "field \"{name}\": {} items, at most {MAX_ITEMS} allowed",
            items.len()
        )));
    }
    let mut seen = HashSet::with_capacity(items.len());
    let mut out = Vec::with_capacity(items.len());
    for item in &items {
        let valid = validate(item)
            .map_err(|why| BadPurge(format!("field \"{name}\": {}: {why}", echo(item))))?;
        if seen.insert(valid.clone()) {
            out.push(valid);
        }
    }
    Ok(out)
}

/// The tenant id rule of `crate::policy::tenant`, applied to a value that needs no decoding.
fn tenant_id(name: &str, id: &str) -> Result<String, BadPurge> {
    let why = if id.is_empty() {
        Some("empty; omit the field for the shared scope")
    } else if id.len() > MAX_TENANT_LEN {
        Some("too long")
    } else if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some("bad character")
    } else {
        None
    };
    match why {
        None => Ok(id.to_owned()),
        Some(why) => Err(BadPurge(format!(
            "{name} {}: {why}; a tenant id is 1 to {MAX_TENANT_LEN} of [A-Za-z0-9._-]",
            echo(id)
        ))),
    }
}

fn tag(tag: &str) -> Result<String, String> {
    if tag.is_empty() {
        return Err("empty tag".to_owned());
    }
    if tag.len() > MAX_TAG_LEN {
        return Err(format!("longer than {MAX_TAG_LEN} bytes"));
    }
    if tag
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ',')
    {
        return Err("whitespace, control characters and commas are not allowed".to_owned());
    }
    // The store gives every entry the tags `*` and `path:<path>` (and `user:<id>` on user
    // routes). Asking for them by name would bypass the tenant rule of "all", the normalization
    // of "paths" and the credential handling of "user", so the dedicated fields are required.
    match Tag::parse(tag) {
        Tag::Tenant => Err("use \"all\": true for the whole tenant".to_owned()),
        Tag::Path(_) => Err("use \"paths\" to purge by path".to_owned()),
        Tag::User(_) => Err("use \"user\" to purge a user's entries".to_owned()),
        Tag::Named(_) => Ok(tag.to_owned()),
    }
}

/// A user id as the credential names it: any printable text up to 256 bytes.
fn user_id(raw: &str) -> Result<String, String> {
    if raw.is_empty() || raw.len() > 256 {
        return Err("must be 1 to 256 bytes".to_owned());
    }
    if raw.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(raw.to_owned())
}

fn path(raw: &str) -> Result<String, String> {
    let (p, q) = match raw.split_once('?') {
        Some((_, "")) => {
            // `/p?` would normalize to `/p`, which means every query variant: refuse instead of
            // widening the purge behind the client's back.
            return Err("empty query; omit the \"?\" to purge every query variant".to_owned());
        }
        Some((p, q)) => (p, Some(q)),
        None => (raw, None),
    };
    let target = normalize(p, q).map_err(|e| e.as_str().to_owned())?;
    Ok(target.path_and_query())
}

fn prefix(raw: &str) -> Result<String, String> {
    if raw.contains('?') {
        return Err("a prefix cannot hold a query".to_owned());
    }
    let target = normalize(raw, None).map_err(|e| e.as_str().to_owned())?;
    Ok(target.path.into_owned())
}

/// A client value for an error message: quoted and escaped, and cut when long.
fn echo(value: &str) -> String {
    if value.chars().count() <= ECHO_LEN {
        format!("{value:?}")
    } else {
        let cut: String = value.chars().take(ECHO_LEN).collect();
        format!("{cut:?}...")
    }
}

/// Turns a serde error into a short message: syntax errors keep their position, which helps
/// find a stray comma; data errors name the field instead, so the position is dropped.
fn json_error(e: serde_json::Error) -> BadPurge {
    use serde_json::error::Category;
    let text = strip_positions(&e.to_string()).replace('`', "\"");
    let text = cut(&text, 300);
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => BadPurge(format!(
            "malformed json at line {} column {}: {text}",
            e.line(),
            e.column()
        )),
        Category::Data => BadPurge(text),
    }
}

/// Removes every " at line N column M" that serde_json appended, possibly more than once when
/// an error passed through a field wrapper.
fn strip_positions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(" at line ") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + " at line ".len()..];
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        let after_line = &tail[digits..];
        match after_line.strip_prefix(" column ") {
            Some(col) if digits > 0 => {
                let col_digits = col.bytes().take_while(u8::is_ascii_digit).count();
                rest = &col[col_digits..];
            }
            _ => {
                out.push_str(" at line ");
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(max).collect();
        out.push_str("...");
        out
    }
}
