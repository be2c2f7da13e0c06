-- static_every_region.lua — baseline for the geo simulation: a fixed `units` (default 1) in
-- every region of the group, whatever the demand. Never scales.
return {
  name = "static-every-region",

  evaluate = function(ctx)
    local group = ctx.params.group or "web"
    local units = ctx.params.units or 1
    local want = {}
    for _, region in ipairs(ctx.groups[group].regions) do
      want[region] = units
    end
    ctx.explain(group, nil, string.format("static: %d unit(s) in each of %d regions", units,
      #ctx.groups[group].regions))
    return { [group] = want }
  end,
}
