"""Lua scripts of the Redis checkpointer.

Every script receives the thread's nine checkpoint keys, in the order of
:meth:`mesh_core.adapters.redis.keys.CheckpointKeys.all`, as ``KEYS``:

    1 fence  2 latest  3 index  4 records  5 blob_fields  6 blobs  7 writes
    8 writes_index  9 runs_index

They all share the thread's hash tag, so each script runs on one node of a
cluster. Field names are ``ns \\0 checkpoint_id [\\0 ...]``; the codec rejects
NUL bytes in namespaces and ids, so fields never collide.

Writes (put, put_writes, bump_fence) first check the fence: a fencing token
lower than the stored one aborts the script before anything is written, with an
error reply starting with :data:`STALE_MARKER`. Tokens are canonical decimal
strings compared by length then digits, so they stay exact beyond 2**53.
"""

from __future__ import annotations

__all__ = [
    "BUMP_FENCE",
    "DELETE_FOR_RUNS",
    "DELETE_THREAD_FENCED",
    "FIX_LATEST",
    "GET_TUPLE",
    "PRUNE_KEEP_LAST",
    "PRUNE_KEEP_LATEST",
    "PUT",
    "PUT_STEP",
    "PUT_WRITES",
    "STALE_MARKER",
]

STALE_MARKER = "LGMESH_STALE_OWNER"

_COMMON = r"""
local function dec_gt(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end

-- nil when the write may proceed (and the token is now stored), else the stored token
local function fence(token)
  if token == "" then return nil end
  local cur = redis.call("GET", KEYS[1])
  if cur then
    if dec_gt(cur, token) then return cur end
    if cur == token then return nil end
  end
  redis.call("SET", KEYS[1], token)
  return nil
end

local function touch(ttl)
  if ttl ~= "0" then
    for i = 1, #KEYS do redis.call("PEXPIRE", KEYS[i], ttl) end
  end
end

local function hmget(key, fields)
  local out = {}
  local n = #fields
  local i = 1
  while i <= n do
    local j = math.min(i + 999, n)
    local part = redis.call("HMGET", key, unpack(fields, i, j))
    for k = 1, #part do out[#out + 1] = part[k] end
    i = j + 1
  end
  return out
end

local function drop_writes(member)
  local lo, hi = "[" .. member .. "\0", "[" .. member .. "\0\255"
  local wf = redis.call("ZRANGEBYLEX", KEYS[8], lo, hi)
  for i = 1, #wf do redis.call("HDEL", KEYS[7], wf[i]) end
  if #wf > 0 then redis.call("ZREMRANGEBYLEX", KEYS[8], lo, hi) end
end

local function drop_checkpoint(member)
  redis.call("ZREM", KEYS[3], member)
  redis.call("HDEL", KEYS[4], member)
  redis.call("HDEL", KEYS[5], member)
  drop_writes(member)
end

local function fix_latest(ns)
  local top = redis.call("ZREVRANGEBYLEX", KEYS[3], "[" .. ns .. "\0\255", "[" .. ns .. "\0",
                         "LIMIT", 0, 1)
  if top[1] then
    redis.call("HSET", KEYS[2], ns, string.sub(top[1], #ns + 2))
  else
    redis.call("HDEL", KEYS[2], ns)
  end
end
"""

# ARGV: token, ttl_ms, ns, member, record, blob_fields, run_member ("" = none),
#       then blob field/value pairs.
PUT = (
    _COMMON
    + r"""
local stale = fence(ARGV[1])
if stale then return redis.error_reply("LGMESH_STALE_OWNER " .. stale) end
local ns, member = ARGV[3], ARGV[4]
redis.call("HSET", KEYS[4], member, ARGV[5])
redis.call("HSET", KEYS[5], member, ARGV[6])
redis.call("ZADD", KEYS[3], 0, member)
if ARGV[7] ~= "" then redis.call("ZADD", KEYS[9], 0, ARGV[7]) end
for i = 8, #ARGV, 2 do redis.call("HSET", KEYS[6], ARGV[i], ARGV[i + 1]) end
fix_latest(ns)
touch(ARGV[2])
return "OK"
"""
)

