-- The shipped geo_latency policy, fed by hand-made demand, prices and RTTs.
local t = require "steward.testing"

-- Five regions; RTTs in ms (self pairs are 0).
local RTT = {
  { "eu-west", "eu-central", 15 }, { "eu-west", "us-east", 75 }, { "eu-central", "us-east", 90 },
  { "us-east", "us-west", 65 }, { "us-west", "as-east", 110 }, { "eu-west", "as-east", 220 },
  { "eu-central", "as-east", 230 }, { "us-east", "as-east", 160 }, { "eu-west", "us-west", 140 },
  { "eu-central", "us-west", 150 },
}
local PRICES = { ["eu-west"] = 0.20, ["eu-central"] = 0.10, ["us-east"] = 0.15,
                 ["us-west"] = 0.08, ["as-east"] = 0.30 }
local REGIONS = { "as-east", "eu-central", "eu-west", "us-east", "us-west" }

local function params(extra)
  local p = { group = "web", rps_per_unit = 100, slo_ms = 80, half_life_s = 1,
              scale_up_delay_s = 30, scale_down_delay_s = 300, rtt = RTT }
  for k, v in pairs(extra or {}) do
    p[k] = v
  end
  return p
end

-- A ctx description: demand {region = rps}, units {region = ready count}.
local function input(now, demand, units, prices)
  local samples = {}
  for region, rps in pairs(demand) do
    samples[#samples + 1] = { labels = { region = region }, value = rps }
  end
  local offers = {}
  for region, price in pairs(prices or PRICES) do
    offers[#offers + 1] = { region = region, provider = "p-" .. region, price_usd_hour = price }
  end
  local leases = {}
  for region, n in pairs(units or {}) do
    for i = 1, n do
      leases[#leases + 1] = { group = "web", region = region, key = region .. "-" .. i,
                              state = "ready", price_usd_hour = PRICES[region] }
    end
  end
  return {
    now = now,
    groups = { web = { min = 0, max = 40, regions = REGIONS } },
    metrics = { rps = samples },
    offers = offers,
    leases = leases,
  }
end

local function explained(p, region)
  for _, e in ipairs(p.explanations) do
    if e.region == region then
      return e.text
    end
  end
  return nil
end

local function group_explanation(p)
  return explained(p, nil)
end

local function nonzero(desired)
  local out = {}
  for region, n in pairs(desired.web) do
    if n > 0 then
      out[region] = n
    end
  end
  return out
end

describe("geo_latency placement", function()
  it("serves demand from the cheapest region within the SLO, sized by rps_per_unit", function()
    local p = t.load_policy("policies/geo_latency.lua", params())
    local desired = p:evaluate(input(1000, { ["eu-west"] = 250 }))
    -- eu-west users: eu-west (0 ms, 0.20), eu-central (15 ms, 0.10), us-east (75 ms, 0.15)
    -- all meet 80 ms; eu-central is the cheapest.
    expect(nonzero(desired)).to_equal({ ["eu-central"] = 3 })
    local why = explained(p, "eu-central")
    expect(why).to_contain("3 x 100 rps for 250 rps from eu-west 250 rps at 15 ms")
    expect(why).to_contain("chosen for 250 rps within the 80 ms SLO")
    expect(why).to_contain("0.100 USD/h")
  end)

  it("chooses the SLO-meeting placement over a cheaper one that breaks it", function()
    local p = t.load_policy("policies/geo_latency.lua", params())
    local desired = p:evaluate(input(1000, { ["as-east"] = 200 }))
    -- us-west costs 0.08 but is 110 ms from as-east users: as-east (0.30) it is.
    expect(nonzero(desired)).to_equal({ ["as-east"] = 2 })
    expect(desired.web["us-west"]).to_be_nil()
    expect(explained(p, "as-east")).to_contain("as-east 200 rps at 0 ms")
    -- With a looser SLO the cheaper region is enough.
    local loose = t.load_policy("policies/geo_latency.lua", params { slo_ms = 120 })
    expect(nonzero(loose:evaluate(input(1000, { ["as-east"] = 200 }))))
      .to_equal({ ["us-west"] = 2 })
  end)

  it("covers slo_share of the requests, not every last one", function()
    -- 4% of the demand is in as-east, far from everything else.
    local demand = { ["eu-west"] = 480, ["as-east"] = 20 }
    local p = t.load_policy("policies/geo_latency.lua", params { slo_share = 0.95 })
    expect(nonzero(p:evaluate(input(1000, demand)))).to_equal({ ["eu-central"] = 5 })
    expect(group_explanation(p)).to_contain("96.0% within 80 ms (target 95%)")
    local strict = t.load_policy("policies/geo_latency.lua",
                                 params { slo_share = 0.99, scale_up_delay_s = 0 })
    expect(nonzero(strict:evaluate(input(1000, demand))))
      .to_equal({ ["eu-central"] = 5, ["as-east"] = 1 })
  end)

  it("routes each user region to its nearest serving region", function()
    local p = t.load_policy("policies/geo_latency.lua",
                            params { scale_up_delay_s = 0, slo_share = 1 })
    local desired = p:evaluate(input(1000, { ["eu-west"] = 150, ["us-west"] = 120,
                                             ["us-east"] = 90 }))
    -- us-west (0.08) covers us-west and us-east (65 ms); eu-central covers eu-west.
    expect(nonzero(desired)).to_equal({ ["us-west"] = 3, ["eu-central"] = 2 })
    expect(explained(p, "us-west")).to_contain("us-west 120 rps at 0 ms, us-east 90 rps at 65 ms")
  end)

  it("holds min_regions, with demand and without", function()
    local p = t.load_policy("policies/geo_latency.lua", params { min_regions = 2 })
    local desired = p:evaluate(input(1000, {}))
    -- No demand: the two cheapest regions, one unit each, at once.
    expect(nonzero(desired)).to_equal({ ["us-west"] = 1, ["eu-central"] = 1 })
    expect(explained(p, "us-west")).to_contain("kept for min_regions = 2 at 0.080 USD/h")
    -- With demand, the second region is the cheapest one that also reaches it within the
    -- SLO (us-east, 75 ms from eu-west users), not merely the cheapest.
    local q = t.load_policy("policies/geo_latency.lua", params { min_regions = 2 })
    desired = q:evaluate(input(1000, { ["eu-west"] = 250 }))
    expect(nonzero(desired)).to_equal({ ["eu-central"] = 3, ["us-east"] = 1 })
    expect(explained(q, "us-east")).to_contain("kept for min_regions = 2 at 0.150 USD/h")
    -- and min_regions = 0 buys nothing until demand has been there for scale_up_delay_s
    local z = t.load_policy("policies/geo_latency.lua", params { min_regions = 0 })
    expect(nonzero(z:evaluate(input(1000, { ["eu-west"] = 250 })))).to_equal({})
    expect(explained(z, "eu-central")).to_contain("adding in 30s")
    expect(nonzero(z:evaluate(input(1030, { ["eu-west"] = 250 }))))
      .to_equal({ ["eu-central"] = 3 })
  end)

  it("never exceeds max_regions", function()
    local p = t.load_policy("policies/geo_latency.lua",
                            params { max_regions = 1, scale_up_delay_s = 0, slo_share = 1 })
    local desired = p:evaluate(input(1000, { ["eu-west"] = 300, ["as-east"] = 100 }))
    expect(nonzero(desired)).to_equal({ ["eu-central"] = 4 })
  end)
end)

describe("geo_latency over time", function()
  it("moves capacity after the scale-up and scale-down delays", function()
    local p = t.load_policy("policies/geo_latency.lua", params())
    local d = p:evaluate(input(1000, { ["eu-west"] = 300 }))
    expect(nonzero(d)).to_equal({ ["eu-central"] = 3 })
    local units = { ["eu-central"] = 3 }

    -- Demand moves to as-east. The placement wants as-east at once, but it joins only
    -- after scale_up_delay_s; eu-central keeps serving (and its units) meanwhile.
    d = p:evaluate(input(1010, { ["as-east"] = 300 }, units))
    expect(nonzero(d)).to_equal({ ["eu-central"] = 3 })
    expect(explained(p, "as-east")).to_contain("wanted for 300 rps within the 80 ms SLO")
    expect(explained(p, "as-east"))
      .to_contain("now served from eu-central at 230 ms; adding in 30s")
    d = p:evaluate(input(1039, { ["as-east"] = 300 }, units))
    expect(d.web["as-east"]).to_be(0)

    d = p:evaluate(input(1040, { ["as-east"] = 300 }, units))
    expect(d.web["as-east"]).to_be(3)
    expect(d.web["eu-central"]).to_be(3)
    units["as-east"] = 3

    -- eu-central stays until the placement has not wanted it for scale_down_delay_s.
    p:restart() -- the hysteresis lives in ctx.state
    d = p:evaluate(input(1200, { ["as-east"] = 300 }, units))
    expect(d.web["eu-central"]).to_be(3)
    expect(explained(p, "eu-central")).to_contain("leaving in 110s")
    d = p:evaluate(input(1309, { ["as-east"] = 300 }, units))
    expect(d.web["eu-central"]).to_be(3)
    d = p:evaluate(input(1310, { ["as-east"] = 300 }, units))
    expect(nonzero(d)).to_equal({ ["as-east"] = 3 })
    expect(d.web["eu-central"]).to_be(0)
    expect(explained(p, "eu-central")).to_contain("giving back 3 units")
  end)

  it("notices units that move between regions while the group's total stays the same", function()
    local p = t.load_policy("policies/geo_latency.lua", params())
    local demand = { ["eu-west"] = 250 }
    local function with_stray(desc)
      -- a unit in a region that is no candidate (not among the group's regions)
      desc.leases[#desc.leases + 1] = { group = "web", region = "sa-east", key = "stray",
                                        state = "ready", price_usd_hour = 0.1 }
      return desc
    end
    expect(nonzero(p:evaluate(with_stray(input(1000, demand, { ["eu-central"] = 3 })))))
      .to_equal({ ["eu-central"] = 3 })
    local d = p:evaluate(with_stray(input(1010, demand, { ["eu-central"] = 3 })))
    expect(d.web["us-west"]).to_be_nil()
    -- The stray unit is gone and one came in us-west: the same total, eu-central unchanged.
    d = p:evaluate(input(1020, demand, { ["eu-central"] = 3, ["us-west"] = 1 }))
    expect(d.web["us-west"]).to_be(0)
    expect(explained(p, "us-west")).to_contain("giving back 1 units")
    d = p:evaluate(input(1030, demand, { ["eu-central"] = 3, ["us-west"] = 1 }))
    expect(d.web["us-west"]).to_be(0)
    -- Now every unit is in a candidate: the us-west unit moves to as-east, same total.
    d = p:evaluate(input(1040, demand, { ["eu-central"] = 3, ["as-east"] = 1 }))
    expect(d.web["as-east"]).to_be(0)
    expect(d.web["us-west"]).to_be_nil()
    expect(explained(p, "as-east")).to_contain("giving back 1 units")
  end)

  it("scales a region up at once and down only after scale_down_delay_s", function()
    local p = t.load_policy("policies/geo_latency.lua", params())
    expect(p:evaluate(input(1000, { ["eu-west"] = 100 })).web["eu-central"]).to_be(1)
    local d = p:evaluate(input(1010, { ["eu-west"] = 500 }, { ["eu-central"] = 1 }))
    expect(d.web["eu-central"]).to_be(5)
    d = p:evaluate(input(1020, { ["eu-west"] = 80 }, { ["eu-central"] = 5 }))
    expect(d.web["eu-central"]).to_be(5)
    expect(explained(p, "eu-central")).to_contain("needs 1, keeping 5 for 300s more")
    d = p:evaluate(input(1319, { ["eu-west"] = 80 }, { ["eu-central"] = 5 }))
    expect(d.web["eu-central"]).to_be(5)
    d = p:evaluate(input(1320, { ["eu-west"] = 80 }, { ["eu-central"] = 5 }))
    expect(d.web["eu-central"]).to_be(1)
    expect(explained(p, "eu-central")).to_contain("for 300s: 1 units are enough")
  end)

  it("answers unchanged ticks from its last decision, and acts when a delay runs out", function()
    local p = t.load_policy("policies/geo_latency.lua", params())
    expect(p:evaluate(input(1000, { ["eu-west"] = 500 })).web["eu-central"]).to_be(5)
    local d = p:evaluate(input(1010, { ["eu-west"] = 80 }, { ["eu-central"] = 5 }))
    expect(d.web["eu-central"]).to_be(5)
    expect(explained(p, "eu-central")).to_contain("needs 1, keeping 5 for 300s more")
    -- Nothing changes for 290 s: the same answer, and nothing new to explain.
    for now = 1020, 1300, 10 do
      d = p:evaluate(input(now, { ["eu-west"] = 80 }, { ["eu-central"] = 5 }))
      expect(d.web["eu-central"]).to_be(5)
      expect(#p.explanations).to_be(0)
    end
    -- The hold ends on the tick it is due, though the inputs are the same.
    d = p:evaluate(input(1310, { ["eu-west"] = 80 }, { ["eu-central"] = 5 }))
    expect(d.web["eu-central"]).to_be(1)
    expect(explained(p, "eu-central")).to_contain("for 300s: 1 units are enough")
    -- Units that change are a change too: the released ones, then (after a quiet tick) a
    -- lost one, which explains the region again for the action that follows.
    p:evaluate(input(1320, { ["eu-west"] = 80 }, { ["eu-central"] = 1 }))
    expect(explained(p, "eu-central")).to_contain("1 x 100 rps for 80 rps from eu-west")
    p:evaluate(input(1330, { ["eu-west"] = 80 }, { ["eu-central"] = 1 }))
    expect(#p.explanations).to_be(0)
    d = p:evaluate(input(1340, { ["eu-west"] = 80 }, {}))
    expect(d.web["eu-central"]).to_be(1)
    expect(explained(p, "eu-central")).to_contain("1 x 100 rps for 80 rps from eu-west")
  end)

  it("decides on demand rounded up to demand_step_rps", function()
    -- 101 rps needs 2 units; rounded up to a 50 rps step it still does, and 99 rps
    -- (rounded up to 100) still needs 1.
    local p = t.load_policy("policies/geo_latency.lua", params { demand_step_rps = 50 })
    expect(p:evaluate(input(1000, { ["eu-west"] = 101 })).web["eu-central"]).to_be(2)
    local q = t.load_policy("policies/geo_latency.lua", params { demand_step_rps = 50 })
    expect(q:evaluate(input(1000, { ["eu-west"] = 99 })).web["eu-central"]).to_be(1)
  end)

  it("smooths a spike instead of buying a data center for it", function()
    local p = t.load_policy("policies/geo_latency.lua", params { half_life_s = 60 })
    p:evaluate(input(1000, { ["eu-west"] = 100 }))
    local d = p:evaluate(input(1005, { ["eu-west"] = 100, ["as-east"] = 2000 },
                           { ["eu-central"] = 1 }))
    -- 5 s of a 60 s half-life lets ~6% of the burst through (112 rps, not 2000): as-east
    -- must last scale_up_delay_s before it is bought, and meanwhile eu-central serves it:
    -- 3 units, not 21.
    expect(d.web["as-east"]).to_be(0)
    expect(d.web["eu-central"]).to_be(3)
    expect(explained(p, "as-east")).to_contain("wanted for 112 rps")
  end)
end)

describe("geo_latency explanations and errors", function()
  it("explains every region it asks for, and the whole placement", function()
    local p = t.load_policy("policies/geo_latency.lua",
                            params { scale_up_delay_s = 0, slo_share = 1, min_regions = 1 })
    local d = p:evaluate(input(1000, { ["eu-west"] = 150, ["as-east"] = 90, ["us-west"] = 50 }))
    for region in pairs(d.web) do
      expect(explained(p, region)).to_be_truthy()
    end
    local all = group_explanation(p)
    expect(all).to_contain("290 rps from 3 user regions; 100.0% within 80 ms (target 100%)")
    expect(all).to_contain("p95 15 ms") -- eu-west's 150 rps are served 15 ms away
    expect(all).to_contain("serving as-east+eu-central+us-west")
  end)

  it("serves demand before any offer is seen, from the nearest region", function()
    -- market_akash learns prices from bids: a fresh deployment has none. Unknown prices
    -- are all assumed equal (as dear as the dearest known one), so the nearest region wins.
    local p = t.load_policy("policies/geo_latency.lua", params())
    local d = p:evaluate(input(1000, { ["eu-west"] = 250 }, nil, {}))
    expect(nonzero(d)).to_equal({ ["eu-west"] = 3 })
    expect(explained(p, "eu-west")).to_contain("(assumed: no offer seen yet)")
    -- One known price: the others are assumed no cheaper, so it is not abandoned for them.
    local q = t.load_policy("policies/geo_latency.lua", params())
    d = q:evaluate(input(1000, { ["eu-west"] = 250 }, nil, { ["us-east"] = 0.15 }))
    expect(nonzero(d)).to_equal({ ["eu-west"] = 3 })
  end)

  it("serves demand from regions missing from the RTT table, and says so", function()
    local p = t.load_policy("policies/geo_latency.lua", params())
    local d = p:evaluate(input(1000, { ["eu-west"] = 100, ["mars"] = 150 }))
    expect(nonzero(d)).to_equal({ ["eu-central"] = 3 })
    expect(group_explanation(p)).to_contain("150 rps from regions without RTT data")
  end)

  it("fails loudly without a demand signal (the runtime keeps the last good state)", function()
    local p = t.load_policy("policies/geo_latency.lua", params())
    local desc = input(1000, {})
    desc.metrics = { rps = { error = "prometheus: query returned no samples" } }
    expect(function() p:evaluate(desc) end)
      .to_fail("no demand signal: metric 'rps': prometheus: query returned no samples")
  end)

  it("names bad parameters", function()
    local p = t.load_policy("policies/geo_latency.lua", { rtt = RTT })
    expect(function() p:evaluate(input(1000, {})) end).to_fail("params.rps_per_unit is required")
    p = t.load_policy("policies/geo_latency.lua", params { slo_share = 95 })
    expect(function() p:evaluate(input(1000, {})) end)
      .to_fail("params.slo_share: expected a share between 0 and 1")
    p = t.load_policy("policies/geo_latency.lua", params { min_regions = 3, max_regions = 2 })
    expect(function() p:evaluate(input(1000, {})) end)
      .to_fail("params.min_regions (3) is above max_regions (2)")
  end)

  it("reads the shipped measured RTT table", function()
    local text = assert(t.read_file("examples/geo/rtt_10_regions.csv"))
    local rows = {}
    for from, to, ms in text:gmatch("([%w%-]+),([%w%-]+),([%d%.]+)\n") do
      rows[#rows + 1] = { from = from, to = to, rtt_ms = tonumber(ms) }
    end
    expect(#rows).to_be(100)
    local p = t.load_policy("policies/geo_latency.lua",
                            { rps_per_unit = 100, rtt = rows, scale_up_delay_s = 0 })
    local prices = {}
    for _, r in ipairs(rows) do
      prices[r.from] = 0.2
    end
    prices["eu-central"] = 0.1
    local desc = input(1000, { ["eu-west"] = 300, ["na-us-east"] = 200 }, nil, prices)
    desc.groups = { web = { max = 40 } }
    local d = p:evaluate(desc)
    -- London users are 13 ms from Frankfurt (cheaper); Washington is 86 ms from
    -- Frankfurt, over the SLO: it needs a region of its own.
    expect(d.web["eu-central"]).to_be(3)
    expect(d.web["na-us-east"]).to_be(2)
  end)
end)

-- Stability: the units follow the decisions (every unit asked for is ready on the next
-- tick), and every change of a region's count after the first `settle` ticks is counted
-- as actions (one per unit bought or given back).
local function run_ticks(p, ticks, settle, step)
  local units, actions, seen = {}, 0, {}
  for k = 0, ticks - 1 do
    local demand, prices = step(k)
    local d = p:evaluate(input(1000 + 10 * k, demand, units, prices))
    local next_units = {}
    for region, n in pairs(d.web) do
      if k >= settle then
        actions = actions + math.abs(n - (units[region] or 0))
      end
      next_units[region] = n > 0 and n or nil
      if n > 0 then
        seen[region] = true
      end
    end
    for region, n in pairs(units) do
      if d.web[region] == nil and k >= settle then
        actions = actions + n
      end
    end
    units = next_units
  end
  return actions, units, seen
end

describe("geo_latency stability", function()
  -- eu-west and eu-central are 15 ms apart: either serves both regions' users within the
  -- 80 ms SLO, and the other regions are out of reach.
  it("keeps its placement while equivalent regions trade the lead in demand", function()
    local p = t.load_policy("policies/geo_latency.lua", params { half_life_s = 60 })
    local prices = { ["eu-west"] = 0.10, ["eu-central"] = 0.10, ["us-east"] = 0.15,
                     ["us-west"] = 0.08, ["as-east"] = 0.30 }
    -- Each side leads for 10 minutes in turn, the total steady at 300 rps, plus a jitter
    -- that crosses the rounding steps tick to tick.
    local actions, units = run_ticks(p, 360, 10, function(k)
      local lead = (k // 60) % 2 == 0 and 40 or -40
      local jitter = (k % 3) * 4
      return { ["eu-west"] = 150 + lead + jitter, ["eu-central"] = 150 - lead - jitter },
        prices
    end)
    expect(actions).to_be(0)
    local regions = 0
    for _ in pairs(units) do
      regions = regions + 1
    end
    expect(regions).to_be(1)
  end)

  it("keeps its placement while equivalent regions trade the lowest price", function()
    local p = t.load_policy("policies/geo_latency.lua", params())
    local actions = run_ticks(p, 360, 10, function(k)
      -- 1% apart, the cheaper one changing every 10 minutes (longer than either delay).
      local a, b = 0.100, 0.101
      if (k // 60) % 2 == 1 then
        a, b = b, a
      end
      return { ["eu-west"] = 260, ["eu-central"] = 20 },
        { ["eu-west"] = a, ["eu-central"] = b, ["us-east"] = 0.15, ["us-west"] = 0.08,
          ["as-east"] = 0.30 }
    end)
    expect(actions).to_be(0)
  end)

  it("still moves for a saving above switch_saving, once, after the delays", function()
    local p = t.load_policy("policies/geo_latency.lua", params { switch_saving = 0.1 })
    local actions, units, seen = run_ticks(p, 120, 10, function(k)
      -- eu-west becomes 30% cheaper than eu-central after 5 minutes and stays so.
      local west = k < 30 and 0.20 or 0.07
      return { ["eu-west"] = 250 },
        { ["eu-west"] = west, ["eu-central"] = 0.10, ["us-east"] = 0.15, ["us-west"] = 0.08,
          ["as-east"] = 0.30 }
    end)
    expect(seen["eu-central"]).to_be(true)
    expect(units).to_equal({ ["eu-west"] = 3 })
    expect(actions).to_be(6) -- 3 units bought in eu-west, 3 given back in eu-central
  end)

  it("takes the whole placement at once on a fresh start, not all demand in one region",
    function()
      local p = t.load_policy("policies/geo_latency.lua", params())
      local d = p:evaluate(input(1000, { ["eu-west"] = 250, ["as-east"] = 200 }))
      -- Waiting scale_up_delay_s for as-east would pile its 200 rps on eu-central (5 units
      -- instead of 3) and give the extra 2 back after scale_down_delay_s.
      expect(nonzero(d)).to_equal({ ["eu-central"] = 3, ["as-east"] = 2 })
      expect(explained(p, "as-east")).to_contain("(added at once: nothing served yet)")
      expect(explained(p, "eu-central")).to_contain("(added at once: min_regions = 1)")
    end)

  it("decides after a restart what it would have decided running on", function()
    -- The placement it keeps lives in ctx.state (the hysteresis); its memo does not survive
    -- a restart, and must not matter: a restarted copy, given the same state and inputs,
    -- answers every tick as the running policy does.
    local p = t.load_policy("policies/geo_latency.lua", params { half_life_s = 30 })
    local units = {}
    for k = 0, 119 do
      local phase = k / 40
      local demand = { ["eu-west"] = 150 + 120 * math.sin(phase),
                       ["eu-central"] = 150 - 120 * math.sin(phase),
                       ["us-east"] = 90 + 80 * math.cos(phase), ["us-west"] = 60,
                       ["as-east"] = 40 + 40 * math.sin(2 * phase) }
      local prices = { ["eu-west"] = 0.10 + (k // 30) % 2 * 0.002, ["eu-central"] = 0.10,
                       ["us-east"] = 0.09, ["us-west"] = 0.09, ["as-east"] = 0.30 }
      local q = t.load_policy("policies/geo_latency.lua", params { half_life_s = 30 })
      q.state = p.state
      q:restart()
      local d = p:evaluate(input(1000 + 10 * k, demand, units, prices))
      expect(q:evaluate(input(1000 + 10 * k, demand, units, prices))).to_equal(d)
      units = nonzero(d)
    end
  end)

  it("decides and explains with its short-cuts what a full evaluation does", function()
    -- A running policy keeps its placement without choosing again while the demand moves
    -- little, and works out only the regions whose load moved; a restarted copy (no memo)
    -- decides everything afresh. Every answer, and every explanation the running one gives,
    -- must be the restarted copy's: kept regions quote this tick's costs, not stale ones.
    local p = t.load_policy("policies/geo_latency.lua", params { half_life_s = 30 })
    local prices = { ["eu-west"] = 0.11, ["eu-central"] = 0.10, ["us-east"] = 0.09,
                     ["us-west"] = 0.09, ["as-east"] = 0.30 }
    local units, kept_explained = {}, 0
    for k = 0, 239 do
      -- A slow ramp up and down in eu-west: its rounded demand moves every other tick, a
      -- unit of eu-central's (which serves it) now and then.
      local ramp = (k % 120) < 60 and (k % 120) or 120 - (k % 120)
      local demand = { ["eu-west"] = 300 + 2.5 * ramp, ["eu-central"] = 200,
                       ["us-west"] = 100 }
      local q = t.load_policy("policies/geo_latency.lua", params { half_life_s = 30 })
      q.state = p.state
      q:restart()
      local d = p:evaluate(input(1000 + 10 * k, demand, units, prices))
      expect(q:evaluate(input(1000 + 10 * k, demand, units, prices))).to_equal(d)
      for _, e in ipairs(p.explanations) do
        if e.region ~= nil then
          expect(e.text).to_equal(explained(q, e.region))
          if e.text:find("kept for", 1, true) then
            kept_explained = kept_explained + 1
          end
        end
      end
      units = nonzero(d)
    end
    expect(kept_explained > 5).to_be(true)
  end)

  it("keeps a placement whose saving is below switch_saving, and says why", function()
    local p = t.load_policy("policies/geo_latency.lua", params { switch_saving = 0.1 })
    local _, units = run_ticks(p, 60, 10, function(k)
      local west = k < 30 and 0.20 or 0.095 -- 5% below eu-central: not worth a move
      return { ["eu-west"] = 250 },
        { ["eu-west"] = west, ["eu-central"] = 0.10, ["us-east"] = 0.15, ["us-west"] = 0.08,
          ["as-east"] = 0.30 }
    end)
    expect(units).to_equal({ ["eu-central"] = 3 })
    -- A new policy state sees the same inputs: the kept region explains itself.
    local q = t.load_policy("policies/geo_latency.lua", params { switch_saving = 0.1 })
    q:evaluate(input(1000, { ["eu-west"] = 250 }, { ["eu-central"] = 3 },
      { ["eu-west"] = 0.095, ["eu-central"] = 0.10, ["us-east"] = 0.15, ["us-west"] = 0.08,
        ["as-east"] = 0.30 }))
    expect(explained(q, "eu-central")).to_contain("kept for 250 rps within the 80 ms SLO")
    expect(explained(q, "eu-central")).to_contain("a move needs 10% less")
  end)
end)
