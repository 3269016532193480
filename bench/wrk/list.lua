-- GET the first page of the list, newest first.
wrk.path = "/api/v1/study-sessions?page=1&per_page=10"
done = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")
