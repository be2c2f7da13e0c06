-- The shipped follow_demand policy, fed by hand-made demand.
local t = require "steward.testing"

local params = { group = "web", rps_per_unit = 100, half_life_s = 20,
                 scale_down_after_s = 30, min_rps_for_region = 40 }
local groups = { web = { min = 0, max = 20 } }

local function rps(values)
  local samples = {}
  for region, value in pairs(values) do
    samples[#samples + 1] = { labels = { region = region }, value = value }
  end
  return { rps = samples }
end

describe("follow_demand", function()
  it("asks for one unit per rps_per_unit, nothing below min_rps_for_region", function()
    local p = t.load_policy("policies/follow_demand.lua", params)
    local desired = p:evaluate { now = 1000, groups = groups,
                                 metrics = rps { ["eu-west"] = 250, ["as-east"] = 30 } }
    expect(desired.web["eu-west"]).to_be(3)
    expect(desired.web["as-east"]).to_be(0)
  end)

  it("smooths a spike instead of buying for it", function()
    local p = t.load_policy("policies/follow_demand.lua", params)
    p:evaluate { now = 1000, groups = groups, metrics = rps { ["eu-west"] = 100 } }
    -- 5 s later demand jumps to 1000: a 20 s half-life lets only ~16% of it through.
    local desired = p:evaluate { now = 1005, groups = groups,
                                 metrics = rps { ["eu-west"] = 1000 } }
    expect(desired.web["eu-west"]).to_be(3)
  end)

  it("keeps capacity until demand has stayed low for scale_down_after_s", function()
    local p = t.load_policy("policies/follow_demand.lua", params)
    local leases = {}
    for i = 1, 3 do
      leases[i] = { group = "web", region = "eu-west", key = "u" .. i, state = "ready" }
    end
    p:evaluate { now = 1000, groups = groups, leases = leases,
                 metrics = rps { ["eu-west"] = 50 } }
    local held = p:evaluate { now = 1020, groups = groups, leases = leases,
                              metrics = rps { ["eu-west"] = 50 } }
    expect(held.web["eu-west"]).to_be(3)
    expect(p.explanations[1].text).to_contain("keeping 3")
    local released = p:evaluate { now = 1031, groups = groups, leases = leases,
                                  metrics = rps { ["eu-west"] = 50 } }
    expect(released.web["eu-west"]).to_be(1)
  end)

  it("survives a restart with its smoothing state", function()
    local p = t.load_policy("policies/follow_demand.lua", params)
    p:evaluate { now = 1000, groups = groups, metrics = rps { ["eu-west"] = 100 } }
    p:restart()
    local desired = p:evaluate { now = 1020, groups = groups,
                                 metrics = rps { ["eu-west"] = 300 } }
    expect(desired.web["eu-west"]).to_be(2) -- 100 + (300-100)/2 = 200
  end)

  it("fails loudly without a demand signal (the runtime keeps the last good state)", function()
    local p = t.load_policy("policies/follow_demand.lua", params)
    expect(function()
      p:evaluate { now = 1000, groups = groups, metrics = { rps = { error = "prometheus down" } } }
    end).to_fail("no demand signal: metric 'rps': prometheus down")
  end)
end)
