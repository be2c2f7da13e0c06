-- The ctx API surface: fails when ctx gains or loses a field not listed here, or when
-- lua/steward/meta.lua (and so docs/policies.md) no longer matches. Changing the API
-- means changing this list, meta.lua and docs/policies.md together.
local t = require "steward.testing"

local CTX_FIELDS = {
  "budget", "capacity", "explain", "groups", "leases", "log", "metrics", "now", "now_ms",
  "offers", "params", "price", "probes", "providers", "ready", "regions", "state", "warn",
}
local FIELD_TYPES = {
  now = "number", now_ms = "number", params = "table", state = "table", groups = "table",
  leases = "table", offers = "table", metrics = "table", budget = "table", providers = "table",
  capacity = "function", ready = "function", price = "function", regions = "function",
  log = "function", warn = "function", explain = "function", probes = "table",
}
local LEASE_FIELDS = {
  "age_s", "group", "healthy", "key", "market_id", "pending", "price_usd_hour", "provider",
  "ready", "region", "state", "uris",
}
local OFFER_FIELDS = { "audited", "price_usd_hour", "provider", "region" }
local GROUP_FIELDS = {
  "max", "max_price_usd_hour", "min", "name", "regions", "scale_down_cooldown_s",
  "scale_up_cooldown_s",
}
local PROVIDER_FIELDS = { "backed_off_until", "closures", "lease_hours", "mean_ready_s", "provider" }
local METRICS_FIELDS = { "query", "sum_by" }
local BUDGET_FIELDS = { "spend_usd_per_hour", "usd_per_hour" }
local PROBE_FIELDS = {
  "connect_ms", "error", "first_byte_ms", "group", "ok", "region", "status", "target", "tls_ms",
  "total_ms", "unit",
}

