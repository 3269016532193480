-- GET one session, a random one of the prefilled ids 1..n (n is the script's argument, 1000 by default).
local n = 1000

function init(args)
  n = tonumber(args[1]) or n
  math.randomseed(os.time())
end

function request()
  return wrk.format("GET", "/api/v1/study-sessions/" .. math.random(1, n))
end

done = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")
