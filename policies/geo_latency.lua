-- geo_latency.lua — serve users from data centers near them, at the lowest price that keeps
-- the latency SLO.
--
-- Each tick:
--   1. Demand per user region: ctx.metrics.sum_by(metric, label), each region smoothed
--      (steward.smooth) so a spike does not buy a data center.
--   2. The ideal placement, greedy: while less than `slo_share` of the demand is within
--      `slo_ms` of a chosen region, add the candidate that covers the most uncovered demand
--      within the SLO per dollar (its bid price, ctx.price(region), times the units that
--      demand needs). Never fewer than `min_regions`, never more than `max_regions`.
--   3. Hysteresis per region (steward.hysteresis): a region joins once the placement has
--      wanted it for `scale_up_delay_s`, and leaves once it has not for
--      `scale_down_delay_s` (defaults 30 s and 300 s: the Kubernetes HPA scales down after a
--      300 s stabilization window and up almost at once; SkyServe likewise waits far longer
--      to scale down than up). `min_regions` is held at once, without waiting.
--   4. Each user region is routed to its nearest serving region; a serving region gets one
--      unit per `rps_per_unit` of the demand routed to it (at least one). A lower count
--      waits `scale_down_delay_s` too; a higher one is asked for at once.
--   5. Every region asked for is explained: which demand it serves, at what RTT, and why it
--      was worth its price (or why it is still held or still waiting).
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
--   label ("region"), min_rps (0.5: smoothed demand below this is no demand)
local geo = require "steward.geo"
local smooth = require "steward.smooth"
local hysteresis = require "steward.hysteresis"

local floor, ceil, huge = math.floor, math.ceil, math.huge
local sort, concat = table.sort, table.concat
local fmt = string.format

-- Derived from params once per params table (ctx.params keeps its identity across ticks;
-- a reload builds a new module and a new cache).
local cache = { params = nil }

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
  return c
end

-- Smoothed demand per user region (steward.smooth's time-aware EWMA, inlined: it runs for
-- every region every tick); regions missing from this tick's metric decay to 0.
local function demand(ctx, c, st)
  local raw, err = ctx.metrics.sum_by(c.metric, c.label)
  if not raw then
    -- Keeps the last good desired state: no signal, no change.
    error("no demand signal: " .. tostring(err), 0)
  end
  local avg = st.avg or {}
  st.avg = avg
  local now = ctx.now
  -- A region that shows up after the first tick had no demand before: its average starts
  -- from 0 then, so a burst from a new region is smoothed like any other.
  local previous = st.last_t
  st.last_t = now
  local hl = c.half_life_s
  local out, total = {}, 0
  local function update(region, value)
    local a = avg[region]
    local v
    if a == nil then
      v = previous and value * smooth.alpha(now - previous, hl) or value
      avg[region] = { v = v, t = now }
    elseif now > a.t then
      v = a.v + smooth.alpha(now - a.t, hl) * (value - a.v)
      a.v, a.t = v, now
    else
      v = a.v
    end
    return v
  end
  for region, value in pairs(raw) do
    if region ~= "" then
      local v = update(region, value)
      if v >= c.min_rps then
        out[region] = v
        total = total + v
      end
    end
  end
  for region in pairs(avg) do
    if raw[region] == nil then
      local v = update(region, 0)
      if v < 0.01 then
        avg[region] = nil
      elseif v >= c.min_rps then
        out[region] = v
        total = total + v
      end
    end
  end
  return out, total
end

-- Price of a unit in a region now: the best offer, else what its open units cost, else nil.
local function region_price(ctx, c, region)
  local price = ctx.price(region)
  if price ~= nil then
    return price
  end
  local sum, n = 0, 0
  for _, l in ipairs(ctx.leases) do
    if l.group == c.group and l.region == region and l.price_usd_hour > 0 then
      sum, n = sum + l.price_usd_hour, n + 1
    end
  end
  if n > 0 then
    return sum / n
  end
  return nil
