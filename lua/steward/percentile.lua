--- steward.percentile — percentiles of weighted samples.
---
--- Items are {value, weight} pairs (or {value = v, weight = w}); a missing weight is 1
--- and items with weight <= 0 are ignored. The p-th percentile is the smallest value
--- whose cumulative weight reaches p% of the total (nearest rank, no interpolation), so
--- the answer is always one of the values.
---
---     local percentile = require "steward.percentile"
---     local p95 = percentile.weighted({{120, 30}, {80, 200}, {300, 2}}, 95)

local M = {}

---@alias steward.WeightedItem {[1]: number, [2]: number}|{value: number, weight: number}

local function collect(items)
  local list, total = {}, 0
  for i, item in ipairs(items) do
    local value = item.value or item[1]
    local weight = item.weight or item[2] or 1
    if type(value) ~= "number" or type(weight) ~= "number" then
      error(("percentile: item %d: expected {value, weight} numbers"):format(i), 3)
    end
    if weight > 0 then
      list[#list + 1] = { value, weight }
      total = total + weight
    end
  end
  table.sort(list, function(a, b)
    return a[1] < b[1]
  end)
  return list, total
end

local function check_p(p)
  if type(p) ~= "number" or p < 0 or p > 100 then
    error("percentile: p must be a number between 0 and 100", 3)
  end
end

---The p-th weighted percentile (p in 0..100), or nil when there is no positive weight.
---@param items steward.WeightedItem[]
---@param p number
---@return number|nil
function M.weighted(items, p)
  check_p(p)
  local list, total = collect(items)
  if #list == 0 then
    return nil
  end
  local target = p / 100 * total
  local acc = 0
  for _, entry in ipairs(list) do
    acc = acc + entry[2]
    if acc >= target then
      return entry[1]
    end
  end
  return list[#list][1]
end

---Several percentiles at once: {p = value}.
---@param items steward.WeightedItem[]
---@param ps number[]
---@return table<number, number>
function M.many(items, ps)
  local out = {}
  for _, p in ipairs(ps) do
    out[p] = M.weighted(items, p)
  end
  return out
end

---Unweighted percentile of a list of numbers.
---@param values number[]
---@param p number
---@return number|nil
function M.of(values, p)
  local items = {}
  for i, v in ipairs(values) do
    items[i] = { v, 1 }
  end
  return M.weighted(items, p)
end

---Weighted median.
---@param items steward.WeightedItem[]
---@return number|nil
function M.median(items)
  return M.weighted(items, 50)
end

return M