# ARGV: token, ttl_ms, then (field, value, overwrite "1"/"0") triples.
PUT_WRITES = (
    _COMMON
    + r"""
local stale = fence(ARGV[1])
if stale then return redis.error_reply("LGMESH_STALE_OWNER " .. stale) end
for i = 3, #ARGV, 3 do
  if ARGV[i + 2] == "1" then
    redis.call("HSET", KEYS[7], ARGV[i], ARGV[i + 1])
  else
    redis.call("HSETNX", KEYS[7], ARGV[i], ARGV[i + 1])
  end
  redis.call("ZADD", KEYS[8], 0, ARGV[i])
end
touch(ARGV[2])
return "OK"
"""
)

# A superstep in one round trip: the step's last task's writes (to the parent checkpoint)
# and the new checkpoint, atomically.
# ARGV: token, ttl_ms, n (count of write ARGV that follow), n write ARGV as for
#       PUT_WRITES, then the PUT ARGV after (token, ttl_ms).
PUT_STEP = (
    _COMMON
    + r"""
local stale = fence(ARGV[1])
if stale then return redis.error_reply("LGMESH_STALE_OWNER " .. stale) end
local n = tonumber(ARGV[3])
for i = 4, 3 + n, 3 do
  if ARGV[i + 2] == "1" then
    redis.call("HSET", KEYS[7], ARGV[i], ARGV[i + 1])
  else
    redis.call("HSETNX", KEYS[7], ARGV[i], ARGV[i + 1])
  end
  redis.call("ZADD", KEYS[8], 0, ARGV[i])
end
local b = 4 + n
local ns, member = ARGV[b], ARGV[b + 1]
redis.call("HSET", KEYS[4], member, ARGV[b + 2])
redis.call("HSET", KEYS[5], member, ARGV[b + 3])
redis.call("ZADD", KEYS[3], 0, member)
if ARGV[b + 4] ~= "" then redis.call("ZADD", KEYS[9], 0, ARGV[b + 4]) end
for i = b + 5, #ARGV, 2 do redis.call("HSET", KEYS[6], ARGV[i], ARGV[i + 1]) end
fix_latest(ns)
touch(ARGV[2])
return "OK"
"""
)

# ARGV: token, ttl_ms.
BUMP_FENCE = (
    _COMMON
    + r"""
local stale = fence(ARGV[1])
if stale then return redis.error_reply("LGMESH_STALE_OWNER " .. stale) end
touch(ARGV[2])
return "OK"
"""
)

# ARGV: ns, checkpoint_id ("" = latest of ns).
# Returns nil or {id, record, blob_fields, {blob values}, {write values}}.
GET_TUPLE = (
    _COMMON
    + r"""
local ns, id = ARGV[1], ARGV[2]
if id == "" then
  id = redis.call("HGET", KEYS[2], ns)
  if not id then return nil end
end
local member = ns .. "\0" .. id
local rec = redis.call("HGET", KEYS[4], member)
if not rec then return nil end
local bf = redis.call("HGET", KEYS[5], member)
local blobs = {}
if bf then
  local fields = cmsgpack.unpack(bf)
  if #fields > 0 then blobs = hmget(KEYS[6], fields) end
end
local wf = redis.call("ZRANGEBYLEX", KEYS[8], "[" .. member .. "\0", "[" .. member .. "\0\255")
local writes = {}
if #wf > 0 then writes = hmget(KEYS[7], wf) end
return {id, rec, bf or "", blobs, writes}
"""
)

# ARGV: ttl_ms, then namespaces whose latest pointer must be recomputed (after a copy).
FIX_LATEST = (
    _COMMON
    + r"""
for i = 2, #ARGV do fix_latest(ARGV[i]) end
touch(ARGV[1])
return "OK"
"""
)

# ARGV: fencing token ('' = unfenced), then run ids. Drops those runs' checkpoints and
# writes (blobs may be shared: kept).
DELETE_FOR_RUNS = (
    _COMMON
    + r"""
local stale = fence(ARGV[1])
if stale then return redis.error_reply("LGMESH_STALE_OWNER " .. stale) end
local touched = {}
for a = 2, #ARGV do
  local run = ARGV[a]
  local lo, hi = "[" .. run .. "\0", "[" .. run .. "\0\255"
  local rs = redis.call("ZRANGEBYLEX", KEYS[9], lo, hi)
  for i = 1, #rs do
    local member = string.sub(rs[i], #run + 2)
    drop_checkpoint(member)
    touched[string.sub(member, 1, string.find(member, "\0", 1, true) - 1)] = true
  end
  if #rs > 0 then redis.call("ZREMRANGEBYLEX", KEYS[9], lo, hi) end
end
for ns, _ in pairs(touched) do fix_latest(ns) end
return "OK"
"""
)

