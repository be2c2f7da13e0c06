--- steward.testing — describe/it/expect and fake inputs for policy specs.
---
--- Specs run with `steward test-policy SPEC` inside the same sandbox as policies, so a
--- spec sees exactly what a policy sees. `ctx` objects made here are real ones, built by
--- the engine from a description (only the data is fake), and `load_policy` validates
--- evaluate's result with the production checker.
---
---     local t = require "steward.testing"
---     describe("geo", function()
---       it("scales up", function()
---         local p = t.load_policy("policies/geo.lua", {target = 100})
---         local desired = p:evaluate{groups = {web = {max = 5}}, metrics = {...}}
---         expect(desired.web["eu-west"]).to_be(2)
---       end)
---     end)

local native = require "steward._native"

---@class steward.testing
local M = {}

--- Directory holding steward/*.lua (to read meta.lua in specs).
M.lua_path = native.lua_path()

---@type {name: string, fn: fun()}[]
local tests = {}
M._tests = tests
local prefixes = {}

---Group tests under a name; describe blocks nest.
---@param name string
---@param fn fun()
function M.describe(name, fn)
  prefixes[#prefixes + 1] = name
  fn()
  prefixes[#prefixes] = nil
end

---Declare a test; it runs after the spec file is loaded, with its own budget.
---@param name string
---@param fn fun()
function M.it(name, fn)
  assert(type(fn) == "function", "it: expected a function")
  local full = name
  if #prefixes > 0 then
    full = table.concat(prefixes, " > ") .. " > " .. name
  end
  tests[#tests + 1] = { name = full, fn = fn }
end

---@param i integer
function M._run(i)
  tests[i].fn()
end

-- ---- expectations -------------------------------------------------------------------

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    keys[#keys + 1] = k
  end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then
      return a < b
    end
    return type(a) < type(b)
  end)
  return keys
end

---Readable text for a value (tables sorted by key, nested up to depth 4).
---@param v any
---@return string
function M.inspect(v, depth)
  depth = depth or 0
  if type(v) == "string" then
    return string.format("%q", v)
  elseif type(v) ~= "table" then
    return tostring(v)
  elseif depth >= 4 then
    return "{...}"
  end
  local parts = {}
  local n = #v
  for i = 1, n do
    parts[#parts + 1] = M.inspect(v[i], depth + 1)
  end
  for _, k in ipairs(sorted_keys(v)) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then
      local key = type(k) == "string" and k:match("^[%a_][%w_]*$") and k
        or "[" .. M.inspect(k, depth + 1) .. "]"
      parts[#parts + 1] = key .. " = " .. M.inspect(v[k], depth + 1)
    end
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

local function deep_equal(a, b)
  if a == b then
    return true
  end
  if type(a) ~= "table" or type(b) ~= "table" then
    return false
  end
  for k, v in pairs(a) do
    if not deep_equal(v, b[k]) then
      return false
    end
  end
  for k in pairs(b) do
    if a[k] == nil then
      return false
    end
  end
  return true
end
M.deep_equal = deep_equal

---@class steward.Expectation
---@field to_be fun(expected: any)
---@field to_equal fun(expected: any)
---@field to_fail fun(substring?: string): any
---@field to_be_nil fun()
---@field to_be_truthy fun()
---@field to_contain fun(item: any)
---@field to_be_near fun(expected: number, eps?: number)

---@param actual any
---@return steward.Expectation
function M.expect(actual)
  local e = {}
  ---Equal with ==.
  function e.to_be(expected)
    if actual ~= expected then
      error(("expected %s, got %s"):format(M.inspect(expected), M.inspect(actual)), 2)
    end
  end
  ---Equal field by field, recursively.
  function e.to_equal(expected)
    if not deep_equal(actual, expected) then
      error(("expected %s, got %s"):format(M.inspect(expected), M.inspect(actual)), 2)
    end
  end
  ---actual is a function that must raise (an error containing substring, if given).
  ---Returns the error.
  function e.to_fail(substring)
    if type(actual) ~= "function" then
      error("expect(x).to_fail: x must be a function", 2)
    end
    local ok, err = pcall(actual)
    if ok then
      error("expected the function to fail, but it returned", 2)
    end
    if substring ~= nil and not tostring(err):find(substring, 1, true) then
      error(("expected an error containing %q, got: %s"):format(substring, tostring(err)), 2)
    end
    return err
  end
  function e.to_be_nil()
    if actual ~= nil then
      error(("expected nil, got %s"):format(M.inspect(actual)), 2)
    end
  end
  function e.to_be_truthy()
    if not actual then
      error(("expected a truthy value, got %s"):format(M.inspect(actual)), 2)
    end
  end
  ---A string containing a substring, or a table with an element equal to item.
  function e.to_contain(item)
    if type(actual) == "string" then
      if not actual:find(item, 1, true) then
        error(("expected %q to contain %q"):format(actual, item), 2)
      end
      return
    end
    if type(actual) == "table" then
      for _, v in pairs(actual) do
        if deep_equal(v, item) then
          return
        end
      end
    end
    error(("expected %s to contain %s"):format(M.inspect(actual), M.inspect(item)), 2)
  end
  function e.to_be_near(expected, eps)
    eps = eps or 1e-9
    if type(actual) ~= "number" or math.abs(actual - expected) > eps then
      error(("expected %s within %s of %s"):format(M.inspect(actual), eps, expected), 2)
    end
  end
  return e
end

-- ---- fake inputs ----------------------------------------------------------------------

local handles = setmetatable({}, { __mode = "k" })

---Build a real ctx (as evaluate receives it) from a description. All fields optional:
---  now (seconds) or now_ms (default 1700000000000), params (table), state (table, used
---  as is), groups ({web = {min, max, regions, max_price_usd_hour, scale_up_cooldown_s,
---  scale_down_cooldown_s}} or {"web", ...}), leases ({{group, region, key, market_id,
---  provider, price_usd_hour, state = "ready", healthy = true, age_s, uris}}), offers
---  ({{region, provider, price_usd_hour, audited}}), metrics ({name = {{labels = {...},
---  value = n}}} or {name = {error = "why"}}), budget ({usd_per_hour,
---  spend_usd_per_hour}; spend defaults to the sum of lease prices), probes ({{target, unit,
---  group, region, ok = true, status, connect_ms, tls_ms, first_byte_ms, total_ms, error}}).
---  spend_usd_per_hour}; spend defaults to the sum of lease prices), providers
---  ({{provider, closures, lease_hours, mean_ready_s, backed_off_until}}).
---Unknown fields are errors, so a typo cannot silently test nothing.
---@param desc? table
---@return steward.Ctx
function M.ctx(desc)
  local ctx, handle = native.ctx(desc or {})
  handles[ctx] = handle
  return ctx
end

---What ctx.explain recorded on a ctx made by M.ctx.
---@param ctx steward.Ctx
---@return {group: string, region: string|nil, text: string}[]
function M.explanations(ctx)
  return native.explanations(assert(handles[ctx], "testing.explanations: not a testing ctx"))
end

---A copy of plain data through the same JSON path ctx.state takes to the journal and
---back (raises if the data could not be stored).
---@param value table
---@return table
function M.roundtrip(value)
  return native.roundtrip(value)
end

---Read a file (specs only; policies have no file access).
---@param path string
---@return string|nil text, string|nil err
function M.read_file(path)
  return native.read_file(path)
end

---@class steward.TestPolicy
---@field path string
---@field name string|nil
---@field interval_s number
---@field module steward.Policy
---@field params table
---@field state table      ctx.state, kept across calls as the runtime keeps it
---@field explanations {group: string, region: string|nil, text: string}[]
---@field desired table|nil the last validated result
local Policy = {}
Policy.__index = Policy

---A ctx for this policy: desc plus the policy's params and persistent state.
---@param desc? table
---@return steward.Ctx
function Policy:ctx(desc)
  if desc ~= nil and handles[desc] then
    return desc
  end
  local d = {}
  for k, v in pairs(desc or {}) do
    d[k] = v
  end
  if d.params == nil then
    d.params = self.params
  end
  if d.state == nil then
    d.state = self.state
  end
  return M.ctx(d)
end

---Run evaluate on a ctx (or a description for one) and validate the result exactly as
---the runtime does; returns the validated {group = {region = count}}.
---@param desc? table|steward.Ctx
---@return table<string, table<string, integer>>
function Policy:evaluate(desc)
  local ctx = self:ctx(desc)
  native.set_now(ctx.now_ms)
  local desired = self.module.evaluate(ctx)
  local checked = native.check_desired(desired, handles[ctx])
  native.check_state(self.state)
  self.explanations = native.explanations(handles[ctx])
  self.desired = checked
  return checked
end

---Run on_event if the policy has one.
---@param desc? table|steward.Ctx
---@param ev table
function Policy:on_event(desc, ev)
  if self.module.on_event == nil then
    return
  end
  local ctx = self:ctx(desc)
  native.set_now(ctx.now_ms)
  self.module.on_event(ctx, ev or {})
  native.check_state(self.state)
end

---Simulate a restart: ctx.state goes through the journal's JSON and back.
function Policy:restart()
  self.state = native.roundtrip(self.state)
end

---Load a policy file in this sandbox (as the runtime would, minus the separate state).
---@param path string
---@param params? table  ctx.params
---@return steward.TestPolicy
function M.load_policy(path, params)
  local module, info = native.load_policy(path)
  return setmetatable({
    path = path,
    name = info.name,
    interval_s = info.interval_s,
    module = module,
    params = params or {},
    state = {},
    explanations = {},
  }, Policy)
end

return M
