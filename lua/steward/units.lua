--- steward.units — Akash prices and durations.
---
--- Akash quotes leases in uact per block (micro-ACT; ACT tracks the US dollar). With
--- ~6 s blocks there are 600 blocks an hour, so usd_hour = uact_per_block * 600 / 1e6.

local M = {}

M.BLOCKS_PER_HOUR = 600
M.UACT_PER_USD = 1e6

---USD per hour for a price in uact per block.
---@param uact_per_block number
---@return number
function M.usd_hour(uact_per_block)
  return uact_per_block * M.BLOCKS_PER_HOUR / M.UACT_PER_USD
end

---uact per block for a price in USD per hour.
---@param usd_hour number
---@return number
function M.uact_per_block(usd_hour)
  return usd_hour * M.UACT_PER_USD / M.BLOCKS_PER_HOUR
end

local scale = { ms = 0.001, s = 1, m = 60, h = 3600, d = 86400 }

---Seconds in a duration: "250ms", "10s", "5m", "2h", "1d", or a number of seconds
---(as in config files). Returns nil and a message for anything else.
---@param text string|number
---@return number|nil seconds, string|nil err
function M.duration(text)
  if type(text) == "number" then
    return text
  end
  if type(text) ~= "string" then
    return nil, "duration: expected a string such as \"10s\" or a number"
  end
  local number, unit = text:match("^%s*([%d%.]+)%s*(%a*)%s*$")
  local value = tonumber(number)
  if value == nil then
    return nil, ("duration: cannot read %q"):format(text)
  end
  if unit == "" then
    unit = "s"
  end
  local factor = scale[unit]
  if factor == nil then
    return nil, ("duration: unknown unit %q in %q (ms, s, m, h, d)"):format(unit, text)
  end
  local seconds = value * factor
  if math.type(seconds) == "float" and seconds == math.floor(seconds) then
    seconds = math.tointeger(seconds) or seconds
  end
  return seconds
end

return M
