-- ml_batch.lua — buy GPU workers next to the job master when a training job starts, give
-- every one of them back when it ends.
--
-- Jobs come from the master (plugins/jobs_http): job_started / job_queued / job_done /
-- job_failed events through on_event, and the "jobs" metric (one sample per job, labels
-- {id, state[, priority]}, value = workers) read on every tick, so a lost event costs one
-- tick at most. Each running job gets its own share of the workers group, bought as a gang:
-- all `workers` units ready within gang_deadline_s, or its share drops back to 0 (the
-- planner cancels what is still being bought and releases what is ready) and the job is
-- retried after retry_after_s. A finished job's share drops to 0 at once; a job that is not
-- seen running for idle_timeout_s (it vanished, or the master stopped answering) loses its
-- workers too. Jobs wait in FIFO order (or by their priority label) while the budget cap,
-- the GPU cap or the group's max is reached. Placement is pinned by the group's
-- "providers"/"provider_env" (the master's provider); this policy only chooses counts.
--
-- Desired counts are targets, not increments, and units being bought count as capacity:
-- returning the same share every tick while the marketplace is slow buys nothing twice.
--
-- params: group ("workers"), region (default: the group's only region), jobs_metric
--   ("jobs"), gpus_metric ("jobs_gpus"; false to skip), gang_deadline_s (600),
--   retry_after_s (300), max_attempts (0: retry forever), idle_timeout_s (600),
--   max_usd_hour (0: no cap), max_gpus (0: no cap), order ("fifo" or "priority"),
--   gpus_per_worker (1: for jobs that do not say), provision_queued (false: only running
--   jobs get workers), forget_after_s (3600: how long finished jobs are remembered),
--   queue_metric (false: off), queue_workers (1), queue_label ("job"), max_queue_jobs (100).
--
-- Jobs from a queue-depth gauge (e.g. metrics_prometheus with
-- `training_queue_depth{job="bert",workers="4"}`): set queue_metric to the metric's name
-- (and jobs_metric = false when there is no job list). Each row is a kind of job: its
-- value is how many such jobs want workers now, each a job of its own with a gang of the
-- row's `workers` label (queue_workers when absent; `gpus_per_worker` label optional),
-- named by its queue_label label (`exported_job` first: Prometheus renames a target's own
-- `job` label so, with honor_labels off). A deeper queue starts gangs; a shallower
-- one finishes the newest first (release, as for job_done), so a drained queue gives
-- every worker back. Such jobs get fresh ids ("bert#7"), never reused.

local TERMINAL = { done = true, failed = true }
local EVENT_STATE = { job_started = "running", job_queued = "queued", job_done = "done",
                      job_failed = "failed" }

local function settings(ctx)
  local p = ctx.params
  local s = {
    group = p.group or "workers",
    jobs_metric = p.jobs_metric or "jobs",
    gpus_metric = p.gpus_metric == nil and "jobs_gpus" or p.gpus_metric,
    gang_deadline_s = p.gang_deadline_s or 600,
    retry_after_s = p.retry_after_s or 300,
    max_attempts = p.max_attempts or 0,
    idle_timeout_s = p.idle_timeout_s or 600,
    max_usd_hour = p.max_usd_hour or 0,
    max_gpus = p.max_gpus or 0,
    order = p.order or "fifo",
    gpus_per_worker = p.gpus_per_worker or 1,
    provision_queued = p.provision_queued == true,
    forget_after_s = p.forget_after_s or 3600,
    queue_metric = p.queue_metric or false,
    queue_workers = p.queue_workers or 1,
    queue_label = p.queue_label or "job",
    max_queue_jobs = p.max_queue_jobs or 100,
  }
  if p.jobs_metric == false then
    s.jobs_metric = false
  end
  if s.order ~= "fifo" and s.order ~= "priority" then
    error("params.order: expected \"fifo\" or \"priority\", got " .. tostring(s.order))
  end
  return s
end

local function region_of(ctx, s)
  if ctx.params.region then
    return ctx.params.region
  end
  local g = ctx.groups[s.group]
  if g == nil then
    error("params.group: no group '" .. s.group .. "' in the configuration")
  end
  if #g.regions == 1 then
    return g.regions[1]
  end
  error("params.region is required: group '" .. s.group .. "' allows "
        .. (#g.regions == 0 and "any region" or "several regions"))
end

local function count(value)
  local n = tonumber(value) or 0
  if n < 0 or n ~= n then
    return 0
  end
  return math.floor(n)
end

local function state_of(ctx)
  local st = ctx.state
  st.jobs = st.jobs or {}
  st.seq = st.seq or 0
  return st
end

-- One observation of a job, from an event or the job list. States only move forward
-- (queued → running → done|failed): a stale list cannot undo a newer event, and a job
-- that is no longer seen running keeps its workers only until idle_timeout_s.
local function observe(ctx, s, id, state, workers, gpus, priority)
  local st = state_of(ctx)
  local job = st.jobs[id]
  if job ~= nil and job.phase == "ended" then
    -- A finished job stays finished (a list older than the event may still say running);
    -- one that only went silent comes back when it is seen running again.
    if job.note ~= "idle" or state ~= "running" then
      return
    end
    ctx.log("job %s is running again", id)
    job.phase = "wait"
    job.state = "running"
    job.ended = nil
    job.note = nil
  end
  if job == nil then
    if TERMINAL[state] then
      return -- finished before we ever saw it: nothing to release
    end
    st.seq = st.seq + 1
    job = { id = id, seq = st.seq, state = state, phase = "wait", seen = ctx.now,
            attempts = 0, first = ctx.now }
    st.jobs[id] = job
  end
  if TERMINAL[job.state] then
    return -- told it finished (an event is newer than the list it raced with)
  end
  if TERMINAL[state] then
    job.state = state
    return
  end
  if state == "running" then
    job.state = "running"
    job.seen = ctx.now
  elseif job.state ~= "running" then
    job.state = "queued"
    job.seen = ctx.now
  end
  if workers ~= nil then
    job.workers = count(workers)
  end
  if gpus ~= nil then
    job.gpus = count(gpus)
  end
  if priority ~= nil then
    job.priority = tonumber(priority) or 0
  end
end

local function read_job_list(ctx, s)
  local st = state_of(ctx)
  local rows, err = ctx.metrics.query(s.jobs_metric)
  if rows == nil then
    if st.list_error ~= err then
      -- Only a warning while workers depend on it (at start the first poll is pending).
      local holding = false
      for _, job in pairs(st.jobs) do
        holding = holding or job.phase == "gang" or job.phase == "up"
      end
      local say = holding and ctx.warn or ctx.log
      say("no job list (%s): jobs keep their last known state; workers of jobs not seen "
          .. "running for %ds are released", tostring(err), s.idle_timeout_s)
    end
    st.list_error = err
    return
  end
  if st.list_error ~= nil then
    ctx.log("job list is back")
    st.list_error = nil
  end
  local gpus = {}
  if s.gpus_metric then
    local grows = ctx.metrics.query(s.gpus_metric)
    for _, row in ipairs(grows or {}) do
      gpus[row.labels.id or ""] = row.value
    end
  end
  for _, row in ipairs(rows) do
    local id = row.labels.id
    local state = row.labels.state
    if id ~= nil and state ~= nil then
      local workers = count(row.value)
      local per = nil
      if gpus[id] ~= nil and workers > 0 then
        per = gpus[id] / workers
      end
      observe(ctx, s, id, state, workers, per, row.labels.priority)
    end
  end
end

-- One row of the queue gauge per kind of job; depth = how many want workers now.
local function read_queue(ctx, s)
  local st = state_of(ctx)
  st.queues = st.queues or {}
  st.qseq = st.qseq or 0
  local rows, err = ctx.metrics.query(s.queue_metric)
  if rows == nil then
    if st.queue_error ~= err then
      ctx.warn("no queue depth from %s (%s): its jobs keep their last known state",
               s.queue_metric, tostring(err))
    end
    st.queue_error = err
    return
  end
  st.queue_error = nil
  local depth = {}
  for _, row in ipairs(rows) do
    local l = row.labels
    -- Prometheus renames a target's own `job` label to `exported_job` (honor_labels off).
    local name = l["exported_" .. s.queue_label] or l[s.queue_label] or s.queue_metric
    local workers = count(l.workers or s.queue_workers)
    local gpus = l.gpus_per_worker and count(l.gpus_per_worker) or nil
    depth[name] = math.min((depth[name] or 0) + count(row.value), s.max_queue_jobs)
    local ids = st.queues[name] or {}
    st.queues[name] = ids
    while #ids < depth[name] do
      st.qseq = st.qseq + 1
      ids[#ids + 1] = name .. "#" .. st.qseq
    end
    for i = 1, depth[name] do
      observe(ctx, s, ids[i], "running", workers, gpus, l.priority)
    end
  end
  -- Shallower (or gone): the newest jobs of that kind are finished.
  for name, ids in pairs(st.queues) do
    local keep = depth[name] or 0
    for i = #ids, keep + 1, -1 do
      observe(ctx, s, ids[i], "done")
      ids[i] = nil
    end
    if keep == 0 then
      st.queues[name] = nil
    end
  end
end

local function wants_workers(s, job)
  return job.state == "running" or (s.provision_queued and job.state == "queued")
end

local function gpus_of(s, job)
  return (job.workers or 0) * (job.gpus or s.gpus_per_worker)
end

-- What one more worker costs per hour: the dearest of the current asking price in the
-- region and what the group's units there actually pay (the pinned provider may ask more
-- than the cheapest offer). nil when nothing is known.
local function unit_price(ctx, group, region)
  local price = ctx.price(region)
  for _, lease in ipairs(ctx.leases) do
    if lease.group == group and lease.region == region and lease.price_usd_hour > 0 and
        (price == nil or lease.price_usd_hour > price) then
      price = lease.price_usd_hour
    end
  end
  return price
end

local function sorted(list, less)
  table.sort(list, less)
  return list
end

local function by_seq(a, b)
  return a.seq < b.seq
end

-- quiet: the caller already said why (a warning).
local function finish(ctx, job, why, quiet)
  if not quiet and (job.phase == "gang" or job.phase == "up") then
    ctx.log("job %s %s: releasing its %d workers", job.id, why, job.workers or 0)
  end
  job.phase = "ended"
  job.ended = ctx.now
  job.note = why
end

-- Terminal jobs end, silent ones time out, backoffs that expired rejoin the queue.
local function lifecycle(ctx, s)
  local st = state_of(ctx)
  for id, job in pairs(st.jobs) do
    if job.phase == "ended" then
      if ctx.now - job.ended >= s.forget_after_s then
        st.jobs[id] = nil
      end
    elseif TERMINAL[job.state] then
      finish(ctx, job, job.state)
    elseif ctx.now - job.seen >= s.idle_timeout_s then
      if job.phase == "gang" or job.phase == "up" then
        ctx.warn("job %s not seen running for %ds: releasing its %d idle workers", job.id,
                 math.floor(ctx.now - job.seen), job.workers or 0)
      end
      finish(ctx, job, "idle", true)
    elseif job.phase == "backoff" and ctx.now >= job.retry_at then
      job.phase = "wait"
    end
  end
end

-- Ready units are shared by the group: complete gangs hold theirs first, then gangs in
-- the order they started. A gang that has its size is complete; one past its deadline is
-- rolled back and hands what it had on to the next.
local function settle_gangs(ctx, s, group, region, notes)
  local st = state_of(ctx)
  local pool = ctx.ready(group, region)
  local up, gangs = {}, {}
  for _, job in pairs(st.jobs) do
    if job.phase == "up" then
      up[#up + 1] = job
    elseif job.phase == "gang" then
      gangs[#gangs + 1] = job
    end
  end
  for _, job in ipairs(sorted(up, by_seq)) do
    local have = math.min(job.workers or 0, pool)
    pool = pool - have
    notes[job.id] = have < (job.workers or 0)
      and string.format("%s: running, %d/%d ready (replacing)", job.id, have, job.workers)
      or string.format("%s: running, %d workers", job.id, job.workers or 0)
  end
  table.sort(gangs, function(a, b)
    if a.gang_at ~= b.gang_at then
      return a.gang_at < b.gang_at
    end
    return a.seq < b.seq
  end)
  for _, job in ipairs(gangs) do
    local size = job.workers or 0
    local have = math.min(size, pool)
    local waited = ctx.now - job.gang_at
    if have >= size then
      pool = pool - have
      job.phase = "up"
      ctx.log("job %s: gang of %d workers complete after %.0fs", job.id, size, waited)
      notes[job.id] = string.format("%s: gang of %d complete", job.id, size)
    elseif waited >= s.gang_deadline_s then
      job.attempts = (job.attempts or 0) + 1
      local why = string.format("gang of %d not filled in %ds (%d ready)", size,
                                s.gang_deadline_s, have)
      if s.max_attempts > 0 and job.attempts >= s.max_attempts then
        ctx.warn("job %s: %s; gave up after %d attempts, releasing its workers", job.id, why,
                 job.attempts)
        finish(ctx, job, "gave up: " .. why, true)
        job.state = "failed"
      else
        job.phase = "backoff"
        job.retry_at = ctx.now + s.retry_after_s
        job.note = why
        ctx.warn("job %s: %s; releasing them, retry in %ds (attempt %d)", job.id, why,
                 s.retry_after_s, job.attempts)
      end
      notes[job.id] = string.format("%s: rolled back (%s)", job.id, why)
    else
      pool = pool - have
      notes[job.id] = string.format("%s: gang %d/%d ready, %.0fs left", job.id, have, size,
                                    s.gang_deadline_s - waited)
    end
  end
end

-- Admit waiting jobs in order while the caps hold. Strict order: a job that does not fit
-- makes the ones behind it wait too (no starvation of big jobs); a job that could never
-- fit is skipped with a warning instead of blocking the queue.
local function admit(ctx, s, group, region, notes)
  local st = state_of(ctx)
  local price = unit_price(ctx, group, region)
  local gmax = ctx.groups[group] and ctx.groups[group].max or math.huge
  local used = { workers = 0, gpus = 0, usd = 0 }
  local waiting = {}
  for _, job in pairs(st.jobs) do
    if job.phase == "gang" or job.phase == "up" then
      used.workers = used.workers + (job.workers or 0)
      used.gpus = used.gpus + gpus_of(s, job)
      used.usd = used.usd + (job.workers or 0) * (price or 0)
    elseif job.phase == "wait" and wants_workers(s, job) and (job.workers or 0) > 0 then
      waiting[#waiting + 1] = job
    elseif job.phase == "backoff" then
      notes[job.id] = notes[job.id] or string.format("%s: retry in %.0fs (%s)", job.id,
                                                     job.retry_at - ctx.now, job.note or "")
    end
  end
  table.sort(waiting, function(a, b)
    if s.order == "priority" and (a.priority or 0) ~= (b.priority or 0) then
      return (a.priority or 0) > (b.priority or 0)
    end
    return a.seq < b.seq
  end)
  local blocked, queued = nil, 0
  for _, job in ipairs(waiting) do
    local n = job.workers
    local cost = price and n * price or nil
    local g = gpus_of(s, job)
    local never = (n > gmax) or (s.max_gpus > 0 and g > s.max_gpus) or
      (s.max_usd_hour > 0 and cost ~= nil and cost > s.max_usd_hour + 1e-9)
    local why = nil
    if never then
      if not job.too_big then
        ctx.warn("job %s can never run: %d workers, %d GPUs, %s USD/h exceed the caps (group "
                 .. "max %s, max_gpus %s, max_usd_hour %s)", job.id, n, g,
                 cost and string.format("%.2f", cost) or "?", tostring(gmax),
                 tostring(s.max_gpus), tostring(s.max_usd_hour))
        job.too_big = true
      end
      notes[job.id] = job.id .. ": too big for the caps"
    elseif blocked then
      queued = queued + 1
      notes[job.id] = string.format("%s: queued #%d behind %s", job.id, queued, blocked)
    else
      if used.workers + n > gmax then
        why = string.format("group max %d: %d in use", gmax, used.workers)
      elseif s.max_gpus > 0 and used.gpus + g > s.max_gpus then
        why = string.format("GPU cap %d: %d in use, needs %d", s.max_gpus, used.gpus, g)
      elseif s.max_usd_hour > 0 and cost == nil then
        why = "no price known in " .. region .. " for the budget cap"
      elseif s.max_usd_hour > 0 and used.usd + cost > s.max_usd_hour + 1e-9 then
        why = string.format("budget %.2f USD/h: %.2f in use, needs %.2f", s.max_usd_hour,
                            used.usd, cost)
      end
      if why then
        blocked = job.id
        queued = 1
        notes[job.id] = string.format("%s: waiting (%s)", job.id, why)
        if job.note ~= why then
          ctx.log("job %s waits: %s", job.id, why)
        end
        job.note = why
      else
        job.phase = "gang"
        job.gang_at = ctx.now
        job.note = nil
        used.workers = used.workers + n
        used.gpus = used.gpus + g
        used.usd = used.usd + (cost or 0)
        ctx.log("job %s: buying a gang of %d workers (%d GPUs) in %s, deadline %ds", job.id, n,
                g, region, s.gang_deadline_s)
        notes[job.id] = string.format("%s: gang 0/%d ready, %ds left", job.id, n,
                                      s.gang_deadline_s)
      end
    end
  end
end

local function explain(ctx, group, region, total, notes)
  local ids = {}
  for id in pairs(notes) do
    ids[#ids + 1] = id
  end
  table.sort(ids)
  local parts = {}
  for i, id in ipairs(ids) do
    if i > 8 then
      parts[#parts + 1] = string.format("+%d more", #ids - 8)
      break
    end
    parts[#parts + 1] = notes[id]
  end
  local have = ctx.capacity(group, region)
  local ready = ctx.ready(group, region)
  local text = string.format("%d workers for %d jobs (%d ready, %d being bought)", total, #ids,
                             ready, math.max(have - ready, 0))
  if #parts > 0 then
    text = text .. ": " .. table.concat(parts, "; ")
  end
  ctx.explain(group, region, text)
end

return {
  name = "ml-batch",

  on_event = function(ctx, ev)
    local state = EVENT_STATE[ev.type]
    if state == nil or ev.id == nil then
      return
    end
    local s = settings(ctx)
    observe(ctx, s, tostring(ev.id), state, ev.workers, ev.gpus_per_worker, ev.priority)
    -- Ask to be evaluated now: a started job should not wait for the next interval.
    return true
  end,

  evaluate = function(ctx)
    local s = settings(ctx)
    local region = region_of(ctx, s)
    if s.jobs_metric then
      read_job_list(ctx, s)
    end
    if s.queue_metric then
      read_queue(ctx, s)
    end
    lifecycle(ctx, s)
    local notes = {}
    settle_gangs(ctx, s, s.group, region, notes)
    admit(ctx, s, s.group, region, notes)
    local total = 0
    for _, job in pairs(state_of(ctx).jobs) do
      if job.phase == "gang" or job.phase == "up" then
        total = total + (job.workers or 0)
      end
    end
    explain(ctx, s.group, region, total, notes)
    return { [s.group] = { [region] = total } }
  end,
}
