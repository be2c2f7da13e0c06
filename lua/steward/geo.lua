--- steward.geo — round-trip-time tables between regions.
---
--- Load rows {from, to, rtt_ms} (or {from = .., to = .., rtt_ms = ..}) from a Lua table,
--- typically ctx.params.rtt or a module of your own. A pair given in one direction is
--- used for both; a region's RTT to itself is 0 unless a row says otherwise.
---
---     local geo = require "steward.geo"
---     local rtt = geo.load(ctx.params.rtt)
---     local region, ms = rtt:nearest("eu-central", {"eu-west", "us-east"})

local M = {}

---@class steward.RttTable
---@field m table<string, table<string, number>>
local Rtt = {}
Rtt.__index = Rtt

---@alias steward.RttRow
---| {[1]: string, [2]: string, [3]: number}
---| {from: string, to: string, rtt_ms: number}

---@param rows steward.RttRow[]
---@return steward.RttTable
function M.load(rows)
  if type(rows) ~= "table" then
    error("geo.load: expected a list of {from, to, rtt_ms} rows", 2)
  end
  local m = {}
  for i, row in ipairs(rows) do
    local from = row.from or row[1]
    local to = row.to or row[2]
    local rtt = row.rtt_ms or row[3]
    if type(from) ~= "string" or type(to) ~= "string" or type(rtt) ~= "number" or rtt < 0 then
      error(("geo.load: row %d: expected {from = string, to = string, rtt_ms = number >= 0}")
        :format(i), 2)
    end
    m[from] = m[from] or {}
    m[from][to] = rtt
  end
  return setmetatable({ m = m }, Rtt)
end

---RTT in ms between two regions, or nil when unknown.
---@param from string
---@param to string
---@return number|nil
function Rtt:rtt(from, to)
  local row = self.m[from]
  local r = row and row[to]
  if r == nil then
    local back = self.m[to]
    r = back and back[from]
  end
  if r == nil and from == to then
    return 0
  end
  return r
end

-- A serving set is a list of regions or a map region → count (regions with count > 0
-- serve), the shape of one group's desired table.
local function serving_regions(serving)
  local list = {}
  for k, v in pairs(serving) do
    if type(k) == "number" and type(v) == "string" then
      list[#list + 1] = v
    elseif type(k) == "string" and (v == true or (type(v) == "number" and v > 0)) then
      list[#list + 1] = k
    end
  end
  table.sort(list)
  return list
end

---The candidate with the lowest RTT from `from` (ties: alphabetical), and that RTT;
---nil when no candidate has a known RTT.
---@param from string
---@param candidates string[]|table<string, integer>
---@return string|nil region, number|nil rtt_ms
function Rtt:nearest(from, candidates)
  local best, best_rtt
  for _, region in ipairs(serving_regions(candidates)) do
    local r = self:rtt(from, region)
    if r ~= nil and (best_rtt == nil or r < best_rtt) then
      best, best_rtt = region, r
    end
  end
  return best, best_rtt
end

---Latency a user in `user_region` sees when served from the nearest region of
---`serving`; nil when none is reachable.
---@param user_region string
---@param serving string[]|table<string, integer>
---@return number|nil
function Rtt:latency(user_region, serving)
  local _, r = self:nearest(user_region, serving)
  return r
end

---Mean latency over users weighted by `users` (region → weight, e.g. active users).
---Returns the mean and the weight that could not be served (unknown RTT).
---@param users table<string, number>
---@param serving string[]|table<string, integer>
---@return number|nil mean_ms, number unserved_weight
function Rtt:mean_latency(users, serving)
  local sum, weight, unserved = 0, 0, 0
  for region, w in pairs(users) do
    local r = self:latency(region, serving)
    if r == nil then
      unserved = unserved + w
    else
      sum = sum + r * w
      weight = weight + w
    end
  end
  if weight == 0 then
    return nil, unserved
  end
  return sum / weight, unserved
end

---Every region the table mentions, sorted.
---@return string[]
function Rtt:regions()
  local seen, list = {}, {}
  for from, row in pairs(self.m) do
    seen[from] = true
    for to in pairs(row) do
      seen[to] = true
    end
  end
  for region in pairs(seen) do
    list[#list + 1] = region
  end
  table.sort(list)
  return list
end

return M
