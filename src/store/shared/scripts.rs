//! The Lua scripts: each runs in one tenant's slot, so it is atomic in a cluster too.
//!
//! Tag sets are sorted sets of entry key hexes scored by the entry's last usable instant, so
//! expired members are trimmed as sets are written and a set never outlives its last entry.
//! Loops never `unpack` a whole set: members are handled in batches of 500.

use std::sync::LazyLock;

use redis::Script;

/// Adds the entry (`member`, usable until `untilms`) to its URI set, its tag sets
/// (`KEYS[first..=last]`) and, with a path, to the path index; trims a few expired members.
const INDEX: &str = r#"
local function index(now, untilms, ttl, member, urikey, pathskey, pathexpkey, path, haspath, first, last)
  local function keep(k)
    if redis.call('PTTL', k) < ttl then redis.call('PEXPIRE', k, ttl) end
  end
  local function add(k)
    redis.call('ZADD', k, untilms, member)
    redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. now)
    keep(k)
  end
  add(urikey)
  for i = first, last do add(KEYS[i]) end
  if haspath == '1' then
    redis.call('ZADD', pathskey, 0, path)
    redis.call('ZADD', pathexpkey, 'GT', untilms, path)
    keep(pathskey)
    keep(pathexpkey)
    local old = redis.call('ZRANGEBYSCORE', pathexpkey, '-inf', '(' .. now, 'LIMIT', 0, 8)
    for _, p in ipairs(old) do
      redis.call('ZREM', pathskey, p)
      redis.call('ZREM', pathexpkey, p)
    end
  end
end
"#;

/// Store unless fenced. KEYS: fence, entry, stale marker, paths, pathexp, URI set, tag
/// sets... ARGV: ticket seq, ticket taken (ms), now (ms), until (ms), fence retention (ms),
/// value, member, path, has path ('1'/'0'), tag digests (one per tag set, same order).
/// Returns 1 stored, 0 fenced.
const STORE: &str = r#"
local fence = KEYS[1]
local ticket = tonumber(ARGV[1])
local now = tonumber(ARGV[3])
local ntags = #KEYS - 6
local seq = tonumber(redis.call('HGET', fence, '#seq') or '0')
if seq ~= ticket then
  -- The sequence went back: Redis lost its state since the ticket; nothing proves the fill safe.
  if seq < ticket then return 0 end
  if now - tonumber(ARGV[2]) > tonumber(ARGV[5]) then return 0 end
  local floor = tonumber(redis.call('HGET', fence, '#floor') or '0')
  if ticket < floor then return 0 end
  for i = 1, ntags do
    local f = redis.call('HGET', fence, ARGV[9 + i])
    if f and tonumber(f) > ticket then return 0 end
  end
end
local ttl = tonumber(ARGV[4]) - now
if ttl <= 0 then return 1 end
redis.call('SET', KEYS[2], ARGV[6], 'PX', ttl)
redis.call('DEL', KEYS[3])
index(ARGV[3], ARGV[4], ttl, ARGV[7], KEYS[6], KEYS[4], KEYS[5], ARGV[8], ARGV[9], 7, 6 + ntags)
return 1
"#;

