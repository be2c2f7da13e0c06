--- steward.smooth — exponentially weighted moving average with a time-aware weight.
---
--- Samples arrive at irregular times (ticks slip, metrics go missing), so the weight of
--- a new sample depends on the time since the previous one: after `half_life_s` seconds
--- an old value counts for half. The state is plain data and can live in ctx.state:
---
---     local smooth = require "steward.smooth"
---     ctx.state.rps = ctx.state.rps or {}
---     local rps = smooth.new(60, ctx.state.rps):update(sample, ctx.now)

local M = {}

---@class steward.Smooth
---@field half_life_s number
---@field v number|nil  current average (nil before the first sample)
---@field t number|nil  time of the last sample, seconds
local Smooth = {}
Smooth.__index = Smooth

---Create an average, or re-attach one kept in a plain table (e.g. from ctx.state).
---@param half_life_s number  seconds after which an old value weighs half; > 0
---@param store? table        where to keep the state (default: a new table)
---@return steward.Smooth
function M.new(half_life_s, store)
  if type(half_life_s) ~= "number" or half_life_s <= 0 then
    error("smooth.new: half_life_s must be a number > 0", 2)
  end
  local s = store or {}
  s.half_life_s = half_life_s
  return setmetatable(s, Smooth)
end

---Add a sample taken at `now` (seconds) and return the new average. The first sample
---becomes the average; a sample not later than the previous one leaves it unchanged.
---@param value number
---@param now number
---@return number
function Smooth:update(value, now)
  if type(value) ~= "number" or type(now) ~= "number" then
    error("smooth:update: expected (value: number, now: number)", 2)
  end
  if self.v == nil or self.t == nil then
    self.v, self.t = value, now
    return value
  end
  local dt = now - self.t
  if dt <= 0 then
    return self.v
  end
  local alpha = 1 - 2 ^ (-dt / self.half_life_s)
  self.v = self.v + alpha * (value - self.v)
  self.t = now
  return self.v
end

---The current average, or nil before the first sample.
---@return number|nil
function Smooth:value()
  return self.v
end

---The weight a sample gets after dt seconds with this half-life.
---@param dt number
---@param half_life_s number
---@return number
function M.alpha(dt, half_life_s)
  if dt <= 0 then
    return 0
  end
  return 1 - 2 ^ (-dt / half_life_s)
end

return M
