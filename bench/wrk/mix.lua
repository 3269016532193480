-- For --memory: creates, gets of a random prefilled id 1..n (n is the script's argument) and
-- first pages of the list, in turn.
local n = 1000
local i = 0
local create = wrk.format(
  "POST", "/api/v1/study-sessions", { ["Content-Type"] = "application/json" }, '{"group_id":1,"study_activity_id":1}'
)
local list = wrk.format("GET", "/api/v1/study-sessions?page=1&per_page=10")

function init(args)
  n = tonumber(args[1]) or n
  math.randomseed(os.time())
end

function request()
  i = i + 1
  if i % 3 == 0 then
    return create
  elseif i % 3 == 1 then
    return list
  end
  return wrk.format("GET", "/api/v1/study-sessions/" .. math.random(1, n))
end

done = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")
