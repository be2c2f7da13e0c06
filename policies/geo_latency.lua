-- geo_latency.lua — serve users from data centers near them, at the lowest price that keeps
-- the latency SLO.
--
-- Each tick:
--   1. Demand per user region: ctx.metrics.sum_by(metric, label), each region smoothed
--      (steward.smooth) so a spike does not buy a data center.
--   2. The ideal placement, greedy: while less than `slo_share` of the demand is within
--      `slo_ms` of a chosen region, add the candidate that covers the most uncovered demand
--      within the SLO per dollar (its best offer, as ctx.price(region) says, times the
--      units that demand needs). Never fewer than `min_regions`, never more than `max_regions`.
--      It replaces the current placement (completed by the same greedy where it no longer
--      keeps the SLO) only if it costs at least `switch_saving` less, or keeps the SLO for
--      more demand: near-equal placements would otherwise trade places as demand moves,
--      and every move pays for new leases.
--   3. Hysteresis per region (steward.hysteresis): a region joins once the placement has
--      wanted it for `scale_up_delay_s`, and leaves once it has not for
--      `scale_down_delay_s` (defaults 30 s and 300 s: the Kubernetes HPA scales down after a
--      300 s stabilization window and up almost at once; SkyServe likewise waits far longer
--      to scale down than up). `min_regions` is held at once, without waiting.
--   4. Each user region is routed to its nearest serving region; a serving region gets one
--      unit per `rps_per_unit` of the demand routed to it (at least one). A lower count
--      waits `scale_down_delay_s` too; a higher one is asked for at once.
--   5. Every region asked for is explained: which demand it serves, at what RTT, and why it
--      was worth its price (or why it is still held or still waiting), on the ticks where
--      its decision or its units change; the placement as a whole when it changes.
--
-- Decisions are taken on the demand rounded up to a multiple of `demand_step_rps` (default:
-- a 20th of rps_per_unit; never fewer units than the unrounded demand needs), so a tick
-- whose rounded demand, prices, capacity and pending timers (hysteresis, scale-down holds)
-- are those of the previous tick decides what that tick decided: it smooths the demand,
-- compares, and returns the previous answer unexplained. That is most ticks (86% of the
-- week in examples/geo), and it keeps the policy cheap enough for month-long simulations.
-- A tick whose rounded demand moved keeps the placement without running choose() while
-- the move provably cannot change its answer (kept_still_wins), and, with the serving set
-- settled, works out again only the regions serving the user regions that moved.
--
-- Latency of a request = RTT(user region, serving region) + server_ms. RTTs come from
-- params.rtt: rows {from = user region, to = serving region, rtt_ms = n} (or {from, to, ms}
-- arrays); a pair given once is used both ways. examples/geo/ ships measured data.
--
-- params:
--   group ("web"), rps_per_unit (required), rtt (required), slo_ms (80), slo_share (0.95),
--   server_ms (0), regions (candidate serving regions; default: the group's regions, else
--   every region of the RTT table), min_regions (1), max_regions (#candidates),
--   scale_up_delay_s (30), scale_down_delay_s (300), half_life_s (60), metric ("rps"),
--   label ("region"), min_rps (0.5: smoothed demand below this is no demand),
--   demand_step_rps (rps_per_unit / 20), switch_saving (0.1)
local geo = require "steward.geo"
local smooth = require "steward.smooth"
local ewma_update = require("steward.ewma").update

local floor, ceil, huge = math.floor, math.ceil, math.huge
local sort, concat = table.sort, table.concat
local fmt = string.format

-- Derived from params once per params table (ctx.params keeps its identity across ticks;
-- a reload builds a new module and a new cache). A new params table with the same content
-- (a reload that changed other things; the spec harness, which builds one per call) keeps
-- the derived tables, and with them what the last evaluation decided.
local cache = { params = nil }

-- The text of what prepare() reads (params, and the group's regions when params has none):
-- same text, same derived tables.
local PARAM_NAMES = { "group", "rps_per_unit", "slo_ms", "slo_share", "server_ms", "min_regions",
                      "max_regions", "scale_up_delay_s", "scale_down_delay_s", "half_life_s",
                      "min_rps", "metric", "label", "demand_step_rps",
                      "switch_saving" }
local function params_text(p, ctx)
  local out = {}
  for k, name in ipairs(PARAM_NAMES) do
    out[k] = tostring(p[name])
  end
  local regions = p.regions
  if type(regions) ~= "table" then
    local g = ctx.groups[p.group or "web"]
    regions = g ~= nil and g.regions or {}
    out[#out + 1] = "group regions"
  end
  for _, r in ipairs(regions) do
    out[#out + 1] = "r:" .. tostring(r)
  end
  if type(p.rtt) == "table" then
    for _, row in ipairs(p.rtt) do
      if type(row) == "table" then
        out[#out + 1] = fmt("%s>%s:%s", tostring(row.from or row[1]), tostring(row.to or row[2]),
          tostring(row.rtt_ms or row[3]))
      else
        out[#out + 1] = "?"
      end
    end
  end
  return concat(out, "\n")
end

local function number_param(p, name, default, min)
  local v = p[name]
  if v == nil then
    return default
  end
  if type(v) ~= "number" or v < min then
    error(fmt("params.%s: expected a number >= %s, got %s", name, min, tostring(v)), 3)
  end
  return v
end

local function prepare(p, ctx)
  local c = {}
  c.group = p.group or "web"
  c.rps_per_unit = p.rps_per_unit
  if type(c.rps_per_unit) ~= "number" or c.rps_per_unit <= 0 then
    error("params.rps_per_unit is required: the requests per second one unit serves", 3)
  end
  if type(p.rtt) ~= "table" then
    error("params.rtt is required: rows {from = user region, to = serving region, rtt_ms = n}",
      3)
  end
  c.slo_ms = number_param(p, "slo_ms", 80, 0)
  c.slo_share = number_param(p, "slo_share", 0.95, 0)
  if c.slo_share > 1 then
    error("params.slo_share: expected a share between 0 and 1 (0.95 = 95% of requests)", 3)
  end
  c.server_ms = number_param(p, "server_ms", 0, 0)
  c.min_regions = floor(number_param(p, "min_regions", 1, 0))
  c.up_s = number_param(p, "scale_up_delay_s", 30, 0)
  c.down_s = number_param(p, "scale_down_delay_s", 300, 0)
  c.half_life_s = number_param(p, "half_life_s", 60, 0.001)
  c.min_rps = number_param(p, "min_rps", 0.5, 0)
  c.metric = p.metric or "rps"
  c.label = p.label or "region"
  c.step = number_param(p, "demand_step_rps", c.rps_per_unit / 20, 0.001)
  c.switch_saving = number_param(p, "switch_saving", 0.1, 0)
  if c.switch_saving >= 1 then
    error("params.switch_saving: expected a share below 1 (0.15 = move for 15% less)", 3)
  end

  local rows = {}
  for i, row in ipairs(p.rtt) do
    rows[i] = { row.from or row[1], row.to or row[2], row.rtt_ms or row[3] }
  end
  c.rtt = geo.load(rows)

  local candidates = {}
  if type(p.regions) == "table" then
    for _, r in ipairs(p.regions) do
      candidates[#candidates + 1] = r
    end
  else
    local g = ctx.groups[c.group]
    if g ~= nil and #g.regions > 0 then
      for _, r in ipairs(g.regions) do
        candidates[#candidates + 1] = r
      end
    else
      candidates = c.rtt:regions()
    end
  end
  sort(candidates)
  c.candidates = candidates
  c.distinct_candidates = true
  for j = 2, #candidates do
    if candidates[j] == candidates[j - 1] then
      c.distinct_candidates = false
    end
  end
  c.max_regions = floor(number_param(p, "max_regions", #candidates, 1))
  if c.min_regions > c.max_regions then
    error(fmt("params.min_regions (%d) is above max_regions (%d)", c.min_regions,
      c.max_regions), 3)
  end

  -- latency[user][serving] for every known pair (by name, for routing and messages), and
  -- the same as arrays indexed by position in c.users / c.candidates for the placement:
  -- cover[j] = users candidate j answers within the SLO, reach[i] = candidates answering
  -- user i within the SLO, lat[i][j] = latency or false.
  local users = c.rtt:regions()
  c.users = users
  c.user_index = {}
  for i, u in ipairs(users) do
    c.user_index[u] = i
  end
  c.latency, c.lat, c.cover, c.reach = {}, {}, {}, {}
  for j = 1, #candidates do
    c.cover[j] = {}
  end
  for i, u in ipairs(users) do
    local row, lat, reach = {}, {}, {}
    c.latency[u], c.lat[i], c.reach[i] = row, lat, reach
    for j, s in ipairs(candidates) do
      local r = c.rtt:rtt(u, s)
      lat[j] = r ~= nil and r + c.server_ms or false
      if r ~= nil then
        row[s] = r + c.server_ms
        if r + c.server_ms <= c.slo_ms then
          local list = c.cover[j]
          list[#list + 1] = i
          reach[#reach + 1] = j
        end
      end
    end
  end
  -- order[i]: the candidates user i can reach, nearest first (ties by name): routing walks
  -- it to the first serving region instead of scanning every serving region.
  c.order = {}
  for i = 1, #users do
    local lat, order = c.lat[i], {}
    for j = 1, #candidates do
      if lat[j] then
        order[#order + 1] = j
      end
    end
    sort(order, function(a, b)
      if lat[a] ~= lat[b] then
        return lat[a] < lat[b]
      end
      return a < b
    end)
    c.order[i] = order
  end
  c.cand_index = {}
  for j, s in ipairs(candidates) do
    c.cand_index[s] = j
  end
  return c
end

-- Smoothed demand per user region (steward.smooth's time-aware weight, the averages updated
-- by steward.ewma in one C call: it runs for every region every tick), and the same rounded
-- up to a multiple of c.step: decisions are taken on the rounded demand (never below the
-- real one, so rounding never buys too few units). Regions missing from this tick's metric
-- decay to 0. Every region is updated on every tick, so ctx.state keeps one number per
-- region (st.avg) and one time (st.last_t).
--
-- Regions of the RTT table land in m.dq / m.steps, arrays by position in c.users that live
-- as long as the memo (filling a fresh table every tick costs more than the rest of a
-- tick); others in m.extra / m.extra_q (name → value, usually empty). Below min_rps is 0.
-- What only explanations read is worked out when one is given: the smoothed demand by
-- position (smoothed() fills m.dv from st.avg) and the totals (demand_total).
-- Returns whether the rounded demand changed.

-- User i's rounded demand moved to k steps (dk = the change): m.reach_steps follows (in
-- whole steps, so it never drifts; it spares the placement summing them again), and so do
-- m.moved (steps moved since the last exact placement) and m.pattern_changed (a user
-- gained or lost all its demand), which tell whether the placement must be worked out again.
local function restep(c, m, i, k, dk)
  m.steps[i], m.dq[i] = k, k * c.step
  local r, reach_steps = c.reach[i], m.reach_steps
  for x = 1, #r do
    local j = r[x]
    reach_steps[j] = reach_steps[j] + dk
  end
  m.moved = m.moved + (dk > 0 and dk or -dk)
  local n = m.ndirty + 1
  m.ndirty, m.dirty[n] = n, i
  if k == 0 or k == dk then
    m.pattern_changed = true
  end
end

-- Smoothed demand v in steps: rounded up, 0 below min_rps. Never decreases as v grows.
local function steps_of(c, v)
  if v >= c.min_rps and v > 0 then
    return -((1e-6 - v / c.step) // 1) -- ceil without a call
  end
  return 0
end

-- The interval of demand that rounds to k steps, { lo, hi }, both ends checked with
-- steps_of (which never decreases: everything between rounds the same); false when the
-- check fails (float error at the edges): then the band is the demand itself.
local function band_of(c, k)
  local lo, hi = -huge, 0
  if k > 0 then
    lo, hi = (k - 1 + 1e-6) * c.step * (1 + 1e-12), (k + 1e-6) * c.step * (1 - 1e-12)
    lo = lo > c.min_rps and lo or c.min_rps
  elseif c.min_rps > 0 then
    hi = c.min_rps * (1 - 1e-12)
  end
  if steps_of(c, lo) ~= k or steps_of(c, hi) ~= k then
    return false
  end
  return { lo, hi }
end

-- User i's smoothed demand is v: its rounded demand, and m.lo[u]..m.hi[u] (u: its name, as
-- steward.ewma checks them), an interval of demand that rounds to the same steps (band_of,
-- kept per step count in m.bands: it depends on k alone). demand() rounds again only when
-- the demand leaves it, which spares most ticks the division. Returns whether the rounded
-- demand changed.
local function set_user(c, m, i, v)
  local k = 0
  if v >= c.min_rps and v > 0 then
    k = -((1e-6 - v / c.step) // 1) -- steps_of, inlined
  end
  local band = m.bands[k]
  if band == nil then
    band = band_of(c, k)
    m.bands[k] = band
  end
  local lo, hi = v, v
  if band then
    lo, hi = band[1], band[2]
  end
  local u = c.users[i]
  m.lo[u], m.hi[u] = v < lo and v or lo, v > hi and v or hi
  local dk = k - m.steps[i]
  if dk ~= 0 then
    restep(c, m, i, k, dk)
    return true
  end
  return false
end

local function demand(ctx, c, st, m, now)
  local raw, err = ctx.metrics.sum_by(c.metric, c.label)
  if not raw then
    -- Keeps the last good desired state: no signal, no change.
    error("no demand signal: " .. tostring(err), 0)
  end
  local avg = st.avg or {}
  st.avg = avg
  -- A region that shows up after the first tick had no demand before: its average starts
  -- from 0 then, so a burst from a new region is smoothed like any other.
  local previous = st.last_t
  st.last_t = now
  local alpha = 1 -- the first tick: the first sample is the average
  if previous ~= nil then
    local dt = now - previous
    if dt ~= m.alpha_dt then
      m.alpha_dt, m.alpha = dt, dt > 0 and smooth.alpha(dt, c.half_life_s) or 0
    end
    alpha = m.alpha
  end
  if m.first then
    -- Averages written by an older version of this policy ({v =, t =}) become numbers.
    for region, a in pairs(avg) do
      if type(a) == "table" then
        avg[region] = tonumber(a.v) or 0
      end
    end
  end
  local index, users, nu = c.user_index, c.users, #c.users
  local changed, extra = m.first, nil
  -- m.avg_count: the entries of st.avg after the last tick (nil: not counted yet). When
  -- this tick's metric had them all, no region is missing and none needs decaying.
  local had, others = m.avg_count, 0
  -- Every region of the metric (but ""): avg = avg + alpha * (value - avg), a region new to
  -- st.avg starting from 0; `moved` lists, in pairs() order, those whose average left its
  -- band m.lo..m.hi (set_user's; NaN leaves it too), and every region without RTT data.
  local moved = m.moved_regions
  local seen, fresh, nmoved = ewma_update(avg, raw, alpha, m.lo, m.hi, moved)
  for x = 1, nmoved do
    local region = moved[x]
    local v = avg[region]
    local i = index[region]
    if i ~= nil then
      if set_user(c, m, i, v) then
        changed = true
      end
    else
      others = others + 1
      extra = extra or {}
      extra[region] = v
    end
  end
  local nraw = seen + fresh
  if had == nil or seen < had then
    local count = 0
    for region, a in pairs(avg) do
      if raw[region] == nil then
        local v = a - alpha * a
        if v < 0.01 then
          avg[region] = nil
        else
          avg[region] = v
          local i = index[region]
          if i ~= nil then
            changed = set_user(c, m, i, v) or changed
          else
            extra = extra or {}
            extra[region] = v
          end
        end
      end
      count = count + (avg[region] ~= nil and 1 or 0)
    end
    m.avg_count = count
  else
    m.avg_count = nraw -- every earlier entry was in raw: st.avg holds raw's regions
  end
  -- Users neither in this tick's metric nor still decaying (then in st.avg) have none.
  if nraw - others < nu then
    for i = 1, nu do
      local u = users[i]
      if raw[u] == nil and avg[u] == nil then
        changed = set_user(c, m, i, 0) or changed
      end
    end
  end
  -- Regions without RTT data, in the order their demand is added to the totals.
  local min_rps, step = c.min_rps, c.step
  local extra_v, extra_q, extra_seq = nil, nil, nil
  if extra ~= nil then
    for region, v in pairs(extra) do
      if v >= min_rps and v > 0 then
        local q = -((1e-6 - v / step) // 1) * step
        extra_v, extra_q, extra_seq = extra_v or {}, extra_q or {}, extra_seq or {}
        extra_v[region], extra_q[region] = v, q
        extra_seq[#extra_seq + 1] = region
      end
    end
  end
  local last = m.extra_q or nil
  local extra_changed = false
  if (last == nil) ~= (extra_q == nil) then
    extra_changed = true
  elseif last ~= nil then
    for region, q in pairs(extra_q) do
      extra_changed = extra_changed or last[region] ~= q
    end
    for region in pairs(last) do
      extra_changed = extra_changed or extra_q[region] == nil
    end
  end
  if extra_changed then
    changed, m.pattern_changed = true, true
  end
  m.extra_changed = extra_changed
  -- false, not nil: a field kept in the table is read and written on the VM's fast path.
  m.extra, m.extra_q, m.extra_seq = extra_v or false, extra_q or false, extra_seq or false
  m.first = false
  return changed
end

-- m.dv[i]: user i's smoothed demand (0 below min_rps), from st.avg, which holds what
-- demand() worked out this tick (a region missing there has none).
local function smoothed(c, m, st)
  local avg, users, dv, min_rps = st.avg, c.users, m.dv, c.min_rps
  for i = 1, #users do
    local v = avg[users[i]] or 0
    dv[i] = (v >= min_rps and v > 0) and v or 0
  end
end

-- The demand in all (smoothed, with m.dv filled; or rounded), summed in a fixed order
-- (users by position, then regions without RTT data) so that the same demand always gives
-- the same total.
local function demand_total(c, m, rounded)
  local d, total = rounded and m.dq or m.dv, 0
  for i = 1, #c.users do
    total = total + d[i]
  end
  local seq = m.extra_seq
  if seq then
    local extra = rounded and m.extra_q or m.extra
    for k = 1, #seq do
      total = total + extra[seq[k]]
    end
  end
  return total
end

-- Best offer per candidate from ctx.offers (as ctx.price(region) would say), else what its
-- open units cost, else nil. ctx.offers is the same table while the offers are unchanged,
-- so the prices are recomputed only when it (or, for regions priced from their units,
-- ctx.leases) is a new table. Returns prices (region → USD/h) and whether they changed.
local function price_vector(ctx, c, memo)
  local offers = ctx.offers
  local leases = memo.prices_use_leases and ctx.leases or false
  if memo.prices ~= nil and offers == memo.offers and leases == memo.price_leases then
    return memo.prices, false
  end
  local best = {}
  for _, o in ipairs(offers) do
    local r, price = o.region, o.price_usd_hour
    if r ~= nil and (best[r] == nil or price < best[r]) then
      best[r] = price
    end
  end
  local prices, use_leases = {}, false
  for _, s in ipairs(c.candidates) do
    local price = best[s]
    if price == nil then
      use_leases = true
      leases = leases or ctx.leases
      local sum, n = 0, 0
      for _, l in ipairs(leases) do
        if l.group == c.group and l.region == s and l.price_usd_hour > 0 then
          sum, n = sum + l.price_usd_hour, n + 1
        end
      end
      if n > 0 then
        price = sum / n
      end
    end
    prices[s] = price
  end
  -- A region nobody has offered a price for yet (market_akash learns prices from bids) is
  -- assumed as dear as the dearest known one, or 1 when none is known: the placement still
  -- serves the demand, from the nearest regions, and never counts on an unknown price
  -- being low.
  local dearest
  for _, s in ipairs(c.candidates) do
    local price = prices[s]
    if price ~= nil and (dearest == nil or price > dearest) then
      dearest = price
    end
  end
  local assumed = {}
  for _, s in ipairs(c.candidates) do
    if prices[s] == nil then
      prices[s], assumed[s] = dearest or 1, true
    end
  end
  local changed = memo.prices == nil
  if not changed then
    for _, s in ipairs(c.candidates) do
      if prices[s] ~= memo.prices[s] or assumed[s] ~= memo.assumed[s] then
        changed = true
        break
      end
    end
  end
  memo.offers, memo.prices_use_leases = offers, use_leases
  memo.price_leases = use_leases and leases or false
  memo.prices = changed and prices or memo.prices
  memo.assumed = changed and assumed or memo.assumed
  return memo.prices, changed
end

-- Units each candidate holds (ctx.capacity), and whether they changed. Asking ctx.capacity
-- per candidate costs less than ctx.leases, whose every lease the runtime compares and
-- re-ages on each access, just to see whether it is the same table. When the last count
-- found all the group's units (ctx.capacity(group)) in the candidates holding some
-- (memo.cap_held, distinct candidates only), the group's total and those candidates are
-- enough: counts are never negative, so with the total and those unchanged, every other
-- candidate still holds none.
local function capacity_vector(ctx, c, memo)
  local capacity, group, cands, last_j = ctx.capacity, c.group, c.candidates, memo.cap_j
  local nc = #cands
  if last_j ~= nil then
    local same = true
    local held = memo.cap_held
    if held then
      same = capacity(group) == memo.cap_total
      for x = 1, same and #held or 0 do
        local j = held[x]
        if capacity(group, cands[j]) ~= last_j[j] then
          same = false
          break
        end
      end
    else
      for j = 1, nc do
        if capacity(group, cands[j]) ~= last_j[j] then
          same = false
          break
        end
      end
    end
    if same then
      return memo.cap, false
    end
  end
  local cap, cap_j, held, sum = {}, {}, {}, 0
  for j = 1, nc do
    local s = cands[j]
    local n = capacity(group, s)
    cap[s], cap_j[j] = n, n
    if n ~= 0 then
      held[#held + 1], sum = j, sum + n
    end
  end
  local total = capacity(group)
  memo.cap, memo.cap_j, memo.cap_total = cap, cap_j, total
  memo.cap_held = c.distinct_candidates and total == sum and held or false
  return cap, true
end

-- Demand-weighted mean latency from candidate j to the users of `list` not yet covered.
local function mean_ms(list, j, covered, dv, lat)
  local sum, weight = 0, 0
  for k = 1, #list do
    local i = list[k]
    if not covered[i] and dv[i] > 0 then
      sum, weight = sum + dv[i] * lat[i][j], weight + dv[i]
    end
  end
  return sum / weight
end

-- Routes every user region with demand to its nearest chosen region as evaluate will route
-- it (ties: the cheaper, then the first by name; rank[j] is truthy for chosen ones) and
-- works out each chosen region's load, for what that costs an hour once the units follow
-- the demand: each chosen region paid for the units its load needs, at least one, and users
-- with no RTT to any chosen region served by the cheapest one. Fractional units: a
-- comparison on whole units would swing by a unit's price whenever the demand crosses a
-- unit boundary, which is what makes near-equal placements trade places. serves[j] is set
-- for the regions somebody's nearest. The result depends on the chosen set only, not on
-- the order of the picks, so a placement computed again from its own regions is itself.
-- Returns the demand of the users with no RTT to any chosen region.
local function route_loads(c, dv, pr, chosen_j, n, rank, load, serves)
  local order, lat = c.order, c.lat
  for k = 1, n do
    local j = chosen_j[k]
    load[j], serves[j] = 0, false
  end
  local stray = 0
  for i = 1, #dv do
    local d = dv[i]
    if d > 0 then
      local list, row, best, best_ms = order[i], lat[i], nil, nil
      for k = 1, #list do
        local j = list[k]
        local ms = row[j]
        if best ~= nil and ms > best_ms then
          break -- nearest first: nothing further on is as near
        end
        if rank[j] and (best == nil or pr[j] < pr[best]) then
          best, best_ms = j, ms
        end
      end
      if best ~= nil then
        load[best], serves[best] = load[best] + d, true
      else
        stray = stray + d
      end
    end
  end
  return stray
end

-- The cost of the loads route_loads worked out, the strays on the cheapest chosen region.
local function loads_cost(c, pr, chosen_j, n, load, stray)
  local cheapest = nil
  for k = 1, n do
    local j = chosen_j[k]
    if cheapest == nil or pr[j] < pr[cheapest] then
      cheapest = j
    end
  end
  local cost, rpu = 0, c.rps_per_unit
  for k = 1, n do
    local j = chosen_j[k]
    local units = (load[j] + (j == cheapest and stray or 0)) / rpu
    cost = cost + pr[j] * (units > 1 and units or 1)
  end
  return cost
end

-- How a region got into a placement (the bits of an explanation's flag).
local PICKED, KEPT, MINIMUM = 1, 8, 2

-- Takes a user region's demand d off the gain of every candidate in its reach r.
local function discount(gain, r, d)
  for x = 1, #r do
    local j = r[x]
    gain[j] = gain[j] - d
  end
end

-- Marks candidate j the n-th pick of slot (as `kind`) and its uncovered users covered
-- (with track_gain, taking their demand off the gains of every candidate reaching them).
-- Returns the demand it brought within the SLO.
local function take(c, m, slot, dv, j, kind, n, track_gain)
  local list, covered, reach, gain, brought = c.cover[j], m.covered, c.reach, m.gain, 0
  for k = 1, #list do
    local i = list[k]
    local d = dv[i]
    if not covered[i] and d > 0 then
      covered[i] = true
      brought = brought + d
      if track_gain then
        discount(gain, reach[i], d)
      end
    end
  end
  m.rank[j], slot.j[n], slot.how[j] = n, j, kind
  return brought
end

-- The greedy placement: while less than slo_share of the demand is within the SLO, add
-- the candidate whose newly covered demand per dollar (its price times the units that
-- demand needs) is highest; ties go to the one closer to that demand, then the cheaper,
-- then the first by name. Gains are kept up to date as users get covered, so an iteration
-- costs O(candidates). Afterwards a region that is nobody's nearest serves nothing and is
-- dropped, and min_regions is filled with the candidates reaching the most demand.
-- seed (optional): candidate positions chosen before the greedy starts (the current
-- placement, which the greedy then only completes).
-- dv: rounded demand by position in c.users. Fills `slot` (scratch kept in the memo, so a
-- placement allocates nothing): slot.j[1..slot.n] the chosen candidate positions in the
-- order chosen, slot.how[j] = PICKED, KEPT or MINIMUM for them (false for the others),
-- slot.within the demand within the SLO, slot.cost the placement's cost (route_loads,
-- loads_cost). Returns the slot.
local function place(c, dv, total, prices, m, slot, seed)
  local users, cands, cover, reach, lat = c.users, c.candidates, c.cover, c.reach, c.lat
  local nu, nc, rpu = #users, #cands, c.rps_per_unit
  -- Scratch arrays kept in the memo: refilled, never reallocated.
  local pr, gain, covered, rank = m.pr, m.gain, m.covered, m.rank
  local chosen_j, how = slot.j, slot.how
  m.placed = m.placed + 1 -- slot.how changes: the serving set compares it again (evaluate)
  for i = 1, nu do
    covered[i] = false
  end
  for j = 1, nc do
    pr[j], rank[j], how[j] = prices[cands[j]] or false, false, false
  end
  for k = #chosen_j, 1, -1 do
    chosen_j[k] = nil
  end
  local n = 0
  local covered_rps, target, max_regions = 0, c.slo_share * total, c.max_regions
  local track_gain = false
  if seed ~= nil then
    for k = 1, #seed do
      local j = seed[k]
      if n < max_regions and pr[j] and not rank[j] then
        n = n + 1
        covered_rps = covered_rps + take(c, m, slot, dv, j, KEPT, n, track_gain)
      end
    end
  end
  if n < max_regions and total > 0 and covered_rps < target - 1e-9 then
    -- The greedy runs: the gains (demand within the SLO of each candidate, not yet
    -- covered) from m.reach_steps, less what the seed covered.
    local reach_steps, step = m.reach_steps, c.step
    for j = 1, nc do
      gain[j] = reach_steps[j] * step
    end
    if n > 0 then
      for i = 1, nu do
        local d = dv[i]
        if covered[i] and d > 0 then
          discount(gain, reach[i], d)
        end
      end
    end
    track_gain = true
  end
  while n < max_regions and total > 0 and covered_rps < target - 1e-9 do
    local best, best_score, best_ms
    for j = 1, nc do
      local g = gain[j]
      local price = g > 1e-9 and not rank[j] and pr[j]
      if price then
        -- g / (price * units g needs); -((x) // 1) is ceil(x) without a call
        local score = g / ((price > 1e-9 and price or 1e-9) * -((1e-9 - g / rpu) // 1))
        if best == nil or score > best_score * (1 + 1e-9) then
          best, best_score, best_ms = j, score, nil
        elseif score >= best_score * (1 - 1e-9) then
          best_ms = best_ms or mean_ms(cover[best], best, covered, dv, lat)
          local ms = mean_ms(cover[j], j, covered, dv, lat)
          if ms < best_ms - 1e-9 or (ms <= best_ms + 1e-9 and price < pr[best]) then
            best, best_score, best_ms = j, score, ms
          end
        end
      end
    end
    if best == nil then
      break -- nothing left within reach of the SLO
    end
    n = n + 1
    covered_rps = covered_rps + take(c, m, slot, dv, best, PICKED, n, track_gain)
  end
  -- Drop regions that are nobody's nearest (another pick is nearer to all their users, or
  -- as near and cheaper). Nobody is routed to them, so the routing stays as it is.
  local load, serves = m.load, m.serves
  local stray = route_loads(c, dv, pr, chosen_j, n, rank, load, serves)
  for k = n, 1, -1 do
    local j = chosen_j[k]
    if n <= c.min_regions then
      break
    end
    if not serves[j] then
      table.remove(chosen_j, k)
      n = n - 1
      rank[j], how[j] = false, false
    end
  end
  -- min_regions: the remaining candidate that reaches the most demand, cheapest first.
  local filled = false
  while n < c.min_regions do
    local best, best_reach
    for j = 1, nc do
      if pr[j] and not rank[j] then
        local r, list = 0, cover[j]
        for k = 1, #list do
          r = r + dv[list[k]]
        end
        if best == nil or r > best_reach + 1e-9
            or (r > best_reach - 1e-9 and pr[j] < pr[best]) then
          best, best_reach = j, r
        end
      end
    end
    if best == nil then
      break
    end
    n = n + 1
    rank[best], chosen_j[n], how[best] = n, best, MINIMUM
    filled = true
  end
  if filled then
    stray = route_loads(c, dv, pr, chosen_j, n, rank, load, serves)
  end
  slot.n, slot.within, slot.filled = n, covered_rps, filled
  slot.cost = loads_cost(c, pr, chosen_j, n, load, stray)
  slot.alt_cost, slot.alt_floor = nil, nil
  return slot
end

-- A lower bound on the cost (as placement_cost counts it) of any placement that keeps the
-- SLO for slo_share of the demand: a user region served within the SLO pays at least the
-- cheapest price in its reach, the others at least the cheapest price anywhere, and the
-- demand allowed outside the SLO is granted to the users whose reach is dearest. When the
-- current placement costs less than this bound plus switch_saving, no greedy run can win,
-- and none is needed. m.pr: the prices by candidate position, as place() left them.
local function cost_floor(c, dv, total, prices, m)
  if m.floor_prices ~= prices then
    local pr, reach = m.pr, c.reach
    local min_pr = huge
    for j = 1, #c.candidates do
      local price = pr[j]
      if price and price < min_pr then
        min_pr = price
      end
    end
    local mr, by = {}, {}
    for i = 1, #c.users do
      local r, best = reach[i], huge
      for x = 1, #r do
        local price = pr[r[x]]
        if price and price < best then
          best = price
        end
      end
      mr[i], by[i] = best < huge and best or min_pr, i
    end
    sort(by, function(a, b)
      if mr[a] ~= mr[b] then
        return mr[a] > mr[b]
      end
      return a < b
    end)
    m.floor_prices, m.mr, m.by_reach_price, m.min_pr = prices, mr, by, min_pr
  end
  local mr, by, min_pr = m.mr, m.by_reach_price, m.min_pr
  if min_pr == huge then
    return 0
  end
  local sum, served = 0, 0
  for i = 1, #dv do
    local d = dv[i]
    sum, served = sum + d * mr[i], served + d
  end
  local budget = served - c.slo_share * total
  for k = 1, #by do
    if budget <= 0 then
      break
    end
    local i = by[k]
    local d = dv[i]
    if d > 0 then
      local skip = d < budget and d or budget
      sum, budget = sum - skip * (mr[i] - min_pr), budget - skip
    end
  end
  local floor_cost = sum / c.rps_per_unit
  local least = math.max(c.min_regions, total > 0 and 1 or 0) * min_pr
  return floor_cost > least and floor_cost or least
end

-- The current placement, as the seed of choose(): the regions serving and staying, and those
-- waiting to join; on a first tick, the regions already holding units. Fills m.seed and
-- returns it.
local function current_seed(c, st, cap, m, first_tick)
  local cands, sws, seed = c.candidates, st.sw, m.seed
  local ns = 0
  for j = 1, #cands do
    local s = cands[j]
    local sw = sws[s]
    if sw ~= nil then
      if sw.on == (sw.since == nil) then
        ns = ns + 1 -- serving and not leaving, or waiting to join
        seed[ns] = j
      end
    elseif first_tick and cap[s] > 0 then
      ns = ns + 1
      seed[ns] = j
    end
  end
  for k = #seed, ns + 1, -1 do
    seed[k] = nil
  end
  return seed
end

-- The placement to aim for. The current one (seed), completed by the greedy where it no
-- longer keeps the SLO, stays unless the greedy's own placement costs at least
-- switch_saving less, or keeps the SLO for more demand. Neighbours within the SLO at
-- similar prices are near-equal placements, and without this they trade places whenever
-- the demand moves a little: every move buys new leases and gives back good ones.
-- Returns the slot chosen (place's); a kept one carries the alternative's cost
-- (slot.alt_cost), or the floor no alternative can go below (slot.alt_floor).
local function choose(c, seed, dq, total, prices, m)
  if #seed == 0 then
    return place(c, dq, total, prices, m, m.slot_fresh)
  end
  local kept = place(c, dq, total, prices, m, m.slot_kept, seed)
  local bar = kept.cost * (1 - c.switch_saving)
  if kept.within >= c.slo_share * total - 1e-9 then
    local floor_cost = cost_floor(c, dq, total, prices, m)
    if floor_cost > bar * (1 + 1e-9) then
      kept.alt_cost, kept.alt_floor = floor_cost, true
      return kept
    end
  end
  local fresh = place(c, dq, total, prices, m, m.slot_fresh)
  if kept.within < math.min(c.slo_share * total, fresh.within) - 1e-9 or fresh.cost <= bar then
    return fresh
  end
  kept.alt_cost = fresh.cost
  return kept
end

-- What choose() decided, as the reference the next ticks' demand is measured against: when
-- it kept the seed because no placement can cost less than cost_floor allows (the common
-- case), the margins by which it kept it. m.moved and m.pattern_changed start again.
local function note_choice(c, m, target, seed, total_q)
  m.moved, m.pattern_changed, m.target_stale = 0, false, false
  m.ref_ok = target == m.slot_kept and target.alt_floor == true and not target.filled
  if not m.ref_ok then
    return
  end
  local ref_seed = m.ref_seed
  for k = 1, #seed do
    ref_seed[k] = seed[k]
  end
  for k = #ref_seed, #seed + 1, -1 do
    ref_seed[k] = nil
  end
  local floor_cost, cost = target.alt_cost, target.cost
  m.ref_cost_margin = floor_cost - cost * (1 - c.switch_saving) * (1 + 1e-9)
  m.ref_slo_margin = target.within - (c.slo_share * total_q - 1e-9)
  -- Rounding slack: far below any margin that matters, far above float error.
  m.ref_tol = 1e-7 * (floor_cost + cost + total_q + 1)
  -- How fast the margins can shrink per rps of demand moved. Only users with demand move
  -- (the same ones keep having it). The placement's cost moves by at most the dearest
  -- price among its regions per unit of demand. The floor moves by at most the dearest
  -- cheapest-price-in-reach of those users (m.mr, cost_floor's), plus twice the spread
  -- between that and the cheapest price for the demand it lets outside the SLO (granted to
  -- the dearest reach first; the grant moves with each user's demand and with the budget,
  -- (1 - slo_share) of the total). The demand within the SLO moves by at most the demand
  -- moved, its target by slo_share of it.
  local pr, mr, dq = m.pr, m.mr, m.dq
  local max_chosen, max_mr = 0, 0
  for k = 1, target.n do
    local price = pr[target.j[k]]
    max_chosen = price > max_chosen and price or max_chosen
  end
  for i = 1, #c.users do
    if dq[i] > 0 and mr[i] > max_mr then
      max_mr = mr[i]
    end
  end
  m.ref_cost_rate = (max_chosen * (1 - c.switch_saving) * (1 + 1e-9) + max_mr
    + 2 * (max_mr - m.min_pr)) / c.rps_per_unit
end

-- Whether the placement choose() kept at the reference still wins, without running it: the
-- same seed, every user with demand then has demand now (and none more), and the demand
-- moved since (m.moved, in steps: an upper bound on the distance) cannot have eaten the
-- margins by which it won. Then choose() would return the same regions, the same way; only
-- the costs it carries are those of the reference (m.target_stale).
local function kept_still_wins(c, m, seed)
  if not m.ref_ok or m.pattern_changed then
    return false
  end
  local moved = m.moved * c.step
  if m.ref_cost_margin - m.ref_cost_rate * moved <= m.ref_tol
      or m.ref_slo_margin - (1 + c.slo_share) * moved <= m.ref_tol then
    return false
  end
  local ref_seed = m.ref_seed
  if #seed ~= #ref_seed then
    return false
  end
  for k = 1, #seed do
    if seed[k] ~= ref_seed[k] then
      return false
    end
  end
  return true
end

-- Nearest serving region for a user region (ties: the cheaper, then alphabetical): the
-- first serving one in the user's nearest-first candidate list, unless an equally near one
-- after it is cheaper.
local function nearest(c, user, is_serving, prices)
  local i = c.user_index[user]
  if i == nil then
    return nil, nil
  end
  local order, lat, cands = c.order[i], c.lat[i], c.candidates
  local best, best_ms
  for k = 1, #order do
    local j = order[k]
    local ms = lat[j]
    if best ~= nil and ms > best_ms then
      break -- nearest first: nothing further on is as near
    end
    local s = cands[j]
    if is_serving[s] then
      if best == nil then
        best, best_ms = s, ms
      elseif (prices[s] or huge) < (prices[best] or huge) then
        best = s
      end
    end
  end
  return best, best_ms
end

-- "eu-west 250 rps at 15 ms, ..." for the `limit` largest users (a partial selection: a
-- full sort with a Lua comparator costs more than the rest of the explanation).
local function user_list(users, dem, c, region, limit)
  local parts, taken = {}, {}
  for n = 1, math.min(#users, limit) do
    local best
    for k = 1, #users do
      local u = users[k]
      if not taken[u]
          and (best == nil or dem[u] > dem[best] or (dem[u] == dem[best] and u < best)) then
        best = u
      end
    end
    taken[best] = true
    local ms = c.latency[best] and c.latency[best][region]
    parts[n] = fmt("%s %.0f rps at %s", best, dem[best], ms and fmt("%.0f ms", ms) or "? ms")
  end
  if #users > limit then
    parts[#parts + 1] = fmt("%d more", #users - limit)
  end
  return concat(parts, ", ")
end

-- Weighted 95th percentile (nearest rank, as steward.percentile) of latency → weight,
-- sorting the distinct latencies natively instead of with a Lua comparator.
local function p95(weights, total_weight)
  local keys = {}
  for ms in pairs(weights) do
    keys[#keys + 1] = ms
  end
  if #keys == 0 then
    return nil
  end
  sort(keys)
  local target, acc = 0.95 * total_weight, 0
  for _, ms in ipairs(keys) do
    acc = acc + weights[ms]
    if acc >= target - 1e-9 then
      return ms
    end
  end
  return keys[#keys]
end

-- The explanation of one region's decision (d: what evaluate worked out for it).
local function explain_region(c, st, s, d)
  local dem, prices, w = d.dem, d.prices, d.why
  local function rps_of(users)
    local sum = 0
    for _, u in ipairs(users) do
      sum = sum + dem[u]
    end
    return sum
  end
  if d.kind == "gone" then
    return fmt("not in the cheapest SLO placement for %.0fs: giving back %d units", c.down_s,
      d.have)
  end
  if d.kind == "wait" then
    local from, ms = nil, nil
    if w.users[1] ~= nil then
      from, ms = nearest(c, w.users[1], d.is_serving, prices)
    end
    local sw = st.sw[s]
    return fmt("wanted for %.0f rps within the %g ms SLO (%s), now served from %s%s; "
      .. "adding in %.0fs", rps_of(w.users), c.slo_ms, user_list(w.users, dem, c, s, 3),
      from or "nowhere", ms and fmt(" at %.0f ms", ms) or "",
      math.max(0, c.up_s - (d.now - (sw and sw.since or d.now))))
  end
  local users = #d.routed > 0 and user_list(d.routed, dem, c, s, 4) or "no demand"
  local text
  if d.kind == "hold" then
    text = fmt("%.0f rps (%s) needs %d, keeping %d for %.0fs more", d.load, users, d.need,
      d.have, d.hold_left)
  elseif d.kind == "lower" then
    text = fmt("%.0f rps (%s) for %.0fs: %d units are enough", d.load, users, d.waited,
      d.want)
  else
    text = fmt("%d x %g rps for %.0f rps from %s", d.want, c.rps_per_unit, d.load, users)
  end
  if not d.ideal then
    local sw = st.sw[s]
    text = text .. fmt("; no longer in the cheapest SLO placement, leaving in %.0fs",
      math.max(0, c.down_s - (d.now - (sw and sw.since or d.now))))
  elseif w.kept then
    text = text .. fmt("; kept for %.0f rps within the %g ms SLO (%s) at %.3f USD/h%s: the "
      .. "current placement costs %.3f USD/h, %s %.3f (a move needs %g%% less)",
      rps_of(w.users), c.slo_ms, #w.users > 0 and user_list(w.users, dem, c, s, 3) or "none new",
      prices[s] or 0, d.assumed and " (assumed: no offer seen yet)" or "", w.cost,
      w.alt_floor and "none can cost less than" or "the cheapest found", w.alt_cost,
      100 * c.switch_saving)
  elseif w.minimum then
    text = text .. fmt("; kept for min_regions = %d at %.3f USD/h%s", c.min_regions,
      prices[s] or 0, d.assumed and " (assumed: no offer seen yet)" or "")
  else
    text = text .. fmt("; chosen for %.0f rps within the %g ms SLO (%s) at %.3f USD/h%s, "
      .. "the most such demand per dollar", rps_of(w.users), c.slo_ms,
      user_list(w.users, dem, c, s, 3), prices[s] or 0,
      d.assumed and " (assumed: no offer seen yet)" or "")
  end
  if d.forced == "min" then
    text = text .. fmt(" (added at once: min_regions = %d)", c.min_regions)
  elseif d.forced == "start" then
    text = text .. " (added at once: nothing served yet)"
  end
  return text
end

-- What the last full evaluation decided, to answer an unchanged tick without deciding
-- again. Module state, not ctx.state: it is derived (a reload or a restored ctx.state starts
-- from a full evaluation) and must not grow the journaled state.
local memo = {}

-- The earliest time a pending timer changes a decision: a hysteresis switch waiting out
-- its delay, or a lower unit count waiting out scale_down_delay_s.
local function next_deadline(c, st, now)
  local deadline = huge
  for _, sw in pairs(st.sw) do
    if sw.since ~= nil then
      local t = sw.since + (sw.on and c.down_s or c.up_s)
      if t < deadline then
        deadline = t
      end
    end
  end
  for _, since in pairs(st.low_since) do
    local t = since + c.down_s
    if t > now and t < deadline then
      deadline = t
    end
  end
  return deadline
end

-- A fresh memo for this state and these derived tables, with its scratch arrays (by
-- position in c.users or c.candidates: a changed tick refills them instead of allocating).
local function new_memo(st, c)
  local m = { st = st, c = c, first = true, dv = {}, dq = {}, steps = {},
              reach_steps = {}, pr = {}, gain = {}, covered = {}, rank = {}, load = {},
              serves = {}, seed = {}, slot_kept = { j = {}, how = {} },
              slot_fresh = { j = {}, how = {} }, serving_j = {}, forced_j = {}, route = {},
              route_ms = {}, route_serving = {}, sload = {}, want_j = {}, kind_j = {},
              need_j = {}, out_want = {}, e_want = {}, e_kind = {}, e_cap = {}, e_flag = {},
              sum_t = {}, sum_s = {}, moved = 0, lo = {}, hi = {}, moved_regions = {}, bands = {},
              seed_stale = true,
              pattern_changed = true, ref_seed = {}, sw_how = {}, settled = false,
              dirty = {}, ndirty = 0, todo = {}, all_j = {}, users_of = {}, placed = 0,
              extra = false, extra_q = false, extra_seq = false, price_leases = false }
  for i = 1, #c.users do
    m.dv[i], m.dq[i], m.steps[i], m.covered[i] = 0, 0, 0, false
    local u = c.users[i]
    m.lo[u], m.hi[u] = huge, -huge -- empty: the first tick rounds
    m.route[i], m.route_ms[i] = false, false
  end
  for j = 1, #c.candidates do
    m.pr[j], m.gain[j], m.rank[j], m.reach_steps[j] = false, 0, false, 0
    m.slot_kept.how[j], m.slot_fresh.how[j], m.serving_j[j], m.forced_j[j] = false, false,
      false, false
    m.route_serving[j], m.sload[j], m.want_j[j], m.kind_j[j], m.need_j[j] = false, 0, false,
      false, false
    m.out_want[j], m.e_want[j], m.e_kind[j], m.e_cap[j], m.e_flag[j] = false, false, false,
      false, false
    m.sum_t[j], m.sum_s[j], m.sw_how[j], m.all_j[j] = false, false, false, j
    m.users_of[j] = {}
  end
  return m
end

-- The rounded demand routed to serving candidate j (as evaluate sums it for every region,
-- in the same order: the same sum). m.users_of[j]: the users routed to j, by position.
local function routed_load(c, m, j, cheapest)
  local dq, list, sum = m.dq, m.users_of[j], 0
  for k = 1, #list do
    local q = dq[list[k]]
    if q > 0 then
      sum = sum + q
    end
  end
  if j == cheapest and m.extra_q then
    for _, q in pairs(m.extra_q) do
      sum = sum + q
    end
  end
  return sum
end

-- Nearest serving candidate (position) for user i, with its latency (ties: the cheaper,
-- then alphabetical), as nearest() but on positions.
local function nearest_j(c, i, serving_j, pr)
  local order, lat = c.order[i], c.lat[i]
  local best, best_ms
  for k = 1, #order do
    local j = order[k]
    local ms = lat[j]
    if best ~= nil and ms > best_ms then
      break
    end
    if serving_j[j] then
      if best == nil then
        best, best_ms = j, ms
      elseif pr[j] < pr[best] then
        best = j
      end
    end
  end
  return best, best_ms
end

-- What an explanation reads by name, built on the first explanation of a tick: the
-- smoothed demand (regions without RTT data too) and the serving set.
local function named_views(c, m, st, serving_j)
  smoothed(c, m, st)
  local dem, is_serving = {}, {}
  for i = 1, #c.users do
    if m.dv[i] > 0 then
      dem[c.users[i]] = m.dv[i]
    end
  end
  for region, v in pairs(m.extra or {}) do
    dem[region] = v
  end
  for j = 1, #c.candidates do
    if serving_j[j] then
      is_serving[c.candidates[j]] = true
    end
  end
  return { dem = dem, is_serving = is_serving }
end

-- Why candidate j is in the placement (slot): the user regions with demand within the SLO
-- of it and of no region picked before it, or min_regions; for a kept one, the costs.
local function why_of(c, m, slot, j)
  local how = slot.how[j]
  local w = { users = {}, minimum = how == MINIMUM, kept = how == KEPT, cost = slot.cost,
              alt_cost = slot.alt_cost, alt_floor = slot.alt_floor }
  if how == MINIMUM then
    return w
  end
  local list, lat, slo, picks = c.cover[j], c.lat, c.slo_ms, slot.j
  for k = 1, #list do
    local i = list[k]
    if m.dv[i] > 0 then
      local earlier = false
      for r = 1, slot.n do
        local jj = picks[r]
        if jj == j then
          break
        end
        local ms = lat[i][jj]
        if ms and ms <= slo then
          earlier = true
          break
        end
      end
      if not earlier then
        w.users[#w.users + 1] = c.users[i]
      end
    end
  end
  return w
end

-- The user regions routed to candidate j (those without RTT data go to the cheapest
-- serving region), and their smoothed demand.
local function routed_to(c, m, j)
  local list, rps, dv, route, cheapest = {}, 0, m.dv, m.route, m.cheapest
  for i = 1, #c.users do
    if dv[i] > 0 and (route[i] or cheapest) == j then
      list[#list + 1], rps = c.users[i], rps + dv[i]
    end
  end
  if j == cheapest then
    for region, v in pairs(m.extra or {}) do
      list[#list + 1], rps = region, rps + v
    end
  end
  return list, rps
end

return {
  name = "geo-latency",

  evaluate = function(ctx)
    local p = ctx.params
    if cache.params ~= p then
      local text = params_text(p, ctx)
      if text ~= cache.text then
        cache.c, cache.text = prepare(p, ctx), text
      end
      cache.params = p
    end
    local c = cache.c
    local group = c.group
    local st = ctx.state
    if memo.st ~= st or memo.c ~= c then
      memo = new_memo(st, c)
    end
    local m = memo
    st.sw = st.sw or {}
    st.low_since = st.low_since or {}
    local now = ctx.now

    local dem_changed = demand(ctx, c, st, m, now)
    local prices, prices_changed = price_vector(ctx, c, m)
    local cap, cap_changed = capacity_vector(ctx, c, m)
    if not (dem_changed or prices_changed or cap_changed) and now < m.deadline then
      return m.out
    end

    local users, dv, dq, nu = c.users, m.dv, m.dq, #c.users
    local cands, nc = c.candidates, #c.candidates
    local first_tick = st.sw_started == nil
    local target = m.target
    if dem_changed or prices_changed or target == nil then
      -- The placement: the one chosen before while the demand has provably not moved
      -- enough to change choose()'s answer, else choose() again.
      -- st.sw changes only where the hysteresis runs, which then sets m.seed_stale.
      local seed = m.seed
      if m.seed_stale then
        seed, m.seed_stale = current_seed(c, st, cap, m, first_tick), false
      end
      if target ~= nil and not prices_changed and kept_still_wins(c, m, seed) then
        m.target_stale = true
      else
        local total_q = demand_total(c, m, true)
        target = choose(c, seed, dq, total_q, prices, m)
        m.target = target
        note_choice(c, m, target, seed, total_q)
      end
    end
    local picks, npicks, how = target.j, target.n, target.how

    -- The serving set is the last tick's when nothing it depends on moved: the same
    -- placement, no hysteresis timer due (m.deadline), nobody added at once last tick (that
    -- changes their explanation), and the same prices (routing). Then the hysteresis, the
    -- routing and the placement summary have nothing to do.
    local settled = m.settled and now < m.deadline and not prices_changed
    local sw_how = m.sw_how
    -- sw_how is a copy of how when no place() ran since on the same slot (m.placed).
    if settled and (target ~= m.sw_how_slot or m.placed ~= m.sw_how_placed) then
      for j = 1, nc do
        if sw_how[j] ~= how[j] then
          settled = false
          break
        end
      end
    end

    -- Hysteresis per region (steward.hysteresis's rule, inlined). On the first tick (a fresh
    -- state: a new deployment, or one adopted from another tool), regions already holding
    -- units count as serving.
    st.sw_started = true
    local serving_j, forced_j = m.serving_j, m.forced_j
    local up_s, down_s, sws = c.up_s, c.down_s, st.sw
    if not settled then
      local n_serving = 0
      for j = 1, nc do
        local s = cands[j]
        local sw = sws[s]
        local wants = how[j] ~= false
        if sw == nil and (wants or (first_tick and cap[s] > 0)) then
          sw = { on = first_tick and cap[s] > 0 }
          sws[s] = sw
        end
        local on = false
        if sw ~= nil then
          if wants == sw.on then
            sw.since = nil
          else
            sw.since = sw.since or now
            if now - sw.since >= (sw.on and down_s or up_s) then
              sw.on, sw.since = wants, nil
            end
          end
          on = sw.on
          if not on and sw.since == nil then
            sws[s] = nil -- off and not wanted: forget it (keeps ctx.state small)
          end
        end
        serving_j[j], forced_j[j] = on, false
        if on then
          n_serving = n_serving + 1
        end
      end
      -- Never below min_regions: take the placement's first picks, at once. A fresh start
      -- with nothing serving takes the whole placement at once: there is no placement yet for
      -- the delay to protect, and waiting would route all the demand to the min_regions
      -- ones, buying units there for a few minutes only.
      local fresh_start = first_tick and n_serving == 0 and c.min_regions > 0
      local any_forced = false
      for k = 1, npicks do
        if n_serving >= c.min_regions and not fresh_start then
          break
        end
        local j = picks[k]
        if not serving_j[j] then
          sws[cands[j]] = { on = true }
          serving_j[j] = true
          forced_j[j] = n_serving >= c.min_regions and "start" or "min"
          n_serving = n_serving + 1
          any_forced = true
        end
      end
      for j = 1, nc do
        sw_how[j] = how[j]
      end
      m.sw_how_slot, m.sw_how_placed = target, m.placed
      m.settled, m.seed_stale = not first_tick and not any_forced, true
    end

    -- Each user region's nearest serving region, worked out again only when the serving
    -- set or the prices (ties go to the cheaper) change.
    local route, route_ms, routed_set = m.route, m.route_ms, m.route_serving
    local reroute = m.route_prices ~= prices
    if not reroute and not settled then
      for j = 1, nc do
        if routed_set[j] ~= serving_j[j] then
          reroute = true
          break
        end
      end
    end
    if reroute then
      local pr = m.pr
      m.route_prices = prices
      for j = 1, nc do
        routed_set[j] = serving_j[j]
      end
      for i = 1, nu do
        local j, ms = nearest_j(c, i, serving_j, pr)
        route[i], route_ms[i] = j or false, ms or false
      end
      local cheapest = false
      for j = 1, nc do
        if serving_j[j] and (not cheapest or pr[j] < pr[cheapest]) then
          cheapest = j
        end
      end
      m.cheapest = cheapest
      local users_of = m.users_of
      for j = 1, nc do
        local list = users_of[j]
        for k = #list, 1, -1 do
          list[k] = nil
        end
      end
      for i = 1, nu do
        local j = route[i] or cheapest
        if j then
          local list = users_of[j]
          list[#list + 1] = i
        end
      end
    end
    local cheapest = m.cheapest
    -- Units follow the rounded demand routed to each serving region. Demand from regions
    -- without RTT data still needs serving somewhere: the cheapest serving region.
    -- todo[1..ntodo]: the regions whose decision is worked out again. With the serving set
    -- settled, the same units and the same demand without RTT data, that is the regions
    -- serving a user whose rounded demand moved (m.dirty): for the others the load, the
    -- units and the timers (m.deadline) are those of the last tick, and so is the decision.
    local sload, todo, ntodo = m.sload, m.all_j, nc
    if settled and not cap_changed and not m.extra_changed then
      todo, ntodo = m.todo, 0
      local dirty = m.dirty
      for x = 1, m.ndirty do
        local j = route[dirty[x]] or cheapest
        if j then
          -- Kept in region order, the order their explanations go out in.
          local y = ntodo
          while y > 0 and todo[y] > j do
            y = y - 1
          end
          if y == 0 or todo[y] ~= j then
            for z = ntodo, y + 1, -1 do
              todo[z + 1] = todo[z]
            end
            todo[y + 1], ntodo = j, ntodo + 1
            sload[j] = routed_load(c, m, j, cheapest)
          end
        end
      end
    else
      for j = 1, nc do
        sload[j] = 0
      end
      for i = 1, nu do
        local q = dq[i]
        if q > 0 then
          local j = route[i] or cheapest
          if j then
            sload[j] = sload[j] + q
          end
        end
      end
      if m.extra_q and cheapest then
        for _, q in pairs(m.extra_q) do
          sload[cheapest] = sload[cheapest] + q
        end
      end
    end
    m.ndirty = 0

    -- The decision per region: a count (false: none), and what explains it.
    local want_j, kind_j, need_j = m.want_j, m.kind_j, m.need_j
    local rpu, low = c.rps_per_unit, st.low_since
    for x = 1, ntodo do
      local j = todo[x]
      local s = cands[j]
      local have = cap[s]
      if serving_j[j] then
        local need = -((1e-9 - sload[j] / rpu) // 1) -- ceil without a call
        if need < 1 then
          need = 1
        end
        if need < have then
          local since = low[s]
          if since == nil then
            since = now
            low[s] = now
          end
          if now - since < down_s then
            kind_j[j], need_j[j], need = "hold", need, have
          else
            kind_j[j] = "lower"
          end
        else
          low[s] = nil
          kind_j[j] = "serve"
        end
        want_j[j] = need
      elseif how[j] then
        want_j[j], kind_j[j] = have, "wait"
      else
        low[s] = nil
        if have > 0 then
          want_j[j], kind_j[j] = 0, "gone"
        else
          want_j[j], kind_j[j] = false, false
        end
      end
    end
    -- The same counts as the last answer: the same table.
    local out, out_want = m.out, m.out_want
    local same = out ~= nil
    if same then
      for x = 1, ntodo do
        local j = todo[x]
        if out_want[j] ~= want_j[j] then
          same = false
          break
        end
      end
    end
    if not same then
      local want = {}
      for j = 1, nc do
        local w = want_j[j]
        out_want[j] = w
        if w then
          want[cands[j]] = w
        end
      end
      out = { [group] = want }
    end
    m.out, m.deadline = out, next_deadline(c, st, now)

    -- Explanations, for the regions whose decision or units changed since they were last
    -- explained (the planner attaches them to the actions that follow), and for the whole
    -- placement when it or the serving set changed. They read the smoothed demand by name.
    local views
    local e_want, e_kind, e_cap, e_flag = m.e_want, m.e_kind, m.e_cap, m.e_flag
    for x = 1, ntodo do
      local j = todo[x]
      local w = want_j[j]
      -- The decision and the units it was taken against: a unit lost or added brings the
      -- explanation back for the action that follows.
      if not w then
        e_want[j] = false
      else
        local s = cands[j]
        local flag = (forced_j[j] and 4 or 0) + (how[j] or 0)
        local kind, have = kind_j[j], cap[s]
        if e_want[j] ~= w or e_kind[j] ~= kind or e_cap[j] ~= have or e_flag[j] ~= flag then
          e_want[j], e_kind[j], e_cap[j], e_flag[j] = w, kind, have, flag
          if m.target_stale then
            -- The explanation quotes the placement's costs: those of this tick's demand.
            -- choose() gives the same regions (kept_still_wins), with today's figures.
            local total_q = demand_total(c, m, true)
            target = choose(c, m.ref_seed, dq, total_q, prices, m)
            m.target = target
            note_choice(c, m, target, m.ref_seed, total_q)
          end
          views = views or named_views(c, m, st, serving_j)
          local routed, load_rps = routed_to(c, m, j)
          local since = low[s]
          ctx.explain(group, s, explain_region(c, st, s, {
            kind = kind, want = w, have = have, load = load_rps, routed = routed,
            dem = views.dem, prices = prices, why = how[j] and why_of(c, m, target, j),
            ideal = how[j] ~= false, forced = forced_j[j],
            hold_left = kind == "hold" and down_s - (now - since) or nil,
            waited = kind == "lower" and now - since or nil, need = need_j[j],
            is_serving = views.is_serving, now = now, assumed = m.assumed[s],
          }))
        end
      end
    end
    -- The placement as a set (the greedy's pick order may change with nothing else).
    local sum_t, sum_s = m.sum_t, m.sum_s
    local same_placement = m.summary_done
    if same_placement and not settled then
      for j = 1, nc do
        if sum_t[j] ~= (how[j] ~= false) or sum_s[j] ~= serving_j[j] then
          same_placement = false
          break
        end
      end
    end
    if not same_placement then
      m.summary_done = true
      local placed, serving = {}, {}
      for j = 1, nc do
        sum_t[j], sum_s[j] = how[j] ~= false, serving_j[j]
        if serving_j[j] then
          serving[#serving + 1] = cands[j]
        end
      end
      for k = 1, npicks do
        placed[k] = cands[picks[k]]
      end
      views = views or named_views(c, m, st, serving_j)
      local within, unreachable, latencies, measured, user_regions = 0, 0, {}, 0, 0
      for u, d in pairs(views.dem) do
        user_regions = user_regions + 1
        local i = c.user_index[u]
        local ms = i ~= nil and route[i] and route_ms[i] or nil
        if ms == nil then
          unreachable = unreachable + d
        else
          latencies[ms] = (latencies[ms] or 0) + d
          measured = measured + d
          if ms <= c.slo_ms then
            within = within + d
          end
        end
      end
      local p95_ms = p95(latencies, measured)
      local total = demand_total(c, m, false)
      ctx.explain(group, nil, fmt("%.0f rps from %d user regions; %.1f%% within %g ms "
        .. "(target %.0f%%), p95 %s; placement %s; serving %s%s", total, user_regions,
        total > 0 and 100 * within / total or 100, c.slo_ms,
        100 * c.slo_share, p95_ms and fmt("%.0f ms", p95_ms) or "n/a",
        #placed > 0 and concat(placed, "+") or "none",
        #serving > 0 and concat(serving, "+") or "none",
        unreachable > 0 and fmt("; %.0f rps from regions without RTT data", unreachable) or ""))
    end
    return out
  end,
}
