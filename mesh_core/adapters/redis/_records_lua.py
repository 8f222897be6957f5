"""Lua scripts of the run and thread records (mesh_core.adapters.redis.records).

Every script touches one thread's keys (one hash tag) plus the global ``active_runs``
hash and the run index, so admission, turn-taking and ending a run are each one
atomic step: no lock is held anywhere while a run waits for its turn.

Statuses: ``pending`` (queued), ``running``, then one of ``success``, ``error``,
``interrupted``, ``cancelled``. A delayed run is ``scheduled`` (shown as pending) until
it is due: then it is admitted like any run. A thread's ``active_run`` is the run that has the
thread now; runs waiting for it are in the thread's queue (a list, FIFO).
"""

from __future__ import annotations

__all__ = [
    "ADMIT_RUN",
    "CLAIM_TURN",
    "CREATE_THREAD",
    "DELETE_RUN",
    "DELETE_THREAD",
    "FINISH_RUN",
    "READ_HASH",
    "REQUEST_CANCEL",
    "SCHEDULE_RUN",
]

# Shared helpers. ``run_key(id)`` derives another run's key of the same thread from
# KEYS[2] (this run's key) and ARGV[1] (this run's id).
_COMMON = r"""
local function run_key(id)
  return string.sub(KEYS[2], 1, string.len(KEYS[2]) - string.len(ARGV[1])) .. id
end
local function is_active(st)
  return st == 'pending' or st == 'running'
end
local function status_of(id)
  if not id or id == '' then return false end
  return redis.call('HGET', run_key(id), 'status')
end
"""

# A tenant's accepted, unfinished runs: a sorted set of "<scoped thread>|<run id>" (by
# admission time), the last KEYS entry of every script that starts or ends a run. The
# scoped thread is read from the thread key (``<prefix>:{<scoped>}:thread``).
_TENANT_ACTIVE = r"""
local function tenant_member(thread_key, run_id)
  return string.match(thread_key, '{(.*)}') .. '|' .. run_id
end
"""

# A record (thread or run) as a flat list of fields and values: a script, so the read
# takes the lean pipelined connections of every run's writes (``_lean``), not redis-py's.
# KEYS: the record.
READ_HASH = "return redis.call('HGETALL', KEYS[1])"

# Create a thread record if absent; returns 1 if created, 0 if it existed.
# KEYS: thread, tenant threads index. ARGV: now, thread_id, then hash fields.
CREATE_THREAD = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
return 1
"""

# Admit a run on its thread under a multitask strategy, in one step.
# KEYS: 1 thread, 2 run, 3 thread_runs, 4 active_runs, 5 run_index, 6 queue,
#       7 tenant's active runs (zset), 8 tenant's creation-rate bucket (hash)
# ARGV: 1 run_id, 2 now, 3 scoped thread, 4 strategy, 5 "1" if the run resumes an
#       interrupt (the thread must be interrupted), 6 the tenant's concurrent-run limit
#       (0: none), 7 its runs per second (0: none), 8 its burst, 9 the key prefix,
#       10.. run hash fields
# Returns {outcome, active_run, superseded}: outcome is
#   running   - the run has the thread (recorded as running)
#   queued    - recorded as pending, waiting behind active_run
#   rejected  - not recorded (strategy reject, thread busy)
#   no_thread - not recorded (the thread does not exist)
#   no_interrupt - not recorded (a resume, but the thread is not interrupted; active_run
#                  is then the thread's status)
#   existing  - recorded earlier (a retried call): active_run = its status
#   quota     - not recorded: the tenant is at a limit (active_run names it:
#               concurrent_runs or runs_per_second; superseded is the seconds to wait)
# interrupt / rollback cancel every queued run at once (superseded, comma-separated)
# and ask the active run to stop (its cancel_action field). A delayed run coming due
# was accepted when it was scheduled: it is counted, never refused.
ADMIT_RUN = (
    _COMMON
    + _TENANT_ACTIVE
    + r"""
local existing = redis.call('HGET', KEYS[2], 'status')
if existing and existing ~= 'scheduled' then return {'existing', existing, ''} end
if redis.call('EXISTS', KEYS[1]) == 0 then return {'no_thread', '', ''} end
local member = tenant_member(KEYS[1], ARGV[1])
local active = redis.call('HGET', KEYS[1], 'active_run') or ''
if not is_active(status_of(active)) then active = '' end
local waiting = {}
for _, id in ipairs(redis.call('LRANGE', KEYS[6], 0, -1)) do
  if id ~= active and is_active(status_of(id)) then table.insert(waiting, id) end
