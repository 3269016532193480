-- GET page p of the list (p is the script's argument): the last one, for --scale at 1,000,000.
function init(args)
  wrk.path = "/api/v1/study-sessions?page=" .. (tonumber(args[1]) or 1) .. "&per_page=10"
end

done = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")
