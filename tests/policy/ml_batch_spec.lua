-- The shipped ml_batch policy: gangs, pending units, rollback, release, caps and queueing.
local t = require "steward.testing"

local POLICY = "policies/ml_batch.lua"
local groups = { workers = { min = 0, max = 16, regions = { "eu-west" } } }
local offers = { { provider = "akash1master", region = "eu-west", price_usd_hour = 0.5 } }

local function params(extra)
  local p = { group = "workers", gang_deadline_s = 60, retry_after_s = 120,
              idle_timeout_s = 300 }
  for k, v in pairs(extra or {}) do
    p[k] = v
  end
  return p
end

-- {{id, state, workers[, gpus_per_worker[, priority]]}} → the jobs_http metrics.
local function jobs(list)
  local rows, gpus = {}, {}
  for _, j in ipairs(list) do
    local labels = { id = j[1], state = j[2] }
    if j[5] ~= nil then
      labels.priority = tostring(j[5])
    end
    rows[#rows + 1] = { labels = labels, value = j[3] }
    gpus[#gpus + 1] = { labels = labels, value = j[3] * (j[4] or 1) }
  end
  return { jobs = rows, jobs_gpus = gpus }
end

-- ready units and pending ones ("created": the marketplace knows them, no lease yet).
local function units(ready, pending)
  local leases = {}
  for i = 1, ready do
    leases[#leases + 1] = { group = "workers", region = "eu-west", key = "r" .. i,
                            market_id = tostring(100 + i), provider = "akash1master",
                            price_usd_hour = 0.5, state = "ready" }
  end
  for i = 1, pending or 0 do
    leases[#leases + 1] = { group = "workers", region = "eu-west", key = "p" .. i,
                            market_id = tostring(200 + i), state = "created" }
  end
  return leases
end

local function tick(p, now, job_list, leases, extra)
  local desc = { now = now, groups = groups, offers = offers, metrics = jobs(job_list),
                 leases = leases or {} }
  for k, v in pairs(extra or {}) do
    desc[k] = v
  end
  local desired = p:evaluate(desc)
  return desired.workers["eu-west"]
end

local function explained(p)
  return p.explanations[1] and p.explanations[1].text or ""
end

describe("ml_batch", function()
  it("wants a running job's workers in the group's region", function()
    local p = t.load_policy(POLICY, params())
    expect(tick(p, 1000, { { "a", "running", 4 } })).to_be(4)
    expect(p.explanations[1].region).to_be("eu-west")
    expect(explained(p)).to_contain("a: gang 0/4 ready, 60s left")
    -- A queued job gets nothing unless provision_queued says so.
    local q = t.load_policy(POLICY, params())
    expect(tick(q, 1000, { { "b", "queued", 3 } })).to_be(0)
    local pq = t.load_policy(POLICY, params { provision_queued = true })
    expect(tick(pq, 1000, { { "b", "queued", 3 } })).to_be(3)
  end)

  it("starts a job on its event before the job list shows it", function()
    local p = t.load_policy(POLICY, params())
    p:on_event({ now = 1000 }, { type = "job_started", id = "a", workers = 4,
                                 gpus_per_worker = 8 })
    expect(tick(p, 1001, {})).to_be(4)
    -- A list older than the event (still queued) does not undo it.
    expect(tick(p, 1002, { { "a", "queued", 4 } })).to_be(4)
  end)

  it("counts pending units: a slow marketplace never buys twice", function()
    local p = t.load_policy(POLICY, params())
    expect(tick(p, 1000, { { "a", "running", 4 } })).to_be(4)
    -- Four units on their way: the target stays 4, not 4 more.
    expect(tick(p, 1010, { { "a", "running", 4 } }, units(0, 4))).to_be(4)
    expect(explained(p)).to_contain("(0 ready, 4 being bought)")
    expect(tick(p, 1020, { { "a", "running", 4 } }, units(2, 2))).to_be(4)
    expect(explained(p)).to_contain("a: gang 2/4 ready, 40s left")
    expect(tick(p, 1030, { { "a", "running", 4 } }, units(4, 0))).to_be(4)
    expect(explained(p)).to_contain("a: gang of 4 complete")
    -- Complete: no deadline applies any more, and the share holds.
    expect(tick(p, 5000, { { "a", "running", 4 } }, units(4, 0))).to_be(4)
    expect(explained(p)).to_contain("a: running, 4 workers")
  end)

  it("rolls a gang back after its deadline and retries later", function()
    local p = t.load_policy(POLICY, params())
    expect(tick(p, 1000, { { "a", "running", 4 } })).to_be(4)
    expect(tick(p, 1059, { { "a", "running", 4 } }, units(3, 1))).to_be(4)
    -- 60 s without the whole gang: its share drops to 0, so the planner cancels the
    -- pending unit and releases the ready ones.
    expect(tick(p, 1060, { { "a", "running", 4 } }, units(3, 1))).to_be(0)
    expect(explained(p)).to_contain("a: rolled back (gang of 4 not filled in 60s (3 ready))")
    expect(tick(p, 1100, { { "a", "running", 4 } }, units(1, 0))).to_be(0)
    expect(explained(p)).to_contain("a: retry in 80s")
    expect(tick(p, 1179, { { "a", "running", 4 } })).to_be(0)
    -- retry_after_s later: a fresh gang with a fresh deadline.
    expect(tick(p, 1180, { { "a", "running", 4 } })).to_be(4)
    expect(explained(p)).to_contain("a: gang 0/4 ready, 60s left")
    expect(tick(p, 1240, { { "a", "running", 4 } }, units(4, 0))).to_be(4)
    expect(explained(p)).to_contain("complete")
  end)

  it("gives up after max_attempts", function()
    local p = t.load_policy(POLICY, params { max_attempts = 2 })
    tick(p, 1000, { { "a", "running", 4 } })
    expect(tick(p, 1060, { { "a", "running", 4 } }, units(1, 0))).to_be(0)
    expect(tick(p, 1180, { { "a", "running", 4 } })).to_be(4)
    expect(tick(p, 1240, { { "a", "running", 4 } }, units(2, 0))).to_be(0)
    expect(tick(p, 2000, { { "a", "running", 4 } })).to_be(0)
    expect(p.state.jobs.a.note).to_contain("gave up")
  end)

  it("releases every worker at once when the job is done or failed", function()
    local p = t.load_policy(POLICY, params())
    tick(p, 1000, { { "a", "running", 4 }, { "b", "running", 2 } })
    expect(tick(p, 1030, { { "a", "running", 4 }, { "b", "running", 2 } }, units(6))).to_be(6)
    p:on_event({ now = 1040 }, { type = "job_done", id = "a", workers = 4 })
    -- The list polled before the event still says running: the event wins.
    expect(tick(p, 1041, { { "a", "running", 4 }, { "b", "running", 2 } }, units(6))).to_be(2)
    -- b fails, seen only through the list.
    expect(tick(p, 1050, { { "a", "done", 4 }, { "b", "failed", 2 } }, units(2))).to_be(0)
    expect(tick(p, 1060, { { "a", "done", 4 }, { "b", "failed", 2 } })).to_be(0)
    -- History the policy never saw running costs nothing.
    local q = t.load_policy(POLICY, params())
    expect(tick(q, 1000, { { "old", "done", 8 } })).to_be(0)
  end)

  it("gives each concurrent job its own share", function()
    local p = t.load_policy(POLICY, params())
    expect(tick(p, 1000, { { "a", "running", 4 } })).to_be(4)
    expect(tick(p, 1010, { { "a", "running", 4 }, { "b", "running", 3 } }, units(4))).to_be(7)
    -- a's gang is complete with the four ready units; b's three are its own.
    expect(tick(p, 1020, { { "a", "running", 4 }, { "b", "running", 3 } }, units(5, 2)))
      .to_be(7)
    expect(explained(p)).to_contain("a: running, 4 workers")
    expect(explained(p)).to_contain("b: gang 1/3 ready")
  end)

  it("holds the GPU cap across jobs, FIFO", function()
    local p = t.load_policy(POLICY, params { max_gpus = 8 })
    local list = { { "a", "running", 4, 1 }, { "b", "running", 3, 2 }, { "c", "running", 1, 1 } }
    -- a takes 4 GPUs; b needs 6 more: it waits, and c waits behind it although it fits.
    expect(tick(p, 1000, list)).to_be(4)
    expect(explained(p)).to_contain("b: waiting (GPU cap 8: 4 in use, needs 6)")
    expect(explained(p)).to_contain("c: queued #2 behind b")
    list[1][2] = "done"
    expect(tick(p, 1010, list, units(4))).to_be(4) -- b (3 workers) and c (1)
    expect(explained(p)).to_contain("b: gang 0/3 ready")
    expect(explained(p)).to_contain("c: gang 0/1 ready")
  end)

  it("holds the budget cap across jobs using the region's price", function()
    local p = t.load_policy(POLICY, params { max_usd_hour = 3 })
    -- 0.5 USD/h a worker: a (4) costs 2, b (4) would bring it to 4 > 3.
    local list = { { "a", "running", 4 }, { "b", "running", 4 } }
    expect(tick(p, 1000, list)).to_be(4)
    expect(explained(p)).to_contain("b: waiting (budget 3.00 USD/h: 2.00 in use, needs 2.00)")
    -- The pinned provider turns out dearer than the cheapest offer: leases say 0.7.
    local dear = units(4)
    for _, l in ipairs(dear) do
      l.price_usd_hour = 0.7
    end
    list[1][2] = "done"
    list[3] = { "c", "running", 1 }
    -- b alone costs 2.8 at that price; c's 0.7 more does not fit in what is left.
    expect(tick(p, 1010, list, dear)).to_be(4)
    expect(explained(p)).to_contain("b: gang 0/4 ready")
    expect(explained(p)).to_contain("c: waiting (budget 3.00 USD/h: 2.80 in use, needs 0.70)")
  end)

  it("orders the queue by priority when asked", function()
    local p = t.load_policy(POLICY, params { max_gpus = 4, order = "priority" })
    local list = { { "low", "running", 4, 1, 1 }, { "high", "running", 4, 1, 9 } }
    expect(tick(p, 1000, list)).to_be(4)
    expect(explained(p)).to_contain("high: gang 0/4")
    expect(explained(p)).to_contain("low: waiting")
    local fifo = t.load_policy(POLICY, params { max_gpus = 4 })
    tick(fifo, 1000, list)
    expect(explained(fifo)).to_contain("low: gang 0/4")
  end)

  it("skips a job that can never fit instead of blocking the queue", function()
    local p = t.load_policy(POLICY, params { max_gpus = 8 })
    local list = { { "huge", "running", 20, 1 }, { "small", "running", 2, 1 } }
    expect(tick(p, 1000, list)).to_be(2)
    expect(explained(p)).to_contain("huge: too big for the caps")
    -- The group's max counts as a cap too.
    local q = t.load_policy(POLICY, params())
    expect(tick(q, 1000, { { "x", "running", 17 } })).to_be(0)
  end)

  it("releases idle workers when a job vanishes or the master goes quiet", function()
    local p = t.load_policy(POLICY, params())
    tick(p, 1000, { { "a", "running", 4 } })
    expect(tick(p, 1030, { { "a", "running", 4 } }, units(4))).to_be(4)
    -- The master stops listing a, without saying it finished.
    expect(tick(p, 1100, {}, units(4))).to_be(4)
    expect(tick(p, 1329, {}, units(4))).to_be(4)
    expect(tick(p, 1330, {}, units(4))).to_be(0)
    -- Seen running again later: it gets its workers back.
    expect(tick(p, 1400, { { "a", "running", 4 } })).to_be(4)

    local q = t.load_policy(POLICY, params())
    tick(q, 1000, { { "a", "running", 4 } })
    local down = { jobs = { error = "master unreachable" }, jobs_gpus = { error = "down" } }
    expect(q:evaluate { now = 1030, groups = groups, metrics = down, leases = units(4) }
      .workers["eu-west"]).to_be(4)
    expect(q:evaluate { now = 1299, groups = groups, metrics = down, leases = units(4) }
      .workers["eu-west"]).to_be(4)
    expect(q:evaluate { now = 1300, groups = groups, metrics = down, leases = units(4) }
      .workers["eu-west"]).to_be(0)
  end)

  it("keeps gangs, queue and deadlines across a restart", function()
    local p = t.load_policy(POLICY, params())
    tick(p, 1000, { { "a", "running", 4 } })
    p:restart()
    expect(tick(p, 1030, { { "a", "running", 4 } }, units(2, 2))).to_be(4)
    p:restart()
    expect(tick(p, 1060, { { "a", "running", 4 } }, units(3, 1))).to_be(0)
  end)

  it("turns a queue-depth gauge into gangs (queue_metric)", function()
    local p = t.load_policy(POLICY, params { queue_metric = "queue", jobs_metric = false,
                                              queue_workers = 2 })
    -- training_queue_depth{job="bert",workers="4"} 2 and a row without a workers label.
    local function depth(bert, t5)
      local rows = { { labels = { job = "bert", workers = "4", gpus_per_worker = "8" },
                       value = bert } }
      if t5 then
        rows[#rows + 1] = { labels = { job = "t5" }, value = t5 }
      end
      return { metrics = { queue = rows } }
    end
    local function qtick(now, bert, t5, leases)
      local extra = depth(bert, t5)
      extra.leases = leases
      return tick(p, now, {}, nil, extra)
    end
    expect(qtick(1000, 2)).to_be(8)
    expect(explained(p)).to_contain("bert#1: gang 0/4 ready")
    expect(explained(p)).to_contain("bert#2: gang 0/4 ready")
    expect(qtick(1010, 2, 1)).to_be(10) -- t5 jobs take queue_workers (2)
    expect(qtick(1020, 3, 1, units(10, 0))).to_be(14)
    expect(explained(p)).to_contain("bert#4: gang 0/4 ready")
    -- Shallower: the newest bert job is finished, its workers released at once.
    expect(qtick(1030, 1, 1, units(14, 0))).to_be(6)
    expect(explained(p)).to_contain("bert#1: running, 4 workers")
    expect(explained(p):find("bert#2", 1, true)).to_be_nil()
    -- Deeper again: a fresh id, never a finished one brought back.
    expect(qtick(1040, 2, 1, units(6, 0))).to_be(10)
    expect(explained(p)).to_contain("bert#5: gang 0/4 ready")
    -- Drained (value 0, or the row gone): every worker given back.
    expect(qtick(1050, 0)).to_be(0)
    -- The GPU cap counts the label's gpus_per_worker: 8 per bert worker.
    local g = t.load_policy(POLICY, params { queue_metric = "queue", jobs_metric = false,
                                              max_gpus = 40 })
    expect(tick(g, 1000, {}, nil, depth(2))).to_be(4)
    expect(explained(g)).to_contain("bert#2: waiting (GPU cap 40: 32 in use, needs 32)")
    -- Scraped by Prometheus, the target's job label arrives as exported_job.
    local e = t.load_policy(POLICY, params { queue_metric = "queue", jobs_metric = false })
    local scraped = { { labels = { job = "trainer", exported_job = "bert", workers = "2" },
                        value = 1 } }
    expect(tick(e, 1000, {}, nil, { metrics = { queue = scraped } })).to_be(2)
    expect(explained(e)).to_contain("bert#1: gang 0/2 ready")
  end)

  it("keeps queue jobs while the gauge cannot be read, then times them out", function()
    local p = t.load_policy(POLICY, params { queue_metric = "queue", jobs_metric = false })
    local rows = { { labels = { job = "a", workers = "3" }, value = 1 } }
    expect(tick(p, 1000, {}, nil, { metrics = { queue = rows } })).to_be(3)
    local down = { metrics = { queue = { error = "query returned no samples" } },
                   leases = units(3) }
    expect(tick(p, 1100, {}, nil, down)).to_be(3)
    expect(p.state.queue_error).to_contain("no samples")
    expect(tick(p, 1300, {}, nil, down)).to_be(0) -- idle_timeout_s 300
  end)

  it("needs a region when the group allows several", function()
    local p = t.load_policy(POLICY, params())
    expect(function()
      p:evaluate { now = 1000, groups = { workers = { max = 4, regions = { "a", "b" } } },
                   metrics = jobs {} }
    end).to_fail("params.region is required: group 'workers' allows several regions")
    local q = t.load_policy(POLICY, params { region = "b" })
    local desired = q:evaluate { now = 1000,
                                 groups = { workers = { max = 4, regions = { "a", "b" } } },
                                 metrics = jobs { { "j", "running", 2 } } }
    expect(desired.workers.b).to_be(2)
  end)
end)