# ARGV: token, keep. Keeps the newest ``keep`` checkpoints of every namespace (with
# their writes), drops the older ones and every blob only they referenced.
# Returns the number of checkpoints dropped.
PRUNE_KEEP_LAST = (
    _COMMON
    + r"""
local stale = fence(ARGV[1])
if stale then return redis.error_reply("LGMESH_STALE_OWNER " .. stale) end
local keep = tonumber(ARGV[2])
local dropped, gone, kept = 0, {}, {}
for _, ns in ipairs(redis.call("HKEYS", KEYS[2])) do
  local lo, hi = "[" .. ns .. "\0", "[" .. ns .. "\0\255"
  local members = redis.call("ZRANGEBYLEX", KEYS[3], lo, hi)
  local cut = #members - keep
  for i = 1, #members do
    local bf = redis.call("HGET", KEYS[5], members[i])
    local fields = bf and cmsgpack.unpack(bf) or {}
    if i <= cut then
      for _, f in ipairs(fields) do gone[f] = true end
      drop_checkpoint(members[i])
      dropped = dropped + 1
    else
      for _, f in ipairs(fields) do kept[f] = true end
    end
  end
end
if dropped > 0 then
  for f, _ in pairs(gone) do
    if not kept[f] then redis.call("HDEL", KEYS[6], f) end
  end
  for _, r in ipairs(redis.call("ZRANGE", KEYS[9], 0, -1)) do
    local member = string.sub(r, string.find(r, "\0", 1, true) + 1)
    if redis.call("HEXISTS", KEYS[4], member) == 0 then redis.call("ZREM", KEYS[9], r) end
  end
end
return dropped
"""
)

# No ARGV. Keeps the newest checkpoint of every namespace, its writes and its blobs.
PRUNE_KEEP_LATEST = (
    _COMMON
    + r"""
local latest = redis.call("HGETALL", KEYS[2])
local keep, keep_blobs = {}, {}
for i = 1, #latest, 2 do
  local member = latest[i] .. "\0" .. latest[i + 1]
  keep[member] = true
  local bf = redis.call("HGET", KEYS[5], member)
  if bf then
    for _, f in ipairs(cmsgpack.unpack(bf)) do keep_blobs[f] = true end
  end
end
for _, member in ipairs(redis.call("ZRANGE", KEYS[3], 0, -1)) do
  if not keep[member] then drop_checkpoint(member) end
end
for _, f in ipairs(redis.call("ZRANGE", KEYS[8], 0, -1)) do
  local p1 = string.find(f, "\0", 1, true)
  local p2 = string.find(f, "\0", p1 + 1, true)
  if not keep[string.sub(f, 1, p2 - 1)] then
    redis.call("HDEL", KEYS[7], f)
    redis.call("ZREM", KEYS[8], f)
  end
end
for _, r in ipairs(redis.call("ZRANGE", KEYS[9], 0, -1)) do
  if not keep[string.sub(r, string.find(r, "\0", 1, true) + 1)] then
    redis.call("ZREM", KEYS[9], r)
  end
end
for _, f in ipairs(redis.call("HKEYS", KEYS[6])) do
  if not keep_blobs[f] then redis.call("HDEL", KEYS[6], f) end
end
return "OK"
"""
)

# ARGV: fencing token. Deletes every key of the thread but its fence, so an owner that
# lost the thread can never write into it again: the fence outlives the checkpoints by a
# day (far beyond any lease; such an owner also stops itself once its lease ran out).
DELETE_THREAD_FENCED = (
    _COMMON
    + r"""
local stale = fence(ARGV[1])
if stale then return redis.error_reply("LGMESH_STALE_OWNER " .. stale) end
for i = 2, #KEYS do redis.call("DEL", KEYS[i]) end
redis.call("PEXPIRE", KEYS[1], 86400000)
return "OK"
"""
)