end

-- The greedy placement: while less than slo_share of the demand is within the SLO, add
-- the candidate whose newly covered demand per dollar (its price times the units that
-- demand needs) is highest; ties go to the one closer to that demand, then the cheaper,
-- then the first by name. Gains are kept up to date as users get covered, so an iteration
-- costs O(candidates). Afterwards a region that is nobody's nearest serves nothing and is
-- dropped, and min_regions is filled with the candidates reaching the most demand.
-- Returns the chosen names (in the order chosen) and a why-table name → {rps = demand it
-- brought within the SLO, users = {...}}.
local function place(c, dem, total, prices)
  local users, cands, cover, reach, lat = c.users, c.candidates, c.cover, c.reach, c.lat
  local nu, nc, rpu = #users, #cands, c.rps_per_unit
  local dv, pr, gain, covered, chosen_j = {}, {}, {}, {}, {}
  for i = 1, nu do
    dv[i] = dem[users[i]] or 0
    covered[i] = false
  end
  for j = 1, nc do
    pr[j] = prices[cands[j]] or false
    local g, list = 0, cover[j]
    for k = 1, #list do
      g = g + dv[list[k]]
    end
    gain[j] = g
  end
  local function mean_ms(j)
    local sum, weight, list = 0, 0, cover[j]
    for k = 1, #list do
      local i = list[k]
      if not covered[i] and dv[i] > 0 then
        sum, weight = sum + dv[i] * lat[i][j], weight + dv[i]
      end
    end
    return sum / weight
  end
  local in_set, why, chosen = {}, {}, {}
  local covered_rps, target = 0, c.slo_share * total
  while #chosen_j < c.max_regions and total > 0 and covered_rps < target - 1e-9 do
    local best, best_score, best_ms
    for j = 1, nc do
      local price, g = pr[j], gain[j]
      if price and g > 1e-9 and not in_set[j] then
        local score = g / (math.max(price, 1e-9) * ceil(g / rpu - 1e-9))
        if best == nil or score > best_score * (1 + 1e-9) then
          best, best_score, best_ms = j, score, nil
        elseif score >= best_score * (1 - 1e-9) then
          best_ms = best_ms or mean_ms(best)
          local ms = mean_ms(j)
          if ms < best_ms - 1e-9 or (ms <= best_ms + 1e-9 and price < pr[best]) then
            best, best_score, best_ms = j, score, ms
          end
        end
      end
    end
    if best == nil then
      break -- nothing left within reach of the SLO
    end
    local newly, list = {}, cover[best]
    for k = 1, #list do
      local i = list[k]
      if not covered[i] and dv[i] > 0 then
        covered[i] = true
        newly[#newly + 1] = users[i]
        local r = reach[i]
        for m = 1, #r do
          gain[r[m]] = gain[r[m]] - dv[i]
        end
      end
    end
    in_set[best] = true
    chosen_j[#chosen_j + 1] = best
    why[cands[best]] = { users = newly }
    local brought = 0
    for _, u in ipairs(newly) do
      brought = brought + dem[u]
    end
    why[cands[best]].rps = brought
    covered_rps = covered_rps + brought
  end
  -- Drop regions that are nobody's nearest (a later pick is nearer to all their users).
  if #chosen_j > c.min_regions then
    local serves = {}
    for i = 1, nu do
      if dv[i] > 0 then
        local row, best, best_ms = lat[i], nil, nil
        for k = 1, #chosen_j do
          local ms = row[chosen_j[k]]
          if ms and (best == nil or ms < best_ms) then
            best, best_ms = chosen_j[k], ms
          end
        end
        if best ~= nil then
          serves[best] = true
        end
      end
    end
    for k = #chosen_j, 1, -1 do
      local j = chosen_j[k]
      if not serves[j] and #chosen_j > c.min_regions then
        table.remove(chosen_j, k)
        in_set[j], why[cands[j]] = nil, nil
      end
    end
  end
  -- min_regions: the remaining candidate that reaches the most demand, cheapest first.
  while #chosen_j < c.min_regions do
    local best, best_reach
    for j = 1, nc do
      if pr[j] and not in_set[j] then
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
    in_set[best] = true
    chosen_j[#chosen_j + 1] = best
    why[cands[best]] = { rps = 0, users = {}, minimum = true }
  end
  for k = 1, #chosen_j do
    chosen[k] = cands[chosen_j[k]]
  end
  return chosen, why
end

-- Nearest serving region for a user region (ties: the cheaper, then alphabetical).
local function nearest(c, user, serving, prices)
  local row = c.latency[user]
  local best, best_ms
  if row ~= nil then
    for _, s in ipairs(serving) do
      local ms = row[s]
      if ms ~= nil and (best == nil or ms < best_ms
          or (ms == best_ms and (prices[s] or huge) < (prices[best] or huge))) then
        best, best_ms = s, ms
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

return {
  name = "geo-latency",

  evaluate = function(ctx)
    local p = ctx.params
    if cache.params ~= p then
      cache.c = prepare(p, ctx)
      cache.params = p
    end
    local c = cache.c
    local group = c.group
    local st = ctx.state
    st.sw = st.sw or {}
    st.low_since = st.low_since or {}
    local now = ctx.now

    local dem, total = demand(ctx, c, st)
    local prices, cap = {}, {}
    for _, s in ipairs(c.candidates) do
      prices[s] = region_price(ctx, c, s)
      cap[s] = ctx.capacity(group, s)
    end
    local ideal, why = place(c, dem, total, prices)
    local ideal_set = {}
    for rank, s in ipairs(ideal) do
      ideal_set[s] = rank
    end

    -- Hysteresis per region. On the first tick (a fresh state: a new deployment, or one
    -- adopted from another tool), regions already holding units count as serving.
    local first_tick = st.sw_started == nil
    st.sw_started = true
    local serving, switches, is_serving = {}, {}, {}
    for _, s in ipairs(c.candidates) do
      local store = st.sw[s]
      if store == nil and (ideal_set[s] or (first_tick and cap[s] > 0)) then
        store = { on = first_tick and cap[s] > 0 }
        st.sw[s] = store
      end
      if store ~= nil then
        local h = hysteresis.new(c.up_s, c.down_s, store)
        h:update(ideal_set[s] ~= nil, now)
        switches[s] = store
        if store.on then
          serving[#serving + 1] = s
          is_serving[s] = true
        elseif store.since == nil then
          st.sw[s] = nil -- off and not wanted: forget it (keeps ctx.state small)
        end
      end
    end
    -- Never below min_regions: take the ideal ones first, at once.
    for _, s in ipairs(ideal) do
      if #serving >= c.min_regions then
        break
      end
      if not is_serving[s] then
        st.sw[s] = { on = true }
        switches[s] = st.sw[s]
        serving[#serving + 1] = s
        is_serving[s] = true
        why[s].forced = true
      end
    end
    sort(serving)

    -- Route each user region to its nearest serving region.
    local load, routed = {}, {}
    for _, s in ipairs(serving) do
      load[s], routed[s] = 0, {}
    end
    local within, unreachable = 0, 0
    local latencies, measured = {}, 0
    local cheapest
    for _, s in ipairs(serving) do
      if cheapest == nil or (prices[s] or huge) < (prices[cheapest] or huge) then
        cheapest = s
      end
    end
    for u, d in pairs(dem) do
      local s, ms = nearest(c, u, serving, prices)
      if s == nil then
        -- No RTT known from this user region: its requests still need serving somewhere.
        s = cheapest
        unreachable = unreachable + d
      else
        latencies[ms] = (latencies[ms] or 0) + d
        measured = measured + d
        if ms <= c.slo_ms then
          within = within + d
        end
      end
      if s ~= nil then
        load[s] = load[s] + d
        local list = routed[s]
        list[#list + 1] = u
      end
    end

    local want = {}
    for _, s in ipairs(serving) do
      local need = math.max(1, ceil(load[s] / c.rps_per_unit - 1e-9))
      local have = cap[s]
      local users = #routed[s] > 0 and user_list(routed[s], dem, c, s, 4) or "no demand"
      local text
      if need < have then
        st.low_since[s] = st.low_since[s] or now
        local waited = now - st.low_since[s]
        if waited < c.down_s then
          text = fmt("%.0f rps (%s) needs %d, keeping %d for %.0fs more", load[s], users,
            need, have, c.down_s - waited)
          need = have
        else
          text = fmt("%.0f rps (%s) for %.0fs: %d units are enough", load[s], users, waited,
            need)
        end
      else
        st.low_since[s] = nil
        text = fmt("%d x %g rps for %.0f rps from %s", need, c.rps_per_unit, load[s], users)
      end
      local w = why[s]
      if ideal_set[s] == nil then
        local sw = switches[s]
        text = text .. fmt("; no longer in the cheapest SLO placement, leaving in %.0fs",
          math.max(0, c.down_s - (now - (sw.since or now))))
      elseif w.minimum then
        text = text .. fmt("; kept for min_regions = %d at %.3f USD/h", c.min_regions,
          prices[s] or 0)
      else
        text = text .. fmt("; chosen for %.0f rps within the %g ms SLO (%s) at %.3f USD/h, "
          .. "the most such demand per dollar", w.rps, c.slo_ms,
          user_list(w.users, dem, c, s, 3), prices[s] or 0)
      end
      if w ~= nil and w.forced then
        text = text .. fmt(" (added at once: min_regions = %d)", c.min_regions)
      end
      ctx.explain(group, s, text)
      want[s] = need
    end
    -- Regions the placement wants that are still waiting out scale_up_delay_s.
    for _, s in ipairs(ideal) do
      if not is_serving[s] then
        local sw = switches[s]
        local w = why[s]
        local from, ms = nil, nil
        if w.users[1] ~= nil then
          from, ms = nearest(c, w.users[1], serving, prices)
        end
        ctx.explain(group, s, fmt("wanted for %.0f rps within the %g ms SLO (%s), now served "
          .. "from %s%s; adding in %.0fs", w.rps, c.slo_ms, user_list(w.users, dem, c, s, 3),
          from or "nowhere", ms and fmt(" at %.0f ms", ms) or "",
          math.max(0, c.up_s - (now - (sw.since or now)))))
        want[s] = cap[s]
      end
    end
    -- Regions just left: say so on the tick their units are given back.
    for _, s in ipairs(c.candidates) do
      if want[s] == nil and cap[s] > 0 then
        want[s] = 0
        st.low_since[s] = nil
        ctx.explain(group, s, fmt("not in the cheapest SLO placement for %.0fs: giving back "
          .. "%d units", c.down_s, cap[s]))
      end
    end

    local p95_ms = p95(latencies, measured)
    local user_regions = 0
    for _ in pairs(dem) do
      user_regions = user_regions + 1
    end
    ctx.explain(group, nil, fmt("%.0f rps from %d user regions; %.1f%% within %g ms "
      .. "(target %.0f%%), p95 %s; placement %s; serving %s%s", total, user_regions,
      total > 0 and 100 * within / total or 100, c.slo_ms,
      100 * c.slo_share, p95_ms and fmt("%.0f ms", p95_ms) or "n/a",
      #ideal > 0 and concat(ideal, "+") or "none",
      #serving > 0 and concat(serving, "+") or "none",
      unreachable > 0 and fmt("; %.0f rps from regions without RTT data", unreachable) or ""))
    return { [group] = want }
  end,
}
