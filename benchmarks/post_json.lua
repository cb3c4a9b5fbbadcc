-- wrk script for benchmarks/bench_http.py: POST the same JSON body on every request.
-- The body is read from the file named by the environment variable BENCH_BODY_FILE.
local path = os.getenv("BENCH_BODY_FILE")
if not path then
   error("set BENCH_BODY_FILE to a file holding the JSON request body")
end
local f = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
wrk.headers["Content-Type"] = "application/json"
f:close()