end
local strategy = ARGV[4]
local busy = active ~= '' or #waiting > 0
if ARGV[5] == '1' and not (busy and strategy == 'enqueue') then
  local tst = redis.call('HGET', KEYS[1], 'status') or ''
  if tst ~= 'interrupted' then return {'no_interrupt', tst, ''} end
end
if busy and strategy == 'reject' then return {'rejected', active, ''} end
if existing ~= 'scheduled' then
  local limit = tonumber(ARGV[6])
  if limit > 0 and redis.call('ZCARD', KEYS[7]) >= limit then
    -- forget runs that ended without leaving (a record deleted with its thread)
    for _, m in ipairs(redis.call('ZRANGE', KEYS[7], 0, -1)) do
      local scoped, id = string.match(m, '^(.*)|([^|]*)$')
      local st = scoped and redis.call('HGET', ARGV[9] .. ':{' .. scoped .. '}:run:' .. id, 'status')
      if not is_active(st) and st ~= 'scheduled' then redis.call('ZREM', KEYS[7], m) end
    end
    if redis.call('ZCARD', KEYS[7]) >= limit then return {'quota', 'concurrent_runs', ''} end
  end
  local rate = tonumber(ARGV[7])
  if rate > 0 then
    local burst = tonumber(ARGV[8])
    local t = redis.call('TIME')
    local clock = tonumber(t[1]) + tonumber(t[2]) / 1000000
    local tokens = tonumber(redis.call('HGET', KEYS[8], 'tokens') or burst)
    local since = tonumber(redis.call('HGET', KEYS[8], 'at') or clock)
    tokens = math.min(burst, tokens + math.max(0, clock - since) * rate)
    if tokens < 1 then
      return {'quota', 'runs_per_second', tostring((1 - tokens) / rate)}
    end
    redis.call('HSET', KEYS[8], 'tokens', tostring(tokens - 1), 'at', tostring(clock))
    redis.call('PEXPIRE', KEYS[8], math.ceil(burst / rate * 1000) + 1000)
  end
end
redis.call('HSET', KEYS[2], unpack(ARGV, 10))
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[7], ARGV[2], member)
redis.call('SET', KEYS[5], ARGV[3])
redis.call('DEL', KEYS[6])
if not busy then
  redis.call('HSET', KEYS[1], 'active_run', ARGV[1], 'status', 'busy', 'updated_at', ARGV[2])
  redis.call('HSET', KEYS[2], 'status', 'running')
  return {'running', ARGV[1], ''}
end
redis.call('HSET', KEYS[2], 'status', 'pending')
local superseded = ''
if strategy == 'interrupt' or strategy == 'rollback' then
  for _, id in ipairs(waiting) do
    redis.call('HSET', run_key(id), 'status', 'cancelled', 'updated_at', ARGV[2])
    redis.call('HDEL', KEYS[4], id)
    redis.call('ZREM', KEYS[7], tenant_member(KEYS[1], id))
  end
  superseded = table.concat(waiting, ',')
  if active ~= '' then redis.call('HSET', run_key(active), 'cancel_action', strategy) end
else
  for _, id in ipairs(waiting) do redis.call('RPUSH', KEYS[6], id) end
end
redis.call('RPUSH', KEYS[6], ARGV[1])
return {'queued', active, superseded}
"""
)

# A waiting (or resumed) run asks for the thread.
# KEYS: 1 thread, 2 run, 3 queue. ARGV: 1 run_id, 2 now, 3 owner, 4 attempts to add
# Returns {state, other}: 'running' (it has the thread now), 'waiting' (other has it
# or is ahead in the queue), 'missing', or the run's terminal status.
CLAIM_TURN = (
    _COMMON
    + r"""
local st = redis.call('HGET', KEYS[2], 'status')
if not st then return {'missing', ''} end
if not is_active(st) then return {st, ''} end
local active = redis.call('HGET', KEYS[1], 'active_run') or ''
if active ~= ARGV[1] then
  if active ~= '' and is_active(status_of(active)) then return {'waiting', active} end
  while true do
    local head = redis.call('LINDEX', KEYS[3], 0)
    if not head then break end
    if is_active(status_of(head)) then
      if head ~= ARGV[1] then return {'waiting', head} end
      break
    end
    redis.call('LPOP', KEYS[3])
  end
  redis.call('LREM', KEYS[3], 0, ARGV[1])
  redis.call('HSET', KEYS[1], 'active_run', ARGV[1], 'status', 'busy', 'updated_at', ARGV[2])
