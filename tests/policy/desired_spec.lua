-- How evaluate's result is read (the same checker the runtime uses).
local t = require "steward.testing"

describe("desired state", function()
  it("reads an empty group table as zero in every allowed region", function()
    local p = t.load_policy("tests/policy/fixtures/empty_group.lua")
    local desired = p:evaluate { groups = { web = { min = 0, max = 4, regions = { "a", "b" } } } }
    expect(desired).to_equal({ web = { a = 0, b = 0 } })
  end)
end)
