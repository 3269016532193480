-- POST id-less creates; the server picks every id.
wrk.method = "POST"
wrk.path = "/api/v1/study-sessions"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"group_id":1,"study_activity_id":1}'
done = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")