end
redis.call('HSET', KEYS[2], 'status', 'running', 'updated_at', ARGV[2], 'owner', ARGV[3])
if ARGV[4] ~= '0' then redis.call('HINCRBY', KEYS[2], 'attempts', ARGV[4]) end
return {'running', ARGV[1]}
"""
)

# End a run. KEYS: 1 run, 2 thread, 3 active_runs, 4 queue, 5 tenant's active runs.
# ARGV: 1 run_id, 2 owner ('' = any), 3 thread status, 4 now, 5.. fields to set.
# Returns 1 (ended), 0 (another owner has it: nothing written), -1 (it had ended already).
FINISH_RUN = (
    _TENANT_ACTIVE
    + r"""
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return 0 end
if st ~= 'pending' and st ~= 'running' and st ~= 'scheduled' then return -1 end
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[5], tenant_member(KEYS[2], ARGV[1]))
redis.call('LREM', KEYS[4], 0, ARGV[1])
if redis.call('HGET', KEYS[2], 'active_run') == ARGV[1] then
  redis.call('HSET', KEYS[2], 'active_run', '', 'status', ARGV[3], 'updated_at', ARGV[4])
end
return 1
"""
)

# Ask a run to stop. KEYS: 1 run, 2 thread, 3 active_runs, 4 queue, 5 tenant's active runs.
# ARGV: 1 run_id, 2 action (interrupt | rollback), 3 now.
# A pending run is cancelled at once; a running one gets cancel_action (its driver, or
# whoever resumes it, ends it). Returns the run's status afterwards ('' if missing).
REQUEST_CANCEL = (
    _TENANT_ACTIVE
    + r"""
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return '' end
if st == 'pending' or st == 'scheduled' then
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'updated_at', ARGV[3])
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[5], tenant_member(KEYS[2], ARGV[1]))
  redis.call('LREM', KEYS[4], 0, ARGV[1])
  if redis.call('HGET', KEYS[2], 'active_run') == ARGV[1] then
    redis.call('HSET', KEYS[2], 'active_run', '', 'status', 'idle', 'updated_at', ARGV[3])
  end
  return 'cancelled'
end
if st == 'running' then
  redis.call('HSET', KEYS[1], 'cancel_action', ARGV[2])
end
return st
"""
)

# Forget a run (rollback). KEYS: 1 run, 2 thread, 3 active_runs, 4 queue, 5 thread_runs,
# 6 run_index, 7 tenant's active runs. ARGV: 1 run_id, 2 owner ('' = any), 3 now. Returns 1, or 0 if the owner
# does not match.
DELETE_RUN = (
    _TENANT_ACTIVE
    + r"""
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1], KEYS[6])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[7], tenant_member(KEYS[2], ARGV[1]))
redis.call('LREM', KEYS[4], 0, ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
if redis.call('HGET', KEYS[2], 'active_run') == ARGV[1] then
  redis.call('HSET', KEYS[2], 'active_run', '', 'status', 'idle', 'updated_at', ARGV[3])
end
return 1
"""
)

# Record a delayed run (status ``scheduled``) and put it on the schedule, in one step.
# KEYS: 1 thread, 2 run, 3 thread_runs, 4 run_index, 5 schedule (zset), 6 schedule data
# ARGV: 1 run_id, 2 now, 3 scoped thread, 4 due time, 5 job payload, 6.. run hash fields
# Returns 1, 0 if the thread does not exist, -1 if the run exists already.
SCHEDULE_RUN = r"""
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
redis.call('HSET', KEYS[2], unpack(ARGV, 6))
redis.call('HSET', KEYS[2], 'status', 'scheduled')
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('SET', KEYS[4], ARGV[3])
redis.call('HSET', KEYS[6], ARGV[1], ARGV[5])
redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1])
return 1
"""

# Delete a thread's records and every run of it, in one step.
# KEYS: 1 thread, 2 tenant threads index, 3 thread_runs, 4 queue, 5 active_runs,
#       6 tenant's active runs (zset)
# ARGV: 1 thread_id, 2 a run key of the thread without its run id, 3 the run index key
#       without its run id. Returns 1 if the thread record existed, else 0.
DELETE_THREAD = (
    _TENANT_ACTIVE
    + r"""
for _, id in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  redis.call('DEL', ARGV[2] .. id, ARGV[3] .. id)
  redis.call('HDEL', KEYS[5], id)
  redis.call('ZREM', KEYS[6], tenant_member(KEYS[1], id))
end
local existed = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3], KEYS[4])
return existed
"""
)
