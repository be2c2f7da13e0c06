--- steward.hysteresis — a switch that needs a condition to hold for a while.
---
--- Off → on once the condition has been true for `up_s` seconds without interruption;
--- on → off once it has been false for `down_s` seconds. Flapping metrics then do not
--- make a policy buy and release capacity every tick. The state is plain data and can
--- live in ctx.state:
---
---     local hysteresis = require "steward.hysteresis"
---     ctx.state.busy = ctx.state.busy or {}
---     local busy = hysteresis.new(120, 600, ctx.state.busy):update(load > 0.8, ctx.now)

local M = {}

---@class steward.Hysteresis
---@field up_s number
---@field down_s number
---@field on boolean
---@field since number|nil  when the condition started disagreeing with `on`, seconds
local Hysteresis = {}
Hysteresis.__index = Hysteresis

---Create a switch (initially off), or re-attach one kept in a plain table.
---@param up_s number    seconds the condition must stay true to turn on; >= 0
---@param down_s number  seconds it must stay false to turn off; >= 0
---@param store? table   where to keep the state (default: a new table)
---@return steward.Hysteresis
function M.new(up_s, down_s, store)
  if type(up_s) ~= "number" or up_s < 0 or type(down_s) ~= "number" or down_s < 0 then
    error("hysteresis.new: up_s and down_s must be numbers >= 0", 2)
  end
  local h = store or {}
  h.up_s, h.down_s = up_s, down_s
  if h.on == nil then
    h.on = false
  end
  return setmetatable(h, Hysteresis)
end

---Feed the condition observed at `now` (seconds); returns whether the switch is on.
---@param condition boolean
---@param now number
---@return boolean
function Hysteresis:update(condition, now)
  if type(now) ~= "number" then
    error("hysteresis:update: now must be a number (seconds)", 2)
  end
  local wants = condition and true or false
  if wants == self.on then
    self.since = nil
    return self.on
  end
  self.since = self.since or now
  local hold = self.on and self.down_s or self.up_s
  if now - self.since >= hold then
    self.on = wants
    self.since = nil
  end
  return self.on
end

---@return boolean
function Hysteresis:is_on()
  return self.on
end

return M