/// Replace a stored value that is still the one read (by its SHA-1). KEYS: entry, paths,
/// pathexp, URI set, tag sets... ARGV: now, until, value, member, path, has path, old SHA-1.
/// Returns 1 replaced, 0 gone or changed.
const META: &str = r#"
local v = redis.call('GET', KEYS[1])
if not v or redis.sha1hex(v) ~= ARGV[7] then return 0 end
local ttl = tonumber(ARGV[2]) - tonumber(ARGV[1])
if ttl <= 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ttl)
index(ARGV[1], ARGV[2], ttl, ARGV[4], KEYS[4], KEYS[2], KEYS[3], ARGV[5], ARGV[6], 5, #KEYS)
return 1
"#;

/// One tenant's purge: bump the sequence, raise the fences, then remove (or mark stale) what
/// the selectors find. KEYS: fence, fenceq, paths, pathexp. ARGV: tenant key base, now,
/// fence retention, soft ('1'/'0'), then the counts of fence digests, tag-set digests, URI
/// digests and prefixes, then those lists in that order. Returns the entries purged.
pub(crate) const PURGE: &str = r#"
local fence, fenceq, paths, pathexp = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local base = ARGV[1]
local now = tonumber(ARGV[2])
local soft = ARGV[4] == '1'
local nf, nt, nu, np = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local seq = redis.call('HINCRBY', fence, '#seq', 1)
local at = 8
for _ = 1, nf do
  at = at + 1
  redis.call('HSET', fence, ARGV[at], seq)
  redis.call('ZADD', fenceq, now, ARGV[at])
end
-- Prune at least as many old fences as were raised, so the hash stays bounded.
local cutoff = now - tonumber(ARGV[3])
local old = redis.call('ZRANGEBYSCORE', fenceq, '-inf', cutoff, 'LIMIT', 0, nf + 16)
if #old > 0 then
  local floor = tonumber(redis.call('HGET', fence, '#floor') or '0')
  for _, f in ipairs(old) do
    local v = redis.call('HGET', fence, f)
    if v and tonumber(v) > floor then floor = tonumber(v) end
    redis.call('HDEL', fence, f)
    redis.call('ZREM', fenceq, f)
  end
  redis.call('HSET', fence, '#floor', floor)
end

local purged = 0
local function purge_set(k)
  if soft then
    local n = redis.call('ZCARD', k)
    for start = 0, n - 1, 500 do
      local batch = redis.call('ZRANGE', k, start, start + 499)
      for _, m in ipairs(batch) do
        local pt = redis.call('PTTL', base .. 'e:' .. m)
        if pt > 0 and redis.call('SET', base .. 's:' .. m, '1', 'PX', pt, 'NX') then
          purged = purged + 1
        end
      end
    end
  else
    while true do
      local batch = redis.call('ZRANGE', k, 0, 499)
      if #batch == 0 then break end
      for _, m in ipairs(batch) do
        purged = purged + redis.call('UNLINK', base .. 'e:' .. m)
      end
      redis.call('ZREMRANGEBYRANK', k, 0, #batch - 1)
    end
  end
end

for _ = 1, nt do
  at = at + 1
  purge_set(base .. 'g:' .. ARGV[at])
end
for _ = 1, nu do
  at = at + 1
  purge_set(base .. 'q:' .. ARGV[at])
end
for _ = 1, np do
  at = at + 1
  local p = ARGV[at]
  local lo, hi = '-', '+'
  if p ~= '' then lo, hi = '[' .. p, '[' .. p .. '\255' end
  local found = redis.call('ZRANGEBYLEX', paths, lo, hi)
  for _, path in ipairs(found) do
    purge_set(base .. 'g:' .. redis.sha1hex('path:' .. path))
    if not soft then
      redis.call('ZREM', paths, path)
      redis.call('ZREM', pathexp, path)
    end
  end
end
return purged
"#;

/// Take a lease unless someone else holds it (a filled marker does not hold it).
/// KEYS: lease. ARGV: token, ttl (ms). Returns 1 taken, 0 held.
const LEASE: &str = r#"
local v = redis.call('GET', KEYS[1])
if v and v ~= 'F' then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"#;

/// Release a lease if still ours: filled, it becomes the filled marker (so a waiter that polls
/// rather than hears the announcement still learns it was filled); then announce.
/// KEYS: lease. ARGV: token, filled ('1'/'0'), channel, message, marker ttl (ms).
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[2] == '1' then
    redis.call('SET', KEYS[1], 'F', 'PX', ARGV[5])
  else
    redis.call('DEL', KEYS[1])
  end
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
"#;

pub(crate) static STORE_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{INDEX}{STORE}")));
pub(crate) static META_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{INDEX}{META}")));
pub(crate) static PURGE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(PURGE));
pub(crate) static LEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(LEASE));
pub(crate) static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE));
