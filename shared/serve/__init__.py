"""`serve`: a finished run's model behind an HTTP API (FastAPI on uvicorn).

| module | owns |
| --- | --- |
| `settings` | the command's options, checked, and the thread count each worker gets |
| `backends` | the `Predictor` seam: which engine answers (torch now; ONNX from `export` later) |
| `answering` | records in, rows out, through the project's `parse_record` and `predict_rows`; micro-batching; the log |
| `telemetry` | Prometheus metrics of one app, and the body-size limit |
| `app` | the FastAPI app: its routes, its lifespan (the model loaded once), its errors as problem + fix |
| `command` | `python -m projects.<name> serve`: uvicorn with one worker or several |
"""
