-- POST a review item into a random prefilled session of group 1 (ids 4, 8, ... up to n), of a
-- random word of group 1. Arguments: n, then the word ids of group 1.
local n = 1000
local words = {}

function init(args)
  n = tonumber(args[1]) or n
  for i = 2, #args do
    words[#words + 1] = tonumber(args[i])
  end
  math.randomseed(os.time())
end

function request()
  local session = 4 * math.random(1, math.floor(n / 4))
  local word = words[math.random(1, #words)]
  local correct = math.random(0, 1) == 1 and "true" or "false"
  return wrk.format(
    "POST", "/api/v1/study-sessions/" .. session .. "/reviews", { ["Content-Type"] = "application/json" },
    '{"word_id":' .. word .. ',"correct":' .. correct .. '}'
  )
end

done = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")
