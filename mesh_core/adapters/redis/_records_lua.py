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
    "FINISH_RUN",
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

# Create a thread record if absent; returns 1 if created, 0 if it existed.
# KEYS: thread, tenant threads index. ARGV: now, thread_id, then hash fields.
CREATE_THREAD = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
return 1
"""

# Admit a run on its thread under a multitask strategy, in one step.
# KEYS: 1 thread, 2 run, 3 thread_runs, 4 active_runs, 5 run_index, 6 queue
# ARGV: 1 run_id, 2 now, 3 scoped thread, 4 strategy, 5 "1" if the run resumes an
#       interrupt (the thread must be interrupted), 6.. run hash fields
# Returns {outcome, active_run, superseded}: outcome is
#   running   - the run has the thread (recorded as running)
#   queued    - recorded as pending, waiting behind active_run
#   rejected  - not recorded (strategy reject, thread busy)
#   no_thread - not recorded (the thread does not exist)
#   no_interrupt - not recorded (a resume, but the thread is not interrupted; active_run
#                  is then the thread's status)
#   existing  - recorded earlier (a retried call): active_run = its status
# interrupt / rollback cancel every queued run at once (superseded, comma-separated)
# and ask the active run to stop (its cancel_action field).
ADMIT_RUN = (
    _COMMON
    + r"""
local existing = redis.call('HGET', KEYS[2], 'status')
if existing and existing ~= 'scheduled' then return {'existing', existing, ''} end
if redis.call('EXISTS', KEYS[1]) == 0 then return {'no_thread', '', ''} end
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
redis.call('HSET', KEYS[2], unpack(ARGV, 6))
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
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

# End a run. KEYS: 1 run, 2 thread, 3 active_runs, 4 queue.
# ARGV: 1 run_id, 2 owner ('' = any), 3 thread status, 4 now, 5.. fields to set.
# Returns 1 (ended), 0 (another owner has it: nothing written), -1 (it had ended already).
FINISH_RUN = r"""
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return 0 end
if st ~= 'pending' and st ~= 'running' and st ~= 'scheduled' then return -1 end
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('LREM', KEYS[4], 0, ARGV[1])
if redis.call('HGET', KEYS[2], 'active_run') == ARGV[1] then
  redis.call('HSET', KEYS[2], 'active_run', '', 'status', ARGV[3], 'updated_at', ARGV[4])
end
return 1
"""

# Ask a run to stop. KEYS: 1 run, 2 thread, 3 active_runs, 4 queue.
# ARGV: 1 run_id, 2 action (interrupt | rollback), 3 now.
# A pending run is cancelled at once; a running one gets cancel_action (its driver, or
# whoever resumes it, ends it). Returns the run's status afterwards ('' if missing).
REQUEST_CANCEL = r"""
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return '' end
if st == 'pending' or st == 'scheduled' then
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'updated_at', ARGV[3])
  redis.call('HDEL', KEYS[3], ARGV[1])
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

# Forget a run (rollback). KEYS: 1 run, 2 thread, 3 active_runs, 4 queue, 5 thread_runs,
# 6 run_index. ARGV: 1 run_id, 2 owner ('' = any), 3 now. Returns 1, or 0 if the owner
# does not match.
DELETE_RUN = r"""
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1], KEYS[6])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('LREM', KEYS[4], 0, ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
if redis.call('HGET', KEYS[2], 'active_run') == ARGV[1] then
  redis.call('HSET', KEYS[2], 'active_run', '', 'status', 'idle', 'updated_at', ARGV[3])
end
return 1
"""

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