local function keys(tbl)
  local list = {}
  for k in pairs(tbl) do
    list[#list + 1] = k
  end
  table.sort(list)
  return list
end

local function full_ctx()
  return t.ctx {
    now = 1700000000.25,
    params = { target = 100 },
    groups = { web = { min = 1, max = 5, regions = { "eu-west" } } },
    leases = {
      { group = "web", region = "eu-west", key = "k1", market_id = "123", provider = "p1",
        price_usd_hour = 0.5, uris = { "https://a" }, age_s = 30 },
    },
    offers = { { provider = "p1", region = "eu-west", price_usd_hour = 0.4, audited = true } },
    metrics = { rps = { { labels = { region = "eu-west" }, value = 10 } } },
    budget = { usd_per_hour = 3 },
    probes = {
      { target = "https://a/", unit = "k1", group = "web", region = "eu-west", ok = false,
        status = 503, connect_ms = 1, tls_ms = 2, first_byte_ms = 3, total_ms = 4,
        error = "HTTP 503" },
    },
    providers = {
      { provider = "p1", closures = 2, lease_hours = 10.5, mean_ready_s = 42,
        backed_off_until = 1700000600 },
    },
  }
end

-- Fields a class declares in meta.lua: the ---@field lines after its ---@class line.
local function meta_fields(text, class)
  local fields, inside = {}, false
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    local name = line:match("^%-%-%-@class%s+([%w_.]+)")
    if name then
      inside = (name == class)
    elseif inside then
      local field = line:match("^%-%-%-@field%s+([%w_]+)")
      if field then
        fields[#fields + 1] = field
      elseif not line:match("^%-%-%-") then
        inside = false
      end
    end
  end
  table.sort(fields)
  return fields
end

describe("ctx", function()
  it("has exactly the documented fields", function()
    expect(keys(full_ctx())).to_equal(CTX_FIELDS)
  end)

  it("fields have the documented types", function()
    local ctx = full_ctx()
    for _, name in ipairs(CTX_FIELDS) do
      local got = type(ctx[name])
      if got ~= FIELD_TYPES[name] then
        error(("ctx.%s: expected %s, got %s"):format(name, FIELD_TYPES[name], got))
      end
    end
    expect(math.type(ctx.now_ms)).to_be("integer")
    expect(ctx.now_ms).to_be(1700000000250)
    expect(ctx.now).to_be(1700000000.25)
  end)

  it("sub-tables have exactly the documented fields", function()
    local ctx = full_ctx()
    expect(keys(ctx.leases[1])).to_equal(LEASE_FIELDS)
    expect(keys(ctx.offers[1])).to_equal(OFFER_FIELDS)
    expect(keys(ctx.groups.web)).to_equal(GROUP_FIELDS)
    expect(keys(ctx.metrics)).to_equal(METRICS_FIELDS)
    expect(keys(ctx.budget)).to_equal(BUDGET_FIELDS)
    expect(keys(ctx.providers[1])).to_equal(PROVIDER_FIELDS)
    expect(keys(ctx.metrics.query("rps")[1])).to_equal({ "labels", "value" })
    expect(keys(ctx.probes[1])).to_equal(PROBE_FIELDS)
  end)

  it("probes carry the round's results, read-only", function()
    local ctx = full_ctx()
    local p = ctx.probes[1]
    expect(#ctx.probes).to_be(1)
    expect(p.ok).to_be(false)
    expect(math.type(p.status)).to_be("integer")
    expect(p.status).to_be(503)
    expect(p.total_ms).to_be(4)
    expect(function() p.ok = true end).to_fail("ctx.probes[1] is read-only")
    expect(function() ctx.probes[2] = {} end).to_fail("ctx.probes is read-only")
    expect(#t.ctx {}.probes).to_be(0)
  end)

  it("unknown fields raise instead of reading nil", function()
    local ctx = full_ctx()
    expect(function() return ctx.lease end).to_fail("ctx.lease: no such field")
  end)

  it("is read-only", function()
    local ctx = full_ctx()
    expect(function() ctx.now = 1 end).to_fail("ctx.now is read-only")
    expect(function() ctx.leases[1] = {} end).to_fail("ctx.leases is read-only")
    expect(function() ctx.leases[1].state = "x" end).to_fail("ctx.leases[1] is read-only")
    expect(function() ctx.groups.web.max = 9 end).to_fail("ctx.groups.web is read-only")
    expect(function() ctx.params.target = 1 end).to_fail("ctx.params is read-only")
    expect(function() ctx.budget.usd_per_hour = 1 end).to_fail("ctx.budget is read-only")
    expect(function() ctx.providers[1].closures = 0 end).to_fail("ctx.providers[1] is read-only")
    expect(function() ctx.state = {} end).to_fail("ctx.state is read-only")
    -- iterating does not hand out the table behind the proxy
    local _, hidden = pairs(ctx.params)
    expect(hidden).to_be_nil()
    ctx.state.ok = true -- the state's contents are the policy's
    expect(ctx.state.ok).to_be(true)
  end)
end)

describe("meta.lua", function()
  local text = assert(t.read_file(t.lua_path .. "/steward/meta.lua"))
  local classes = {
    ["steward.Ctx"] = CTX_FIELDS,
    ["steward.Lease"] = LEASE_FIELDS,
    ["steward.Offer"] = OFFER_FIELDS,
    ["steward.Group"] = GROUP_FIELDS,
    ["steward.Metrics"] = METRICS_FIELDS,
    ["steward.Budget"] = BUDGET_FIELDS,
    ["steward.Probe"] = PROBE_FIELDS,
    ["steward.Provider"] = PROVIDER_FIELDS,
  }
  local names = keys(classes)
  for _, class in ipairs(names) do
    it("documents exactly the fields of " .. class, function()
      expect(meta_fields(text, class)).to_equal(classes[class])
    end)
  end
end)

describe("ctx.providers", function()
  it("is empty without a track record and keeps nil for unknown values", function()
    expect(#t.ctx {}.providers).to_be(0)
    local ctx = t.ctx { providers = { { provider = "p2", closures = 0, lease_hours = 1 } } }
    expect(ctx.providers[1].provider).to_be("p2")
    expect(ctx.providers[1].mean_ready_s).to_be_nil()
    expect(ctx.providers[1].backed_off_until).to_be_nil()
  end)

  it("carries the back-off end in seconds, like ctx.now", function()
    local ctx = t.ctx { providers = { { provider = "p1", closures = 3, lease_hours = 0.5,
                                         mean_ready_s = 12.5, backed_off_until = 1700000600.5 } } }
    local p = ctx.providers[1]
    expect(p.closures).to_be(3)
    expect(math.type(p.closures)).to_be("integer")
    expect(p.lease_hours).to_be(0.5)
    expect(p.mean_ready_s).to_be(12.5)
    expect(p.backed_off_until).to_be(1700000600.5)
  end)
end)
